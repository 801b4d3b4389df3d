"""benchmarks/pretraining.py: the pieces that decide what its cells train (no training here)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.fixture()
def bench(tmp_path, monkeypatch):
    pytest.importorskip("torch", reason="pretraining needs the optional torch extra (pip install -e .[torch])")
    import pretraining

    monkeypatch.setattr(pretraining, "WORK", tmp_path)
    return pretraining


@pytest.mark.parametrize("name", ["digits", "vgg11-w4"])
def test_bundled_teacher_is_the_files_teacher(bench, name):
    """The state dict written for `pretrain --teacher` holds exactly the bundled file's float teacher, each
    layer's in its place (pretrain matches a plain state dict by order: fc9 .. fc11 sort out of order)."""
    from chipsim.core.weights import load_weights
    from chipsim.models.pretrain import resolve_net
    from chipsim.models.state_dict import teacher_from_state_dict

    row = bench.bundled_teacher(name, {"teacher_from": f"models/weights/{name}.h5"})
    bundle = load_weights(ROOT / "models" / "weights" / f"{name}.h5")
    assert row["teacher_accuracy"] == bundle.attrs["teacher_accuracy"]
    net = resolve_net(name)
    model = teacher_from_state_dict(net, row["teacher_state_dict"])
    sd = model.state_dict()
    for layer in net.weighted_layers:
        w, b = bundle.teacher[layer.name]
        np.testing.assert_array_equal(sd[f"weighted.{layer.name}.weight"].numpy(), w.astype(np.float32))
        np.testing.assert_array_equal(sd[f"weighted.{layer.name}.bias"].numpy(), b.astype(np.float32))


def test_digits_dvs_cells_train_as_the_bundling_script(bench):
    """The digits-dvs cells use models/make_digits_dvs_weights.py's settings at the YAML's T, so the winner's
    file is what that script writes."""
    from chipsim.models import make_digits_dvs_weights as script

    s = bench.SETTINGS["digits-dvs"]
    for key, value in {**script.SETTINGS, **script.SNN_SETTINGS}.items():
        if key != "seed":
            assert s[key] == value, key
    assert bench.train_t(s, type("A", (), {"train_t": None})) == bench.shipped_t("digits-dvs") == 32


def test_bad_noise_is_refused_by_name():
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "pretraining.py"), "--noises", "mismatch=0.3",
                          "--nets", "no-such-net"],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert "--noises: 'mismatch=0.3'" in res.stderr and "Traceback" not in res.stderr
