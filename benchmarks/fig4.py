"""The LTL paper's Figure 4 on the bundled CIFAR-10 VGG-11: test accuracy against noise level, four panels.

    python benchmarks/fig4.py run [--steps 1,2,...] [--best5-rounds K] [--no-progress]   # run (or resume), then report
    python benchmarks/fig4.py list                                     # the steps, their cells and what is done
    python benchmarks/fig4.py report                                   # JSON + figure from what has finished
    python benchmarks/fig4.py length                                   # the epoch-length / pulse-schedule runs

In the background on a shared machine: `setsid sh -c 'echo 19 > /proc/self/autogroup; exec nice -n 19
python benchmarks/fig4.py run --no-progress' > fig4.log 2>&1 &`. With the kernel's autogroup scheduling
nice only ranks processes within one session, so a setsid'd run at nice 19 alone still takes its cores
from everything else; the autogroup's nice is what yields them.

Panels (the paper's levels; `vgg11` with the bundled weights and the learning
section its YAML ships, seeds 0-2, 2,000 CIFAR-10 test images per cell):

* (a) mismatch 0.05 .. 0.4, (b) bits 8 .. 3 (post-training quantization),
* (c) thermal 0.01 .. 0.2 in two scopes: `current` (chipsim's default, the
  per-neuron summed current) and `input` (the paper code's x' = x (1 + s xi)
  on every input element of every layer, every tick),
* (d) silence 0.1 .. 0.5 in two scopes: `chip` (chipsim's default, a frozen
  set of dead neurons) and `tick` (the paper code's fresh mask every tick).

Every cell is a `chipsim sweep` cell (so it resumes and spreads over Dask
workers), in one sweep folder per tier under benchmarks/results/fig4-vgg11/:

* `before`    inference only, every level ("w/o fine-tune");
* `epoch5k`   one epoch of online LTL on 5,000 training images, every level;
* `epoch50k`  one epoch on all 50,000 training images (the paper's epoch), the
              hardest level of each panel in every scope;
* `best5`     five epochs on all 50,000, the paper's hardest point of each panel
              in the paper's scope, seed 0: "best of 5 epochs" (its first epoch is
              also that point's seed-0 "1st epoch", so epoch50k runs seeds 1-2 there).
              vgg11.yaml's pulse schedule restarts at every epoch
              (`pulse_decay_restart: epoch`), so epochs 2-5 learn as the first did.
              Its cells run in rounds (`chipsim sweep --pause-after-epoch`): the
              first epoch of every point before the second of any, so each
              session's hours answer the one-epoch targets first; a cell's
              progress.json (committed) holds its accuracy after every epoch so far.

The steps run in order of what they tell (the probe of the learning section on
the hardest points first, the long 50,000-image cells later). A step's cells
that finished are skipped, so a killed run, or a new session, picks up where it
stopped; the folders keep each cell's summary.json and row.json (its run.h5 and
checkpoints are not kept in git). `report` writes
benchmarks/results/fig4-vgg11.json and fig4-vgg11.png from whatever has
finished, and says for every point which tier (calibration images) and how
many seeds it has.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "fig4-vgg11"
RESULT = ROOT / "benchmarks" / "results" / "fig4-vgg11.json"
FIGURE = ROOT / "benchmarks" / "results" / "fig4-vgg11.png"
NET = "vgg11"
DATA = "../shared/data/cifar10-jpeg.tar.xz"     #: relative to the repository root (the script runs there)
TEST_IMAGES = 2000
SEEDS = 3


@dataclass(frozen=True)
class Panel:
    kind: str
    levels: tuple[str, ...]         #: the paper's levels (the noise-free chip is drawn at the left)
    scopes: tuple[str, ...]         #: ("",) when the kind has no scope axis
    hardest: str
    paper_scope: str                #: the scope the paper's code uses ("" without scopes)
    paper: str                      #: the paper's finding, in short
    preset: str = ""                #: the vgg11.yaml learning preset its calibrated cells use ("": the section)


PANELS = (
    Panel("mismatch", ("0.05", "0.1", "0.2", "0.3", "0.4"), ("",), "0.4", "",
          "more than 20 points lost at 0.4; one epoch restores the original accuracy"),
    Panel("bits", ("8", "7", "6", "5", "4", "3"), ("",), "3", "",
          "robust above 3 bits; at 3 more than 30 points lost, LTL recovers about 17 and ends about 15 below",
          "quantized"),
    Panel("thermal", ("0.01", "0.05", "0.1", "0.2"), ("current", "input"), "0.2", "input",
          "highly sensitive, dropping steadily; one epoch recovers it in large part"),
    Panel("silence", ("0.1", "0.2", "0.3", "0.4", "0.5"), ("chip", "tick"), "0.5", "tick",
          "drops steadily; after calibration above 80 % even at 50 %"),
)
CLEAN = ("mismatch", "0")           #: the noise-free reference cell

#: tier -> the sweep options that stay fixed in its folder, workers and threads per cell. The
#: calibration tiers share the teacher's targets in TARGETS (noise-independent; results unchanged)
TIERS = {
    "before": dict(calibrate_epochs=None, calib_samples=None, workers=2, threads=1),
    "epoch5k": dict(calibrate_epochs=1, calib_samples=5000, workers=1, threads=2),
    "epoch50k": dict(calibrate_epochs=1, calib_samples=None, workers=1, threads=2, checkpoint_every=5000),
    "best5": dict(calibrate_epochs=5, calib_samples=None, workers=1, threads=2, checkpoint_every=10000),
    # diagnostics: the paper's quantizer step and silencing whole channels, beside the defaults
    "diag-minmax": dict(calibrate_epochs=None, calib_samples=None, workers=2, threads=1,
                        base_noise=("bits.quantizer=minmax",)),
    "diag-minmax-5k": dict(calibrate_epochs=1, calib_samples=5000, workers=1, threads=2,
                           base_noise=("bits.quantizer=minmax",)),
    "diag-channel": dict(calibrate_epochs=None, calib_samples=None, workers=2, threads=1,
                         base_noise=("silence.unit=channel",)),
    "diag-channel-5k": dict(calibrate_epochs=1, calib_samples=5000, workers=1, threads=2,
                            base_noise=("silence.unit=channel",)),
    # diagnostics (c): how strong thermal noise must be to hurt, in both scopes
    "diag-thermal-high": dict(calibrate_epochs=None, calib_samples=None, workers=2, threads=1),
}
THERMAL_HIGH = ("0.5", "1", "2")


@dataclass(frozen=True)
class LengthRun:
    """One seed-0 calibration of a hardest point (`chipsim run`, folder OUT/diag-length/NAME): how the
    epoch's length and the pulse schedule decide where a long epoch ends."""
    name: str
    kind: str
    level: str
    scope: str
    calib_samples: int | None          #: None: all 50,000
    learn: tuple[str, ...]             #: --learn overrides (the panel's preset first where it has one)

    @property
    def noise(self) -> tuple[str, ...]:
        from chipsim.workflows.sweep import Cell

        return Cell(NET, self.kind, self.level, 0, self.scope).noise


