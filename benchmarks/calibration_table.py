"""Accuracy before/after one epoch of on-chip calibration, per noise kind and seed (digits by default).

    python benchmarks/calibration_table.py [--net digits] [--seeds 3]

Each row: a noise setting and the learning settings used (the net's YAML defaults
unless listed). Writes benchmarks/results/calibration-<net>.json.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from chipsim.atomic import write_json
from chipsim.calibrate import CalibOptions, run_calibration
from chipsim.runner import RunOptions, run_inference

ROWS = [
    (("mismatch=0.4",), ()),
    (("bits=3",), ("mode=exact", "lr=0.1")),
    (("silence=0.5",), ("label_rate=0.3",)),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--net", default="digits")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    clean = run_inference(RunOptions(net=args.net)).summary["accuracy"]
    out = []
    for noise, learn in ROWS:
        for seed in range(args.seeds):
            t0 = time.time()
            s = run_calibration(CalibOptions(net=args.net, noise=noise, learn=learn, seed=seed, epochs=1,
                                             out=Path(tempfile.mkdtemp()) / "cal"))
            row = {"noise": list(noise), "learn": list(learn), "seed": seed, "accuracy_noise_free": clean,
                   "accuracy_before": s["accuracy_before"], "accuracy_after": s["accuracy_after"],
                   "seconds": round(time.time() - t0, 1),
                   "fractions": {k: {"boxcar": v["boxcar_fraction"], "sign": v["sign_fraction"]}
                                 for k, v in s["learning_layers"].items()},
                   "pulses": {k: v["pulses"] for k, v in s["learning_layers"].items()}}
            out.append(row)
            print(noise, learn, seed, f"before {row['accuracy_before']:.4f} after {row['accuracy_after']:.4f}",
                  flush=True)
    for noise, learn in ROWS:
        rows = [r for r in out if r["noise"] == list(noise)]
        b = np.mean([r["accuracy_before"] for r in rows]); a = np.mean([r["accuracy_after"] for r in rows])
        print(f"{noise[0]:<14} noise-free {clean:.4f}  before {b:.4f}  after {a:.4f}  (mean of {len(rows)} seeds)")
    write_json(Path(__file__).parent / "results" / f"calibration-{args.net}.json",
               {"net": args.net, "rows": out, "command": f"python benchmarks/calibration_table.py --net {args.net}"})


if __name__ == "__main__":
    main()
