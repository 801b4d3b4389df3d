"""Does on-chip LTL still calibrate on realistic synapse devices? One row per device preset.

    python benchmarks/devices.py --net digits
    python benchmarks/devices.py --net vgg11-w4 --data /work/shared/data/cifar10-jpeg.tar.xz \
        --samples 1000 --calib-samples 1000

For each net and each preset of models/synapses (or --synapse NAME, repeatable), with the
net's shipped YAML learning settings:

* accuracy noise-free (no noise, no device: the device only matters when the chip learns),
* under --noise (default mismatch=0.2) before calibration (the same deployed chip for every preset),
* after one epoch of on-chip calibration whose writes go through the device,
* the learning layers' pulses and writes per cell (mean, p99, max), saturations and failures;

and, for the drift presets (--drift-presets, default pcm and linear as the reference), the
drift-time curve: accuracy when the chip is read t seconds after programming (--noise drift=t,
1 s to 1 year), before calibration (the mismatched chip) and after (the calibrated chip), and
whether one more epoch of calibration on the chip drifted for a year restores it.

Every cell is kept in WORK/<net>/<cell>/ (calibrations resume after a kill, finished cells are
skipped), so a rerun continues. Writes benchmarks/results/devices-<net>.json and -<net>.png.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from chipsim.core.synapse import preset_names
from chipsim.io.atomic import write_json
from chipsim.workflows.calibrate import CalibOptions, run_calibration
from chipsim.workflows.runner import RunOptions, run_inference

DRIFT_TIMES = (1.0, 60.0, 3600.0, 86400.0, 30 * 86400.0, 365 * 86400.0)
YEAR = 365 * 86400.0


def cached(path: Path, compute):
    """A cell's result from path (a finished earlier run) or computed and kept there."""
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    write_json(path, value)
    return value


def calibrate(work: Path, args, synapse: str, noise: tuple[str, ...], weights=None, tag="", learn=()):
    out = work / f"cal-{synapse}{tag}"

    def go():
        opts = CalibOptions(net=args.net, data=args.data, samples=args.samples, calib_samples=args.calib_samples,
                            noise=noise, seed=args.seed, epochs=1, out=out, synapse=synapse, weights=weights,
                            checkpoint_every=args.checkpoint_every, batch_size=args.batch_size, learn=tuple(learn))
        if (out / "checkpoint.h5").is_file() and not (out / "summary.json").is_file():
            opts.resume = out
        t0 = time.time()
        s = run_calibration(opts)
        layers = s["learning_layers"]
        return {"accuracy_before": s["accuracy_before"], "accuracy_after": s["accuracy_after"],
                "pulses": sum(v["pulses"] for v in layers.values()),
                "cell_writes": sum(v["cell_writes"] for v in layers.values()),
                "weight_saturations": sum(v["weight_saturations"] for v in layers.values()),
                "device_failures": sum(v.get("device_failures", 0) for v in layers.values()),
                "writes_per_cell": {k: v for k, v in s["writes_per_cell"]["all"].items()
                                    if k in ("cells", "mean", "p99", "max", "written_fraction")},
                "learn_s": s["learn_s"], "seconds": round(time.time() - t0, 1),
                "calibrated": str(out / "calibrated.h5"), "synapse_sources": s["synapse"]["sources"]}

    return cached(work / f"cal-{synapse}{tag}.json", go)


