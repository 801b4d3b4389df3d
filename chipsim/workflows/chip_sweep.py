"""Design-space sweeps over chip parameters: `chipsim sweep --chip-param KEY=V1,V2,...` (repeatable).

    chipsim sweep --net vgg11 --samples 64 --chip-param parallel_tiles=4,16,64 \\
        --chip-param link_gbit_s=0.5,1,4 --chip-param weight_bits=6,8 --out DIR

KEY is a key of the net's chip section (`tile_rows`, `clock_mhz`, `weight_bits`,
...) or of its `costs` (`parallel_tiles` or `costs.parallel_tiles`, write
ports `parallel_write_arrays`, `write_pulse_ns`, `link_gbit_s`,
`spike_queue_depth`, the area figures, ...). The grid is the product of all axes.

Two kinds of parameter:
* those that change what the chip computes or counts (`FUNCTIONAL`: register
  widths, `delay`, the tile geometry) and the `--noise` axes: every combination
  of them is one run (`chipsim run --timing` into DIR/runs/<id>/, resumed when
  its summary.json exists);
* every other one (clock, costs: cycles, parallelism, pulses, energies, link,
  router, area) is re-priced from that run's recorded counts (run.h5 counters
  for energy, timing_counts.npz for the timing engine), without running the
  chip again: a 100-point timing sweep of one run takes seconds.

Files: DIR/sweep.csv (one row per grid point: one column per parameter, the
noise item and seed, accuracy, engine cycles, latency, energy, area, the
bound; `rerun` says whether that point ran the chip), DIR/sweep_pareto.png
(latency against energy, area as colour, the Pareto-optimal points ringed).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from chipsim.architect.costs import CostConfig

#: chip keys that change the chip's results or its counts: a point with another value re-runs the chip
FUNCTIONAL = ("weight_bits", "membrane_bits", "counter_bits", "bias_bits", "leak_bits", "delay", "tile_rows",
              "tile_cols", "adc_bits", "adc_range")
METRICS = ("rerun", "accuracy", "engine_cycles_per_sample", "engine_cycles_p99", "latency_us_per_sample",
           "latency_us_with_link", "analytic_cycles_per_sample", "energy_uj_per_sample", "area_mm2", "bound",
           "link_bound_below_batch_size", "run")


class ChipSweepError(ValueError):
    """Bad --chip-param axes; the message names the flag and the key."""


@dataclass
class ChipSweepOptions:
    nets: tuple[str, ...]
    params: tuple[tuple[str, tuple], ...]           #: (key, values) per --chip-param, keys normalised
    out: Path
    noise_axes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    base_noise: tuple[str, ...] = ()
    seeds: int = 1
    first_seed: int = 0
    samples: int | None = None
    weights: str | None = None
    data: str | None = None
    batch_size: int = 64
    chip: str | None = None


def _chip_fields() -> tuple[set[str], dict[str, type]]:
    from chipsim.config import ChipConfig

    chip = {f.name for f in dataclasses.fields(ChipConfig) if f.name != "costs"}
    costs = {f.name: type(f.default) for f in dataclasses.fields(CostConfig)}
    return chip, costs


def normalise_key(key: str) -> str:
    """`costs.X` for a cost key (given with or without the prefix), the chip key itself otherwise."""
    chip, costs = _chip_fields()
    bare = key[len("costs."):] if key.startswith("costs.") else key
    if bare in costs:
        return f"costs.{bare}"
    if key in chip:
        return key
    raise ChipSweepError(f"--chip-param {key}: unknown chip parameter; expected one of {', '.join(sorted(chip))} "
                         f"or a cost key ({', '.join(sorted(costs))})")


def _typed(key: str, text: str):
    """A command-line value as the key's type (the config reader then checks its range)."""
    from chipsim.config import ChipConfig

    t = text.strip()
    if key.startswith("costs."):
        kind = type(getattr(CostConfig(), key[6:]))
    else:
        kind = type(getattr(ChipConfig(), key))
    if kind is bool:
        return {"true": True, "false": False}.get(t.lower(), t)
    try:
        return int(t) if kind is int else float(t)
    except ValueError:
        return t