CONSTANT = ("pulse_decay=1",)                       #: constant steps, whatever the YAML's schedule
DECAY_05 = ("pulse_decay=0.5", "pulse_decay_every=5000")
DECAY_025 = ("pulse_decay=0.25", "pulse_decay_every=5000")
LENGTH_RUNS = (
    LengthRun("thermal-0.2-input-10k", "thermal", "0.2", "input", 10000, CONSTANT),
    LengthRun("thermal-0.2-input-20k", "thermal", "0.2", "input", 20000, CONSTANT),
    LengthRun("thermal-0.2-input-50k-d0.25", "thermal", "0.2", "input", None, DECAY_025),
    LengthRun("bits-3-50k-d0.5", "bits", "3", "", None, ("preset=quantized",) + DECAY_05),
    LengthRun("bits-3-50k-d0.25", "bits", "3", "", None, ("preset=quantized",) + DECAY_025),
)
LENGTH = OUT / "diag-length"
#: the main tiers' 50,000-image cells from before vgg11.yaml shipped a pulse schedule (constant steps)
CONSTANT_STEPS = OUT / "diag-constant-steps"
MAIN_TIERS = ("before", "epoch5k", "epoch50k", "best5")
TARGETS = OUT / "targets"           #: teacher-target store shared by the calibration cells (not in git)


@dataclass(frozen=True)
class Step:
    tier: str
    points: tuple[tuple[str, str, str], ...]      #: (kind, level, scope)
    first_seed: int
    seeds: int
    why: str

    def __post_init__(self):
        object.__setattr__(self, "points", tuple(self.points))


def _all_points(with_clean: bool = True) -> tuple[tuple[str, str, str], ...]:
    points = [(CLEAN[0], CLEAN[1], "")] if with_clean else []
    for p in PANELS:
        points += [(p.kind, level, scope) for scope in p.scopes for level in p.levels]
    return tuple(points)


def _hardest(paper_scope_only: bool = False, other_scopes_only: bool = False):
    out = []
    for p in PANELS:
        for scope in p.scopes:
            is_paper = scope == p.paper_scope
            if (paper_scope_only and not is_paper) or (other_scopes_only and is_paper):
                continue
            out.append((p.kind, p.hardest, scope))
    return tuple(out)


