"""Noise sweeps on Dask: every (net, noise kind, level, seed) cell calibrated or measured, one CSV, one plot.

    chipsim sweep --net digits --noise mismatch=0,0.1,0.2,0.3,0.4 --calibrate-epochs 1 --seeds 3 --out DIR

Grid: one axis per `--noise KIND=L1,L2,...` flag; cells = nets x (kind, level) x
seeds F..F+S-1 (`--seeds S`, `--first-seed F`, default 0; kinds are swept one
at a time, not crossed). A scope axis
`--noise KIND.scope=S1,S2` (thermal.scope=current,input; silence.scope=chip,tick)
is not swept alone: it is crossed with axis KIND, so every level runs in every
scope (cell ids gain the scope: `net__thermal-0.1-input__seed0`). `--base-noise
ITEM` (repeatable) is given to every cell before its own item, e.g. a thermal
sweep on a chip with mismatch=0.2, or bits.quantizer=minmax under a bits axis.
A cell runs
`chipsim.workflows.calibrate.run_calibration` into DIR/cells/<cell-id> (or, without
`--calibrate-epochs`, `chipsim.workflows.runner.run_inference`): exactly what
`chipsim run --noise KIND=LEVEL --seed S` would do, so a cell can be re-run or
reported (`chipsim report DIR/cells/<cell-id>`) on its own.

Cells run on Dask: a LocalCluster of worker processes (one thread each, numba
limited to `threads_per_cell` threads) by default, or the cluster behind
`--scheduler ADDRESS` (its workers need chipsim installed and DIR on a shared
file system). Files:

* DIR/sweep.json   the options; a later sweep into DIR must use the same run
                   options (the grid may grow: new levels, seeds, kinds, nets);
* DIR/sweep.csv    one row per cell (columns `COLUMNS`), rewritten atomically after
                   every finished cell; failed cells have status `failed` and the error;
* DIR/cells/<id>/row.json  that cell's row, so a finished cell is reported again
                   from its two small JSON files (summary.json, row.json) alone,
                   without its run.h5 (sweep folders can be kept in git without the HDF5);
* DIR/failures.json  the failed cells of the last sweep with their tracebacks;
* DIR/sweep.png    accuracy before and after calibration against the noise level,
                   mean and standard deviation over seeds, one panel per noise kind.

Design-space axes (`--chip-param KEY=V1,V2,...`, with or without `--noise` axes) are run by
chipsim/workflows/chip_sweep.py: the chip is re-run only for parameters that change its results,
every other point is re-priced from the recorded counts.

Resume: a cell whose summary.json exists is finished and skipped (its row from
row.json, or rebuilt from summary.json and run.h5); a calibration
cell with a checkpoint.h5 (killed mid-run) resumes from it. A failing cell is
reported with its id and error and never stops the others.

CSV columns per cell: accuracy_before/after (inference-only sweeps: accuracy_before
is the accuracy, accuracy_after empty); spikes/synops/energy/latency are per
calibration sample for calibration cells and per test sample for inference
cells (column `mode` says which); the learning counters are totals over the
whole calibration (all learning layers); wall_s and cpu_s are the cell's wall
and process CPU seconds on its worker (cpu_s counts every thread: the host
link's producer thread prepares the next batch while the chip runs).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import time
import traceback
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np

COLUMNS = ("cell", "net", "kind", "level", "scope", "seed", "status", "mode", "accuracy_before", "accuracy_after",
           "samples", "calibration_samples", "epochs", "spikes_per_sample", "synops_per_sample", "synops_per_mac",
           "updates_ungated", "updates_boxcar_gated", "updates_sign_gated", "pulses", "cell_writes",
           "weight_saturations", "energy_uj_per_sample", "latency_us_per_sample", "wall_s", "cpu_s", "error")
LEARN_TOTALS = ("updates_ungated", "updates_boxcar_gated", "updates_sign_gated", "pulses", "cell_writes",
                "weight_saturations")
#: options that change what a cell computes: a sweep folder keeps them fixed
ROW_FILE = "row.json"
RUN_OPTIONS = ("calibrate_epochs", "samples", "calib_samples", "learn", "weights", "data", "batch_size", "chip",
               "base_noise", "synapse")


class SweepError(ValueError):
    """Bad sweep options (grid syntax, a folder holding a different sweep)."""


@dataclass(frozen=True)
class Cell:
    net: str          #: display name (the net file's stem)
    kind: str         #: noise kind as in --noise (mismatch, bits, thermal, silence, mismatch.weights, ...)
    level: str        #: level as written on the command line
    seed: int
    scope: str = ""   #: the kind's scope (KIND.scope=...) when a scope axis crosses it, else ""

    @property
    def id(self) -> str:
        level = f"{self.level}-{self.scope}" if self.scope else self.level
        return re.sub(r"[^A-Za-z0-9._-]", "_", f"{self.net}__{self.kind}-{level}__seed{self.seed}")

    @property
    def noise(self) -> tuple[str, ...]:
        """The cell's --noise items."""
        return (f"{self.kind}={self.level}",) + ((f"{self.kind}.scope={self.scope}",) if self.scope else ())


