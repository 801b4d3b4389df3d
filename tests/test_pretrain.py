"""Pretraining pipeline (teacher -> convert | offline LTL -> chip weights), import-torch, bundled weights."""
from __future__ import annotations

import numpy as np
import pytest

from chipsim.config import load_net, parse_net
from chipsim.hostlink.datasets import DatasetError, load_dataset
from chipsim.models import MODELS_DIR, bundled_nets
from chipsim.core.weights import load_weights

TORCH_REASON = "pretraining needs the optional torch extra (pip install -e .[torch])"


def _chip_accuracy(net, bundle, data):
    from chipsim.core.chip import Chip
    from chipsim.hostlink.encoders import Encoder
    from chipsim.workflows.runner import encoder_key

    chip = Chip(net, bundle)
    enc = Encoder(net.encoder.kind, net.time_steps, data.pixel_max, net.encoder.input_bits,
                  net.encoder.max_rate, encoder_key(0))
    ids = np.arange(len(data))
    preds = np.concatenate([chip.run(enc.encode(data.images[i:i + 64], ids[i:i + 64]), sample_ids=ids[i:i + 64])
                            .predictions for i in range(0, len(data), 64)])
    return float((preds == data.labels).mean())


# --------------------------------------------------------------------------- bundled weights (no torch needed)


def _bundled_with_weights():
    out = []
    for name in bundled_nets():
        net = load_net(MODELS_DIR / f"{name}.yaml")
        if net.weights:
            out.append(name)
    return out


@pytest.mark.parametrize("name", [n for n in _bundled_with_weights() if n != "digits"])
def test_bundled_weights_reload_with_recorded_accuracy(name):
    """The chip reproduces, exactly, the accuracy the weights file records on its check subset."""
    net = load_net(MODELS_DIR / f"{name}.yaml")
    bundle = load_weights(net.weights)
    check = bundle.attrs["check"]
    for key in ("teacher_accuracy", "snn_accuracy", "train_data", "test_data", "weight_bits"):
        assert key in bundle.attrs, key
    assert bundle.teacher, "the file carries the float teacher (host targets for calibration)"
    try:
        data = load_dataset(check["data"], "test", limit=check["samples"])
    except DatasetError as exc:
        pytest.skip(f"check data {check['data']!r} not on this machine: {exc}")
    assert _chip_accuracy(net, bundle, data) == pytest.approx(check["accuracy"], abs=1e-12)


# --------------------------------------------------------------------------- pretraining (torch)


def _opts(tmp_path, name="d.h5", **kw):
    from chipsim.models.pretrain import PretrainOptions

    base = dict(net="digits", epochs=2, batch_size=32, out=tmp_path / name, eval_samples=100, progress=False,
                log=lambda msg: None, seed=3)
    base.update(kw)
    return PretrainOptions(**base)


def test_pretrain_convert_exports_reloadable_weights(tmp_path):
    pytest.importorskip("torch", reason=TORCH_REASON)
    from chipsim.models.pretrain import pretrain
    from chipsim.models.teacher import predict

    summary = pretrain(_opts(tmp_path, epochs=4))
    net = load_net(MODELS_DIR / "digits.yaml")
    bundle = load_weights(summary["out"])
    attrs = bundle.attrs
    assert attrs["method"] == "convert" and attrs["weight_bits"] == 8
    assert attrs["train_data"]["name"] == "digits" and len(attrs["train_data"]["sha256"]) == 64
    assert attrs["teacher_accuracy"] > 0.8 and attrs["snn_accuracy"] > 0.8
    test = load_dataset("digits", "test", limit=100)
    # the float teacher in the file is the one whose accuracy is recorded (numpy teacher, BN folded)
    assert float((predict(net, bundle.teacher, test.images / test.pixel_max) == test.labels).mean()) \
        == pytest.approx(attrs["teacher_accuracy"])
    # the chip reproduces the recorded accuracies
    assert _chip_accuracy(net, bundle, test) == pytest.approx(attrs["snn_accuracy"])
    check = attrs["check"]
    assert check["data"] == "digits"
    assert _chip_accuracy(net, bundle, load_dataset("digits", "test", limit=check["samples"])) \
        == pytest.approx(check["accuracy"])
    # fine-tune those chip weights with offline LTL from the saved teacher (--teacher, --ltl-init FILE)
    lines = []
    tuned = pretrain(_opts(tmp_path, "tuned.h5", teacher=tmp_path / "d.pretrain" / "teacher.pt",
                           method="offline-ltl", ltl_init=str(summary["out"]), ltl_samples=32, log=lines.append))
    assert any(f"SNN init ({summary['out']})" in line for line in lines)
    assert load_weights(tuned["out"]).attrs["teacher_accuracy"] == pytest.approx(attrs["teacher_accuracy"])


