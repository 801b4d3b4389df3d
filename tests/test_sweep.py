"""`chipsim sweep` on a tiny grid on a local Dask cluster: rows, failures, resume, folder checks."""
import csv
import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from chipsim.cli.main import main
from chipsim.workflows.sweep import Cell, SweepError, SweepOptions, expand, parse_axis, run_sweep

TINY = dict(calibrate_epochs=1, samples=16, calib_samples=16, batch_size=16, seeds=1)


def read_csv(path: Path) -> dict[str, dict]:
    with open(path, newline="") as f:
        return {row["cell"]: row for row in csv.DictReader(f)}


def test_grid_expansion_and_axis_syntax():
    assert parse_axis("mismatch=0, 0.1,0.2") == ("mismatch", ("0", "0.1", "0.2"))
    for bad in ("mismatch", "mismatch=", "=0.1", "preset=dynapse", "bits=4,4"):
        with pytest.raises(SweepError):
            parse_axis(bad)
    opts = SweepOptions(nets=("digits", "models/other.yaml"), axes=(("mismatch", ("0", "0.2")), ("bits", ("4",))),
                        out=Path("x"), seeds=2)
    cells = expand(opts)
    assert len(cells) == 2 * 3 * 2
    assert cells[0] == Cell("digits", "mismatch", "0", 0) and cells[-1] == Cell("other", "bits", "4", 1)
    assert cells[1].id == "digits__mismatch-0__seed1" and cells[1].noise == ("mismatch=0",)
    later = expand(SweepOptions(nets=("digits",), axes=(("bits", ("4",)),), out=Path("x"), seeds=2, first_seed=3))
    assert [c.seed for c in later] == [3, 4]


def test_scope_axes_cross_their_kind():
    opts = SweepOptions(nets=("vgg11",), axes=(("thermal", ("0.1", "0.2")), ("silence", ("0.5",)),
                                               ("thermal.scope", ("current", "input"))), out=Path("x"), seeds=1)
    cells = expand(opts)
    assert [(c.kind, c.level, c.scope) for c in cells] == [
        ("thermal", "0.1", "current"), ("thermal", "0.2", "current"), ("thermal", "0.1", "input"),
        ("thermal", "0.2", "input"), ("silence", "0.5", "")]
    assert cells[2].id == "vgg11__thermal-0.1-input__seed0"
    assert cells[2].noise == ("thermal=0.1", "thermal.scope=input")
    assert cells[4].id == "vgg11__silence-0.5__seed0"          # unscoped ids unchanged: old sweeps resume
    with pytest.raises(SweepError, match="expected also --noise silence=L1,L2"):
        expand(SweepOptions(nets=("vgg11",), axes=(("thermal", ("0.1",)), ("silence.scope", ("tick",))),
                            out=Path("x")))
    with pytest.raises(SweepError, match="'thermal' is given twice"):
        expand(SweepOptions(nets=("vgg11",), axes=(("thermal", ("0.1",)), ("thermal", ("0.2",))), out=Path("x")))


def test_base_noise_reaches_every_cell(tmp_path):
    from dataclasses import asdict

    from chipsim.workflows.sweep import _precheck, run_cell

    cell = Cell("digits", "silence", "0.25", 0)
    task = {"cell": asdict(cell), "cell_dir": str(tmp_path / "c"), "net_spec": "digits", "weights": None,
            "data": None, "samples": 16, "calib_samples": None, "batch_size": 16, "calibrate_epochs": None,
            "learn": [], "threads": 1, "base_noise": ["mismatch=0.1"]}
    res = run_cell(task)
    assert res["status"] == "ok", res
    noise = json.loads((tmp_path / "c" / "summary.json").read_text())["noise"]
    assert noise["requested"]["mismatch_weights"] == 0.1 and noise["requested"]["silence"] == 0.25
    assert {"mismatch", "silence"} <= set(noise["realised"])
    assert json.loads((tmp_path / "c" / "row.json").read_text()) == res["row"]
    error = _precheck(Cell("digits", "silence", "0.2", 0, "tick"), ("silence.unit=channel",))
    assert error.startswith("NoiseSpecError") and "silence.unit=channel" in error
    assert _precheck(Cell("digits", "silence", "0.2", 0), ("silence.unit=channel",)) is None