def parse_chip_param(item: str) -> tuple[str, tuple]:
    """`KEY=V1,V2,...` -> (normalised key, typed values)."""
    key, sep, values = item.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise ChipSweepError(f"--chip-param {item!r}: expected KEY=V1,V2,... (e.g. parallel_tiles=4,16,64)")
    key = normalise_key(key.strip())
    vals = tuple(_typed(key, v) for v in values.split(",") if v.strip())
    if not vals:
        raise ChipSweepError(f"--chip-param {item!r}: expected at least one value after '='")
    return key, vals


def chip_with(base: dict, overrides: dict):
    """A validated ChipConfig: the chip section `base` (ChipConfig as a dict) with `overrides` {key: value};
    a bad value gets the config reader's error naming `--chip-param` and the key."""
    from chipsim.config import ConfigError, _parse_chip, _Reader

    data = json.loads(json.dumps(base))
    data.setdefault("costs", {})
    for key, value in overrides.items():
        if key.startswith("costs."):
            data["costs"][key[6:]] = value
        else:
            data[key] = value
    try:
        return _parse_chip(_Reader("--chip-param", data))
    except ConfigError as exc:
        raise ChipSweepError(str(exc)) from None


def check_grid(opts: ChipSweepOptions, base: dict) -> None:
    """Every value of every axis valid on the base chip (errors before anything runs)."""
    for key, values in opts.params:
        for v in values:
            chip_with(base, {key: v})


def _point_id(items: dict) -> str:
    text = "__".join(f"{k.removeprefix('costs.')}-{v}" for k, v in items.items()) or "base"
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def _net_mapping(net_spec: str, chip: str | None) -> tuple[str, dict]:
    """(label, the net's YAML mapping with absolute weights; on preset `chip` when given)."""
    from chipsim.config import net_mapping_with_chip, parse_net, read_yaml
    from chipsim.models import resolve_net

    path = Path(resolve_net(net_spec))
    if chip is not None:
        return path.stem, net_mapping_with_chip(path, chip)
    data = read_yaml(path, "a net YAML")
    parse_net(data, str(path), path.parent)
    weights = data.get("weights")
    if isinstance(weights, str) and not Path(weights).is_absolute():
        data["weights"] = str((path.parent / weights).resolve())
    chip_section = data.get("chip") or {}
    preset = chip_section.get("preset")
    if isinstance(preset, str) and not Path(preset).is_absolute() and (path.parent / preset).is_file():
        chip_section["preset"] = str((path.parent / preset).resolve())
    return path.stem, data


def _noise_cells(opts: ChipSweepOptions) -> list[tuple[str, tuple[str, ...], int]]:
    """(label, noise items, seed) of every noise setting: the base noise alone, or each axis level."""
    seeds = range(opts.first_seed, opts.first_seed + opts.seeds)
    if not opts.noise_axes:
        return [("", tuple(opts.base_noise), s) for s in seeds]
    return [(f"{kind}={level}", tuple(opts.base_noise) + (f"{kind}={level}",), s)
            for kind, levels in opts.noise_axes for level in levels for s in seeds]