def infer(work: Path, args, name: str, noise: tuple[str, ...], weights=None) -> float:
    def go():
        s = run_inference(RunOptions(net=args.net, data=args.data, samples=args.samples, noise=noise, seed=args.seed,
                                     weights=weights, batch_size=args.batch_size)).summary
        return {"accuracy": s["accuracy"]}

    return cached(work / f"inf-{name}.json", go)["accuracy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", default="digits")
    ap.add_argument("--data", default=None)
    ap.add_argument("--samples", type=int, default=None, help="test samples (default: the split)")
    ap.add_argument("--calib-samples", type=int, default=None, help="calibration samples (default: the train split)")
    ap.add_argument("--noise", action="append", default=None, help="default: mismatch=0.2")
    ap.add_argument("--synapse", action="append", default=None, help="presets (default: all of models/synapses)")
    ap.add_argument("--drift-presets", default="linear,pcm", help="comma-separated presets that get a drift curve")
    ap.add_argument("--remedy", action="append", default=None,
                    help="--learn overrides tried on a preset whose calibration loses accuracy (repeatable; "
                         "default: pulse=0.25, pulse=0.1, threshold_pulse=0.05)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--checkpoint-every", type=int, default=None)
    ap.add_argument("--work", type=Path, default=Path("runs/devices"))
    ap.add_argument("--no-progress", action="store_true", help="(accepted for symmetry; the script prints one line a cell)")
    args = ap.parse_args()
    noise = tuple(args.noise or ("mismatch=0.2",))
    presets = args.synapse or preset_names()
    drift_presets = [p for p in args.drift_presets.split(",") if p and p in presets]
    work = args.work / args.net
    work.mkdir(parents=True, exist_ok=True)
    clean = infer(work, args, "clean", ())
    print(f"{args.net}: noise-free {clean:.4f}", flush=True)
    rows = []
    for preset in presets:
        cal = calibrate(work, args, preset, noise)
        row = {"synapse": preset, "accuracy_noise_free": clean, **cal}
        print(f"{preset:<11} before {cal['accuracy_before']:.4f} after {cal['accuracy_after']:.4f}  pulses "
              f"{cal['pulses']}  writes/cell mean {cal['writes_per_cell']['mean']:.2f} max "
              f"{cal['writes_per_cell']['max']}  ({cal['seconds']} s)", flush=True)
        best, best_learn = cal, ()
        if cal["accuracy_after"] < cal["accuracy_before"] - 0.005:
            row["remedies"] = []
            for item in args.remedy or ("pulse=0.25", "pulse=0.1", "threshold_pulse=0.05"):
                rem = calibrate(work, args, preset, noise, tag=f"-{item.replace('=', '')}", learn=(item,))
                if rem["accuracy_after"] > best["accuracy_after"]:
                    best, best_learn = rem, (item,)
                row["remedies"].append({"learn": item, "accuracy_after": rem["accuracy_after"],
                                        "pulses": rem["pulses"], "writes_per_cell": rem["writes_per_cell"]})
                print(f"    LTL loses accuracy on {preset}: --learn {item}: after {rem['accuracy_after']:.4f}, "
                      f"pulses {rem['pulses']}", flush=True)
        if preset in drift_presets:
            # the drift curve of the chip calibrated as well as it could be (the best remedy, if one was needed)
            row["drift_learn"] = list(best_learn)
            tag = "".join(f"-{i.replace('=', '')}" for i in best_learn)
            row["drift"] = []
            for t in DRIFT_TIMES:
                before = infer(work, args, f"drift-{t:g}", noise + (f"drift={t:g}",))
                after = infer(work, args, f"drift-{preset}{tag}-{t:g}", (f"drift={t:g}",), weights=best["calibrated"])
                row["drift"].append({"t_s": t, "before_calibration": before, "after_calibration": after})
                print(f"    drift {t:>10g} s: before {before:.4f} after {after:.4f}", flush=True)
            recal = calibrate(work, args, preset, (f"drift={YEAR:g}",), weights=best["calibrated"],
                              tag=f"{tag}-recal-year", learn=best_learn)
            row["recalibrated_after_a_year"] = {"accuracy_drifted": recal["accuracy_before"],
                                                "accuracy_recalibrated": recal["accuracy_after"],
                                                "pulses": recal["pulses"]}
            print(f"    a year later {recal['accuracy_before']:.4f}, recalibrated {recal['accuracy_after']:.4f}",
                  flush=True)
        rows.append(row)
    path = Path(__file__).parent / "results" / f"devices-{args.net}.json"
    write_json(path, {"net": args.net, "data": args.data, "samples": args.samples,
                      "calib_samples": args.calib_samples, "noise": list(noise), "seed": args.seed,
                      "accuracy_noise_free": clean, "rows": rows,
                      "command": "python benchmarks/devices.py " + " ".join(sys.argv[1:])})
    plot(rows, clean, path.with_suffix(".png"), args.net)
    print(markdown(json.loads(path.read_text())))
    print("wrote", path, "and", path.with_suffix(".png"))