@dataclass
class SweepOptions:
    nets: tuple[str, ...]
    axes: tuple[tuple[str, tuple[str, ...]], ...]     #: (kind, levels) per --noise flag
    out: Path
    seeds: int = 3
    first_seed: int = 0                               #: seeds run first_seed .. first_seed + seeds - 1
    calibrate_epochs: int | None = None
    samples: int | None = None
    calib_samples: int | None = None
    learn: tuple[str, ...] = ()
    synapse: str | None = None                        #: calibration cells: synapse device preset NAME or FILE
    base_noise: tuple[str, ...] = ()                  #: --noise items every cell gets before its own
    weights: str | None = None
    data: str | None = None
    batch_size: int = 64
    chip: str | None = None
    workers: int | None = None                        #: LocalCluster processes (default: cores)
    scheduler: str | None = None                      #: address of an existing Dask scheduler
    threads_per_cell: int = 1
    checkpoint_every: int | None = None               #: calibration samples between checkpoints (default: epochs)
    pause_after_epoch: int | None = None              #: calibration cells stop (resumably) after this many epochs
    target_cache: str | None = None                   #: folder the cells share teacher targets in (TargetStore)
    no_worker_timeout_s: float = 60.0                 #: fail the waiting cells after this long without workers


@dataclass
class SweepResult:
    rows: list[dict]
    failures: list[dict]
    ran: int
    skipped: int
    wall_s: float
    csv: Path
    plot: Path | None
    cells: list[Cell] = field(default_factory=list)
    paused: int = 0                                   #: cells stopped by pause_after_epoch (rerun to continue)


def parse_axis(item: str) -> tuple[str, tuple[str, ...]]:
    """'mismatch=0,0.1,0.2' -> ('mismatch', ('0', '0.1', '0.2'))."""
    kind, sep, levels = item.partition("=")
    kind = kind.strip()
    values = tuple(v.strip() for v in levels.split(",") if v.strip())
    if not sep or not kind or not values or kind == "preset":
        raise SweepError(f"--noise {item!r}: expected KIND=LEVEL[,LEVEL...], e.g. mismatch=0,0.1,0.2 "
                         f"(one noise kind per flag)")
    if len(set(values)) != len(values):
        raise SweepError(f"--noise {item!r}: a level is repeated")
    return kind, values


def net_label(spec: str) -> str:
    name = Path(spec).name
    return name[:-5] if name.endswith(".yaml") else name


SCOPE_SUFFIX = ".scope"


def split_axes(axes) -> tuple[list[tuple[str, tuple[str, ...]]], dict[str, tuple[str, ...]]]:
    """(level axes, {kind: scopes}): a KIND.scope axis modifies axis KIND instead of being swept alone."""
    levels = [(k, v) for k, v in axes if not k.endswith(SCOPE_SUFFIX)]
    scopes = {k[:-len(SCOPE_SUFFIX)]: v for k, v in axes if k.endswith(SCOPE_SUFFIX)}
    kinds = [k for k, _ in axes]
    if len(set(kinds)) != len(kinds):
        raise SweepError(f"--noise: axis {next(k for k in kinds if kinds.count(k) > 1)!r} is given twice; "
                         f"expected one flag per noise kind (list all its levels in it)")
    for kind in scopes:
        if kind not in dict(levels):
            raise SweepError(f"--noise {kind}{SCOPE_SUFFIX}=...: a scope axis needs the axis it scopes; "
                             f"expected also --noise {kind}=L1,L2,...")
    return levels, scopes