STEPS = (
    Step("before", _all_points(), 0, 1, "every level before calibration, seed 0"),
    Step("epoch5k", _hardest(), 0, 1, "the learning section probed on the hardest point of each panel and scope (bits: its preset)"),
    Step("before", _all_points(), 1, 2, "before calibration, seeds 1-2"),
    Step("diag-minmax", (("bits", lv, "") for lv in PANELS[1].levels), 0, 3,
         "diagnosis (b): the paper's quantizer step (max - min) / (2^b - 1), before calibration"),
    Step("diag-channel", (("silence", lv, "chip") for lv in PANELS[3].levels), 0, 3,
         "diagnosis (d): whole conv channels silenced instead of single neurons, before calibration"),
    Step("diag-thermal-high", (("thermal", lv, sc) for sc in ("current", "input") for lv in THERMAL_HIGH), 0, 1,
         "diagnosis (c): thermal noise beyond the paper's levels, before calibration"),
    Step("diag-minmax-5k", (("bits", "3", ""),), 0, 1, "diagnosis (b): minmax quantizer at 3 bits, 5,000-image epoch"),
    Step("diag-channel-5k", (("silence", "0.5", "chip"),), 0, 1,
         "diagnosis (d): channel silencing at 0.5, 5,000-image epoch"),
    Step("epoch5k", _all_points(with_clean=False), 0, 1, "one 5,000-image epoch at every level, seed 0"),
    Step("epoch50k", _hardest(other_scopes_only=True), 0, 1, "the paper's epoch at the hardest points of chipsim's "
                                                              "default scopes, seed 0"),
    Step("best5", _hardest(paper_scope_only=True), 0, 1, "five 50,000-image epochs at the paper's hardest points"),
    Step("epoch50k", _hardest(paper_scope_only=True), 1, 2, "the paper's epoch at its hardest points, seeds 1-2 "
                                                             "(seed 0 is best5's first epoch)"),
    Step("epoch50k", _hardest(other_scopes_only=True), 1, 2, "the paper's epoch at the hardest points of "
                                                             "chipsim's default scopes, seeds 1-2"),
    Step("epoch5k", _all_points(with_clean=False), 1, 2, "one 5,000-image epoch at every level, seeds 1-2"),
)


def step_axes(step: Step) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Sweep axes for a step's points: KIND=levels, plus KIND.scope=scopes (crossed by the sweep).

    A step's points per kind are a full levels x scopes product (STEPS are built so)."""
    axes = []
    for kind in dict.fromkeys(k for k, _, _ in step.points):
        levels = tuple(dict.fromkeys(lv for k, lv, _ in step.points if k == kind))
        scopes = tuple(dict.fromkeys(s for k, _, s in step.points if k == kind and s))
        axes.append((kind, levels))
        if scopes:
            axes.append((f"{kind}.scope", scopes))
    return tuple(axes)


PRESET_OF = {p.kind: p.preset for p in PANELS}


def step_parts(step: Step) -> list[tuple[str, Step, str]]:
    """(folder, sub-step, preset): a calibrated main tier's points grouped by their panel's learning
    preset, each group in its own sweep folder (TIER-PRESET), since a sweep folder has one --learn."""
    if step.tier not in MAIN_TIERS or not TIERS[step.tier]["calibrate_epochs"]:
        return [(step.tier, step, "")]
    groups: dict[str, list] = {}
    for point in step.points:
        groups.setdefault(PRESET_OF[point[0]], []).append(point)
    return [(tier_folder(step.tier, preset), Step(step.tier, tuple(points), step.first_seed, step.seeds, step.why),
             preset) for preset, points in groups.items()]


def tier_folder(tier: str, preset: str) -> str:
    """A main tier's sweep folder for the cells of one learning preset: TIER, or TIER-PRESET."""
    return tier + (f"-{preset}" if preset else "")


def sweep_options(step: Step, data: str, folder: str | None = None, preset: str = "", pause: int | None = None):
    from chipsim.workflows.sweep import SweepOptions

    tier = TIERS[step.tier]
    return SweepOptions(nets=(NET,), axes=step_axes(step), out=OUT / (folder or step.tier), seeds=step.seeds,
                        first_seed=step.first_seed, calibrate_epochs=tier["calibrate_epochs"],
                        samples=TEST_IMAGES, calib_samples=tier["calib_samples"], data=data,
                        learn=(f"preset={preset}",) if preset else (),
                        workers=tier["workers"], threads_per_cell=tier["threads"],
                        checkpoint_every=tier.get("checkpoint_every"), base_noise=tier.get("base_noise", ()),
                        pause_after_epoch=pause,
                        target_cache=str(TARGETS) if tier["calibrate_epochs"] else None)


def step_status(step: Step, data: str) -> tuple[int, int]:
    from chipsim.workflows.sweep import expand

    done = total = 0
    for folder, part, preset in step_parts(step):
        cells = expand(sweep_options(part, data, folder, preset))
        done += sum((OUT / folder / "cells" / c.id / "summary.json").is_file() for c in cells)
        total += len(cells)
    return done, total


# --------------------------------------------------------------------------- reading the finished cells

def rounds(step: Step) -> list[int | None]:
    """pause_after_epoch per pass over a step's cells: one epoch per pass for best5, else one pass."""
    epochs = TIERS[step.tier]["calibrate_epochs"] or 1
    return [k if k < epochs else None for k in range(1, epochs + 1)] if step.tier == "best5" else [None]


