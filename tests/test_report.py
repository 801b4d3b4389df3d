"""`chipsim report` on saved inference and calibration runs, and `chipsim run --chip`."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from chipsim.workflows.calibrate import CalibOptions, run_calibration
from chipsim.cli.main import main
from chipsim.workflows.runner import RunOptions, run_inference


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    run_inference(RunOptions(net="digits", samples=20, out=base / "inf"))
    run_calibration(CalibOptions(net="digits", samples=20, calib_samples=32, batch_size=16, epochs=1,
                                 noise=("mismatch=0.2",), out=base / "cal"))
    return base


def report(*args):
    result = CliRunner().invoke(main, ["report", *map(str, args)])
    return result


def test_report_of_an_inference_run(runs):
    res = report(runs / "inf")
    assert res.exit_code == 0, res.output
    for text in ("inference run", "fc1", "fc2", "fc3", "SynOps/MAC", "per inference sample", "energy:"):
        assert text in res.output
    for name in ("counts_per_layer.png", "energy_breakdown.png"):
        with Image.open(runs / "inf" / name) as im:
            assert im.format == "PNG" and im.size[0] > 400
    assert not (runs / "inf" / "updates_gated.png").exists()       # nothing learned
    rep = json.loads(report(runs / "inf", "--json", "--no-plots").output)
    summary = json.loads((runs / "inf" / "summary.json").read_text())
    for name, layer in summary["layers"].items():
        assert rep["layers"][name]["spikes_per_sample"] == pytest.approx(layer["spikes"] / 20)
        assert rep["layers"][name]["tiles"] == layer["tiles"]
        assert rep["layers"][name]["tile_utilisation"] == pytest.approx(layer["tile_utilisation"])
    assert rep["cost"]["cycles_per_sample"] == pytest.approx(summary["cost"]["cycles_per_sample"])
    assert rep["synops"]["synops_per_mac"] == pytest.approx(summary["synops"]["synops_per_mac"])
    assert rep["accuracy"] == summary["accuracy"] and rep["plots"] == []


def test_report_of_a_calibration_run(runs):
    res = report(runs / "cal")
    assert res.exit_code == 0, res.output
    assert "calibration run" in res.output and "learning (totals over 32 calibration samples)" in res.output
    assert "row by row" in res.output
    with Image.open(runs / "cal" / "updates_gated.png") as im:
        assert im.format == "PNG"
    rep = json.loads(report(runs / "cal", "--json", "--no-plots").output)
    summary = json.loads((runs / "cal" / "summary.json").read_text())
    for name, layer in summary["learning_layers"].items():
        for key in ("updates_ungated", "updates_boxcar_gated", "updates_sign_gated", "pulses", "cell_writes"):
            assert rep["learning"][name][key] == layer[key]
        assert rep["learning"][name]["updates_sign_gated"] <= rep["learning"][name]["updates_boxcar_gated"]
    assert rep["accuracy_before"] == summary["accuracy_before"]
    assert rep["cost"]["energy_pj_per_sample"]["weight_writes"] > 0


def test_report_reprices_on_a_preset_of_the_same_geometry(runs):
    base = json.loads(report(runs / "inf", "--json", "--no-plots").output)
    rram = json.loads(report(runs / "inf", "--json", "--no-plots", "--chip", "rram256").output)
    assert rram["layers"]["fc1"]["synops_per_sample"] == base["layers"]["fc1"]["synops_per_sample"]
    assert rram["cost"]["energy_uj_per_sample_total"] < base["cost"]["energy_uj_per_sample_total"]
    res = report(runs / "inf", "--chip", "dynapse")
    assert res.exit_code != 0 and "64x256 tiles" in res.output and "chipsim run --chip dynapse" in res.output


def test_report_errors(tmp_path):
    res = report(tmp_path)
    assert res.exit_code != 0 and "no summary.json" in res.output


def test_run_on_a_chip_preset(tmp_path):
    res = CliRunner().invoke(main, ["run", "--samples", "12", "--no-progress", "--json", "--chip", "rram256",
                                    "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert "preset: " in (tmp_path / "r" / "net.yaml").read_text()
    plain = run_inference(RunOptions(net="digits", samples=12))
    assert summary["accuracy"] == plain.summary["accuracy"]                    # results unchanged
    assert summary["layers"]["fc1"]["spikes"] == plain.summary["layers"]["fc1"]["spikes"]
    assert summary["cost"]["latency_us_per_sample"] != pytest.approx(plain.summary["cost"]["latency_us_per_sample"])
    assert np.isfinite(summary["cost"]["energy_uj_per_sample_total"])
    res = CliRunner().invoke(main, ["run", "--samples", "4", "--no-progress", "--chip", "nope",
                                    "--out", str(tmp_path / "s")])
    assert res.exit_code != 0 and "chip preset 'nope'" in res.output