def expand(opts: SweepOptions) -> list[Cell]:
    """Cells in grid order: net, then noise axis, then scope, then level, then seed."""
    axes, scopes = split_axes(opts.axes)
    cells = [Cell(net_label(net), kind, level, seed, scope)
             for net in opts.nets for kind, levels in axes for scope in scopes.get(kind, ("",))
             for level in levels for seed in range(opts.first_seed, opts.first_seed + opts.seeds)]
    ids = [c.id for c in cells]
    if len(set(ids)) != len(ids):
        raise SweepError("two cells would share a folder (nets with the same file name?); expected distinct nets")
    return cells


# --------------------------------------------------------------------------- one cell (runs on a worker)

def run_cell(task: dict) -> dict:
    """Run one cell in its folder; never raises: returns {'status': 'ok'|'failed', ...}."""
    t0, c0 = time.perf_counter(), time.process_time()
    cell = Cell(**task["cell"])
    cell_dir = Path(task["cell_dir"])
    try:
        import numba

        numba.set_num_threads(max(1, min(int(task["threads"]), numba.config.NUMBA_NUM_THREADS)))
        summary = _run_cell(task, cell, cell_dir)
        if summary.get("status") == "paused":       # pause_after_epoch: resumable, no summary.json yet
            return {"status": "paused", "id": cell.id, "row": _paused_row(cell, summary)}
        row = cell_row(cell, cell_dir, summary, task["net_spec"])
        row["wall_s"] = round(time.perf_counter() - t0, 2)
        row["cpu_s"] = round(time.process_time() - c0, 2)      # all threads of the worker process
        from chipsim.io.atomic import write_json

        write_json(cell_dir / ROW_FILE, row)
        return {"status": "ok", "id": cell.id, "row": row}
    except Exception as exc:                      # reported per cell; the sweep goes on
        return {"status": "failed", "id": cell.id, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(), "wall_s": round(time.perf_counter() - t0, 2)}


def _run_cell(task: dict, cell: Cell, cell_dir: Path) -> dict:
    noise = tuple(task.get("base_noise", ())) + cell.noise
    common = dict(net=task["net_spec"], weights=task["weights"], data=task["data"], samples=task["samples"],
                  batch_size=task["batch_size"], seed=cell.seed, noise=noise)
    if task["calibrate_epochs"]:
        from chipsim.workflows.calibrate import CalibOptions, run_calibration

        cache = task.get("target_cache")
        common["target_cache"] = Path(cache) if cache else None
        common["pause_after_epoch"] = task.get("pause_after_epoch")
        if (cell_dir / "checkpoint.h5").is_file():           # killed or paused: continue where it stopped
            return run_calibration(CalibOptions(**common, resume=cell_dir))
        return run_calibration(CalibOptions(**common, out=cell_dir, epochs=task["calibrate_epochs"],
                                            checkpoint_every=task.get("checkpoint_every"),
                                            calib_samples=task["calib_samples"], learn=tuple(task["learn"]),
                                            synapse=task.get("synapse")))
    from chipsim.workflows.runner import RunOptions, run_inference

    return run_inference(RunOptions(**common, out=cell_dir)).summary