def unfinished_best5() -> list[dict]:
    """best5 cells paused (or killed) after some epochs: a row from their progress.json."""
    from chipsim.workflows.sweep import expand

    rows = []
    for step in STEPS:
        if step.tier != "best5":
            continue
        for folder, part, preset in step_parts(step):
            for cell in expand(sweep_options(part, DATA, folder, preset)):
                cell_dir = OUT / folder / "cells" / cell.id
                path = cell_dir / "progress.json"
                if (cell_dir / "summary.json").is_file() or not path.is_file():
                    continue
                prog = json.loads(path.read_text())
                if not prog["accuracy_per_epoch"]:
                    continue
                rows.append({"cell": cell.id, "kind": cell.kind, "level": cell.level, "scope": cell.scope,
                             "seed": cell.seed, "status": "paused", "tier": "best5", "preset": preset,
                             "accuracy_before": prog["accuracy_before"],
                             "accuracy_after": prog["accuracy_per_epoch"][-1],
                             "accuracy_per_epoch": prog["accuracy_per_epoch"], "epochs_done": prog["epochs_done"],
                             "cpu_s": None})
    return rows


def finished_cells() -> list[dict]:
    """Every finished cell of every tier: its row plus tier and accuracy per epoch; and the best5 cells
    with some of their epochs done (status 'paused')."""
    cells = []
    folders = [(tier, "") for tier in TIERS] + [(tier_folder(tier, p.preset), p.preset) for tier in MAIN_TIERS
                                                for p in PANELS if p.preset]
    for folder, preset in dict.fromkeys(folders):
        tier = folder[:-len(preset) - 1] if preset else folder
        for cell_dir in sorted((OUT / folder / "cells").glob("*")):
            row_path, summary_path = cell_dir / "row.json", cell_dir / "summary.json"
            if not (row_path.is_file() and summary_path.is_file()):
                continue
            row = json.loads(row_path.read_text())
            summary = json.loads(summary_path.read_text())
            row["tier"] = tier
            row["preset"] = preset
            row["accuracy_per_epoch"] = summary.get("accuracy_per_epoch")
            row["epochs_done"] = summary.get("epochs")
            cells.append(row)
    return cells + unfinished_best5()


def _stats(values: list[float]) -> dict | None:
    if not values:
        return None
    v = np.array(values) * 100
    return {"mean": round(float(v.mean()), 2), "std": round(float(v.std()), 2),
            "min": round(float(v.min()), 2), "max": round(float(v.max()), 2), "n": len(values)}


def _best_epoch(row: dict) -> float | None:
    return max(row["accuracy_per_epoch"]) if row.get("accuracy_per_epoch") else None


def aggregate(cells: list[dict]) -> dict:
    """Per panel, scope and level: before, after one epoch (50k where it exists, else 5k), best of 5."""
    def pick(kind, level, scope, tiers, preset=None):
        """Cells of a point in `tiers`; calibrated ones with the panel's preset (or `preset`)."""
        want = PRESET_OF[kind] if preset is None else preset
        return [c for c in cells if c["kind"] == kind and str(c["level"]) == level and (c.get("scope") or "") == scope
                and c["tier"] in tiers and (c.get("status") == "ok" or (c.get("status") == "paused" and c["tier"] == "best5"))
                and (c["tier"] == "before" or c["tier"] not in MAIN_TIERS or c.get("preset", "") == want)]

    def by_seed(rows, value):
        seen = {}
        for r in rows:
            v = value(r)
            if v is not None and r["seed"] not in seen:
                seen[r["seed"]] = v
        return seen

    clean_rows = pick(*CLEAN, "", ("before",))
    clean = _stats(list(by_seed(clean_rows, lambda r: r["accuracy_before"]).values()))
    panels = {}
    for p in PANELS:
        scopes = {}
        for scope in p.scopes:
            points = []
            for level in p.levels:
                all_rows = pick(p.kind, level, scope, MAIN_TIERS)
                before = by_seed(all_rows, lambda r: r["accuracy_before"])
                # one epoch: all 50,000 images (epoch50k, or the first epoch of best5) else 5,000 (epoch5k)
                full = by_seed(pick(p.kind, level, scope, ("epoch50k",)), lambda r: r["accuracy_after"])
                for seed, v in by_seed(pick(p.kind, level, scope, ("best5",)),
                                       lambda r: (r.get("accuracy_per_epoch") or [None])[0]).items():
                    full.setdefault(seed, v)
                part = by_seed(pick(p.kind, level, scope, ("epoch5k",)), lambda r: r["accuracy_after"])
                best5 = pick(p.kind, level, scope, ("best5",))
                best = by_seed([r for r in best5 if r["status"] == "ok"], _best_epoch)
                so_far = by_seed(best5, _best_epoch)
                epochs = by_seed(best5, lambda r: r.get("accuracy_per_epoch"))
                points.append({
                    "level": level, "before": _stats(list(before.values())),
                    "after_epoch": _stats(list(full.values())) if full else _stats(list(part.values())),
                    "after_epoch_images": 50000 if full else (5000 if part else None),
                    "after_epoch_5k": _stats(list(part.values())),
                    "after_epoch_50k": _stats(list(full.values())),
                    "best_of_5": _stats(list(best.values())),
                    "best_so_far": _stats(list(so_far.values())),      # best5 cells not finished yet included
                    "best5_epochs_done": min((len(e) for e in epochs.values()), default=0),
                    "best5_accuracy_per_epoch": {str(s): e for s, e in epochs.items()},
                    "seeds_before": sorted(before), "seeds_after_5k": sorted(part), "seeds_after_50k": sorted(full),
                })
            scopes[scope or "-"] = points
        panels[p.kind] = {"paper": p.paper, "paper_scope": p.paper_scope or None, "hardest": p.hardest,
                          "levels": list(p.levels), "scopes": scopes}
    diagnostics = {}
    for name, kind, scope, variant, default in (
            ("quantizer", "bits", "", "diag-minmax", "symmetric per layer, step max|W| / (2^(b-1) - 1)"),
            ("silence_unit", "silence", "chip", "diag-channel", "single neurons (positions x channels)")):
        levels = next(p.levels for p in PANELS if p.kind == kind)
        rows = []
        for level in levels:
            ours = _point({"panels": panels}, kind, level, scope)
            before = by_seed(pick(kind, level, scope, (variant, variant + "-5k")), lambda r: r["accuracy_before"])
            after = by_seed(pick(kind, level, scope, (variant + "-5k",)), lambda r: r["accuracy_after"])
            rows.append({"level": level, "variant_before": _stats(list(before.values())),
                         "variant_after_epoch_5k": _stats(list(after.values())),
                         "default_before": ours["before"], "default_after_epoch_5k": ours["after_epoch_5k"]})
        diagnostics[name] = {"kind": kind, "scope": scope or None, "default": default,
                             "variant": TIERS[variant]["base_noise"][0], "levels": rows}
    for p in PANELS:        # the panel's preset against the learning section the other panels use
        if not p.preset:
            continue
        rows = []
        for level in p.levels:
            default = by_seed(pick(p.kind, level, "", ("epoch5k",), preset=""), lambda r: r["accuracy_after"])
            ours = _point({"panels": panels}, p.kind, level, "")
            rows.append({"level": level, "before": ours["before"], "section_after_epoch_5k": _stats(list(default.values())),
                         "preset_after_epoch_5k": ours["after_epoch_5k"]})
        diagnostics[f"{p.kind}_learning"] = {"kind": p.kind, "preset": p.preset, "levels": rows}
    high = {}
    for scope in ("current", "input"):
        high[scope] = []
        for lv in THERMAL_HIGH:
            before = by_seed(pick("thermal", lv, scope, ("diag-thermal-high",)), lambda r: r["accuracy_before"])
            high[scope].append({"level": lv, "before": _stats(list(before.values()))})
    diagnostics["thermal_beyond_paper_levels"] = {"kind": "thermal", "levels": list(THERMAL_HIGH), "scopes": high}
    diagnostics["epoch_length_and_schedule"] = length_diagnostic()
    return {"clean": clean, "panels": panels, "diagnostics": diagnostics}


