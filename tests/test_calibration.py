"""Calibration runs: resume after a kill is bit-identical, batch/thread independence, targets, errors."""
import json
import threading
import time

import h5py
import numba
import numpy as np
import pytest
from click.testing import CliRunner

from chipsim.workflows.calibrate import CalibOptions, _Killed, run_calibration
from chipsim.core.chip import Chip
from chipsim.cli.main import main
from chipsim.config import LearningConfig
from chipsim.core.learning import setup_learning

from tiny import bundle, fc_chain

LEARN = ("mode=exact", "lr=1", "warmup=16", "dead_zone=0.05")


def calibrate(tmp_path, name, **kw):
    opts = dict(noise=("mismatch=0.3",), samples=60, calib_samples=96, batch_size=16, epochs=2, learn=LEARN,
                checkpoint_every=32, out=tmp_path / name)
    opts.update(kw)
    return run_calibration(CalibOptions(**opts))


def registers(path):
    with h5py.File(path) as f:
        return {k: f["registers"][k][()] for k in ("weights", "bias", "theta")}


#: fractional sign pulses drawn by skipping, every layer learning (the direct-input fc1 too, scaled by its
#: input values), threshold trim: the shipped nets' scheme
SPARSE = ("mode=sign", "pulse=0.3", "layers=[fc1, fc2, fc3]", "multibit_input=scale", "threshold_pulse=0.01",
          "warmup=16", "dead_zone=0.05")
#: SPARSE with every step halved each 20 samples: the decay steps fall inside batches of 8, 16 and 64
DECAY = SPARSE + ("pulse_decay=0.5", "pulse_decay_every=20")
#: DECAY started again at every epoch
DECAY_RESTART = DECAY + ("pulse_decay_restart=epoch",)


@pytest.mark.parametrize("learn", [LEARN, SPARSE, DECAY, DECAY_RESTART],
                         ids=["exact", "sparse", "decay", "decay-restart"])
def test_resume_after_kill_is_bit_identical(tmp_path, learn):
    full = calibrate(tmp_path, "full", learn=learn)
    with pytest.raises(_Killed):
        calibrate(tmp_path, "killed", stop_after_batches=9, learn=learn)     # 6 batches per epoch: dies in epoch 2
    assert (tmp_path / "killed" / "checkpoint.h5").exists()
    assert not (tmp_path / "killed" / "summary.json").exists()
    resumed = run_calibration(CalibOptions(resume=tmp_path / "killed"))
    a, b = registers(tmp_path / "full" / "calibrated.h5"), registers(tmp_path / "killed" / "calibrated.h5")
    assert np.array_equal(a["weights"], b["weights"]) and np.array_equal(a["bias"], b["bias"])
    assert np.array_equal(a["theta"], b["theta"])
    assert resumed["resumed"] and resumed["accuracy_per_epoch"] == full["accuracy_per_epoch"]
    assert resumed["learning_layers"] == full["learning_layers"]
    if learn != LEARN:
        assert full["learning_layers"]["fc1"]["pulses"] > 100 and full["learning_layers"]["fc1"]["threshold_writes"]


def test_resume_from_a_checkpoint_of_an_older_chipsim(tmp_path):
    """A checkpoint written before the last counters were appended (no counter names, fewer columns)
    resumes: its counts map onto today's columns by name, the missing ones start at 0."""
    from chipsim.core.kernels import layout as K

    full = calibrate(tmp_path, "full")
    with pytest.raises(_Killed):
        calibrate(tmp_path, "old", stop_after_batches=9)
    with h5py.File(tmp_path / "old" / "checkpoint.h5", "a") as f:
        old = f["learn_counters"][()][:, :K.C_DEVICE_FAILURES]   # as chipsim wrote it before device_failures
        del f["learn_counters"]
        f.create_dataset("learn_counters", data=old)
        del f.attrs["counter_names"]
    resumed = run_calibration(CalibOptions(resume=tmp_path / "old"))
    assert resumed["learning_layers"] == full["learning_layers"]
    assert resumed["accuracy_per_epoch"] == full["accuracy_per_epoch"]


