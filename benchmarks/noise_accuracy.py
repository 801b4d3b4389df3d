"""Accuracy of a net on the chip against noise level, per noise kind, over seeds (no calibration).

    python benchmarks/noise_accuracy.py [--net digits] [--seeds 3]

Writes benchmarks/results/noise-accuracy-<net>.json and a PNG (mean +- std over seeds).
Seeds change every draw of the noise (mismatch, masks, thermal) via chipsim's --seed.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from chipsim.io.atomic import atomic_path, write_json
from chipsim.workflows.runner import RunOptions, run_inference

GRID = {
    "mismatch": [0.0, 0.1, 0.2, 0.3, 0.4],
    "bits": [8, 6, 5, 4, 3],
    "thermal": [0.0, 0.05, 0.1, 0.15, 0.2],
    "silence": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--net", default="digits")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    t0 = time.time()
    results = {}
    for kind, levels in GRID.items():
        rows = []
        for level in levels:
            noise = () if level == 0 else (f"{kind}={level}",)
            accs = [run_inference(RunOptions(net=args.net, noise=noise, seed=seed)).summary["accuracy"]
                    for seed in range(args.seeds)]
            rows.append({"level": level, "accuracy": accs, "mean": float(np.mean(accs)), "std": float(np.std(accs))})
            print(kind, level, " ".join(f"{a:.4f}" for a in accs), flush=True)
        results[kind] = rows
    out = Path(__file__).parent / "results" / f"noise-accuracy-{args.net}.json"
    write_json(out, {"net": args.net, "seeds": args.seeds, "results": results,
                     "command": f"python benchmarks/noise_accuracy.py --net {args.net} --seeds {args.seeds}",
                     "seconds": round(time.time() - t0, 1)})
    plot(results, out.with_suffix(".png"), args.net)
    print("wrote", out)


def plot(results: dict, path: Path, net: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.2), sharey=True)
    for ax, (kind, rows) in zip(axes, results.items()):
        x = [r["level"] for r in rows]
        m = np.array([r["mean"] for r in rows]) * 100
        s = np.array([r["std"] for r in rows]) * 100
        ax.errorbar(x, m, yerr=s, marker="o", capsize=3)
        ax.set_xlabel(kind + (" (bits)" if kind == "bits" else " level"))
        if kind == "bits":
            ax.invert_xaxis()
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy on chip (%)")
    fig.suptitle(f"{net}: accuracy vs hardware noise (no calibration), mean +- std over seeds")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


if __name__ == "__main__":
    main()