def length_diagnostic() -> list[dict]:
    """Seed 0 of each LengthRun point after 5,000 images and after one constant-step 50,000-image epoch
    (the cells kept in diag-constant-steps/), beside the LENGTH_RUNS that have finished."""
    rows = []
    for kind, level, scope in dict.fromkeys(_hardest() + tuple((r.kind, r.level, r.scope) for r in LENGTH_RUNS)):
        runs = []
        for r in LENGTH_RUNS:
            path = LENGTH / r.name / "summary.json"
            if (r.kind, r.level, r.scope) != (kind, level, scope) or not path.is_file():
                continue
            summary = json.loads(path.read_text())
            runs.append({"run": r.name, "calibration_samples": summary["calibration_samples"],
                         "learn": list(r.learn), "pulse_decay": summary["learning"].get("pulse_decay", 1.0),
                         "pulse_decay_every": summary["learning"].get("pulse_decay_every", 0),
                         "accuracy_before": summary["accuracy_before"], "accuracy_after": summary["accuracy_after"]})
        preset = PRESET_OF[kind]
        rows.append({"kind": kind, "level": level, "scope": scope or None,
                     "seed0_after_5k": seed0_first_epoch((OUT / tier_folder("epoch5k", preset),), kind, level, scope),
                     "seed0_after_50k_constant": seed0_first_epoch(
                         tuple(CONSTANT_STEPS / tier_folder(t, preset) for t in ("epoch50k", "best5")), kind, level, scope),
                     "runs": runs})
    return rows


def seed0_first_epoch(roots: tuple[Path, ...], kind: str, level: str, scope: str) -> float | None:
    """Seed 0's accuracy after its first epoch in the first sweep folder of `roots` that has the cell
    (its summary.json, or progress.json for a paused cell)."""
    from chipsim.workflows.sweep import Cell

    cell = Cell(NET, kind, level, 0, scope).id
    for root in roots:
        for name in ("summary.json", "progress.json"):
            path = root / "cells" / cell / name
            if path.is_file():
                return json.loads(path.read_text())["accuracy_per_epoch"][0]
    return None


def run_length(data: str, progress: bool) -> None:
    """Run (or resume) the LENGTH_RUNS that have not finished, one after another."""
    from chipsim.cli.progress import LazyProgressBar
    from chipsim.workflows.calibrate import CalibOptions, run_calibration

    for r in LENGTH_RUNS:
        out = LENGTH / r.name
        if (out / "summary.json").is_file():
            continue
        print(f"diag-length {r.name}: --noise {' '.join(r.noise)} --learn {' '.join(r.learn)}", flush=True)
        bar = LazyProgressBar(f"diag-length {r.name}") if progress else None
        try:
            run_calibration(CalibOptions(net=NET, data=data, samples=TEST_IMAGES, seed=0, noise=r.noise, epochs=1,
                                         calib_samples=r.calib_samples, learn=r.learn, checkpoint_every=5000,
                                         target_cache=TARGETS, out=out, on_batch=bar))
        finally:
            if bar is not None:
                bar.close()


