"""Event counts as per-tick multi-bit input (`encoder: {kind: events, bin_value: count, cap: N}`):
the first layer's per-tick currents against plain numpy, its counters (multi-bit reads are MACs),
a learning tick against the plain-Python reference of tests/test_learning_reference.py, independence
of batch size and thread count, the input-range check, and a calibration run that recovers accuracy."""
from __future__ import annotations

from pathlib import Path

import numba
import numpy as np
import pytest
import yaml

from chipsim.config import LearningConfig, load_net, parse_net
from chipsim.core.chip import Chip, DeployError
from chipsim.core.kernels import layout as K
from chipsim.core.learning import setup_learning

from tiny import bundle


def events_net(layers, input_shape=(2, 3, 4), T=5, cap=3, input_bits=2, delay=False, readout="potential",
               weight_bits=8):
    c, h, w = input_shape
    data = {"name": "ev", "input_shape": list(input_shape), "time_steps": T,
            "encoder": {"kind": "events", "sensor": [w, h], "polarity": "split" if c == 2 else "merged",
                        "bin_value": "count", "cap": cap, "input_bits": input_bits},
            "layers": layers, "readout": readout, "chip": {"delay": delay, "weight_bits": weight_bits}}
    return parse_net(data, "<events>")


def increments(chip, x):
    """I per (sample, tick, neuron), read off the membrane of non-firing IF neurons."""
    res = chip.run(x, record=("membrane",))
    u = res.membrane.astype(np.int64)
    return np.diff(np.concatenate([np.zeros_like(u[:, :1]), u], axis=1), axis=1), res


def random_counts(rng, B, T, n, cap):
    x = rng.integers(0, cap + 1, (B, T, n)).astype(np.int32)
    x[rng.random((B, T, n)) < 0.3] = 0                     # sparse, like event bins
    x[:, 1, :] = 0                                         # one silent tick: bias only
    return x


# ----------------------------------------------------------------- exact reads and counters
@pytest.mark.parametrize("delay", [False, True])
def test_fc_first_layer_reads_each_ticks_counts(delay):
    rng = np.random.default_rng(1)
    B, T, n_out, cap = 3, 5, 6, 3
    net = events_net([{"type": "flatten"}, {"name": "fc1", "type": "fc", "out": n_out}], T=T, cap=cap, delay=delay)
    w = rng.integers(-127, 128, (n_out, 24))
    b = rng.integers(-40, 41, n_out)
    chip = Chip(net, bundle(net, [w], biases=[b], thresholds=[10**6]))
    assert chip.input_format(B) == ((B, T, 24), np.int32)
    x = random_counts(rng, B, T, 24, cap)                  # chip order (y, x, c)
    inc, res = increments(chip, x)
    teacher = x.reshape(B, T, 3, 4, 2).transpose(0, 1, 4, 2, 3).reshape(B, T, 24)   # flatten order (c, y, x)
    for bi in range(B):
        for t in range(T):
            t_in = t - 1 if delay else t
            expect = b + (w @ teacher[bi, t_in] if t_in >= 0 else 0)
            assert np.array_equal(inc[bi, t], expect), (bi, t)
            c = res.counters[bi, t, 0]
            nz = int((x[bi, t_in] != 0).sum()) if t_in >= 0 else 0
            assert c[K.C_IN_EVENTS] == nz
            assert c[K.C_SYN_MAC] == nz * n_out and c[K.C_SYN_AC] == 0


def test_conv_first_layer_reads_each_ticks_counts_and_counts_macs():
    rng = np.random.default_rng(2)
    B, T, cap, oc = 2, 4, 7, 3
    net = events_net([{"name": "conv", "type": "conv", "out": oc, "kernel": 3, "padding": 1},
                      {"type": "flatten"}, {"name": "fc", "type": "fc", "out": 2}],
                     input_shape=(2, 5, 5), T=T, cap=cap, input_bits=3)
    w = rng.integers(-100, 101, (oc, 2, 3, 3))
    b = rng.integers(-9, 10, oc)
    chip = Chip(net, bundle(net, [w, np.ones((2, oc * 25))], biases=[b, np.zeros(2)], thresholds=[10**6, 10**6]))
    x = random_counts(rng, B, T, 50, cap)
    inc, res = increments(chip, x)
    for bi in range(B):
        for t in range(T):
            img = np.pad(x[bi, t].reshape(5, 5, 2).astype(np.int64), ((1, 1), (1, 1), (0, 0)))   # (y, x, c)
            cur = np.zeros((5, 5, oc), np.int64)
            reach = 0                                      # (nonzero input, output position) pairs
            for oy in range(5):
                for ox in range(5):
                    win = img[oy:oy + 3, ox:ox + 3]        # (ky, kx, c)
                    cur[oy, ox] = b + np.einsum("yxc,ocyx->o", win, w)
                    reach += int((win != 0).sum())
            assert np.array_equal(inc[bi, t, :75], cur.reshape(-1)), (bi, t)
            c = res.counters[bi, t]
            assert c[0, K.C_IN_EVENTS] == int((x[bi, t] != 0).sum())
            assert c[0, K.C_SYN_MAC] == reach * oc and c[0, K.C_SYN_AC] == 0
            assert c[1, K.C_SYN_MAC] == 0                  # the layers above take spikes: ACs


