"""Disk faults mid-run (injected: the suite runs as root, so a read-only folder would not refuse it, and
mounting a tmpfs needs privileges CI lacks): a failed write ends with one clear error naming the file
and the checkpoint that is intact, leaves no temporary file, and the same command then continues."""
import errno
import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import chipsim.io.atomic as atomic
from chipsim.workflows.calibrate import CalibOptions, run_calibration
from chipsim.cli.main import main
from chipsim.workflows.runner import RunError

CALIB = dict(net="digits", noise=("mismatch=0.3",), samples=40, calib_samples=96, batch_size=16, epochs=1,
             checkpoint_every=32, seed=1)
ARGS = ["run", "--net", "digits", "--noise", "mismatch=0.3", "--samples", "40", "--calib-samples", "96",
        "--batch-size", "16", "--calibrate-epochs", "1", "--checkpoint-every", "32", "--seed", "1", "--no-progress"]


_real_commit = atomic.commit


def fail_commit(monkeypatch, at: int, err=errno.ENOSPC):
    """The at-th atomic commit from now on raises the OSError a full (or read-only) disk gives."""
    real, count = atomic.commit, [0]

    def commit(tmp, path):
        count[0] += 1
        if count[0] == at:
            raise OSError(err, __import__("os").strerror(err))
        real(tmp, path)

    monkeypatch.setattr(atomic, "commit", commit)
    return count


def registers(path):
    with h5py.File(path) as f:
        return {k: f["registers"][k][()] for k in ("weights", "bias", "theta")}


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS])
def test_full_disk_mid_calibration_keeps_the_checkpoint_and_the_rerun_continues(tmp_path, monkeypatch, err):
    ref = run_calibration(CalibOptions(**CALIB, out=tmp_path / "ref"))
    out = tmp_path / "run"
    fail_commit(monkeypatch, 2, err)               # the second checkpoint (after batch 4) cannot be written
    with pytest.raises(RunError) as info:
        run_calibration(CalibOptions(**CALIB, out=out))
    text = str(info.value)
    assert text.startswith(f"{out / 'checkpoint.h5'}: cannot write ({__import__('os').strerror(err)})")
    assert f"the last checkpoint ({out / 'checkpoint.h5'}: epoch 0, batch 2) is intact" in text
    assert "run the same command to continue" in text
    with h5py.File(out / "checkpoint.h5") as f:               # the first checkpoint, whole
        assert int(f.attrs["batch"]) == 2
    assert not list(out.glob(".*.tmp")) and not (out / "summary.json").exists()
    monkeypatch.setattr(atomic, "commit", _real_commit)
    again = run_calibration(CalibOptions(**CALIB, out=out))
    assert again["resumed"] and again["accuracy_per_epoch"] == ref["accuracy_per_epoch"]
    a, b = registers(tmp_path / "ref" / "calibrated.h5"), registers(out / "calibrated.h5")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_full_disk_in_the_final_writes_through_the_cli(tmp_path, monkeypatch):
    out = tmp_path / "run"
    # 3 checkpoints (batches 2 and 4, end of epoch) and progress.json, then calibrated.h5: that one fails
    fail_commit(monkeypatch, 5)
    res = CliRunner().invoke(main, [*ARGS, "--out", str(out)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    lines = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and f"{out / 'calibrated.h5'}: cannot write (No space left on device)" in lines[0]
    assert "epoch 1, batch 0) is intact" in lines[0]
    assert not (out / "calibrated.h5").exists() and not list(out.glob(".*.tmp"))
    monkeypatch.setattr(atomic, "commit", _real_commit)
    res = CliRunner().invoke(main, [*ARGS, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "summary.json").read_text())["resumed"]


def test_full_disk_before_any_checkpoint_says_so(tmp_path, monkeypatch):
    fail_commit(monkeypatch, 1)
    with pytest.raises(RunError, match="no checkpoint had been written yet; free the space"):
        run_calibration(CalibOptions(**CALIB, out=tmp_path / "run"))


def test_full_disk_mid_sweep_keeps_finished_cells(tmp_path, monkeypatch):
    from chipsim.workflows.sweep import SweepOptions, run_sweep, write_csv

    out = tmp_path / "sw"
    opts = SweepOptions(nets=("digits",), axes=(("mismatch", ("0.1", "0.2")),), out=out, seeds=1, samples=16,
                        workers=1)
    calls = [0]

    def failing_csv(path, rows):
        calls[0] += 1
        if calls[0] == 2:                        # the rewrite after the first finished cell
            raise atomic.WriteError(errno.ENOSPC, f"{path}: cannot write (No space left on device)")
        return write_csv(path, rows)

    monkeypatch.setattr("chipsim.workflows.sweep.write_csv", failing_csv)
    with pytest.raises(atomic.WriteError, match="sweep.csv: cannot write"):
        run_sweep(opts, echo=lambda line: None)
    finished = [p.parent.name for p in (out / "cells").glob("*/summary.json")]
    assert len(finished) >= 1
    monkeypatch.setattr("chipsim.workflows.sweep.write_csv", write_csv)
    result = run_sweep(opts, echo=lambda line: None)
    assert result.skipped >= len(finished) and not result.failures and len(result.rows) == 2


def test_out_is_a_file_or_cannot_be_created(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    for out, expected in ((f, f"--out {f}: is a file; expected a folder"),
                          (f / "sub", f"--out {f / 'sub'}: cannot create the folder")):
        for extra in ([], ["--calibrate-epochs", "1", "--calib-samples", "16"]):
            res = CliRunner().invoke(main, ["run", "--samples", "8", "--no-progress", "--out", str(out), *extra])
            assert res.exit_code != 0 and "Traceback" not in res.output, res.output
            assert expected in res.output, (extra, res.output)
