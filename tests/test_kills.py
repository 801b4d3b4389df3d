"""kill -9 of a calibration or a sweep at random and at chosen points; rerunning the same command loses nothing.

A calibration killed anywhere (loading, mid-batch, inside a checkpoint write, inside the final writes)
and run again with the same command ends with the chip, accuracies, counters and run.h5 of an
uninterrupted run, and no temporary file is left. A sweep whose client or one of whose workers is
killed gives the same sweep.csv on the rerun (timing columns aside).

CI runs a fast subset; the full set (20 calibration kills, 10 sweep kills) runs with CHIPSIM_KILLS=full.
"""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

FULL = os.environ.get("CHIPSIM_KILLS") == "full"
CALIB = ["run", "--net", "digits", "--noise", "mismatch=0.3", "--calibrate-epochs", "2", "--calib-samples", "192",
         "--samples", "60", "--batch-size", "16", "--checkpoint-every", "32", "--seed", "3", "--no-progress"]
#: kill inside the n-th atomic commit (the temporary file written, not yet renamed): with 12 batches per
#: epoch and a checkpoint every 2, commits 1-5 and 7-12 are checkpoints, the last three of the run are
#: calibrated.h5, run.h5 and summary.json
COMMIT_KILLS_FULL = (1, 4, 6, 9, -3, -2, -1)
COMMIT_KILLS_CI = (3, -2)
RANDOM_KILLS = 13 if FULL else 1

# a child that SIGKILLs itself inside its n-th commit (n < 0: counted from the end, given the total)
_KILL_AT_COMMIT = """
import os, signal, sys
import chipsim.io.atomic as atomic
n, total = int(sys.argv[1]), int(sys.argv[2])
at = n if n > 0 else total + 1 + n
real, count = atomic.commit, [0]
def commit(tmp, path):
    count[0] += 1
    if count[0] == at:
        os.kill(os.getpid(), signal.SIGKILL)
    real(tmp, path)
atomic.commit = commit
from chipsim.cli.main import main
sys.argv = ["chipsim"] + sys.argv[3:]
main()
"""
_COUNT_COMMITS = """
import sys
import chipsim.io.atomic as atomic
real, count = atomic.commit, [0]
def commit(tmp, path):
    count[0] += 1
    real(tmp, path)
atomic.commit = commit
from chipsim.cli.main import main
sys.argv = ["chipsim"] + sys.argv[1:]
try:
    main()
finally:
    print("COMMITS", count[0])
"""


def chipsim(args, **kw):
    return subprocess.run([sys.executable, "-c", "from chipsim.cli.main import main; main()", *args],
                          capture_output=True, text=True, timeout=600, **kw)


def outcome(folder: Path) -> dict:
    with h5py.File(folder / "calibrated.h5") as f:
        regs = {k: f["registers"][k][()] for k in f["registers"]}
    with h5py.File(folder / "run.h5") as f:
        counters = f["learn_counters"][()]
        run_regs = {k: f["registers"][k][()] for k in f["registers"]}
    s = json.loads((folder / "summary.json").read_text())
    keep = ("accuracy_before", "accuracy_after", "accuracy_per_epoch", "learning_layers", "calibration_samples")
    return {"registers": regs, "run_registers": run_regs, "counters": counters, "summary": {k: s[k] for k in keep}}


def assert_same(a: dict, b: dict, label: str):
    for part in ("registers", "run_registers"):
        assert a[part].keys() == b[part].keys(), label
        for k in a[part]:
            assert np.array_equal(a[part][k], b[part][k]), f"{label}: {part}/{k}"
    assert np.array_equal(a["counters"], b["counters"]), label
    assert a["summary"] == b["summary"], label


def finished_files_are_whole(folder: Path):
    """Whatever exists under a final name is complete: HDF5 files open, JSON parses."""
    for f in folder.glob("*.h5"):
        with h5py.File(f):
            pass
    for f in folder.glob("*.json"):
        json.loads(f.read_text())


def phase(folder: Path) -> str:
    if not folder.exists():
        return "before the output folder"
    if (folder / "summary.json").exists():
        return "after the end"
    if (folder / "calibrated.h5").exists() or (folder / "run.h5").exists():
        return "in the final writes"
    if (folder / "checkpoint.h5").exists():
        with h5py.File(folder / "checkpoint.h5") as f:
            return f"after checkpoint epoch {int(f.attrs['epoch'])} batch {int(f.attrs['batch'])}"
    return "before the first checkpoint"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ref") / "run"
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", _COUNT_COMMITS, *CALIB, "--out", str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not folder.exists() and proc.poll() is None:      # when the run's own work starts
        time.sleep(0.02)
    folder_at = time.monotonic() - t0
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    commits = int(stdout.strip().splitlines()[-1].split()[1])
    seconds = time.monotonic() - t0
    return {"outcome": outcome(folder), "seconds": seconds, "commits": commits,
            "work_s": max(seconds - folder_at, 0.1)}