def run_chip_sweep(opts: ChipSweepOptions, progress: Callable[[int, int], None] | None = None) -> tuple[Path, Path | None, list[dict]]:
    """Run the grid; returns (sweep.csv, sweep_pareto.png or None, rows)."""
    import yaml

    from chipsim.config import chip_from_dict, parse_net
    from chipsim.io.atomic import atomic_path
    from chipsim.core.weights import WeightsError
    from chipsim.workflows.runner import RunError, RunOptions, run_inference

    out = Path(opts.out)
    functional = [(k, v) for k, v in opts.params if k in FUNCTIONAL]
    priced = [(k, v) for k, v in opts.params if k not in FUNCTIONAL]
    rows = []
    nets = [_net_mapping(n, opts.chip) for n in opts.nets]
    for label, mapping in nets:
        base = dataclasses.asdict(parse_net(mapping, label).chip)
        check_grid(opts, base)
    f_combos = list(itertools.product(*[v for _, v in functional])) or [()]
    p_combos = list(itertools.product(*[v for _, v in priced])) or [()]
    noise = _noise_cells(opts)
    total = len(nets) * len(f_combos) * len(noise)
    done = 0
    for label, mapping in nets:
        for fvals in f_combos:
            fset = dict(zip([k for k, _ in functional], fvals))
            for noise_label, noise_items, seed in noise:
                rid = _point_id({"net": label, **fset, **({"noise": noise_label} if noise_label else {}),
                                 "seed": seed})
                run_dir = out / "runs" / rid
                data = json.loads(json.dumps(mapping))
                chip_sec = data.setdefault("chip", {}) or {}
                data["chip"] = chip_sec
                for key, value in fset.items():
                    chip_sec[key] = value
                fresh = not (run_dir / "summary.json").is_file()
                if fresh:
                    run_dir.mkdir(parents=True, exist_ok=True)
                    with atomic_path(run_dir / "net.yaml") as tmp:
                        tmp.write_text(yaml.safe_dump(data, sort_keys=False))
                    try:
                        run_inference(RunOptions(net=str(run_dir / "net.yaml"), weights=opts.weights,
                                                 data=opts.data, samples=opts.samples, batch_size=opts.batch_size,
                                                 seed=seed, out=run_dir, noise=noise_items, timing=True))
                    except (RunError, WeightsError) as exc:
                        what = ", ".join(f"{k}={v}" for k, v in fset.items()) or "the base chip"
                        raise ChipSweepError(f"--chip-param ({what}), net {label}: {exc}") from None
                done += 1
                if progress:
                    progress(done, total)
                run = _load_run(run_dir)
                for pvals in p_combos:
                    pset = dict(zip([k for k, _ in priced], pvals))
                    chip = chip_with(dataclasses.asdict(chip_from_dict(run["net"]["chip"])), pset)
                    row = {"net": label, "noise": noise_label, "seed": seed, **{k: v for k, v in fset.items()},
                           **pset, **price(run, chip), "rerun": bool(fresh and pvals == p_combos[0]),
                           "run": str(run_dir.relative_to(out))}
                    rows.append(row)
    columns = ["net", "noise", "seed"] + [k for k, _ in opts.params] + list(METRICS)
    csv_path = out / "sweep.csv"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    with atomic_path(csv_path) as tmp:
        tmp.write_text(buf.getvalue())
    plot = plot_pareto(rows, out / "sweep_pareto.png", [k for k, _ in opts.params])
    return csv_path, plot, rows


def _load_run(run_dir: Path) -> dict:
    """What re-pricing a finished `--timing` run needs: its net, counters, timing counts and meta."""
    import h5py

    from chipsim.architect.timed_run import COUNTS_FILE, load_counts
    from chipsim.core.kernels import layout as K

    summary = json.loads((run_dir / "summary.json").read_text())
    with h5py.File(run_dir / "run.h5", "r") as f:
        net = json.loads(f.attrs["net"])
        counters = f["counters"][()]
        names = tuple(json.loads(f.attrs["counter_names"]))
    unknown = [n for n in names if n not in K.COUNTER_NAMES]
    if unknown:          # a newer chipsim's counters: they would be priced as nothing
        raise ChipSweepError(f"{run_dir}: counters {', '.join(unknown)} are unknown to this chipsim; expected a run "
                             f"of this version or an older one")
    from chipsim.architect.counters import in_current_columns

    counters = in_current_columns(counters, names)      # an older chipsim's run: its counters by name, the rest 0
    counts, meta = load_counts(run_dir / COUNTS_FILE)
    return {"net": net, "counters": counters, "counts": counts, "meta": meta, "summary": summary}