def cell_row(cell: Cell, cell_dir: Path, summary: dict, net_spec: str) -> dict:
    """The CSV row of a finished cell, from its summary.json and run.h5."""
    row = {"cell": cell.id, "net": cell.net, "kind": cell.kind, "level": cell.level, "scope": cell.scope,
           "seed": cell.seed, "status": "ok", "wall_s": summary.get("wall_s")}
    if "accuracy_before" in summary:
        from chipsim.architect.report import build_report, load_run

        rep = build_report(load_run(cell_dir))
        learn = summary.get("learning_layers", {})
        row.update(mode="calibration", accuracy_before=summary["accuracy_before"],
                   accuracy_after=summary["accuracy_after"], samples=summary.get("samples"),
                   calibration_samples=summary.get("calibration_samples"), epochs=summary.get("epochs"),
                   **{k: sum(int(v.get(k, 0)) for v in learn.values()) for k in LEARN_TOTALS})
        layers, cost, synops = rep["layers"], rep["cost"], rep["synops"]
        row.update(spikes_per_sample=sum(L["spikes_per_sample"] for L in layers.values()),
                   synops_per_sample=synops["synops_per_sample"], synops_per_mac=synops["synops_per_mac"],
                   energy_uj_per_sample=cost["energy_uj_per_sample_total"],
                   latency_us_per_sample=cost["latency_us_per_sample"])
    else:
        n = max(1, summary["samples"])
        row.update(mode="inference", accuracy_before=summary["accuracy"], samples=summary["samples"],
                   spikes_per_sample=sum(L["spikes"] for L in summary["layers"].values()) / n,
                   synops_per_sample=summary["synops"]["synops_per_sample"],
                   synops_per_mac=summary["synops"]["synops_per_mac"],
                   energy_uj_per_sample=summary["cost"]["energy_uj_per_sample_total"],
                   latency_us_per_sample=summary["cost"]["latency_us_per_sample"])
    return row


# --------------------------------------------------------------------------- the sweep (runs on the client)

def _check_folder(opts: SweepOptions) -> None:
    path = opts.out / "sweep.json"
    mine = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(opts).items() if k in RUN_OPTIONS}
    if path.is_file():
        saved = json.loads(path.read_text()).get("run_options", {})
        defaults = {f.name: f.default for f in fields(SweepOptions) if f.name in RUN_OPTIONS}
        defaults = {k: (list(v) if isinstance(v, tuple) else v) for k, v in defaults.items()}
        saved = {k: saved.get(k, defaults[k]) for k in RUN_OPTIONS}       # folders from before an option existed
        diff = {k: (saved[k], mine[k]) for k in RUN_OPTIONS if saved[k] != mine[k]}
        if diff:
            text = "; ".join(f"{k}: folder has {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise SweepError(f"--out {opts.out}: holds a sweep with other run options ({text}); "
                             f"expected the same options to resume or extend it, or a new --out")
    from chipsim.io.atomic import write_json

    write_json(path, {"run_options": mine, "nets": list(opts.nets),
                      "axes": {k: list(v) for k, v in opts.axes}, "seeds": opts.seeds,
                      "first_seed": opts.first_seed})


def _net_specs(opts: SweepOptions) -> dict[str, str]:
    """Net label -> the spec the cells run (with --chip: DIR/nets/<net>.yaml on that chip)."""
    specs = {}
    for net in opts.nets:
        specs[net_label(net)] = net
        if opts.chip:
            import yaml

            from chipsim.io.atomic import atomic_path
            from chipsim.config import net_mapping_with_chip
            from chipsim.models import resolve_net

            from chipsim.config import ConfigError, load_chip

            path = opts.out / "nets" / f"{net_label(net)}.yaml"
            try:
                load_chip(opts.chip)
            except ConfigError as exc:
                raise SweepError(f"--chip {opts.chip}: {exc}") from None
            mapping = net_mapping_with_chip(resolve_net(net), opts.chip)
            with atomic_path(path) as tmp:
                tmp.write_text(yaml.safe_dump(mapping, sort_keys=False))
            specs[net_label(net)] = str(path.resolve())
    return specs


def _precheck(cell: Cell, base_noise: tuple[str, ...] = ()) -> str | None:
    """An error text for a cell whose noise items are invalid (no need to start it), else None."""
    from chipsim.noise import NoiseSpecError, parse_noise

    try:
        parse_noise(tuple(base_noise))
    except NoiseSpecError as exc:
        return f"NoiseSpecError: --base-noise: {exc}"
    try:
        parse_noise(tuple(base_noise) + cell.noise)
    except NoiseSpecError as exc:
        return f"NoiseSpecError: {exc}"
    return None


