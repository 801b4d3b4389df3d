"""`chipsim run --timing`, `chipsim report` on it, and `chipsim sweep --chip-param`: re-pricing equals
re-running, bad chip parameters are named, the files are there."""
import csv
import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from chipsim.cli.main import main
from chipsim.config import read_yaml
from chipsim.models import MODELS_DIR
from chipsim.workflows.chip_sweep import ChipSweepError, _load_run, chip_with, parse_chip_param, price
from chipsim.workflows.runner import RunOptions, run_inference

SAMPLES = 12
PRICED = {"costs.parallel_tiles": 2, "costs.cycles_tile_read": 3, "costs.parallel_neurons": 64,
          "costs.link_gbit_s": 0.05, "costs.spike_events_per_cycle": 2.0, "costs.spike_queue_depth": 8,
          "costs.energy_spike_pj": 9.0, "costs.area_cell_um2": 0.5, "clock_mhz": 50.0}


def digits_on(tmp_path, name, chip_overrides):
    """The digits net YAML with chip overrides, weights made absolute."""
    data = read_yaml(MODELS_DIR / "digits.yaml", "net")
    data["weights"] = str((MODELS_DIR / data["weights"]).resolve())
    chip = data.setdefault("chip", {})
    for key, value in chip_overrides.items():
        if key.startswith("costs."):
            chip.setdefault("costs", {})[key[6:]] = value
        else:
            chip[key] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_repricing_equals_rerunning(tmp_path):
    base = run_inference(RunOptions(net=digits_on(tmp_path, "base", {}), samples=SAMPLES, batch_size=5, timing=True,
                                    out=tmp_path / "base"))
    again = run_inference(RunOptions(net=digits_on(tmp_path, "other", PRICED), samples=SAMPLES, batch_size=5,
                                     timing=True, out=tmp_path / "other"))
    assert np.array_equal(base.predictions, again.predictions)
    run = _load_run(tmp_path / "base")
    chip = chip_with(run["net"]["chip"], PRICED)
    got = price(run, chip)
    t = again.summary["timing"]
    assert got["engine_cycles_per_sample"] == t["cycles_per_sample"]["mean"]
    assert got["engine_cycles_p99"] == t["cycles_per_sample"]["p99"]
    assert got["latency_us_with_link"] == t["latency_us_per_sample_with_link"]
    assert got["link_bound_below_batch_size"] == t["host_link"]["link_bound_below_batch_size"]
    assert got["energy_uj_per_sample"] == again.summary["cost"]["energy_uj_per_sample_total"]
    assert got["area_mm2"] == again.summary["area"]["total_mm2"]
    # and the prices moved: the base chip prices differently
    assert price(run, chip_with(run["net"]["chip"], {}))["engine_cycles_per_sample"] != got["engine_cycles_per_sample"]


def test_a_run_of_an_older_chipsim_is_priced_by_counter_name(tmp_path):
    """run.h5 written before the last counters were appended: its counters map by name (the missing ones
    0), so re-pricing gives the same figures; a newer chipsim's unknown counters are refused by name."""
    import h5py

    from chipsim.core.kernels import layout as K

    run_inference(RunOptions(net=digits_on(tmp_path, "base", {}), samples=SAMPLES, batch_size=5, timing=True,
                             out=tmp_path / "base"))
    today = _load_run(tmp_path / "base")
    chip = chip_with(today["net"]["chip"], PRICED)
    keep = K.COUNTER_NAMES[:K.C_ADC_CONV]                 # as chipsim wrote it before the column ADCs
    with h5py.File(tmp_path / "base" / "run.h5", "a") as f:
        old = f["counters"][()][..., :len(keep)][..., ::-1]       # and in another column order
        del f["counters"]
        f.create_dataset("counters", data=old)
        f.attrs["counter_names"] = json.dumps(list(keep)[::-1])
    older = _load_run(tmp_path / "base")
    expected = today["counters"].copy()
    expected[..., len(keep):] = 0                 # the ADC, read-noise and busiest-band counters it lacks
    assert today["counters"][..., len(keep):].any() and np.array_equal(older["counters"], expected)
    assert price(older, chip) == price(today, chip)       # none of those enters this chip's prices
    with h5py.File(tmp_path / "base" / "run.h5", "a") as f:
        f.attrs["counter_names"] = json.dumps(["from_the_future"] + list(keep)[::-1][1:])
    with pytest.raises(ChipSweepError, match="counters from_the_future are unknown to this chipsim"):
        _load_run(tmp_path / "base")