def test_offline_ltl_reduces_layer_losses():
    """Offline LTL (Eq. 4-8) on a tiny LIF net, from the threshold-balanced teacher with 50 % weight
    noise: every layer-local loss goes down (hidden: rate MSE, output: cross-entropy)."""
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    from chipsim.models.pretrain import ltl_losses
    from chipsim.models.torch import (SpikingNet, Teacher, TeacherOptions, balanced_params, folded_params,
                                      load_snn_params)

    torch.set_num_threads(1)
    net = parse_net({"name": "tiny", "input_shape": [1, 6, 6], "time_steps": 8,
                     "neuron": {"model": "LIF", "alpha": 0.9, "threshold": 0.6},
                     "layers": [{"name": "c1", "type": "conv", "out": 4, "kernel": 3, "padding": 1},
                                {"type": "flatten"}, {"name": "f2", "type": "fc", "out": 16},
                                {"name": "f3", "type": "fc", "out": 3}],
                     "readout": "potential"}, "<tiny>")
    torch.manual_seed(0)
    teacher = Teacher(net, TeacherOptions()).eval()
    snn = SpikingNet(net)
    x = torch.rand(16, 1, 6, 6)
    y = torch.randint(0, 3, (16,))
    with torch.no_grad():
        acts = teacher.activations(x)
    norms = {"c1": float(acts[0].quantile(0.99)), "f2": float(acts[2].quantile(0.99)), "f3": 1.0}
    rng = np.random.default_rng(0)
    start = {k: (w * (1 + 0.5 * rng.standard_normal(w.shape)).astype(np.float32), b)
             for k, (w, b) in balanced_params(net, folded_params(teacher), norms).items()}
    load_snn_params(snn, start)
    opt = torch.optim.Adam(snn.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        losses = ltl_losses(net, snn, teacher, x, y, norms)
        first = first or {k: float(v.detach()) for k, v in losses.items()}
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    last = {k: float(v.detach()) for k, v in ltl_losses(net, snn, teacher, x, y, norms).items()}
    for name in ("c1", "f2"):
        assert last[name] < 0.5 * first[name], (name, first[name], last[name])
    assert last["f3"] < 0.9 * first["f3"]


def test_layer_gradients_stay_local():
    """Inputs are detached between layers: a layer's loss moves only that layer's parameters."""
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    from chipsim.models.pretrain import ltl_losses
    from chipsim.models.torch import SpikingNet, Teacher

    net = load_net(MODELS_DIR / "digits.yaml")
    torch.manual_seed(1)
    teacher, snn = Teacher(net).eval(), SpikingNet(net)
    with torch.no_grad():
        for mod in snn.weighted.values():
            mod.weight.mul_(8.0)      # make the hidden layers spike
    x = torch.rand(4, 1, 8, 8)
    losses = ltl_losses(net, snn, teacher, x, torch.tensor([0, 1, 2, 3]), {"fc1": 1.0, "fc2": 1.0, "fc3": 1.0})
    losses["fc2"].backward()
    assert snn.weighted["fc1"].weight.grad is None and snn.weighted["fc3"].weight.grad is None
    assert snn.weighted["fc2"].weight.grad.abs().sum() > 0


def _assert_same_chip_weights(a, b):
    for name, lw in a.layers.items():
        assert np.array_equal(lw.weight, b.layers[name].weight), name
        assert np.array_equal(lw.bias, b.layers[name].bias)
        assert lw.threshold == b.layers[name].threshold
    assert b.attrs["snn_accuracy"] == a.attrs["snn_accuracy"]


def test_resume_equals_uninterrupted_run(tmp_path):
    pytest.importorskip("torch", reason=TORCH_REASON)
    from chipsim.models.pretrain import Stopped, pretrain

    kw = dict(method="offline-ltl", ltl_epochs=2, ltl_samples=64, eval_samples=40, ltl_lr=1e-3)
    full = load_weights(pretrain(_opts(tmp_path, "a.h5", **kw))["out"])
    stops = 0
    opts = _opts(tmp_path, "b.h5", max_minutes=0.0, **kw)
    while True:
        try:
            summary = pretrain(opts)
            break
        except Stopped:
            stops += 1
            opts = _opts(tmp_path, "b.h5", max_minutes=0.0, resume=True, **kw)
    assert stops == 2          # after teacher epoch 1 and LTL epoch 1 (the last epoch of a stage ends it)
    resumed = load_weights(summary["out"])
    _assert_same_chip_weights(full, resumed)


def test_mid_epoch_resume_equals_uninterrupted_run(tmp_path):
    """Kills inside teacher and offline-LTL epochs (checkpoint after every batch), each resumed from the
    batch reached: the same weights, float-SNN and chip accuracies as a run that was never stopped."""
    pytest.importorskip("torch", reason=TORCH_REASON)
    import torch

    from chipsim.models.pretrain import Stopped, pretrain

    # digits: 1,437 training images at batch 32 -> 45 teacher batches per epoch; LTL: 64 samples at 16 -> 4
    # augmentation and dropout draw from the epoch's numpy and torch generators, which the checkpoint must restore
    kw = dict(method="offline-ltl", epochs=1, ltl_epochs=1, ltl_samples=64, ltl_batch_size=16, eval_samples=40,
              ltl_lr=1e-3, augment=True, dropout=0.2)
    full = load_weights(pretrain(_opts(tmp_path, "a.h5", **kw))["out"])
    where = []
    # the first run stops after teacher batch 20; the resumed one runs teacher batches 21-45 (24 checkpoints)
    # and stops after LTL batch 2 (checkpoint 26); the last one finishes
    stops = iter([20, 26, None])
    opts = _opts(tmp_path, "b.h5", stop_after_batches=next(stops), checkpoint_minutes=0.0, **kw)
    while True:
        try:
            summary = pretrain(opts)
            break
        except Stopped as exc:
            where.append(str(exc).split(" (")[0])
            partial = torch.load(tmp_path / "b.pretrain" / "checkpoint.pt", weights_only=False)["partial"]
            assert (partial["stage"], partial["batch"]) == (("teacher", 20), ("snn", 2))[len(where) - 1]
            opts = _opts(tmp_path, "b.h5", resume=True, stop_after_batches=next(stops), checkpoint_minutes=0.0, **kw)
    assert where == ["stopped in teacher epoch 1 after batch 20", "stopped in snn epoch 1 after batch 2"]
    resumed = load_weights(summary["out"])
    _assert_same_chip_weights(full, resumed)
    assert resumed.attrs["float_snn_accuracy"] == full.attrs["float_snn_accuracy"]


def test_refuses_to_overwrite_a_checkpoint_and_resume_needs_one(tmp_path):
    pytest.importorskip("torch", reason=TORCH_REASON)
    from chipsim.models.pretrain import PretrainError, Stopped, pretrain

    with pytest.raises(PretrainError, match="no checkpoint"):
        pretrain(_opts(tmp_path, resume=True))
    with pytest.raises(Stopped):
        pretrain(_opts(tmp_path, max_minutes=0.0))
    with pytest.raises(PretrainError, match="--resume"):
        pretrain(_opts(tmp_path))


def test_cifar_net_needs_training_data(tmp_path):
    pytest.importorskip("torch", reason=TORCH_REASON)
    from chipsim.models.pretrain import PretrainError, pretrain

    with pytest.raises(PretrainError, match="no training split"):
        pretrain(_opts(tmp_path, net="vgg11-w4"))


def test_import_torch_state_dicts(tmp_path):
    """chipsim's own teacher.pt and a foreign naming (conv1/bn1 ...) give the same folded teacher."""
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    from chipsim.models.import_torch import import_torch, teacher_from_state_dict
    from chipsim.models.torch import Teacher, TeacherOptions, folded_params

    net = load_net(MODELS_DIR / "digits.yaml")
    torch.manual_seed(4)
    model = Teacher(net, TeacherOptions(batchnorm=True))
    with torch.no_grad():
        for bn in model.norms.values():
            bn.running_mean.uniform_(-0.3, 0.3)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
    model.eval()
    ours = tmp_path / "ours.pt"
    torch.save(model.state_dict(), ours)
    foreign = {}
    for i, name in enumerate(["fc1", "fc2", "fc3"], 1):     # the paper's style: fcN, bnN, in module order
        foreign[f"module.fc{i}.weight"] = model.weighted[name].weight
        foreign[f"module.fc{i}.bias"] = model.weighted[name].bias
    for i, name in enumerate(["fc1", "fc2"], 1):
        for key, value in model.norms[name].state_dict().items():
            foreign[f"module.bn{i}.{key}"] = value
    theirs = tmp_path / "theirs.pt"
    torch.save({"state_dict": foreign}, theirs)
    ref = folded_params(model)
    for path in (ours, theirs):
        got = folded_params(teacher_from_state_dict(net, path))
        for name in ref:
            np.testing.assert_allclose(got[name][0], ref[name][0], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got[name][1], ref[name][1], rtol=1e-5, atol=1e-6)
    summary = import_torch(theirs, "digits", tmp_path / "imported.h5", calib_samples=200, eval_samples=50,
                           progress=False, log=lambda m: None)
    bundle = load_weights(summary["out"])
    assert bundle.attrs["teacher_source"] == str(theirs) and bundle.attrs["method"] == "convert"
    bad = tmp_path / "bad.pt"
    torch.save({"fc1.weight": torch.zeros(3, 3)}, bad)
    from chipsim.models.pretrain import PretrainError

    with pytest.raises(PretrainError, match="weighted layers"):
        teacher_from_state_dict(net, bad)


def test_cli_pretrain_and_import(tmp_path):
    pytest.importorskip("torch", reason=TORCH_REASON)
    from click.testing import CliRunner

    from chipsim.cli.main import main

    runner = CliRunner()
    out = tmp_path / "cli.h5"
    res = runner.invoke(main, ["pretrain", "--net", "digits", "--epochs", "1", "--eval-samples", "50", "--out",
                               str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "teacher epoch 1/1" in res.output and "chip SNN" in res.output and out.is_file()
    res = runner.invoke(main, ["import-torch", str(tmp_path / "cli.pretrain" / "teacher.pt"), "--net", "digits",
                               "--out", str(tmp_path / "imp.h5"), "--eval-samples", "50", "--no-progress"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["pretrain", "--net", "vgg11-w4", "--out", str(tmp_path / "x.h5")])
    assert res.exit_code != 0 and "no training split" in res.output