def test_counts_outside_zero_to_cap_are_refused():
    net = events_net([{"type": "flatten"}, {"name": "fc1", "type": "fc", "out": 2}], cap=3)
    chip = Chip(net, bundle(net, [np.ones((2, 24))]))
    x = np.zeros((1, 5, 24), np.int32)
    x[0, 2, 7] = 4
    with pytest.raises(ValueError, match=r"event counts: expected values in 0\.\.3 \(encoder\.cap\), got 0\.\.4"):
        chip.run(x)
    with pytest.raises(ValueError, match=r"event counts: expected shape \(batch, 5, 24\)"):
        chip.run(np.zeros((1, 24), np.int32))


def test_cap_is_the_full_scale_of_the_accumulator_bound():
    # fan-in 24 x |w| 127 x cap: fits int32 at cap 3, not at cap 2^16 - 1 x a 1000-wide sum
    net = events_net([{"type": "flatten"}, {"name": "fc1", "type": "fc", "out": 2}], cap=65535, input_bits=16)
    bound_ok = Chip(net, bundle(net, [np.full((2, 24), 127)]))
    assert bound_ok.input_max == 65535
    wide = events_net([{"type": "flatten"}, {"name": "fc1", "type": "fc", "out": 2}], input_shape=(2, 40, 40),
                      cap=65535, input_bits=16)
    with pytest.raises(DeployError, match=r"layers/fc1: worst-case input current \d+ exceeds the 32-bit"):
        Chip(wide, bundle(wide, [np.full((2, 3200), 127)]))
    pooled = events_net([{"name": "pool", "type": "pool", "kernel": 2}, {"type": "flatten"},
                         {"name": "fc1", "type": "fc", "out": 2}], input_shape=(2, 4, 4))
    with pytest.raises(DeployError, match=r"layers\[0\]: a pooling layer cannot take the events encoder's count"):
        Chip(pooled, bundle(pooled, [np.ones((2, 8))]))


# ----------------------------------------------------------------- learning against the reference
SEED, BOX = 5, 2.0


@pytest.mark.parametrize("mode,pulse,lr,write_noise,multibit", [
    ("sign", 2.0, 0.0, 0.0, "scale"), ("sign", 0.9, 0.0, 0.3, "scale"), ("exact", 1.0, 0.5, 0.0, "scale"),
    ("sign", 1.6, 0.0, 0.0, "count")])
def test_learning_tick_on_counts_matches_reference(mode, pulse, lr, write_noise, multibit):
    """The reference's conv layer, fed counts (cap 7 = its full scale 7) that differ from tick to tick:
    the learning tick T - 1 must use tick T - 1's counts."""
    from test_learning_reference import T, reference

    def make_chip():
        net = events_net([{"name": "conv", "type": "conv", "out": 6, "kernel": 3, "padding": 1}],
                         input_shape=(2, 4, 4), T=T, cap=7, input_bits=3, readout="count", weight_bits=5)
        rng = np.random.default_rng(11)
        w = rng.integers(-15, 16, (6, 2, 3, 3))
        b = rng.integers(-4, 5, 6)
        return Chip(net, bundle(net, [w], biases=[b], thresholds=[40]))

    rng = np.random.default_rng(SEED)
    x = rng.integers(0, 8, (1, T, 32)).astype(np.int32)
    x[0, T - 1, ::5] = 0                                   # some silent inputs: no pulse on their rows
    x[0, :T - 1] = x[0, :T - 1, ::-1]                      # the earlier ticks differ from the learning tick
    probe = make_chip()
    rec = probe.run(x, record=("spikes", "membrane"))
    U = rec.membrane[0, T - 1]
    C = (rec.spikes[0] == 1).sum(axis=0)
    targets = np.random.default_rng(6).integers(0, 4, (1, 96))
    chip = make_chip()
    chip.write_noise = (write_noise, np.array([np.uint64(987654321)]))
    cfg = LearningConfig(enabled=True, mode=mode, pulse=pulse, lr=lr, p=BOX, warmup=T - 1, target_bits=2,
                         dead_zone=0.1, bias=True, multibit_input=multibit)
    setup = setup_learning(chip, cfg, seed=3)
    assert setup.lparams[0, K.L_X_FULL] == (7 if multibit == "scale" else 1)
    W_ref, b_ref, _, counts = reference(chip, cfg, setup, x[0, T - 1], targets[0], U, C, write_noise)
    res = chip.run(x, learning=setup, targets=targets)
    c = res.counters[0, T - 1, 0]
    assert counts["sign"] > 5 and counts["pulses"] > 20, "the case must exercise the circuit"
    assert np.array_equal(chip.registers.weights.astype(np.int64), W_ref)
    assert np.array_equal(chip.registers.bias.astype(np.int64), b_ref)
    assert c[K.C_PULSES] == counts["pulses"] and c[K.C_CELL_WRITES] == len(counts["cells"])
    assert c[K.C_W_SAT] == counts["wsat"] and c[K.C_WRITE_NOISE] == counts["noise"]