def _net_errors(opts: SweepOptions, specs: dict[str, str]) -> dict[str, str | None]:
    """Per net label, an error text when its cells cannot run (net file, learning overrides, weights), else None.

    Checked on the client before any cluster starts, so a sweep whose every cell would fail
    starts nothing; a bad net fails its own cells only, as if they had run."""
    from chipsim.config import ConfigError
    from chipsim.workflows.runner import RunError, resolve_net_option

    errors = {}
    for label, spec in specs.items():
        try:
            net = resolve_net_option(spec)
            if opts.calibrate_epochs:
                from chipsim.workflows.calibrate import learning_config

                learning_config(net, opts.learn)
                if opts.synapse is not None:
                    from chipsim.core.synapse import resolve_synapse

                    resolve_synapse(opts.synapse)
            if opts.weights not in (None, "random"):      # exists, readable, and made for this net
                from chipsim.workflows.runner import deploy, resolve_weights

                deploy(net, *resolve_weights(net, opts.weights, 0), (), 0)
            if opts.data is not None:        # --data readable, in this net's shape (one sample is decoded)
                from chipsim.workflows.runner import load_inputs

                load_inputs(net, opts.data, "test", 1)
            errors[label] = None
        except (RunError, ConfigError, ValueError, OSError) as exc:
            errors[label] = f"{type(exc).__name__}: {exc}"
    return errors


def write_csv(path: Path, rows: list[dict]) -> Path:
    from chipsim.io.atomic import atomic_path

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in COLUMNS})
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())
    return path


SCHEDULER_TIMEOUT_S = 3.0     #: an unreachable --scheduler fails after this long
POLL_S = 5.0                  #: how often a sweep waiting on its cells checks that workers exist


def _client(opts: SweepOptions, n_cells: int):
    import logging

    from distributed import Client, LocalCluster

    if opts.scheduler:
        try:
            return Client(opts.scheduler, timeout=f"{SCHEDULER_TIMEOUT_S}s"), None
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            raise SweepError(f"--scheduler {opts.scheduler}: no Dask scheduler answered within "
                             f"{SCHEDULER_TIMEOUT_S:.0f} s ({type(exc).__name__}); expected the address of a running "
                             f"scheduler, e.g. tcp://HOST:8786 (`dask scheduler` prints it)") from None
    workers = max(1, min(opts.workers or (os.cpu_count() or 1), n_cells))
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR,
                           env={"NUMBA_NUM_THREADS": str(opts.threads_per_cell), "OMP_NUM_THREADS": "1"})
    return Client(cluster), cluster


def _results(client, futures: list, opts: SweepOptions):
    """(future, result dict) as cells finish. A worker that dies fails its cell (after Dask's own
    retries on other workers); when the cluster has had no worker for `no_worker_timeout_s`, every
    cell still waiting fails with that reason instead of the sweep hanging."""
    from distributed import wait

    pending, idle_since = set(futures), None
    while pending:
        try:
            finished, pending = wait(pending, timeout=POLL_S, return_when="FIRST_COMPLETED")
        except TimeoutError:
            finished = set()
        if finished:
            idle_since = None
        else:
            try:
                workers = len(client.scheduler_info().get("workers", {}))
            except Exception:            # the scheduler itself went away
                workers = 0
            idle_since = (idle_since or time.monotonic()) if workers == 0 else None
            if idle_since is not None and time.monotonic() - idle_since >= opts.no_worker_timeout_s:
                reason = (f"NoWorkers: the Dask cluster{' at ' + opts.scheduler if opts.scheduler else ''} had no "
                          f"worker for {opts.no_worker_timeout_s:.0f} s; the cell did not run (rerun to resume)")
                client.cancel(list(pending))
                for fut in sorted(pending, key=lambda f: f.key):
                    yield fut, {"status": "failed", "error": reason, "traceback": ""}
                return
        for fut in finished:
            try:
                result = fut.result()
            except Exception as exc:        # the worker died (memory, signal) and Dask gave up: the cell failed
                result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                          "traceback": traceback.format_exc()}
            yield fut, result