def _point(agg: dict, kind: str, level: str, scope: str) -> dict:
    return next(pt for pt in agg["panels"][kind]["scopes"][scope or "-"] if pt["level"] == level)


def check_targets(agg: dict) -> dict:
    """The issue's targets on the paper's shapes; None where the cells are not in yet."""
    clean = agg["clean"]["mean"] if agg["clean"] else None
    out = {}

    def mean(stats):
        return None if stats is None else stats["mean"]

    def verdict(name, ok, detail):
        kind, scope = name.split(" ")[0], ("input" if " input" in name else "tick" if " tick" in name else "")
        out[name] = {"met": ok, "measured": detail, "panel": kind, "scope": scope}

    if clean is None:
        return out
    mm = _point(agg, "mismatch", "0.4", "")
    b, a = mean(mm["before"]), mean(mm["after_epoch_50k"])
    verdict("mismatch 0.4: drop >= 20 points", None if b is None else clean - b >= 20,
            None if b is None else f"drop {clean - b:.1f}")
    verdict("mismatch 0.4: after one 50k epoch within 2 points of noise-free", None if a is None else clean - a <= 2,
            None if a is None else f"gap {clean - a:.1f}")
    q = _point(agg, "bits", "3", "")
    b, a, best = mean(q["before"]), mean(q["after_epoch_50k"]), mean(q["best_of_5"])
    verdict("bits 3: drop >= 30 points", None if b is None else clean - b >= 30,
            None if b is None else f"drop {clean - b:.1f}")
    verdict("bits 3: after one 50k epoch within 15 points", None if a is None else clean - a <= 15,
            None if a is None else f"gap {clean - a:.1f}")
    verdict("bits 3: best of 5 epochs closer than one", None if (a is None or best is None) else best > a,
            None if best is None else f"best of 5 {best:.1f}")
    th = agg["panels"]["thermal"]["scopes"]["input"]
    befores = [mean(pt["before"]) for pt in th]
    if all(v is not None for v in befores):
        losses = [clean - v for v in befores]
        verdict("thermal input: loss grows with level", all(y >= x - 0.5 for x, y in zip(losses, losses[1:])),
                "losses " + ", ".join(f"{x:.1f}" for x in losses) + " (0.5-point tolerance per step)")
    t = _point(agg, "thermal", "0.2", "input")
    b, a = mean(t["before"]), mean(t["after_epoch_50k"])
    verdict("thermal 0.2 input: one epoch recovers >= half the loss",
            None if (b is None or a is None) else a - b >= 0.5 * (clean - b),
            None if (b is None or a is None) else f"loss {clean - b:.1f}, recovered {a - b:.1f}")
    s = _point(agg, "silence", "0.5", "tick")
    a = mean(s["after_epoch_50k"])
    verdict("silence 0.5 tick: after one epoch >= 80 % of noise-free (relative) or >= 80 % absolute",
            None if a is None else (a >= 0.8 * clean or a >= 80),
            None if a is None else f"{a:.1f} % = {a / clean * 100:.0f} % of noise-free")
    return out


# --------------------------------------------------------------------------- the figure