# ----------------------------------------------------------------- the bundled net with counts
def counted_yaml(tmp_path: Path, cap: int = 3) -> Path:
    from chipsim.models import resolve_net

    src = resolve_net("digits-dvs")
    data = yaml.safe_load(src.read_text())
    data["encoder"].update(bin_value="count", cap=cap, input_bits=2)
    data["weights"] = str(load_net(src).weights)
    data["learning"]["multibit_input"] = "scale"
    data["learning"]["layers"] = ["fc1", "fc2", "fc3"]
    path = tmp_path / "digits-dvs-count.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def with_threads(n, fn):
    old = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        return fn()
    finally:
        numba.set_num_threads(old)


def test_counts_run_does_not_depend_on_batch_or_threads_and_reports_macs(tmp_path):
    from chipsim.workflows.runner import RunOptions, run_inference

    path = str(counted_yaml(tmp_path))
    a = with_threads(1, lambda: run_inference(RunOptions(net=path, samples=30, batch_size=30)))
    b = with_threads(2, lambda: run_inference(RunOptions(net=path, samples=30, batch_size=7)))
    assert np.array_equal(a.predictions, b.predictions) and np.array_equal(a.counters, b.counters)
    assert np.array_equal(a.counters_per_sample, b.counters_per_sample)
    assert a.summary["input_events"] == b.summary["input_events"] and a.summary["input_events"]["clipped"] > 0
    fc1 = a.counters[:, 0]                                 # (tick, counter) of the first layer
    assert fc1[..., K.C_SYN_AC].sum() == 0 and fc1[..., K.C_SYN_MAC].sum() == fc1[..., K.C_IN_EVENTS].sum() * 256
    # NeuroBench: each (sample, tick) with a nonzero count x the nonzero weights of its fc1 row, as MACs
    from chipsim.core.chip import crossbar_matrix
    from chipsim.core.weights import load_weights
    from chipsim.hostlink.encoders import make_encoder
    from chipsim.models.pretrain import load_split

    net = load_net(path)
    x = make_encoder(net, 32, 0).encode(load_split(net, "digits-dvs", "test", 30).events.images, np.arange(30))
    fc1_w = load_weights(net.weights).layers["fc1"].weight
    per_row = (crossbar_matrix(net.chip_layers[0], fc1_w) != 0).sum(axis=1)      # chip input order
    expect = int(((x != 0).sum(axis=(0, 1)) * per_row).sum())
    nb = a.summary["neurobench"]
    assert nb["effective_macs_per_sample"] * 30 == pytest.approx(expect, rel=1e-12) and expect > 0
    spiking = run_inference(RunOptions(net="digits-dvs", samples=30, batch_size=30))
    # the same bins are active either way; a count bin is a MAC where a spike bin is an AC
    assert np.array_equal(spiking.counters[:, 0, K.C_IN_EVENTS], fc1[:, K.C_IN_EVENTS])
    assert spiking.summary["neurobench"]["effective_macs_per_sample"] == 0
    assert a.summary["accuracy"] >= 0.85


def test_learning_on_counts_does_not_depend_on_threads(tmp_path):
    from chipsim.core.weights import load_weights
    from chipsim.hostlink.encoders import make_encoder
    from chipsim.models.pretrain import load_split

    net = load_net(counted_yaml(tmp_path))
    frames = load_split(net, "digits-dvs", "test", 12)
    x = make_encoder(net, 32, 0).encode(frames.events.images, np.arange(12))
    assert x.shape == (12, 32, 578) and x.max() == 3

    def learn(threads):
        chip = Chip(net, load_weights(net.weights))
        setup = setup_learning(chip, net.learning, seed=1)
        targets = np.random.default_rng(0).integers(0, 256, (12, setup.n_targets)).astype(np.uint16)
        res = with_threads(threads, lambda: chip.run(x, learning=setup, targets=targets))
        return chip.registers.weights.copy(), res.counters

    (w1, c1), (w2, c2) = learn(1), learn(2)
    assert np.array_equal(w1, w2) and np.array_equal(c1, c2)
    assert c1[:, :, 0, K.C_PULSES].sum() > 0                # the first layer learned on the counts


def test_calibration_on_counts_recovers_accuracy(tmp_path):
    from chipsim.workflows.calibrate import CalibOptions, run_calibration

    s = run_calibration(CalibOptions(net=str(counted_yaml(tmp_path)), noise=("mismatch=0.4",), epochs=1,
                                     calib_samples=256, samples=120, batch_size=64, seed=0, out=tmp_path / "cal"))
    assert s["calibration_samples"] == 256
    assert s["accuracy_after"] >= s["accuracy_before"] + 0.05, s