def run_sweep(opts: SweepOptions, progress: Callable[[int, int, str], None] | None = None,
              echo: Callable[[str], None] = print) -> SweepResult:
    """Run every unfinished cell, write sweep.csv, failures.json and sweep.png; return what happened.

    `progress(done, total, cell_id)` is called after every cell that had to run;
    `echo` gets one line per failed cell as it fails."""
    t0 = time.perf_counter()
    cells = expand(opts)
    try:
        opts.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SweepError(f"--out {str(opts.out)[:200]}: cannot create the folder ({exc.strerror or exc}); "
                         f"expected a folder path that can be created") from None
    _check_folder(opts)
    specs = _net_specs(opts)
    net_errors = _net_errors(opts, specs)
    rows: dict[str, dict] = {}
    paused = 0                          # cells stopped by pause_after_epoch in this sweep
    failures: list[dict] = []
    todo = []
    for cell in cells:
        cell_dir = opts.out / "cells" / cell.id
        summary_path = cell_dir / "summary.json"
        if summary_path.is_file():
            try:
                rows[cell.id] = saved_row(cell, cell_dir, specs[cell.net])
                continue
            except Exception as exc:          # unreadable: run it again
                echo(f"cell {cell.id}: finished run unreadable ({type(exc).__name__}: {exc}); running it again")
                summary_path.unlink()
                (cell_dir / ROW_FILE).unlink(missing_ok=True)
        error = net_errors[cell.net] or _precheck(cell, opts.base_noise)
        if error:
            failures.append({"cell": cell.id, "error": error, "traceback": ""})
            rows[cell.id] = _failed_row(cell, error)
            _write_error(opts.out / "cells" / cell.id, {"error": error, "traceback": "(found before the cell ran)"})
            echo(f"FAILED {cell.id}: {error}")
            continue
        todo.append(cell)
    skipped = sum(1 for c in cells if c.id in rows and rows[c.id]["status"] == "ok")
    csv_path = opts.out / "sweep.csv"

    def flush():
        write_csv(csv_path, [rows[c.id] for c in cells if c.id in rows])

    flush()
    if todo:
        tasks = {cell.id: {"cell": asdict(cell), "cell_dir": str((opts.out / "cells" / cell.id).resolve()),
                           "net_spec": specs[cell.net], "weights": opts.weights, "data": opts.data,
                           "samples": opts.samples, "calib_samples": opts.calib_samples,
                           "batch_size": opts.batch_size, "calibrate_epochs": opts.calibrate_epochs,
                           "learn": list(opts.learn), "threads": opts.threads_per_cell, "synapse": opts.synapse,
                           "base_noise": list(opts.base_noise),
                           "checkpoint_every": opts.checkpoint_every, "pause_after_epoch": opts.pause_after_epoch,
                           "target_cache": str(Path(opts.target_cache).resolve()) if opts.target_cache else None}
                 for cell in todo}
        by_id = {cell.id: cell for cell in todo}

        def finish(cid: str, result: dict, done: int) -> None:
            nonlocal paused
            if result["status"] in ("ok", "paused"):
                rows[cid] = result["row"]
                paused += result["status"] == "paused"
            else:
                failures.append({"cell": cid, "error": result["error"], "traceback": result["traceback"]})
                rows[cid] = _failed_row(by_id[cid], result["error"], result.get("wall_s"))
                _write_error(opts.out / "cells" / cid, result)
                echo(f"FAILED {cid}: {result['error']}")
            flush()
            if progress:
                progress(done, len(todo), cid)

        client, cluster = _client(opts, len(todo))
        try:
            futures = [client.submit(run_cell, tasks[cid], key=f"chipsim-cell-{cid}-{os.getpid()}-{time.time_ns()}",
                                     pure=False) for cid in tasks]
            fut_ids = {f.key: cid for f, cid in zip(futures, tasks)}
            for done, (fut, result) in enumerate(_results(client, futures, opts), 1):
                finish(fut_ids[fut.key], {**result, "id": fut_ids[fut.key]}, done)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    from chipsim.io.atomic import write_json

    order = {c.id: i for i, c in enumerate(cells)}
    failures.sort(key=lambda f: order[f["cell"]])
    write_json(opts.out / "failures.json", {"failed": len(failures), "cells": failures})
    ordered = [rows[c.id] for c in cells if c.id in rows]
    plot = plot_sweep(ordered, opts.out / "sweep.png", opts.axes)
    return SweepResult(ordered, failures, len(todo), skipped, time.perf_counter() - t0, csv_path, plot, cells,
                       paused)