_THREE_THREADS = """
import json, sys, numba
numba.set_num_threads(3)
import chipsim.core.pipeline
chipsim.core.pipeline.MIN_PIPELINE_S = 0.0
from chipsim.workflows.calibrate import CalibOptions, run_calibration
s = run_calibration(CalibOptions(**json.loads(sys.argv[1])))
print(json.dumps(s["learning_layers"]))
"""


@pytest.mark.parametrize("learn", [LEARN, SPARSE, DECAY], ids=["exact", "sparse", "decay"])
def test_learning_is_independent_of_batch_size_and_threads(tmp_path, learn, monkeypatch):
    """Batches of 1, 8, 16 and 64 samples; 1, 2 and 3 threads (3 in a process that allows them):
    the calibrated chip is the same bit for bit. digits is small enough to learn sequentially on any
    thread count (chipsim/core/pipeline.py, MIN_PIPELINE_S), so the pipeline is forced on here."""
    import subprocess
    import sys

    import chipsim.core.pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "MIN_PIPELINE_S", 0.0)
    pipelined = []
    real = pipeline_module.LayerPipeline._schedule
    monkeypatch.setattr(pipeline_module.LayerPipeline, "_schedule",
                        lambda self, *a: pipelined.append(a[5]) or real(self, *a))

    runs = {}
    for bs in (16, 1, 8, 64):
        runs[f"b{bs}"] = calibrate(tmp_path, f"b{bs}", epochs=1, batch_size=bs, learn=learn)
    threads = numba.get_num_threads()
    try:
        for t in (1, 2):
            if t <= numba.config.NUMBA_NUM_THREADS:
                numba.set_num_threads(t)
                runs[f"t{t}"] = calibrate(tmp_path, f"t{t}", epochs=1, learn=learn)
    finally:
        numba.set_num_threads(threads)
    assert "t2" in runs, "this check needs a process with at least 2 Numba threads"
    assert pipelined and all(len(stages) >= 2 for stages in pipelined)
    opts = dict(noise=["mismatch=0.3"], samples=60, calib_samples=96, batch_size=16, epochs=1, learn=list(learn),
                checkpoint_every=32, out=str(tmp_path / "t3"))
    done = subprocess.run([sys.executable, "-c", _THREE_THREADS, json.dumps(opts)], capture_output=True, text=True,
                          env={**__import__("os").environ, "NUMBA_NUM_THREADS": "3"}, timeout=600)
    assert done.returncode == 0, done.stderr
    three = json.loads(done.stdout.strip().splitlines()[-1])
    ref = registers(tmp_path / "b16" / "calibrated.h5")
    for name in list(runs) + ["t3"]:
        other = registers(tmp_path / name / "calibrated.h5")
        for key in ("weights", "bias", "theta"):
            assert np.array_equal(ref[key], other[key]), (name, key)
    for name, s in runs.items():
        assert s["learning_layers"] == runs["b16"]["learning_layers"], name
        assert s["accuracy_after"] == runs["b16"]["accuracy_after"], name
    assert three == json.loads(json.dumps(runs["b16"]["learning_layers"]))


