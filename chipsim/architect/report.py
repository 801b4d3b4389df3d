"""The architect's report of a finished run folder: per-layer counts, gated updates, cycles, energy, plots.

Works on both kinds of run folder (summary.json + run.h5):

* inference (`chipsim run`): run.h5 holds /counters (T, L, C) summed over
  samples and the net configuration (attribute `net`); costs are per test sample;
* calibration (`chipsim run --calibrate-epochs`): run.h5 holds /learn_counters
  (L, C) summed over every training sample and tick; costs are per calibration
  sample. The net is found from the run's options (calibrated.h5 or
  checkpoint.h5) or, failing that, from the net name in summary.json.

`build_report` returns a JSON-able dict; `format_table` renders it; `write_plots`
draws PNGs with matplotlib's Agg backend (no display needed).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from chipsim.config import chip_from_dict
from chipsim.architect.counters import in_current_columns
from chipsim.architect.costs import ENERGY_PARTS, LayerGeometry, calibration_cost, geometry, inference_cost, synops_ratio
from chipsim.core.kernels import layout as K

LEARN_KEYS = ("updates_ungated", "updates_boxcar_gated", "updates_sign_gated", "pulses", "cell_writes",
              "weight_saturations", "bias_writes", "threshold_writes", "write_noise_draws", "device_failures")
PLOTS = ("counts_per_layer.png", "updates_gated.png", "energy_breakdown.png", "timeline.png")


class ReportError(ValueError):
    """The folder is not a finished chipsim run; the message says what is missing."""


@dataclass
class RunData:
    run_dir: Path
    kind: str                      #: "inference" or "calibration"
    summary: dict
    net: dict                      #: NetConfig.to_dict() of the run's net
    chip: object                   #: ChipConfig
    geo: tuple[LayerGeometry, ...]
    counters: np.ndarray           #: inference (T, L, C) / calibration (1, L, C), summed over samples
    n_samples: int                 #: samples the counters are summed over


def _json_attr(value):
    if not isinstance(value, (str, bytes)):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _calibration_net(run_dir: Path, summary: dict, f: h5py.File) -> dict:
    """The net config of a calibration run: stored, else from its options, else by name."""
    from chipsim.config import ConfigError, load_net
    from chipsim.models import resolve_net

    for key in ("net_config", "net"):          # a future run.h5 may store the whole config
        value = _json_attr(f.attrs.get(key)) if key in f.attrs else None
        if isinstance(value, dict):
            return value
    specs = []
    for name in ("calibrated.h5", "checkpoint.h5"):
        path = run_dir / name
        if path.is_file():
            with h5py.File(path, "r") as g:
                options = _json_attr(g.attrs.get("options", "{}")) or {}
            if options.get("net"):
                specs.append(options["net"])
    specs.append(summary.get("net"))
    for spec in specs:
        try:
            net = load_net(resolve_net(spec))
        except (FileNotFoundError, ConfigError, TypeError):
            continue
        if net.name == summary.get("net"):
            return net.to_dict()
    raise ReportError(f"{run_dir}: cannot find the net of this calibration run (tried {specs}); "
                      f"expected its net YAML at the path it was run with")


def load_run(run_dir: str | Path, chip_preset: str | None = None) -> RunData:
    """Read a finished run folder; with `chip_preset`, re-price it on that chip (same tile geometry)."""
    run_dir = Path(run_dir)
    summary_path, h5_path = run_dir / "summary.json", run_dir / "run.h5"
    for path in (summary_path, h5_path):
        if not path.is_file():
            raise ReportError(f"{run_dir}: no {path.name}; expected the folder of a finished chipsim run")
    summary = json.loads(summary_path.read_text())
    with h5py.File(h5_path, "r") as f:
        if "learn_counters" in f:
            kind = "calibration"
            net = _calibration_net(run_dir, summary, f)
            counters = f["learn_counters"][()][None]
            n = int(summary.get("calibration_samples", 0)) * int(summary.get("epochs", 1))
        elif "counters" in f:
            kind = "inference"
            net = _json_attr(f.attrs["net"])
            counters = f["counters"][()]
            n = int(summary["samples"])
        else:
            raise ReportError(f"{h5_path}: neither /counters nor /learn_counters; expected a chipsim run.h5")
        names = _json_attr(f.attrs.get("counter_names", json.dumps(K.COUNTER_NAMES)))
    counters = in_current_columns(counters, names)     # written by another chipsim version: map by name
    chip = chip_from_dict(net["chip"])
    if chip_preset is not None:
        from chipsim.config import load_chip

        preset = load_chip(chip_preset)
        rows = preset.settings.get("tile_rows", chip.tile_rows)
        cols = preset.settings.get("tile_cols", chip.tile_cols)
        if (rows, cols) != (chip.tile_rows, chip.tile_cols):
            raise ReportError(f"--chip {chip_preset}: {rows}x{cols} tiles, but this run counted tile reads on "
                              f"{chip.tile_rows}x{chip.tile_cols} tiles; re-run it with `chipsim run --chip "
                              f"{chip_preset}` instead")
        chip = chip_from_dict({**net["chip"], **preset.settings})
    geo = geometry(net["layers"], chip.tile_rows, chip.tile_cols)
    if counters.shape[-2] != len(geo):
        raise ReportError(f"{h5_path}: counters for {counters.shape[-2]} layers, the net has {len(geo)}")
    return RunData(run_dir, kind, summary, net, chip, geo, counters, max(1, n))


def build_report(run: RunData) -> dict:
    """Everything the table, the plots and `--json` show, per sample of the run's kind."""
    n = run.n_samples
    totals = run.counters.sum(axis=0)                                  # (L, C) over all samples
    if run.kind == "calibration":
        cost = calibration_cost(run.chip, run.geo, totals, n)
    else:
        cost = inference_cost(run.chip, run.geo, run.counters, n)
    chip = run.chip
    layers, learning = {}, {}
    for li, g in enumerate(run.geo):
        t = totals[li]
        tiles = g.row_bands * g.col_tiles
        layers[g.name] = {
            "neurons": g.n_out,
            "fan_in": g.fan_in,
            "tiles": tiles,
            "tile_utilisation": g.fan_in * g.out_c / (tiles * chip.tile_rows * chip.tile_cols) if tiles else 0.0,
            "spikes_per_sample": t[K.C_SPIKES] / n,
            "synops_per_sample": (t[K.C_SYN_AC] + t[K.C_SYN_MAC]) / n,
            "membrane_updates_per_sample": t[K.C_MEM_UPDATES] / n,
            "tile_reads_per_sample": t[K.C_TILE_ACT] / n,
            "membrane_saturations": int(t[K.C_MEM_SAT]),
            "counter_saturations": int(t[K.C_CNT_SAT]),
            "energy_pj_per_sample": sum(cost["layers"][g.name]["energy_pj"].values()),
        }
        if t[K.C_UNGATED] > 0:
            entry = {key: int(t[K.COUNTER_NAMES.index(key)]) for key in LEARN_KEYS}
            entry["boxcar_fraction"] = t[K.C_BOXCAR] / t[K.C_UNGATED]
            entry["sign_fraction"] = t[K.C_SIGN] / t[K.C_UNGATED]
            entry["pulses_per_sample"] = t[K.C_PULSES] / n
            learning[g.name] = entry
    s = run.summary
    accuracy = ({"accuracy_before": s.get("accuracy_before"), "accuracy_after": s.get("accuracy_after")}
                if run.kind == "calibration" else {"accuracy": s.get("accuracy")})
    return {
        "run_dir": str(run.run_dir),
        "kind": run.kind,
        "net": s.get("net"),
        "per": "calibration sample" if run.kind == "calibration" else "inference sample",
        "samples": n,
        **accuracy,
        "chip": {"tile_rows": chip.tile_rows, "tile_cols": chip.tile_cols, "clock_mhz": chip.clock_mhz,
                 "delay": chip.delay},
        "layers": layers,
        "learning": learning,
        "cost": cost,
        "synops": synops_ratio(chip.costs, run.geo, totals, n),
        "neurobench": s.get("neurobench"),      # inference runs: from summary.json (chipsim/architect/neurobench.py)
        **_timing_and_area(run),
        # calibration runs: the synapse device and the distribution of writes per cell (chipsim/core/synapse.py)
        **({"synapse": s["synapse"].get("name"), "writes_per_cell": s["writes_per_cell"]}
           if run.kind == "calibration" and "writes_per_cell" in s else {}),
    }