def saved_row(cell: Cell, cell_dir: Path, net_spec: str) -> dict:
    """A finished cell's row: its row.json, else rebuilt from summary.json and run.h5."""
    path = cell_dir / ROW_FILE
    if path.is_file():
        row = json.loads(path.read_text())
        if row.get("cell") == cell.id and row.get("status") == "ok":
            return row
    return cell_row(cell, cell_dir, json.loads((cell_dir / "summary.json").read_text()), net_spec)


def _cell_fields(cell: Cell) -> dict:
    """The columns that name a cell (a row without a finished run still has them)."""
    return {"cell": cell.id, "net": cell.net, "kind": cell.kind, "level": cell.level, "scope": cell.scope,
            "seed": cell.seed}


def _failed_row(cell: Cell, error: str, wall_s=None) -> dict:
    return {**_cell_fields(cell), "status": "failed", "error": error.replace("\n", " "), "wall_s": wall_s}


def _paused_row(cell: Cell, progress: dict) -> dict:
    """The row of a cell paused after some of its epochs: accuracy after the last epoch done so far."""
    return {**_cell_fields(cell), "status": "paused", "mode": "calibration",
            "accuracy_before": progress["accuracy_before"], "accuracy_after": progress["accuracy_per_epoch"][-1],
            "epochs": f"{progress['epochs_done']}/{progress['epochs']}"}


def _write_error(cell_dir: Path, result: dict) -> None:
    try:
        cell_dir.mkdir(parents=True, exist_ok=True)
        (cell_dir / "error.txt").write_text(result["error"] + "\n\n" + result.get("traceback", ""))
    except OSError:
        pass


# --------------------------------------------------------------------------- Figure 4

def _num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def plot_sweep(rows: list[dict], path: Path, axes) -> Path | None:
    """Accuracy before/after calibration vs noise level, mean +- std over seeds, one panel per kind."""
    ok = [r for r in rows if r.get("status") == "ok"]
    if not ok:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from chipsim.io.atomic import atomic_path

    level_axes, _ = split_axes(axes)
    kinds = [k for k, _ in level_axes if any(r["kind"] == k for r in ok)]
    fig, axs = plt.subplots(1, len(kinds), figsize=(4.6 * len(kinds) + 0.6, 3.9), squeeze=False)
    colors = plt.get_cmap("tab10")
    calibrated = any(r["mode"] == "calibration" for r in ok)
    for ax, kind in zip(axs[0], kinds):
        levels = dict(level_axes)[kind]
        x = np.arange(len(levels))
        lines = list(dict.fromkeys((r["net"], r.get("scope") or "") for r in ok if r["kind"] == kind))
        for li, (net, scope) in enumerate(lines):
            mine = [r for r in ok if r["kind"] == kind and r["net"] == net and (r.get("scope") or "") == scope]
            parts = ([net] if len({n for n, _ in lines}) > 1 else []) + ([f"scope={scope}"] if scope else [])
            tag = ", ".join(parts)
            for j, (col, label, style) in enumerate((("accuracy_before", "before", "--"),
                                                     ("accuracy_after", "after calibration", "-"))):
                stats = []
                for level in levels:
                    vals = [_num(r.get(col)) * 100 for r in mine if str(r["level"]) == level]
                    vals = [v for v in vals if math.isfinite(v)]
                    stats.append((np.mean(vals), np.std(vals)) if vals else (np.nan, np.nan))
                mean = np.array([s[0] for s in stats])
                if np.all(np.isnan(mean)):
                    continue
                std = np.array([s[1] for s in stats])
                color = colors((2 * li + j) % 10)
                name = label if calibrated else "accuracy"
                ax.errorbar(x, mean, yerr=std, fmt="o" + style, color=color, capsize=3, ms=4,
                            label=f"{tag}: {name}" if tag else name)
                ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.15)
        seeds = sorted({r["seed"] for r in ok if r["kind"] == kind})
        ax.set_xticks(x, levels)
        ax.set_xlabel(f"{kind} level")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{kind} (mean ± std over {len(seeds)} seed{'s' if len(seeds) != 1 else ''})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
