"""Column ADCs and read noise on the bundled VGG-11: accuracy and speed against the exact digital read.

    python benchmarks/adc.py [--samples 1000] [--threads 1] [--work runs/adc] [--no-progress]

Every configuration is the bundled `vgg11` (its YAML, its weights) on real CIFAR-10 test images with
`chip.adc_bits` / `chip.adc_range` set as a user would in the net's chip section (or with `--noise
read=S`); the first row is the chip as shipped (no ADC: the exact event-driven read), the baseline
every other row is timed against in the same run. Rows: accuracy, the clipped fraction of
conversions per layer, conversions and img/s on `--threads` numba threads. Each finished
configuration is kept in WORK/<name>/summary.json, so a rerun continues.
Writes benchmarks/results/adc-vgg11.json and adc-vgg11.png.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "adc-vgg11.json"
FIGURE = ROOT / "benchmarks" / "results" / "adc-vgg11.png"
DATA = "../shared/data/cifar10-jpeg.tar.xz"

#: (name, chip section overrides, noise items)
CONFIGS = (
    ("exact", {}, ()),
    ("adc8-r512", {"adc_bits": 8, "adc_range": 512}, ()),                # one full scale for every layer
    ("adc8-r512-fc11", {"adc_bits": 8, "adc_range": 512, "adc_layer_ranges": {"fc11": 8192}}, ()),
    ("adc6-r512-fc11", {"adc_bits": 6, "adc_range": 512, "adc_layer_ranges": {"fc11": 8192}}, ()),
    ("adc4-r512-fc11", {"adc_bits": 4, "adc_range": 512, "adc_layer_ranges": {"fc11": 8192}}, ()),
    ("read0.02", {}, ("read=0.02",)),
)


def net_file(work: Path, name: str, chip: dict) -> Path:
    """The bundled vgg11 YAML with `chip` merged into its chip section (weights made absolute)."""
    import yaml

    from chipsim.workflows.chip_sweep import _net_mapping

    _, mapping = _net_mapping("vgg11", None)
    mapping["chip"] = {**(mapping.get("chip") or {}), **chip}
    path = work / name / "vgg11.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(mapping, sort_keys=False))
    return path


def measure(work: Path, name: str, chip: dict, noise: tuple, args) -> dict:
    done = work / name / "summary.json"
    if done.is_file():
        return json.loads(done.read_text())
    import click

    from chipsim.io.atomic import write_json
    from chipsim.workflows.runner import RunOptions, run_inference

    opts = RunOptions(net=str(net_file(work, name, chip)), data=args.data, samples=args.samples, noise=noise)
    t0 = time.perf_counter()
    if args.no_progress:
        s = run_inference(opts).summary
    else:
        with click.progressbar(length=args.samples, label=name) as bar:
            opts.progress = lambda k, total: bar.update(k)
            s = run_inference(opts).summary
    row = {"name": name, "chip": chip, "noise": list(noise), "accuracy": s["accuracy"],
           "samples_per_s": s["samples_per_s"], "wall_s": round(time.perf_counter() - t0, 2), "adc": s.get("adc"),
           "read_noise": ((s.get("noise") or {}).get("realised") or {}).get("read")}
    write_json(done, row)
    return row


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from inference import save_figure

    base = rows[0]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.2))
    names = [r["name"] for r in rows]
    x = range(len(rows))
    ax.bar(x, [r["accuracy"] * 100 for r in rows], color=["gray"] + ["tab:blue"] * (len(rows) - 1))
    ax.axhline(base["accuracy"] * 100, color="gray", ls=":", lw=0.8)
    ax.set_xticks(list(x), names, rotation=30, ha="right")
    ax.set_ylabel("CIFAR-10 test accuracy (%)")
    ax.set_title(f"bundled vgg11, {rows[0]['samples']} test images", loc="left")
    bx.bar(x, [r["samples_per_s"] for r in rows], color=["gray"] + ["tab:orange"] * (len(rows) - 1))
    bx.set_xticks(list(x), names, rotation=30, ha="right")
    bx.set_ylabel(f"img/s ({rows[0]['threads']} thread)")
    bx.set_title("speed: exact event-driven read vs the analog read", loc="left")
    save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--work", type=Path, default=Path("runs/adc"))
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    import os

    os.chdir(ROOT)
    import numba

    numba.set_num_threads(args.threads)
    rows = []
    for name, chip, noise in CONFIGS:
        row = measure(args.work / f"n{args.samples}", name, chip, noise, args)
        row.update(samples=args.samples, threads=args.threads)
        rows.append(row)
        print(f"{name:12s} {row['accuracy'] * 100:6.2f} %  {row['samples_per_s']:7.1f} img/s", flush=True)
    base = rows[0]
    for r in rows:
        r["slowdown_vs_exact"] = round(base["samples_per_s"] / r["samples_per_s"], 2)
        if r["adc"]:
            r["clipped_fraction"] = {k: round(v["clipped_fraction"], 4) for k, v in r["adc"]["layers"].items()}
    from chipsim.io.atomic import write_json

    write_json(RESULT, {"benchmark": "adc", "net": "vgg11", "data": args.data, "samples": args.samples,
                        "threads": args.threads, "date": time.strftime("%Y-%m-%d"),
                        "command": "python benchmarks/adc.py " + " ".join(sys.argv[1:]),
                        "baseline": "exact (the shipped chip: no ADC, event-driven digital read)", "rows": rows})
    plot(rows, FIGURE)
    print(f"wrote {RESULT.relative_to(ROOT)}, {FIGURE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