def test_run_timing_files_and_report(tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["run", "--net", "digits", "--samples", "6", "--timing", "--timeline-sample", "2",
                                  "--out", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "timing:" in r.output
    summary = json.loads((out / "summary.json").read_text())
    timing = summary["timing"]
    for key in ("cycles_per_sample", "cycles_per_tick", "utilisation", "stall_cycles_per_sample",
                "critical_resource_per_layer", "analytic", "host_link"):
        assert key in timing
    assert set(timing["cycles_per_sample"]) == {"mean", "p50", "p99", "max"}
    assert timing["cycles_per_sample"]["mean"] >= timing["analytic"]["cycles_per_sample"]
    assert summary["area"]["total_mm2"] == pytest.approx(sum(summary["area"]["blocks_mm2"].values()))
    trace = json.loads((out / "timeline.json").read_text())
    assert trace["otherData"]["sample"] == 2 and trace["traceEvents"]
    rep = CliRunner().invoke(main, ["report", str(out)])
    assert rep.exit_code == 0, rep.output
    assert "timing engine:" in rep.output and "area" in rep.output and (out / "timeline.png").is_file()


def test_run_timing_flag_errors(tmp_path):
    r = CliRunner().invoke(main, ["run", "--net", "digits", "--samples", "3", "--timeline-sample", "1",
                                  "--out", str(tmp_path / "a")])
    assert r.exit_code != 0 and "--timeline-sample" in r.output and "--timing" in r.output
    r = CliRunner().invoke(main, ["run", "--net", "digits", "--samples", "3", "--timing", "--timeline-sample", "3",
                                  "--out", str(tmp_path / "b"), "--no-progress"])
    assert r.exit_code != 0 and "--timeline-sample 3" in r.output and "Traceback" not in r.output


def test_bad_chip_parameters_name_the_key(tmp_path):
    with pytest.raises(ChipSweepError, match=r"--chip-param: costs\.parallel_tiles: expected an integer >= 1"):
        chip_with({}, {"costs.parallel_tiles": 0})
    with pytest.raises(ChipSweepError, match=r"--chip-param: costs\.link_gbit_s: expected a number >= 0"):
        chip_with({}, {"costs.link_gbit_s": "fast"})
    with pytest.raises(ChipSweepError, match=r"--chip-param tiles: unknown chip parameter"):
        parse_chip_param("tiles=1,2")
    with pytest.raises(ChipSweepError, match=r"expected KEY=V1,V2"):
        parse_chip_param("parallel_tiles")
    assert parse_chip_param("costs.spike_queue_depth=0,16") == ("costs.spike_queue_depth", (0, 16))
    r = CliRunner().invoke(main, ["sweep", "--net", "digits", "--chip-param", "spike_queue_depth=-1",
                                  "--out", str(tmp_path / "s")])
    assert r.exit_code != 0 and "costs.spike_queue_depth: expected an integer >= 0, got -1" in r.output
    net = digits_on(tmp_path, "bad", {"costs.link_buffers": 0})
    r = CliRunner().invoke(main, ["run", "--net", net, "--samples", "2", "--out", str(tmp_path / "r")])
    assert r.exit_code != 0 and "chip.costs.link_buffers: expected an integer >= 1, got 0" in r.output


def test_chip_param_sweep_reprices_without_rerunning(tmp_path):
    out = tmp_path / "sweep"
    r = CliRunner().invoke(main, ["sweep", "--net", "digits", "--samples", "6", "--chip-param",
                                  "parallel_write_arrays=1,4", "--chip-param", "link_gbit_s=0.01,1",
                                  "--chip-param", "membrane_bits=20,24", "--out", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert len(rows) == 8 and sum(row["rerun"] == "True" for row in rows) == 2
    assert len(list((out / "runs").iterdir())) == 2
    assert {"costs.parallel_write_arrays", "costs.link_gbit_s", "membrane_bits"} <= set(rows[0])
    slow = [row for row in rows if row["costs.link_gbit_s"] == "0.01"]
    assert all(float(row["latency_us_with_link"]) > float(row["latency_us_per_sample"]) for row in slow)
    assert (out / "sweep_pareto.png").is_file()


def test_calibration_timing(tmp_path):
    out = tmp_path / "cal"
    r = CliRunner().invoke(main, ["run", "--net", "digits", "--calibrate-epochs", "1", "--calib-samples", "32",
                                  "--samples", "8", "--batch-size", "16", "--timing", "--out", str(out),
                                  "--no-progress"])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    timing = summary["timing"]
    assert timing["samples"] == 32 and timing["utilisation"]["write_ports"] > 0
    assert timing["cycles_per_sample"]["mean"] >= timing["analytic"]["cycles_per_sample"]
    assert timing["host_link"]["bytes_down_per_sample"] > summary["timing"]["host_link"]["bytes_up_per_sample"]
    assert (out / "timeline.json").is_file() and (out / "timing_counts.npz").is_file()
    rep = CliRunner().invoke(main, ["report", str(out), "--no-plots"])
    assert rep.exit_code == 0 and "timing engine:" in rep.output
    r = CliRunner().invoke(main, ["run", "--net", "digits", "--resume", str(out), "--timing"])
    assert r.exit_code != 0 and "--timing cannot be combined with --resume" in r.output


def conv_digits(tmp_path, name, chip_overrides):
    """A conv net on the digits images, 3 crossbar rows a tile (row band = kernel row in conv1), weights
    random: its reads are bound by the busiest tile on the base chip (3 tiles, 16 drivers)."""
    data = read_yaml(MODELS_DIR / "digits.yaml", "net")
    data.pop("weights", None)
    data.pop("learning", None)
    data["time_steps"] = 8
    data["layers"] = [{"name": "c1", "type": "conv", "out": 6, "kernel": 3, "padding": 1},
                      {"name": "c2", "type": "conv", "out": 4, "kernel": 3, "stride": 2},
                      {"type": "flatten"}, {"name": "f3", "type": "fc", "out": 10}]
    data["chip"].update(tile_rows=3, **{k: v for k, v in chip_overrides.items() if not k.startswith("costs.")})
    data["chip"]["costs"] = {k[6:]: v for k, v in chip_overrides.items() if k.startswith("costs.")}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_repricing_equals_rerunning_where_the_busiest_tile_bounds(tmp_path):
    from chipsim.architect.timing import TIMING_COUNTERS

    def run(name, overrides):
        return run_inference(RunOptions(net=conv_digits(tmp_path, name, overrides), samples=SAMPLES, batch_size=5,
                                        timing=True, weights="random", out=tmp_path / name))

    base = run("base", {})
    run_ = _load_run(tmp_path / "base")
    counts = run_["counts"].astype(np.int64)
    tile, busiest = counts[..., TIMING_COUNTERS.index("tile_activations")], counts[..., -1]
    assert TIMING_COUNTERS[-1] == "tile_reads_busiest"
    assert (busiest[..., 0] > -(-tile[..., 0] // 3)).any(), "conv1's busiest tile must bound some reads"
    for overrides in ({"costs.parallel_tiles": 2, "costs.cycles_tile_read": 3}, {"costs.parallel_tiles": 64}):
        name = "p" + str(overrides["costs.parallel_tiles"])
        again = run(name, overrides)
        assert np.array_equal(base.predictions, again.predictions)
        got = price(run_, chip_with(run_["net"]["chip"], overrides))
        t = again.summary["timing"]
        assert got["engine_cycles_per_sample"] == t["cycles_per_sample"]["mean"], overrides
        assert got["engine_cycles_p99"] == t["cycles_per_sample"]["p99"]
        assert t["cycles_per_sample"]["mean"] > t["analytic"]["cycles_per_sample"]
        assert "ASSUMED" not in t["read_rounds"]
