"""Accuracy before/after one epoch of on-chip calibration, per noise setting and seed (digits by default).

    python benchmarks/calibration_table.py [--net digits] [--seeds 3]
    python benchmarks/calibration_table.py --net vgg11-w4 --data ../shared/data/cifar10-jpeg.tar.xz \
        --calib-samples 2000 --seeds 1 --noise mismatch=0.2 --noise preset=ltl2022 --noise preset=dynapse

Each row: a noise setting and the learning settings used (the net's YAML defaults
unless listed). Writes benchmarks/results/calibration-<net>.json and a bar plot of
accuracy before/after per noise setting next to it (.png).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from chipsim.io.atomic import write_json
from chipsim.workflows.calibrate import CalibOptions, run_calibration
from chipsim.workflows.runner import RunOptions, run_inference

ROWS = [
    (("mismatch=0.4",), ()),
    (("bits=3",), ()),
    (("silence=0.5",), ()),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--net", default="digits")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--data", default=None, help="dataset (default: the net's); train split calibrates, test measures")
    ap.add_argument("--calib-samples", type=int, default=None, help="calibration images (default: the train split)")
    ap.add_argument("--gap", type=float, default=3.0,
                    help="target: points below noise-free drawn as a line (digits 3, vgg11 2)")
    ap.add_argument("--noise", action="append", default=None,
                    help="one row per --noise (YAML learning defaults); default: the digits rows")
    args = ap.parse_args()
    rows = [((n,), ()) for n in args.noise] if args.noise else ROWS
    clean = run_inference(RunOptions(net=args.net, data=args.data)).summary["accuracy"]
    out = []
    for noise, learn in rows:
        for seed in range(args.seeds):
            t0 = time.time()
            s = run_calibration(CalibOptions(net=args.net, data=args.data, noise=noise, learn=learn, seed=seed,
                                             epochs=1, calib_samples=args.calib_samples,
                                             out=Path(tempfile.mkdtemp()) / "cal"))
            row = {"noise": list(noise), "learn": list(learn), "seed": seed, "accuracy_noise_free": clean,
                   "accuracy_before": s["accuracy_before"], "accuracy_after": s["accuracy_after"],
                   "test_samples": s["samples"], "calibration_samples": s["calibration_samples"],
                   "seconds": round(time.time() - t0, 1),
                   "fractions": {k: {"boxcar": v["boxcar_fraction"], "sign": v["sign_fraction"]}
                                 for k, v in s["learning_layers"].items()},
                   "pulses": {k: v["pulses"] for k, v in s["learning_layers"].items()}}
            out.append(row)
            print(noise, learn, seed, f"before {row['accuracy_before']:.4f} after {row['accuracy_after']:.4f}",
                  flush=True)
    for noise, learn in rows:
        done = [r for r in out if r["noise"] == list(noise)]
        b = np.mean([r["accuracy_before"] for r in done]); a = np.mean([r["accuracy_after"] for r in done])
        print(f"{noise[0]:<16} noise-free {clean:.4f}  before {b:.4f}  after {a:.4f}  (mean of {len(done)} seeds)")
    path = Path(__file__).parent / "results" / f"calibration-{args.net}.json"
    write_json(path, {"net": args.net, "data": args.data, "calib_samples": args.calib_samples, "rows": out,
                      "command": "python benchmarks/calibration_table.py " + " ".join(sys.argv[1:])})
    plot(out, clean, path.with_suffix(".png"), args.net, args.gap)
    print("wrote", path, "and", path.with_suffix(".png"))


def plot(rows: list[dict], clean: float, path: Path, net: str, gap: float = 3.0) -> None:
    """Bars: mean accuracy before/after calibration per noise kind, seeds as dots, noise-free as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from chipsim.io.atomic import atomic_path

    kinds = list(dict.fromkeys(r["noise"][0] for r in rows))
    x = np.arange(len(kinds))
    fig, ax = plt.subplots(figsize=(1.8 * len(kinds) + 2, 3.4))
    for dx, key, label in ((-0.2, "accuracy_before", "before"), (0.2, "accuracy_after", "after 1 epoch")):
        per = [[r[key] * 100 for r in rows if r["noise"][0] == k] for k in kinds]
        ax.bar(x + dx, [np.mean(p) for p in per], width=0.4, label=label)
        for xi, p in zip(x, per):
            ax.plot([xi + dx] * len(p), p, "k.", ms=4)
    ax.axhline(clean * 100, color="k", ls="--", lw=1, label=f"noise-free {clean * 100:.1f}")
    ax.axhline(clean * 100 - gap, color="gray", ls=":", lw=1, label=f"noise-free - {gap:g} (target)")
    labels = []
    for k in kinds:
        learn = next(r["learn"] for r in rows if r["noise"][0] == k)
        labels.append(k + ("\n" + "\n".join(learn) if learn else "\n(YAML defaults)"))
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("test accuracy on chip (%)")
    ax.set_ylim(40, 100)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"{net}: on-chip calibration (online LTL)\nbars: mean of seeds, dots: each seed", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


if __name__ == "__main__":
    main()