def test_sweep_failures_and_resume(tmp_path):
    out = tmp_path / "sw"
    args = ["sweep", "--net", "digits", "--net", "no_such_net", "--noise", "mismatch=0,0.3", "--noise", "bits=1",
            "--seeds", "1", "--calibrate-epochs", "1", "--samples", "16", "--calib-samples", "16",
            "--batch-size", "16", "--workers", "2", "--no-progress", "--out", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output                          # some cells failed
    rows = read_csv(out / "sweep.csv")
    assert len(rows) == 6
    ok = {cid for cid, r in rows.items() if r["status"] == "ok"}
    assert ok == {"digits__mismatch-0__seed0", "digits__mismatch-0.3__seed0"}
    for cid in ok:
        r = rows[cid]
        assert r["mode"] == "calibration" and 0 <= float(r["accuracy_before"]) <= 1
        assert 0 <= float(r["accuracy_after"]) <= 1 and int(r["calibration_samples"]) == 16
        assert int(r["updates_sign_gated"]) <= int(r["updates_boxcar_gated"]) <= int(r["updates_ungated"])
        assert float(r["energy_uj_per_sample"]) > 0
        assert (out / "cells" / cid / "summary.json").is_file()
    # failing cells are reported with their id and error, in the output, the CSV and failures.json
    assert "failed digits__bits-1__seed0: NoiseSpecError: --noise bits=1" in res.output
    assert "failed no_such_net__mismatch-0__seed0: RunError: --net no_such_net" in res.output
    assert rows["no_such_net__mismatch-0.3__seed0"]["status"] == "failed"
    assert "no_such_net" in rows["no_such_net__mismatch-0.3__seed0"]["error"]
    failures = json.loads((out / "failures.json").read_text())
    assert failures["failed"] == 4 and failures["cells"][0]["cell"] == "digits__bits-1__seed0"
    assert (out / "cells" / "no_such_net__mismatch-0__seed0" / "error.txt").is_file()
    assert (out / "sweep.png").stat().st_size > 1000
    before = read_csv(out / "sweep.csv")["digits__mismatch-0.3__seed0"]

    # resume on an existing cluster (--scheduler): the finished cell is skipped, the one whose
    # summary was deleted (its checkpoint kept) runs again and reproduces its row; the finished
    # cell's row comes from its row.json alone (its run.h5 removed, as in a folder kept in git)
    (out / "cells" / "digits__mismatch-0.3__seed0" / "summary.json").unlink()
    (out / "cells" / "digits__mismatch-0__seed0" / "run.h5").unlink()
    kept = read_csv(out / "sweep.csv")["digits__mismatch-0__seed0"]
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster:
        opts = SweepOptions(nets=("digits",), axes=(("mismatch", ("0", "0.3")),), out=out,
                            scheduler=cluster.scheduler_address, **TINY)
        result = run_sweep(opts, echo=lambda line: None)
    assert result.ran == 1 and result.skipped == 1 and not result.failures
    after = read_csv(out / "sweep.csv")["digits__mismatch-0.3__seed0"]
    for key in ("accuracy_before", "accuracy_after", "pulses", "cell_writes", "updates_sign_gated"):
        assert after[key] == before[key], key
    assert read_csv(out / "sweep.csv")["digits__mismatch-0__seed0"] == kept

    # a folder written before an option existed holds that option's default
    meta = json.loads((out / "sweep.json").read_text())
    del meta["run_options"]["base_noise"]
    (out / "sweep.json").write_text(json.dumps(meta))
    again = run_sweep(SweepOptions(nets=("digits",), axes=(("mismatch", ("0", "0.3")),), out=out, **TINY),
                      echo=lambda line: None)
    assert again.ran == 0 and again.skipped == 2
    with pytest.raises(SweepError, match=r"base_noise: folder has \[\], now \['bits=4'\]"):
        run_sweep(SweepOptions(nets=("digits",), axes=(("mismatch", ("0",)),), out=out, base_noise=("bits=4",),
                               **TINY), echo=lambda line: None)

    # a folder holds one set of run options
    with pytest.raises(SweepError, match="samples: folder has 16, now 8"):
        run_sweep(SweepOptions(nets=("digits",), axes=(("mismatch", ("0",)),), out=out,
                               **{**TINY, "samples": 8}), echo=lambda line: None)


def test_invalid_spec_fails_every_cell_without_starting_a_cluster(tmp_path, monkeypatch):
    import chipsim.workflows.sweep as sweep_mod

    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started for cells that cannot run")

    monkeypatch.setattr(sweep_mod, "_client", no_cluster)
    opts = SweepOptions(nets=("no_such_net", "digits"), axes=(("mismatch", ("0.1",)), ("bits", ("1",))),
                        out=tmp_path / "sw", **TINY)
    opts.learn = ("mode=fast",)
    result = run_sweep(opts, echo=lambda line: None)
    errors = {f["cell"]: f["error"] for f in result.failures}
    assert len(errors) == 4 and result.ran == 0
    assert errors["no_such_net__mismatch-0.1__seed0"].startswith("RunError: --net no_such_net")
    assert "mode" in errors["digits__mismatch-0.1__seed0"] and "fast" in errors["digits__mismatch-0.1__seed0"]


def test_pause_after_epoch_runs_every_cell_one_epoch_at_a_time(tmp_path):
    """--pause-after-epoch: cells stop after that many epochs (status paused, no summary.json), the
    next sweep continues them, and the rows equal those of a sweep that never paused."""
    from distributed import LocalCluster

    two = {**TINY, "calibrate_epochs": 2}
    axes = (("mismatch", ("0.3",)),)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster:
        common = dict(nets=("digits",), axes=axes, scheduler=cluster.scheduler_address, **two)
        straight = run_sweep(SweepOptions(out=tmp_path / "straight", **common), echo=lambda line: None)
        first = run_sweep(SweepOptions(out=tmp_path / "paused", pause_after_epoch=1, **common), echo=lambda line: None)
        cid = "digits__mismatch-0.3__seed0"
        assert first.paused == 1 and not first.failures
        row = read_csv(tmp_path / "paused" / "sweep.csv")[cid]
        assert row["status"] == "paused" and row["epochs"] == "1/2"
        assert not (tmp_path / "paused" / "cells" / cid / "summary.json").exists()
        progress = json.loads((tmp_path / "paused" / "cells" / cid / "progress.json").read_text())
        assert float(row["accuracy_after"]) == progress["accuracy_per_epoch"][0]
        rest = run_sweep(SweepOptions(out=tmp_path / "paused", **common), echo=lambda line: None)
    assert rest.paused == 0 and rest.ran == 1
    a, b = read_csv(tmp_path / "straight" / "sweep.csv")[cid], read_csv(tmp_path / "paused" / "sweep.csv")[cid]
    for key in ("status", "accuracy_before", "accuracy_after", "pulses", "cell_writes", "updates_sign_gated", "epochs"):
        assert a[key] == b[key], key
    res = CliRunner().invoke(main, ["sweep", "--net", "digits", "--noise", "mismatch=0", "--pause-after-epoch", "1",
                                    "--out", str(tmp_path / "cli")])
    assert res.exit_code != 0 and "--pause-after-epoch applies to calibration" in res.output