def _timing_and_area(run: RunData) -> dict:
    """The chip's area (always) and, for a run with timing_counts.npz (`chipsim run --timing`), its timing
    on the report's chip (re-priced with --chip) and the traced sample's schedule."""
    from chipsim.architect.area import area_section
    from chipsim.architect.link import counter_bytes
    from chipsim.architect.timed_run import COUNTS_FILE, load_counts, sections

    s = run.summary
    link = s.get("host_link") or {}
    n_neurons = sum(g.n_out for g in run.geo)
    weighted = sum(g.n_out for g in run.geo if g.weighted)
    batch = int(s.get("batch_size", 64))
    out = {"area": area_section(run.chip, run.geo, n_neurons, weighted, batch, int(link.get("bytes_in_per_sample", 0)))}
    path = run.run_dir / COUNTS_FILE
    if not path.is_file():
        return out
    try:
        counts, meta = load_counts(path)
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    if counts.shape[2] != len(run.geo):
        raise ReportError(f"{path}: counts for {counts.shape[2]} layers, the net has {len(run.geo)}")
    traffic = (meta["bytes_in_per_sample"] + meta.get("target_bytes_per_sample", 0), meta["bytes_out_per_sample"],
               counter_bytes(len(run.geo)))
    sample = int(meta.get("timeline_sample", 0))
    timing, _, trace = sections(run.chip, run.geo, tuple(g.name for g in run.geo), counts,
                                int(meta.get("batch_size", batch)), traffic, n_neurons, weighted, sample)
    events = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    tracks = {e["tid"]: e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M" and e["tid"]}
    out["timing"] = timing
    out["timeline"] = {"sample": sample, "clock_mhz": run.chip.clock_mhz,
                       "events": [(tracks[e["tid"]], e["name"], e["args"]["start_cycle"], e["args"]["cycles"])
                                  for e in events]}
    return out


# --------------------------------------------------------------------------- text

def _fmt(x: float) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def format_table(rep: dict) -> str:
    lines = []
    acc = (f"accuracy before {rep['accuracy_before'] * 100:.2f}%  after {rep['accuracy_after'] * 100:.2f}%"
           if rep["kind"] == "calibration" else f"accuracy {rep['accuracy'] * 100:.2f}%")
    c = rep["chip"]
    lines.append(f"{rep['kind']} run {rep['run_dir']}: net {rep['net']}, {rep['samples']} samples, {acc}")
    lines.append(f"chip: {c['tile_rows']}x{c['tile_cols']} tiles, {c['clock_mhz']:g} MHz, "
                 f"{'layer pipeline (delay)' if c['delay'] else 'layers in sequence'}; counts per {rep['per']}")
    head = (f"{'layer':<10}{'neurons':>8}{'spikes':>10}{'synops':>11}{'mem upd':>10}{'tiles':>6}{'util':>6}"
            f"{'tile rd':>9}{'sat':>6}{'energy pJ':>11}")
    lines.append(head)
    for name, L in rep["layers"].items():
        sat = L["membrane_saturations"] + L["counter_saturations"]
        lines.append(f"{name:<10}{L['neurons']:>8}{L['spikes_per_sample']:>10.4g}{L['synops_per_sample']:>11.4g}"
                     f"{L['membrane_updates_per_sample']:>10.4g}{L['tiles']:>6}{L['tile_utilisation']:>6.2f}"
                     f"{L['tile_reads_per_sample']:>9.4g}{sat:>6}{L['energy_pj_per_sample']:>11.4g}")
    if rep["learning"]:
        lines.append("")
        lines.append(f"learning (totals over {rep['samples']} calibration samples)")
        lines.append(f"{'layer':<10}{'ungated':>13}{'boxcar':>13}{'sign':>13}{'pulses':>12}{'cells':>12}"
                     f"{'w sat':>8}{'bias wr':>9}{'box %':>7}{'sign %':>7}")
        for name, L in rep["learning"].items():
            lines.append(f"{name:<10}{L['updates_ungated']:>13}{L['updates_boxcar_gated']:>13}"
                         f"{L['updates_sign_gated']:>13}{L['pulses']:>12}{L['cell_writes']:>12}"
                         f"{L['weight_saturations']:>8}{L['bias_writes']:>9}{L['boxcar_fraction'] * 100:>7.2f}"
                         f"{L['sign_fraction'] * 100:>7.2f}")
    wpc = (rep.get("writes_per_cell") or {}).get("all", {})
    if wpc.get("cells"):
        lines.append(f"synapse {rep.get('synapse')}: writes per cell mean {wpc['mean']:.3g}, p99 {wpc['p99']:.4g}, "
                     f"max {wpc['max']} ({wpc['written_fraction'] * 100:.1f}% of {wpc['cells']} cells written)")
    cost, syn = rep["cost"], rep["synops"]
    lines.append("")
    lines.append(f"per {rep['per']}: {cost['cycles_per_sample']:.4g} cycles, latency {cost['latency_us_per_sample']:.4g} us,"
                 f" throughput {cost['throughput_samples_per_s']:.4g}/s, energy {cost['energy_uj_per_sample_total']:.4g} uJ"
                 f" (static {cost['energy_pj_static_per_sample'] * 1e-6:.3g} uJ)")
    w = cost["write_latency_us_per_sample"]
    if w["row_by_row"] or w["parallel_pulse_train"]:
        lines.append(f"weight writes: {w['row_by_row']:.4g} us row by row (NeuroSim, in the latency above), "
                     f"{w['parallel_pulse_train']:.4g} us as fully parallel pulse trains (RPU; latency then "
                     f"{cost['latency_us_per_sample_parallel_update']:.4g} us)")
    parts = cost["energy_pj_per_sample"]
    total = sum(parts.values()) or 1.0
    lines.append("energy: " + ", ".join(f"{k} {v / total * 100:.1f}%" for k, v in parts.items() if v > 0))
    lines.append(f"synops {syn['synops_per_sample']:.4g} per sample ({syn['synops_ac_per_sample']:.4g} AC, "
                 f"{syn['synops_mac_per_sample']:.4g} MAC) vs {syn['ann_macs_per_sample']} ANN MACs: "
                 f"SynOps/MAC {syn['synops_per_mac']:.3f}, compute energy SNN/ANN {syn['compute_energy_ratio']:.3f}")
    nb = rep.get("neurobench")
    if nb:
        lines.append(f"NeuroBench: synops dense {nb['synops_dense_per_sample']:.4g}, effective MACs "
                     f"{nb['effective_macs_per_sample']:.4g}, effective ACs {nb['effective_acs_per_sample']:.4g} per "
                     f"sample; activation sparsity {nb['activation_sparsity']:.4f}, connection sparsity "
                     f"{nb['connection_sparsity']:.4f}, footprint {nb['footprint_bytes']:.6g} B")
    area = rep.get("area")
    if area:
        lines.append(f"area {area['total_mm2']:.4g} mm^2 ({area['tiles']} tiles): " + ", ".join(
            f"{k} {v:.3g}" for k, v in area["blocks_mm2"].items()))
    tm = rep.get("timing")
    if tm:
        cps = tm["cycles_per_sample"]
        lines.append(f"timing engine: {cps['mean']:.4g} cycles per sample (p50 {cps['p50']:.4g}, p99 {cps['p99']:.4g},"
                     f" max {cps['max']:.4g}), {tm['latency_us_per_sample']:.4g} us; analytic "
                     f"{tm['analytic']['cycles_per_sample']:.4g}; bound by {tm['bound']}")
        lines.append("utilisation: " + ", ".join(f"{k} {v * 100:.1f}%" for k, v in tm["utilisation"].items()))
        lines.append("stalls per sample: " + ", ".join(f"{k} {v:.4g}" for k, v in tm["stall_cycles_per_sample"].items()))
        hl = tm["host_link"]
        below = hl["link_bound_below_batch_size"]
        lines.append(f"host link: {hl['bound']}-bound at batch {hl['batch_size']}; the link stops bounding at batch "
                     f"size {below if below is not None else 'none (bandwidth-bound)'}")
        lines.append("critical resource per layer: " + ", ".join(
            f"{k} {v['resource']}" for k, v in tm["critical_resource_per_layer"].items()))
        if "ASSUMED" in tm.get("read_rounds", ""):
            lines.append(f"note: read rounds {tm['read_rounds']}")
    for note in cost.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- plots

def _bars(ax, names, series: dict[str, list[float]], log: bool = True) -> None:
    width = 0.8 / max(1, len(series))
    x = np.arange(len(names))
    for i, (label, values) in enumerate(series.items()):
        vals = np.asarray(values, float)
        ax.bar(x + (i - (len(series) - 1) / 2) * width, np.where(vals > 0, vals, np.nan), width, label=label)
    ax.set_xticks(x, names)
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(fontsize=8)


def write_plots(rep: dict, out_dir: str | Path) -> list[Path]:
    """counts_per_layer.png, updates_gated.png (learning runs) and energy_breakdown.png in `out_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    written = []
    names = list(rep["layers"])
    title = f"{rep['net']} ({rep['kind']})"

    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(names) + 3), 4.2))
    _bars(ax, names, {
        "spikes": [L["spikes_per_sample"] for L in rep["layers"].values()],
        "synaptic events": [L["synops_per_sample"] for L in rep["layers"].values()],
        "membrane updates": [L["membrane_updates_per_sample"] for L in rep["layers"].values()],
        "tile reads": [L["tile_reads_per_sample"] for L in rep["layers"].values()],
    })
    ax.set_ylabel(f"count per {rep['per']}")
    ax.set_title(f"{title}: counts per layer")
    written.append(_save(fig, out_dir / "counts_per_layer.png", plt))

    if rep["learning"]:
        lnames = list(rep["learning"])
        n = rep["samples"]
        fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(lnames) + 3), 4.2))
        keys = (("ungated", "updates_ungated"), ("boxcar-gated", "updates_boxcar_gated"),
                ("sign-gated", "updates_sign_gated"), ("pulses", "pulses"), ("cell writes", "cell_writes"))
        _bars(ax, lnames, {label: [rep["learning"][nm][key] / n for nm in lnames] for label, key in keys})
        for i, nm in enumerate(lnames):
            L = rep["learning"][nm]
            ax.annotate(f"box {L['boxcar_fraction'] * 100:.1f}%\nsign {L['sign_fraction'] * 100:.1f}%",
                        (i, L["updates_ungated"] / n), textcoords="offset points", xytext=(0, 4),
                        ha="center", fontsize=7)
        top = max(rep["learning"][nm]["updates_ungated"] / n for nm in lnames)
        ax.set_ylim(top=top * 12)                       # room for the annotations under the title
        ax.set_ylabel(f"updates per {rep['per']}")
        ax.set_title(f"{title}: gated vs ungated weight updates")
        written.append(_save(fig, out_dir / "updates_gated.png", plt))

    wpc = (rep.get("writes_per_cell") or {}).get("all", {})
    if wpc.get("cells"):
        fig, ax = plt.subplots(figsize=(6.5, 4))
        edges, counts = wpc["hist_edges"], wpc["hist_counts"]
        ax.bar(range(len(counts)), counts, width=0.9)
        ax.set_xticks(range(len(counts)), [str(e) for e in edges[:len(counts)]], rotation=60, fontsize=7)
        ax.set_yscale("log")
        ax.set_xlabel("writes per cell (bin start)")
        ax.set_ylabel("cells")
        ax.set_title(f"{title}: writes per cell ({rep.get('synapse')}): mean {wpc['mean']:.3g}, "
                     f"p99 {wpc['p99']:.4g}, max {wpc['max']}", fontsize=9)
        written.append(_save(fig, out_dir / "writes_per_cell.png", plt))

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    layer_e = {nm: rep["cost"]["layers"][nm]["energy_pj"] for nm in names}
    parts = [p for p in ENERGY_PARTS if any(layer_e[nm][p] > 0 for nm in names)]
    left = np.zeros(len(names))
    colors = plt.get_cmap("tab10")
    for i, p in enumerate(parts):
        vals = np.array([layer_e[nm][p] for nm in names]) * 1e-3
        ax1.barh(names, vals, left=left, label=p, color=colors(i % 10))
        left += vals
    ax1.invert_yaxis()
    ax1.set_xlabel(f"energy per {rep['per']} (nJ)")
    ax1.set_title("per layer")
    ax1.legend(fontsize=8)
    totals = rep["cost"]["energy_pj_per_sample"]
    static = rep["cost"]["energy_pj_static_per_sample"]
    labels = parts + (["static"] if static > 0 else [])
    vals = np.array([totals[p] for p in parts] + ([static] if static > 0 else [])) * 1e-3
    ax2.barh(labels, vals, color=[colors(i % 10) for i in range(len(labels))])
    ax2.invert_yaxis()
    total = vals.sum() or 1.0
    for i, v in enumerate(vals):
        ax2.annotate(f"{v / total * 100:.1f}%", (v, i), textcoords="offset points", xytext=(3, -3), fontsize=8)
    ax2.set_xlabel("nJ")
    ax2.set_title(f"total {rep['cost']['energy_uj_per_sample_total']:.3g} uJ, "
                  f"{rep['cost']['latency_us_per_sample']:.3g} us")
    ax2.set_xlim(0, vals.max() * 1.25 if len(vals) else 1)
    fig.suptitle(f"{title}: energy breakdown")
    written.append(_save(fig, out_dir / "energy_breakdown.png", plt))
    if rep.get("timeline"):
        written.append(_timeline_plot(rep, out_dir / "timeline.png", plt))
    return written


def _timeline_plot(rep: dict, path: Path, plt) -> Path:
    """One sample's schedule: a row per resource track, a bar per phase, coloured by layer."""
    tl = rep["timeline"]
    tracks = list(dict.fromkeys(e[0] for e in tl["events"]))
    layers = list(rep["layers"])
    colors = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(12, 0.45 * len(tracks) + 1.8))
    us = 1.0 / tl["clock_mhz"]
    for track, name, start, dur in tl["events"]:
        layer = name.split(" ")[0]
        li = layers.index(layer) if layer in layers else 0
        ax.broken_barh([(start * us, dur * us)], (tracks.index(track) - 0.4, 0.8), color=colors(li % 20))
    ax.set_yticks(range(len(tracks)), tracks)
    ax.invert_yaxis()
    ax.set_xlabel("time (us)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors(i % 20)) for i in range(len(layers))]
    ax.legend(handles, layers, fontsize=7, ncol=min(8, len(layers)), loc="upper right")
    ax.set_title(f"{rep['net']}: schedule of sample {tl['sample']} ({rep['timing']['bound']})")
    return _save(fig, path, plt)


def _save(fig, path: Path, plt) -> Path:
    from chipsim.io.atomic import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
