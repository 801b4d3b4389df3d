"""`chipsim run` and `chipsim nets` end to end, and their error messages."""
import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from chipsim.cli.main import main
from chipsim.models import MODELS_DIR


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "digits"
    result = CliRunner().invoke(main, ["run", "--out", str(out), "--no-progress", "--record", "spikes,membrane",
                                       "--samples", "40"])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_default_run_prints_accuracy_and_writes_files(default_run):
    out, output = default_run
    assert "accuracy" in output and "fc1" in output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["net"] == "digits" and summary["samples"] == 40 and summary["seed"] == 0
    assert 0.8 <= summary["accuracy"] <= 1.0
    assert set(summary["layers"]) == {"fc1", "fc2", "fc3"}
    # the kernel's compilation (or cache load) is timed apart from the chip's run
    assert summary["kernel_load_s"] >= 0 and summary["chip_s"] <= summary["wall_s"]
    with h5py.File(out / "run.h5") as f:
        assert f["predictions"].shape == (40,)
        assert f["traces/fc1/spikes"].shape == (40, 32, 256)         # fc1: 256 neurons (models/digits.yaml)
        assert f["traces/fc2/membrane"].dtype == np.int32
        # traces agree with the counters: recorded spikes of fc1 = counted spikes of fc1
        assert int(f["traces/fc1/spikes"][()].sum()) == summary["layers"]["fc1"]["spikes"]
        assert f["counters"].shape[:2] == (32, 3)
    assert not list(out.glob(".*.tmp"))


def test_full_default_run_meets_the_accuracy_target(tmp_path):
    result = CliRunner().invoke(main, ["run", "--out", str(tmp_path / "r"), "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["samples"] == 360
    assert summary["accuracy"] >= 0.93
    teacher = summary["weights_accuracy"]["teacher_accuracy"]
    assert summary["accuracy"] >= teacher - 0.02


def test_out_dir_is_never_overwritten(default_run):
    out, _ = default_run
    result = CliRunner().invoke(main, ["run", "--out", str(out), "--no-progress"])
    assert result.exit_code != 0
    assert "already holds a finished run" in result.output


@pytest.mark.parametrize("args, message", [
    (["--net", "alexnet"], "--net alexnet: no such file, and not a bundled net"),
    (["--record", "voltage"], "expected a comma-separated list of spikes, membrane, got 'voltage'"),
    (["--data", "/nonexistent/cifar"], "--data: /nonexistent/cifar: not found"),
    (["--weights", "/nonexistent/w.h5"], "--weights: /nonexistent/w.h5: no such file"),
    (["--weights", __file__], f"--weights: {__file__}: not a readable chipsim weights file"),
    (["--batch-size", "0"], "--batch-size"),
])
def test_bad_input_gives_a_clear_error(tmp_path, args, message):
    result = CliRunner().invoke(main, ["run", "--out", str(tmp_path / "x"), "--no-progress", *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_vgg11_runs_with_random_weights_on_the_bundled_subset(tmp_path):
    result = CliRunner().invoke(main, ["run", "--net", "vgg11.yaml", "--weights", "random", "--samples", "2",
                                       "--out", str(tmp_path / "v"), "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "v" / "summary.json").read_text())
    assert "subset" in summary["data_note"]
    assert summary["layers"]["conv3"]["tiles"] == 5       # 1152 rows / 256 -> 5 bands x 1 column tile


def test_a_net_without_weights_says_what_to_pass(tmp_path):
    # vgg11.yaml as it was before its weights were bundled: `weights: null`
    text = (MODELS_DIR / "vgg11.yaml").read_text()
    line = next(x for x in text.splitlines() if x.startswith("weights:"))
    yaml_path = tmp_path / "vgg11.yaml"
    yaml_path.write_text(text.replace(line, "weights: null"))
    result = CliRunner().invoke(main, ["run", "--net", str(yaml_path), "--out", str(tmp_path / "v"), "--no-progress"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "--weights: net 'vgg11'" in result.output and "ships no trained weights" in result.output
    assert "--net vgg11-w4" in result.output and "chipsim pretrain --net vgg11" in result.output


@pytest.mark.parametrize("old, new, message", [
    ("weights: weights/digits.h5", "weights: nowhere.h5", "digits.yaml: weights: {dir}/nowhere.h5: no such file"),
    ("model: IF", "model: LIF", "digits.yaml: neuron.alpha: missing; expected a number in (0, 1) for LIF"),
])
def test_net_yaml_errors_name_the_file_and_key(tmp_path, old, new, message):
    text = (MODELS_DIR / "digits.yaml").read_text()
    assert old in text
    (tmp_path / "digits.yaml").write_text(text.replace(old, new))
    result = CliRunner().invoke(main, ["run", "--net", str(tmp_path / "digits.yaml"), "--out", str(tmp_path / "x"),
                                       "--no-progress", "--samples", "2"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert message.format(dir=tmp_path) in result.output


def test_nets_lists_bundled_networks():
    result = CliRunner().invoke(main, ["nets"])
    assert result.exit_code == 0
    assert "digits" in result.output and "vgg11" in result.output