def plot(agg: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from inference import save_figure

    clean = agg["clean"]
    fig, axs = plt.subplots(1, 4, figsize=(19, 4.6))
    colors = {"": "tab:blue", "current": "tab:blue", "chip": "tab:blue", "input": "tab:red", "tick": "tab:red"}
    for ax, p, letter in zip(axs, PANELS, "abcd"):
        labels = ["FP" if p.kind == "bits" else "0"] + list(p.levels)
        x = np.arange(len(labels))
        if clean:
            ax.axhline(clean["mean"], color="gray", lw=0.8, ls=":")
        for scope in p.scopes:
            pts = agg["panels"][p.kind]["scopes"][scope or "-"]
            tag = f" [{scope}{' = paper' if scope == p.paper_scope and scope else ''}]" if scope else ""
            color = colors[scope]

            def series(key, pts=pts):
                m = [clean["mean"] if clean else np.nan] + [pt[key]["mean"] if pt[key] else np.nan for pt in pts]
                s = [clean["std"] if clean else np.nan] + [pt[key]["std"] if pt[key] else np.nan for pt in pts]
                return np.array(m, float), np.array(s, float)

            m, s = series("before")
            ax.errorbar(x, m, yerr=s, fmt="o--", color=color, ms=4, capsize=3, alpha=0.8, label=f"w/o fine-tune{tag}")
            m5, s5 = series("after_epoch_5k")
            if np.isfinite(m5[1:]).any():
                ax.errorbar(x, m5, yerr=s5, fmt="s-", color=color, mfc="white", ms=5, capsize=3,
                            label=f"1st epoch, 5,000 images{tag}")
            m50, s50 = series("after_epoch_50k")
            if np.isfinite(m50[1:]).any():
                ax.errorbar(x, m50, yerr=s50, fmt="D", color=color, ms=7, capsize=3,
                            label=f"1st epoch, 50,000 images{tag}")
            mb, sb = series("best_of_5")
            if np.isfinite(mb[1:]).any():
                ax.errorbar(x, mb, yerr=sb, fmt="*", color=color, ms=12, capsize=3, label=f"best of 5 epochs{tag}")
        _mark_paper(ax, p, clean, len(labels) - 1)
        ax.set_xticks(x, labels)
        ax.set_xlabel({"mismatch": "mismatch sigma", "bits": "weight bits", "thermal": "thermal sigma",
                       "silence": "silenced fraction"}[p.kind])
        ax.set_ylabel("CIFAR-10 test accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"({letter}) {p.kind}", loc="left")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"Figure 4 on chipsim: bundled vgg11, {TEST_IMAGES} test images per cell, mean ± std over seeds; "
                 "black marks: the paper's reported effects at the hardest level (relative to our noise-free chip)",
                 fontsize=10)
    save_figure(fig, path)
    return path


def _mark_paper(ax, p: Panel, clean: dict | None, xi: int) -> None:
    """The paper's reported effect at the hardest level, drawn relative to our noise-free accuracy."""
    if not clean:
        return
    c = clean["mean"]
    style = dict(color="black", ms=9, ls="none")
    if p.kind == "mismatch":
        ax.plot([xi], [c - 20], marker="v", **style, label="paper: before <= -20")
        ax.plot([xi], [c], marker="_", mew=3, **style, label="paper: 1st epoch = original")
    elif p.kind == "bits":
        ax.plot([xi], [c - 30], marker="v", **style, label="paper: before <= -30")
        ax.plot([xi], [c - 15], marker="_", mew=3, **style, label="paper: after ~ -15 (recovers ~17)")
    elif p.kind == "silence":
        ax.axhline(80, color="black", lw=0.8, ls="--", label="paper: after > 80 % at 0.5")
    elif p.kind == "thermal":
        ax.text(0.98, 0.04, "paper: steady drop,\n1 epoch recovers most", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7)


# --------------------------------------------------------------------------- commands

README = ROOT / "README.md"
README_BEGIN, README_END = "<!-- fig4-table:begin (written by benchmarks/fig4.py report) -->", "<!-- fig4-table:end -->"


def _fmt(stats: dict | None, images: int | None = None) -> str:
    if not stats:
        return "pending"
    spread = f" ± {stats['std']:.1f}" if stats["n"] > 1 else ""
    tier = f", {images // 1000}k images" if images else ""
    return f"{stats['mean']:.1f}{spread} ({stats['n']} seed{'s' if stats['n'] != 1 else ''}{tier})"


def _after(pt: dict) -> str:
    """After one epoch: the 50,000-image figure where it exists, and the 5,000-image one beside it."""
    text = _fmt(pt["after_epoch"], pt["after_epoch_images"])
    if pt["after_epoch_images"] == 50000 and pt["after_epoch_5k"]:
        text += f"; {_fmt(pt['after_epoch_5k'], 5000)}"
    return text


def _best(pt: dict) -> str:
    if pt["best_of_5"] or not pt["best_so_far"] or pt["best5_epochs_done"] < 1:
        return _fmt(pt["best_of_5"])
    return f"pending; best of the first {pt['best5_epochs_done']}: {_fmt(pt['best_so_far'])}"


def markdown_table(result: dict) -> str:
    """The README's side-by-side table: per panel the paper's effect, ours at the hardest level, the targets."""
    clean = result["clean"]
    lines = [f"Noise-free chip: {_fmt(clean)} %. Ours: test accuracy (%) at the hardest level, mean ± std over "
             f"seeds; after one epoch of 50,000 images where it has run, else of 5,000.", "",
             "| panel | paper | ours: before | ours: after one epoch | best of 5 | targets |",
             "|---|---|---|---|---|---|"]
    targets = result["targets"]
    for p in PANELS:
        for scope in p.scopes:
            pt = _point(result, p.kind, p.hardest, scope)
            name = f"{p.kind} {p.hardest}" + (f", scope {scope}" + (" (the paper's)" if scope == p.paper_scope
                                                                    else "") if scope else "")
            mine = [f"{k}: {'met' if v['met'] else ('**missed**' if v['met'] is False else 'pending')}"
                    + (f" ({v['measured']})" if v["measured"] else "")
                    for k, v in targets.items() if v["panel"] == p.kind and v["scope"] == scope]
            lines.append(f"| {name} | {p.paper if scope in ('', p.paper_scope) else 'chipsim default scope'} | "
                         f"{_fmt(pt['before'])} | {_after(pt)} | "
                         f"{_best(pt)} | {'; '.join(mine) or '-'} |")
    return "\n".join(lines)


def update_readme(result: dict) -> bool:
    """Replace the table between the README's fig4 markers (if they are there)."""
    text = README.read_text()
    if README_BEGIN not in text or README_END not in text:
        return False
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    from chipsim.io.atomic import atomic_path

    with atomic_path(README) as tmp:
        tmp.write_text(head + README_BEGIN + "\n" + markdown_table(result) + "\n" + README_END + tail)
    return True


def report(data: str) -> dict:
    from chipsim.io.atomic import write_json

    cells = finished_cells()
    agg = aggregate(cells)
    steps = []
    for i, step in enumerate(STEPS, 1):
        done, total = step_status(step, data)
        steps.append({"step": i, "tier": step.tier, "why": step.why, "done": done, "cells": total,
                      "seeds": list(range(step.first_seed, step.first_seed + step.seeds))})
    cpu_h = sum(float(c.get("cpu_s") or 0) for c in cells) / 3600
    result = {
        "benchmark": "fig4", "net": NET, "data": DATA, "test_images_per_cell": TEST_IMAGES,
        "date": time.strftime("%Y-%m-%d"), "command": "python benchmarks/fig4.py run",
        "tiers": {k: {kk: v for kk, v in t.items() if kk in ("calibrate_epochs", "calib_samples")}
                  for k, t in TIERS.items()},
        "learning": "the learning section vgg11.yaml ships (steps x0.25 after every 5,000 calibration images: "
                    "pulse_decay); the bits panel's calibrated cells its learning preset "
                    + ", ".join(f"{p.kind}: --learn preset={p.preset}" for p in PANELS if p.preset),
        "steps": steps, "cells_finished": sum(c["status"] != "paused" for c in cells),
        "best5_unfinished": {c["cell"]: f"{c['epochs_done']}/{TIERS['best5']['calibrate_epochs']} epochs"
                             for c in cells if c["status"] == "paused"}, "cpu_hours_of_finished_cells": round(cpu_h, 2),
        **agg, "targets": check_targets(agg),
    }
    write_json(RESULT, result)
    if cells:
        plot(agg, FIGURE)
    update_readme(result)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("run", "list", "report", "length"))
    ap.add_argument("--steps", default=None, help="comma-separated step numbers to run (default: all, in order)")
    ap.add_argument("--data", default=DATA, help=f"CIFAR-10 (default {DATA}, relative to the repository root)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--best5-rounds", type=int, default=None,
                    help="run best5's cells only up to this many epochs now (default: all 5); they resume later")
    args = ap.parse_args()
    os.chdir(ROOT)
    if args.command == "length":
        run_length(args.data, not args.no_progress)
        print(json.dumps(report(args.data)["diagnostics"]["epoch_length_and_schedule"], indent=1))
        return
    if args.command == "list":
        for i, step in enumerate(STEPS, 1):
            done, total = step_status(step, args.data)
            print(f"{i}. {step.tier:9s} {done:3d}/{total:<3d} cells  {step.why}")
        for r in LENGTH_RUNS:
            done = (LENGTH / r.name / "summary.json").is_file()
            print(f"   length {r.name}: {'done' if done else 'to run (fig4.py length)'}")
        for row in unfinished_best5():
            print(f"   best5 {row['cell']}: {row['epochs_done']}/{TIERS['best5']['calibrate_epochs']} epochs, "
                  f"accuracy per epoch {row['accuracy_per_epoch']}")
        return
    if args.command == "run":
        from chipsim.cli.progress import LazyProgressBar
        from chipsim.workflows.sweep import run_sweep

        wanted = [int(s) for s in args.steps.split(",")] if args.steps else range(1, len(STEPS) + 1)
        if args.best5_rounds is not None and args.best5_rounds < 1:
            raise SystemExit(f"--best5-rounds: expected an integer >= 1, got {args.best5_rounds}")
        for i in wanted:
            if not 1 <= i <= len(STEPS):
                raise SystemExit(f"--steps: step {i} does not exist; expected 1..{len(STEPS)} (see `fig4.py list`)")
        for i in wanted:
            step = STEPS[i - 1]
            done, total = step_status(step, args.data)
            print(f"step {i} ({step.tier}): {step.why}: {done}/{total} cells finished", flush=True)
            if done == total:
                continue
            for pause in rounds(step)[:args.best5_rounds]:
                for folder, part, preset in step_parts(step):
                    bar = LazyProgressBar(f"step {i} {folder}")
                    res = run_sweep(sweep_options(part, args.data, folder, preset, pause), None if args.no_progress
                                    else (lambda d, t, cid: bar(1, t)), echo=print)
                    bar.close()
                    print(f"step {i} {folder}" + (f" up to epoch {pause}" if pause else "")
                          + f": {res.ran} cells run, {res.paused} paused, {len(res.failures)} failed, "
                          f"{res.wall_s / 60:.1f} min", flush=True)
                report(args.data)
    res = report(args.data)
    print(f"wrote {RESULT.relative_to(ROOT)}" + (f", {FIGURE.relative_to(ROOT)}" if res["cells_finished"] else ""))
    for name, t in res["targets"].items():
        print(f"  {name}: {'pending' if t['met'] is None else ('met' if t['met'] else 'MISSED')} ({t['measured']})")


if __name__ == "__main__":
    main()
