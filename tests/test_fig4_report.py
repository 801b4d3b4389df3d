"""benchmarks/fig4.py's bookkeeping: best5 runs one epoch per round, and a best5 cell paused after
some epochs reports its first epoch as the point's 50,000-image "1st epoch" but no best of 5 yet."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fig4(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("fig4_under_test", ROOT / "benchmarks" / "fig4.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)       # dataclasses look their module up there
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "OUT", tmp_path)
    return mod


def _write(folder: Path, name: str, data: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data))


def test_best5_runs_in_rounds_of_one_epoch(fig4):
    best5 = next(s for s in fig4.STEPS if s.tier == "best5")
    assert fig4.rounds(best5) == [1, 2, 3, 4, 5][:-1] + [None]
    assert fig4.rounds(next(s for s in fig4.STEPS if s.tier == "epoch50k")) == [None]


def test_a_paused_best5_cell_gives_the_first_epoch_not_a_best_of_5(fig4, tmp_path):
    cell = tmp_path / "best5" / "cells" / "vgg11__mismatch-0.4__seed0"
    _write(cell, "progress.json", {"epochs_done": 2, "epochs": 5, "accuracy_before": 0.45,
                                   "accuracy_per_epoch": [0.83, 0.835], "learn_samples": 100000, "learn_s": 1.0})
    rows = fig4.finished_cells()
    assert [(r["cell"], r["status"], r["epochs_done"]) for r in rows] == [(cell.name, "paused", 2)]
    pt = fig4._point(fig4.aggregate(rows), "mismatch", "0.4", "")
    assert pt["after_epoch_50k"]["mean"] == 83.0 and pt["after_epoch_images"] == 50000
    assert pt["before"]["mean"] == 45.0
    assert pt["best_of_5"] is None and pt["best_so_far"]["mean"] == 83.5 and pt["best5_epochs_done"] == 2
    assert fig4._best(pt).startswith("pending; best of the first 2: 83.5")

    # finished: summary.json and row.json; best of 5 is the best epoch
    row = {"cell": cell.name, "kind": "mismatch", "level": "0.4", "scope": "", "seed": 0, "status": "ok",
           "accuracy_before": 0.45, "accuracy_after": 0.84}
    _write(cell, "row.json", row)
    _write(cell, "summary.json", {"accuracy_per_epoch": [0.83, 0.835, 0.845, 0.84, 0.84], "epochs": 5})
    rows = fig4.finished_cells()
    assert [r["status"] for r in rows] == ["ok"]
    pt = fig4._point(fig4.aggregate(rows), "mismatch", "0.4", "")
    assert pt["best_of_5"]["mean"] == 84.5 and pt["after_epoch_50k"]["mean"] == 83.0
    assert fig4._best(pt).startswith("84.5")