def test_calibration_recovers_mismatch_and_saves_loadable_weights(tmp_path):
    s = calibrate(tmp_path, "c", epochs=1, calib_samples=None, samples=None, noise=("mismatch=0.4",))
    assert s["accuracy_after"] > s["accuracy_before"] + 0.05
    for layer in s["learning_layers"].values():
        assert layer["updates_sign_gated"] <= layer["updates_boxcar_gated"] <= layer["updates_ungated"]
    # the calibrated chip state reproduces accuracy_after when loaded with --weights
    result = CliRunner().invoke(main, ["run", "--weights", s["calibrated_weights"], "--no-progress", "--json",
                                       "--out", str(tmp_path / "check")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["accuracy"] == s["accuracy_after"]


def test_producer_error_ends_the_run_promptly(tmp_path, monkeypatch):
    from chipsim.hostlink import teacher

    calls = {"n": 0}
    original = teacher.TeacherTargets.targets

    def failing(self, images, labels):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("teacher exploded on batch 3")
        return original(self, images, labels)

    monkeypatch.setattr(teacher.TeacherTargets, "targets", failing)
    t0 = time.perf_counter()
    with pytest.raises(OSError, match="teacher exploded on batch 3"):
        calibrate(tmp_path, "err", epochs=1)
    assert time.perf_counter() - t0 < 60
    time.sleep(0.3)
    assert not [t for t in threading.enumerate() if t.name == "chipsim-host-producer"]


def test_targets_are_normalised_quantized_and_in_chip_order():
    from chipsim.hostlink.teacher import TeacherTargets
    from chipsim.config import parse_net

    data = {"name": "t", "input_shape": [1, 2, 2], "time_steps": 4,
            "layers": [{"name": "c", "type": "conv", "out": 2, "kernel": 1}, {"type": "flatten"},
                       {"name": "f", "type": "fc", "out": 3}]}
    net = parse_net(data, "<t>")
    chip = Chip(net, bundle(net, [np.ones((2, 1, 1, 1)), np.ones((3, 8))]))
    setup = setup_learning(chip, LearningConfig(enabled=True, target_bits=4, target_percentile=100.0), seed=0)
    teacher = {"c": (np.array([[[[1.0]]], [[[2.0]]]]), np.zeros(2)), "f": (np.ones((3, 8)), np.zeros(3))}
    images = np.array([[[[0, 4], [8, 16]]]], np.uint8)        # pixel_max 16 -> x = 0, .25, .5, 1
    tt = TeacherTargets(net, teacher, setup, 16, images)
    # conv activations: channel 0 = x, channel 1 = 2x; y_norm = max = 2 (percentile 100)
    assert tt.y_norm["c"] == 2.0
    t = tt.targets(images, np.array([1]))
    # chip order (y, x, c): (x, 2x) per pixel, / 2, * 15, rounded
    expected = np.round(np.array([0, 0, .25, .5, .5, 1, 1, 2]) / 2 * 15)
    assert t[0, setup.target_slices["c"]].tolist() == expected.tolist()
    assert t[0, setup.target_slices["f"]].tolist() == [0, 15, 0]      # label 1 as a one-hot rate


def test_calibration_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="--learn mode=fast: |learning.mode: expected one of 'sign', 'exact'"):
        calibrate(tmp_path, "e1", learn=("mode=fast",))
    with pytest.raises(ValueError, match="no checkpoint.h5"):
        run_calibration(CalibOptions(resume=tmp_path))


def test_target_store_key_and_rows(tmp_path):
    """Stored rows are the teacher's own; the key follows every input of a target."""
    import dataclasses

    from chipsim.config import load_net
    from chipsim.hostlink.teacher import TargetStore, TeacherTargets
    from chipsim.models import resolve_net
    from chipsim.core.weights import load_weights

    net = load_net(resolve_net("digits"))
    bnd = load_weights(net.weights)
    setup = setup_learning(Chip(net, bnd), net.learning, seed=0)
    images = np.random.default_rng(0).integers(0, 17, size=(20, 1, 8, 8)).astype(np.uint8)
    labels = np.arange(20) % 10
    tt = TeacherTargets(net, bnd.teacher, setup, 16, images)
    key = tt.cache_key(images, labels)
    assert key == TeacherTargets(net, bnd.teacher, setup, 16, images).cache_key(images, labels)
    other_images = images.copy()
    other_images[3, 0, 2, 2] ^= 1
    assert tt.cache_key(other_images, labels) != key
    assert tt.cache_key(images, np.roll(labels, 1)) != key
    rate = setup_learning(Chip(net, bnd), dataclasses.replace(net.learning, label_rate=0.5), seed=0)
    assert TeacherTargets(net, bnd.teacher, rate, 16, images).cache_key(images, labels) != key
    bits = setup_learning(Chip(net, bnd), dataclasses.replace(net.learning, target_bits=6), seed=0)
    assert TeacherTargets(net, bnd.teacher, bits, 16, images).cache_key(images, labels) != key
    # step sizes and their schedule do not change a target: a net whose learning section differs only
    # there shares the store (a new key would recompute it: 22 GB for VGG-11's 50,000 images)
    steps = dataclasses.replace(net.learning, pulse=net.learning.pulse * 3, pulse_decay=0.5, pulse_decay_every=7)
    stepped = dataclasses.replace(net, learning=steps)
    setup2 = setup_learning(Chip(stepped, bnd), steps, seed=0)
    assert TeacherTargets(stepped, bnd.teacher, setup2, 16, images).cache_key(images, labels) == key

    store = TargetStore(tmp_path / "t", tt, images, labels)
    idx = np.array([4, 1, 4, 7])
    first = store.targets(idx, images[idx], labels[idx])
    assert np.array_equal(first, tt.targets(images[idx], labels[idx]))
    assert store.misses == 4 and store.hits == 0
    again = TargetStore(tmp_path / "t", tt, images, labels)      # another process opening the same folder
    idx2 = np.array([1, 2, 7])
    second = again.targets(idx2, images[idx2], labels[idx2])
    assert np.array_equal(second, tt.targets(images[idx2], labels[idx2]))
    assert again.hits == 2 and again.misses == 1
    np.lib.format.open_memmap(tmp_path / "t" / f"{key}.done.npy", mode="w+", dtype=np.uint8, shape=(5,))
    with pytest.raises(OSError, match="--target-cache .*expected uint8 \\(20,\\)"):
        TargetStore(tmp_path / "t", tt, images, labels)


def test_calibration_with_target_cache_is_identical(tmp_path):
    """Cold and warm --target-cache runs give the chip of a run without it; the warm one computes nothing."""
    plain = calibrate(tmp_path, "plain", learn=SPARSE)
    cold = calibrate(tmp_path, "cold", learn=SPARSE, target_cache=tmp_path / "targets")
    warm = calibrate(tmp_path, "warm", learn=SPARSE, target_cache=tmp_path / "targets", seed=0)
    ref = registers(tmp_path / "plain" / "calibrated.h5")
    for name, s in (("cold", cold), ("warm", warm)):
        regs = registers(tmp_path / name / "calibrated.h5")
        assert all(np.array_equal(ref[k], regs[k]) for k in ref), name
        assert s["accuracy_per_epoch"] == plain["accuracy_per_epoch"]
        assert s["learning_layers"] == plain["learning_layers"]
    assert cold["target_cache"]["rows_computed"] == 96 and cold["target_cache"]["rows_read"] == 96   # 2 epochs
    assert warm["target_cache"] == {"folder": str(tmp_path / "targets"), "rows_read": 192, "rows_computed": 0}
    assert plain["target_cache"] is None


def test_progress_callback_holding_a_stream_does_not_break_checkpoints(tmp_path):
    """The CLI's progress bar (on_batch) holds an open stream; options are saved without copying it."""
    import sys

    class Bar:
        def __init__(self):
            self.stream = sys.stderr

        def __call__(self, n, total):
            pass

    s = calibrate(tmp_path, "bar", epochs=1, on_batch=Bar())
    assert s["accuracy_after"] >= 0


def test_teacher_targets_do_not_depend_on_batching():
    """A float32 GEMM rounds a row differently with other rows beside it; batched VGG-11 targets flipped
    a few levels per batch with the batch's make-up. Targets are computed per image: any batching of
    the same images gives the same targets, bit for bit."""
    from chipsim.hostlink.datasets import load_dataset
    from chipsim.hostlink.teacher import TeacherTargets
    from chipsim.workflows.runner import deploy, resolve_net_option, resolve_weights

    net = resolve_net_option("vgg11-w4")
    bundle, source = resolve_weights(net, None, 0)
    chip = deploy(net, bundle, source, (), 0)[0]
    from chipsim.workflows.calibrate import learning_config

    setup = setup_learning(chip, learning_config(net, ()), 0)
    data = load_dataset("cifar10-test-subset", "test", limit=96)
    teacher = TeacherTargets(net, bundle.teacher, setup, data.pixel_max, data.images[:32])
    whole = teacher.targets(data.images, data.labels)
    for size in (7, 40):
        parts = [teacher.targets(data.images[i:i + size], data.labels[i:i + size]) for i in range(0, 96, size)]
        assert np.array_equal(whole, np.concatenate(parts)), size
    assert whole.any() and (whole < (1 << setup.config.target_bits)).all()


def test_pause_after_an_epoch_then_continue_is_bit_identical(tmp_path, monkeypatch):
    """pause_after_epoch stops a run after that epoch with a checkpoint and progress.json (no summary);
    continuing it ends with the chip and figures of a run that never paused."""
    import chipsim.workflows.calibrate as cal

    full = calibrate(tmp_path, "full")
    paused = calibrate(tmp_path, "paused", pause_after_epoch=1)
    assert paused == {"status": "paused", "epochs_done": 1, "epochs": 2,
                      "accuracy_before": full["accuracy_before"], "accuracy_per_epoch": full["accuracy_per_epoch"][:1]}
    folder = tmp_path / "paused"
    assert (folder / "checkpoint.h5").is_file() and not (folder / "summary.json").exists()
    progress = json.loads((folder / "progress.json").read_text())
    assert progress["epochs_done"] == 1 and progress["epochs"] == 2
    assert progress["accuracy_per_epoch"] == full["accuracy_per_epoch"][:1] and progress["learn_samples"] == 96

    # asked again to stop after epoch 1: already there, so nothing is built or run
    def no_deploy(*a, **k):
        raise AssertionError("a paused run that is already far enough deployed a chip")

    monkeypatch.setattr(cal, "deploy", no_deploy)
    assert run_calibration(CalibOptions(resume=folder, pause_after_epoch=1))["epochs_done"] == 1
    monkeypatch.undo()

    resumed = run_calibration(CalibOptions(resume=folder, pause_after_epoch=5))     # past the last epoch: runs out
    assert resumed["accuracy_per_epoch"] == full["accuracy_per_epoch"]
    assert resumed["learning_layers"] == full["learning_layers"]
    a, b = registers(tmp_path / "full" / "calibrated.h5"), registers(folder / "calibrated.h5")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert json.loads((folder / "progress.json").read_text())["epochs_done"] == 2
    with pytest.raises(Exception, match="pause_after_epoch: expected an integer >= 1, got 0"):
        calibrate(tmp_path, "bad", pause_after_epoch=0)


def test_decay_pieces_split_batches_at_the_schedule_steps():
    """The factor is pulse_decay ** (sample // every), counted across epochs; a batch is split where it
    changes, and not at all without a schedule."""
    from chipsim.workflows.calibrate import decay_pieces

    cfg = LearningConfig(pulse_decay=0.5, pulse_decay_every=20)
    assert [cfg.step_factor(n) for n in (0, 19, 20, 39, 40, 100)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.5 ** 5]
    assert decay_pieces(cfg, 16, 16) == [(0, 4, 1.0), (4, 16, 0.5)]
    assert decay_pieces(cfg, 0, 64) == [(0, 20, 1.0), (20, 40, 0.5), (40, 60, 0.25), (60, 64, 0.125)]
    assert decay_pieces(cfg, 40, 20) == [(0, 20, 0.25)]
    assert decay_pieces(LearningConfig(), 20, 64) == [(0, 64, 1.0)]


def test_the_schedule_counts_across_epochs_or_restarts_at_each():
    """never: epoch 1's first sample continues epoch 0's count; epoch: it starts at 0 again."""
    run = LearningConfig(pulse_decay=0.5, pulse_decay_every=20)
    restart = LearningConfig(pulse_decay=0.5, pulse_decay_every=20, pulse_decay_restart="epoch")
    assert [run.schedule_sample(e, i, 96) for e, i in ((0, 0), (0, 95), (1, 0), (2, 5))] == [0, 95, 96, 197]
    assert [restart.schedule_sample(e, i, 96) for e, i in ((0, 0), (0, 95), (1, 0), (2, 5))] == [0, 95, 0, 5]


def test_a_restarted_schedule_learns_again_in_the_next_epoch(tmp_path):
    """Two epochs of 96 samples halving every 20: epoch 0 is the same run either way (the same accuracy
    after it); restarted, epoch 1 begins at the full steps again, so it fires more pulses and
    ends at the factor of sample 95 (0.5^4), not of sample 191 (0.5^9)."""
    across = calibrate(tmp_path, "across", learn=DECAY)
    restart = calibrate(tmp_path, "restart", learn=DECAY_RESTART)
    assert across["step_factor_end"] == 0.5 ** 9 and restart["step_factor_end"] == 0.5 ** 4
    assert restart["accuracy_per_epoch"][0] == across["accuracy_per_epoch"][0]
    one = calibrate(tmp_path, "one", epochs=1, learn=DECAY)
    pulses = {name: sum(layer["pulses"] for layer in s["learning_layers"].values())
              for name, s in (("across", across), ("restart", restart), ("one", one))}
    second_across, second_restart = pulses["across"] - pulses["one"], pulses["restart"] - pulses["one"]
    assert 0 <= second_across < 0.6 * second_restart, pulses


def test_pulse_decay_scales_every_step_and_fires_fewer_pulses(tmp_path):
    """set_step_factor scales pulse, lr and threshold step exactly from their set-up values; over
    96 samples halving every 20 (mean factor (20 + 10 + 5 + 2.5 + 0.5) / 96 = 0.40 of the steps), the run
    fires well under 0.6 of the constant schedule's weight pulses (seeded). Threshold writes are not
    compared: a step of a whole LSB or more writes on every gated update whatever its size."""
    from chipsim.core.kernels import layout as K

    constant = calibrate(tmp_path, "constant", epochs=1, learn=SPARSE)
    decayed = calibrate(tmp_path, "decayed", epochs=1, learn=DECAY)
    c = sum(layer["pulses"] for layer in constant["learning_layers"].values())
    d = sum(layer["pulses"] for layer in decayed["learning_layers"].values())
    assert 0 < d < 0.6 * c, (d, c)
    assert decayed["step_factor_end"] == 0.5 ** 4 and constant["step_factor_end"] == 1.0

    from chipsim.config import parse_net

    data = {"name": "t", "input_shape": [1, 2, 2], "time_steps": 4,
            "layers": [{"name": "c", "type": "conv", "out": 2, "kernel": 1}, {"type": "flatten"},
                       {"name": "f", "type": "fc", "out": 3}]}
    net = parse_net(data, "<t>")
    chip = Chip(net, bundle(net, [np.ones((2, 1, 1, 1)), np.ones((3, 8))]))
    setup = setup_learning(chip, LearningConfig(enabled=True, pulse=0.3, lr=2.0, threshold_pulse=0.01,
                                                layer_pulse={"c": 0.05}), seed=0)
    before = setup.lparams.copy()
    steps = [K.L_PULSE, K.L_LR, K.L_TH_STEP]
    assert (before[:, steps] > 0).all()
    for factor in (0.25, 0.5 ** 7, 1.0):
        setup.set_step_factor(factor)
        assert np.array_equal(setup.lparams[:, steps], before[:, steps] * factor)
        others = [c for c in range(K.N_LPARAMS) if c not in steps]
        assert np.array_equal(setup.lparams[:, others], before[:, others])


def test_a_run_within_the_first_decay_step_is_unchanged(tmp_path):
    """96 samples with pulse_decay_every=96: the factor is 1 throughout, so the chip is the constant
    schedule's bit for bit (why the shipped schedule leaves every 5,000-image calibration as it was)."""
    constant = calibrate(tmp_path, "constant", epochs=1, learn=SPARSE)
    within = calibrate(tmp_path, "within", epochs=1, learn=SPARSE + ("pulse_decay=0.25", "pulse_decay_every=96"))
    a, b = registers(tmp_path / "constant" / "calibrated.h5"), registers(tmp_path / "within" / "calibrated.h5")
    for key in ("weights", "bias", "theta"):
        assert np.array_equal(a[key], b[key]), key
    assert within["learning_layers"] == constant["learning_layers"] and within["step_factor_end"] == 1.0
