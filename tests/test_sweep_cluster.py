"""`chipsim sweep` against a real Dask scheduler and workers on 127.0.0.1, started and stopped here:
an unreachable scheduler fails fast, a worker lost mid-cell is survived, a cluster without workers
fails the waiting cells instead of hanging."""
import csv
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from chipsim.cli.main import main
from chipsim.workflows.sweep import SweepOptions, run_sweep

CELL = dict(calibrate_epochs=1, samples=16, calib_samples=64, batch_size=16, seeds=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_fails_fast_naming_the_address(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"          # nothing listens there
    t0 = time.monotonic()
    res = CliRunner().invoke(main, ["sweep", "--net", "digits", "--noise", "mismatch=0", "--seeds", "1",
                                    "--samples", "8", "--scheduler", address, "--no-progress",
                                    "--out", str(tmp_path / "s")])
    elapsed = time.monotonic() - t0
    assert res.exit_code == 1, res.output
    assert elapsed < 5, elapsed
    assert f"Error: --scheduler {address}: no Dask scheduler answered within 3 s" in res.output
    assert "Traceback" not in res.output and res.output.count("Error:") == 1


class Cluster:
    """A `dask scheduler` and `dask worker` processes (no nanny: a killed worker stays dead)."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        file = tmp_path / "scheduler.json"
        self.procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                        "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        deadline = time.monotonic() + 60
        while not file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.address = json.loads(file.read_text())["address"]

    def worker(self) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", self.address, "--nthreads", "1",
                                 "--no-nanny", "--no-dashboard", "--local-directory", str(self.tmp / "w")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**__import__("os").environ, "NUMBA_NUM_THREADS": "1"})
        self.procs.append(proc)
        return proc

    def close(self):
        for p in reversed(self.procs):
            p.kill()
            p.wait()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.close()


def wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def rows(path: Path) -> dict:
    with open(path, newline="") as f:
        return {r["cell"]: r for r in csv.DictReader(f)}


def test_worker_killed_mid_cell_the_cell_runs_again_elsewhere(cluster, tmp_path):
    out = tmp_path / "sw"
    first = cluster.worker()

    state = {}

    def kill_then_replace():
        # a cell's folder appears when it starts: kill its worker then, before any cell has finished
        wait_for(lambda: (out / "cells").is_dir() and any((out / "cells").iterdir()), timeout=180)
        first.kill()
        state["finished_at_kill"] = len(list((out / "cells").glob("*/summary.json")))
        cluster.worker()

    killer = threading.Thread(target=kill_then_replace, daemon=True)
    killer.start()
    opts = SweepOptions(nets=("digits",), axes=(("mismatch", ("0.1", "0.3")),), out=out, scheduler=cluster.address,
                        **CELL)
    result = run_sweep(opts, echo=lambda line: None)
    killer.join(5)
    assert first.poll() is not None and state["finished_at_kill"] == 0     # it died mid-cell
    assert not result.failures, result.failures
    got = rows(out / "sweep.csv")
    assert {r["status"] for r in got.values()} == {"ok"} and len(got) == 2
    # the rerun on the surviving cluster skips both and gives the same CSV
    again = run_sweep(opts, echo=lambda line: None)
    assert again.ran == 0 and again.skipped == 2
    assert rows(out / "sweep.csv") == got


def test_cluster_without_workers_fails_waiting_cells_instead_of_hanging(cluster, tmp_path):
    out = tmp_path / "sw"
    t0 = time.monotonic()
    opts = SweepOptions(nets=("digits",), axes=(("mismatch", ("0.1",)),), out=out, scheduler=cluster.address,
                        no_worker_timeout_s=2.0, **CELL)
    result = run_sweep(opts, echo=lambda line: None)
    assert time.monotonic() - t0 < 30
    assert len(result.failures) == 1
    assert result.failures[0]["error"].startswith(f"NoWorkers: the Dask cluster at {cluster.address} had no worker")
    assert rows(out / "sweep.csv")["digits__mismatch-0.1__seed0"]["status"] == "failed"