@pytest.mark.parametrize("n", COMMIT_KILLS_FULL if FULL else COMMIT_KILLS_CI)
def test_kill_inside_a_write_then_rerun_is_identical(reference, tmp_path, n):
    out = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", _KILL_AT_COMMIT, str(n), str(reference["commits"]), *CALIB,
                             "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert list(out.glob(".*.tmp")), "the kill came inside a write: its temporary file is left"
    assert not (out / "summary.json").exists()
    finished_files_are_whole(out)
    where = phase(out)
    res = chipsim([*CALIB, "--out", str(out)])
    assert res.returncode == 0, res.stderr
    assert_same(reference["outcome"], outcome(out), f"commit {n} ({where})")
    assert not list(out.glob(".*.tmp"))
    # the rerun continued from the checkpoint (no work lost) whenever there was one
    assert json.loads((out / "summary.json").read_text())["resumed"] == (where != "before the first checkpoint")


def test_random_kills_then_rerun_is_identical(reference, tmp_path):
    rng = np.random.default_rng(20261206)
    phases = []
    # a few kills anywhere (imports, data loading), the rest at a random point of the run's own work
    # (from its output folder's creation to the end), where the checkpoints and batches are
    for i, frac in enumerate(rng.uniform(0.0, 1.0, RANDOM_KILLS)):
        out = tmp_path / f"k{i}"
        proc = subprocess.Popen([sys.executable, "-c", "from chipsim.cli.main import main; main()", *CALIB,
                                 "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if i % 4 == 0:
            at = frac * reference["seconds"]
        else:
            while not out.exists() and proc.poll() is None:
                time.sleep(0.01)
            at = frac * reference["work_s"]
        try:
            proc.wait(timeout=at)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        phases.append(phase(out))
        finished_files_are_whole(out) if out.exists() else None
        res = chipsim([*CALIB, "--out", str(out)])
        if phases[-1] == "after the end":          # it finished first: the rerun refuses to overwrite
            assert res.returncode != 0 and "already holds a finished run" in res.stderr
        else:
            assert res.returncode == 0, res.stderr
        assert_same(reference["outcome"], outcome(out), f"kill {i} at {at:.1f} s ({phases[-1]})")
        assert not list(out.glob(".*.tmp"))
        if phases[-1].startswith(("after checkpoint", "in the final")):
            assert json.loads((out / "summary.json").read_text())["resumed"]
    print("calibration kills:", phases)


def test_rerun_with_other_options_is_refused_and_keeps_the_checkpoint(reference, tmp_path):
    out = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", _KILL_AT_COMMIT, "3", str(reference["commits"]), *CALIB,
                             "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL
    before = (out / "checkpoint.h5").read_bytes()
    other = [a if a != "mismatch=0.3" else "mismatch=0.2" for a in CALIB]
    res = chipsim([*other, "--out", str(out)])
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "holds an interrupted calibration with other options" in res.stderr and "mismatch" in res.stderr
    assert (out / "checkpoint.h5").read_bytes() == before


# --------------------------------------------------------------------------- sweeps

SWEEP = ["sweep", "--net", "digits", "--noise", "mismatch=0.1,0.3", "--noise", "bits=4", "--seeds", "2",
         "--calibrate-epochs", "1", "--calib-samples", "96", "--samples", "32", "--batch-size", "16",
         "--workers", "2", "--no-progress"]
TIMING = ("wall_s", "cpu_s")


def sweep_rows(folder: Path) -> dict:
    with open(folder / "sweep.csv", newline="") as f:
        return {r["cell"]: {k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def sweep_reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweepref") / "sw"
    t0 = time.monotonic()
    res = chipsim([*SWEEP, "--out", str(folder)])
    assert res.returncode == 0, res.stderr
    return {"rows": sweep_rows(folder), "seconds": time.monotonic() - t0}


def _workers_of(pid: int) -> list:
    import psutil

    procs = psutil.Process(pid).children(recursive=True)
    # LocalCluster: nanny processes, each the parent of one worker process
    spawned = [p for p in procs if "spawn_main" in " ".join(p.cmdline())]
    pids = {p.pid for p in spawned}
    return [p for p in spawned if p.ppid() in pids]


@pytest.mark.parametrize("target", ["client", "worker"])
def test_sweep_killed_then_rerun_gives_the_same_csv(sweep_reference, tmp_path, target):
    rng = np.random.default_rng(7 if target == "client" else 8)
    kills = 5 if FULL else 1
    for i, at in enumerate(rng.uniform(0.3, 0.9, kills) * sweep_reference["seconds"]):
        out = tmp_path / f"sw{i}"
        proc = subprocess.Popen([sys.executable, "-c", "from chipsim.cli.main import main; main()", *SWEEP,
                                 "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        time.sleep(at)
        if target == "client":
            os.killpg(proc.pid, signal.SIGKILL)          # the client and its local cluster
            proc.wait()
            res = chipsim([*SWEEP, "--out", str(out)])
        else:
            workers = _workers_of(proc.pid)
            if workers:
                workers[0].kill()                         # the nanny starts another; Dask reruns the cell
            proc.wait(timeout=600)
            res = chipsim([*SWEEP, "--out", str(out)])    # nothing left to run, or the cell Dask gave up on
        assert res.returncode == 0, res.stderr
        assert sweep_rows(out) == sweep_reference["rows"], f"{target} kill {i} at {at:.1f} s"