def markdown(result: dict) -> str:
    """The README table of one results file."""
    lines = [f"| {result['net']} synapse | before | after 1 epoch | pulses | writes/cell mean / p99 / max | notes |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        w = r["writes_per_cell"]
        notes = []
        for rem in r.get("remedies", []):
            notes.append(f"`--learn {rem['learn']}`: {rem['accuracy_after'] * 100:.1f} %")
        if "drift" in r:
            d = r["drift"][-1]
            rec = r["recalibrated_after_a_year"]
            how = f" (calibrated with `--learn {r['drift_learn'][0]}`)" if r.get("drift_learn") else ""
            notes.append(f"1 year of drift{how}: {d['before_calibration'] * 100:.1f} % uncalibrated, "
                         f"{d['after_calibration'] * 100:.1f} % calibrated, {rec['accuracy_recalibrated'] * 100:.1f} % "
                         f"recalibrated")
        lines.append(f"| {r['synapse']} | {r['accuracy_before'] * 100:.1f} % | {r['accuracy_after'] * 100:.1f} % | "
                     f"{r['pulses']:,} | {w['mean']:.2f} / {w['p99']:.0f} / {w['max']} | {'; '.join(notes)} |")
    return "\n".join(lines)


def plot(rows: list[dict], clean: float, path: Path, net: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from chipsim.io.atomic import atomic_path

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.2))
    names = [r["synapse"] for r in rows]
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["accuracy_before"] for r in rows], 0.4, label="mismatch, before")
    ax.bar([i + 0.2 for i in x], [r["accuracy_after"] for r in rows], 0.4, label="after 1 epoch on chip")
    for i, r in enumerate(rows):           # where LTL lost accuracy: the best remedy, hatched, with its --learn
        rem = max(r.get("remedies", []), key=lambda m: m["accuracy_after"], default=None)
        if rem:
            ax.bar(i + 0.2, rem["accuracy_after"], 0.4, fill=False, hatch="//", edgecolor="C2",
                   label="after, best remedy" if "remedy" not in "".join(ax.get_legend_handles_labels()[1]) else None)
            ax.annotate(rem["learn"], (i + 0.2, rem["accuracy_after"]), xytext=(0, 3), textcoords="offset points",
                        ha="center", fontsize=7, color="C2")
    ax.axhline(clean, color="k", lw=1, ls="--", label="noise-free")
    ax.set_xticks(list(x), names, rotation=30, ha="right")
    ax.set_ylabel("test accuracy")
    lo = min(min(r["accuracy_before"], r["accuracy_after"]) for r in rows)
    ax.set_ylim(max(0.0, lo - 0.05), 1.0)
    ax.set_title(f"{net}: calibration through each synapse device")
    ax.legend(fontsize=8, loc="lower right")
    first = True
    for r in rows:
        if "drift" not in r:
            continue
        t = [d["t_s"] for d in r["drift"]]
        how = f" ({r['drift_learn'][0]})" if r.get("drift_learn") else ""
        bx.semilogx(t, [d["after_calibration"] for d in r["drift"]], "o-", label=f"{r['synapse']}{how}: calibrated")
        if first:
            bx.semilogx(t, [d["before_calibration"] for d in r["drift"]], "x--", color="gray",
                        label="mismatch, not calibrated")
            first = False
        rec = r.get("recalibrated_after_a_year")
        if rec:
            bx.plot([t[-1]], [rec["accuracy_recalibrated"]], "*", ms=12, label=f"{r['synapse']}: recalibrated at 1 y")
    bx.axhline(clean, color="k", lw=1, ls="--")
    bx.set_xlabel("time since programming (s), PCM drift")
    bx.set_ylabel("test accuracy")
    bx.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


if __name__ == "__main__":
    main()