def price(run: dict, chip) -> dict:
    """Timing, energy and area of a recorded run on chip config `chip` (same tile geometry as the run)."""
    from chipsim.architect.costs import geometry, inference_cost
    from chipsim.architect.link import counter_bytes
    from chipsim.architect.timed_run import sections

    net = run["net"]
    geo = geometry(net["layers"], chip.tile_rows, chip.tile_cols)
    meta = run["meta"]
    n = max(1, run["counts"].shape[0])
    names = tuple(g.name for g in geo)
    traffic = (meta["bytes_in_per_sample"] + meta.get("target_bytes_per_sample", 0), meta["bytes_out_per_sample"],
               counter_bytes(len(geo)))
    n_neurons = sum(g.n_out for g in geo)
    weighted = sum(g.n_out for g in geo if g.weighted)
    timing, area, _ = sections(chip, geo, names, run["counts"], int(meta["batch_size"]), traffic, n_neurons,
                               weighted)
    energy = inference_cost(chip, geo, run["counters"], n)
    return {"accuracy": run["summary"]["accuracy"],
            "engine_cycles_per_sample": timing["cycles_per_sample"]["mean"],
            "engine_cycles_p99": timing["cycles_per_sample"]["p99"],
            "latency_us_per_sample": timing["latency_us_per_sample"],
            "latency_us_with_link": timing["latency_us_per_sample_with_link"],
            "analytic_cycles_per_sample": timing["analytic"]["cycles_per_sample"],
            "energy_uj_per_sample": energy["energy_uj_per_sample_total"],
            "area_mm2": area["total_mm2"], "bound": timing["bound"],
            "link_bound_below_batch_size": timing["host_link"]["link_bound_below_batch_size"]}


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """True for the points no other point dominates (lower or equal in every column, lower in one)."""
    p = np.asarray(points, np.float64)
    keep = np.ones(len(p), bool)
    for i in range(len(p)):
        dominated = np.all(p <= p[i], axis=1) & np.any(p < p[i], axis=1)
        keep[i] = not dominated.any()
    return keep


def plot_pareto(rows: list[dict], path: Path, params: list[str]) -> Path | None:
    """Latency against energy and against area per sample; the Pareto-optimal points of all three ringed,
    numbered, and listed with their parameters."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from chipsim.io.atomic import atomic_path

    pts = np.array([[r["latency_us_with_link"], r["energy_uj_per_sample"], r["area_mm2"]] for r in rows])
    front = np.flatnonzero(pareto_mask(pts))
    front = front[np.argsort(pts[front, 0])][:15]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    for ax, col, label in ((axes[0], 1, "energy per sample (uJ)"), (axes[1], 2, "area (mm^2)")):
        other = 2 if col == 1 else 1
        sc = ax.scatter(pts[:, 0], pts[:, col], c=pts[:, other], cmap="viridis", s=30, zorder=2)
        ax.scatter(pts[front, 0], pts[front, col], s=110, facecolors="none", edgecolors="crimson", linewidths=1.4,
                   zorder=3, label="Pareto-optimal (latency, energy, area)")
        for n, i in enumerate(front, 1):
            ax.annotate(str(n), (pts[i, 0], pts[i, col]), fontsize=7, xytext=(3, 4), textcoords="offset points",
                        color="crimson")
        fig.colorbar(sc, ax=ax, label="area (mm^2)" if col == 1 else "energy per sample (uJ)")
        ax.set_xscale("log")
        ax.set_xlabel("latency per sample with the host link (us)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper right")
    legend = "\n".join(f"{n}: " + ", ".join(f"{k.removeprefix('costs.')}={rows[i][k]}" for k in params)
                       for n, i in enumerate(front, 1))
    fig.text(0.01, 0.01, legend, fontsize=6.5, va="bottom", family="monospace")
    fig.suptitle(f"design space: {len(rows)} chip configurations")
    fig.tight_layout(rect=(0, 0.03 + 0.022 * len(front), 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
