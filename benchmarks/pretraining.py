"""Which pretraining method gives the SNN that runs fastest and calibrates best: convert, offline-ltl, tandem.

    python benchmarks/pretraining.py [--nets digits,fashion] [--eval-samples N] [--seeds 3]
    python benchmarks/pretraining.py --replot

For each net (the bundled YAML, on its real data) one teacher ANN is trained
(`chipsim pretrain --teacher-only`) and shared by the three methods, each run
with `--teacher`:

* convert: threshold balancing of the teacher (the bundled weights' recipe);
* offline-ltl: offline LTL from the converted start, at the training T;
* tandem: tandem learning (models/tandem.py) from the converted start, at the training T,
  with the same samples, learning rate and batch size as offline-ltl.
* tandem-equal-time (fashion): tandem with a whole epoch (60,000 images), about the
  training time offline-ltl takes for its 20,000;
* tandem-progressive: tandem's settings with `--tandem-progressive`.

The training T (`--train-t`, default 8) is set by a copy of the YAML with `time_steps`
changed (and `learning.warmup` shifted so the same number of last ticks learn). Then per
method, on the chip:

* noise-free accuracy and synaptic operations per image (the chip's counters:
  summary `synops.synops_per_sample`) at T = 4, 8, 16 (and 32 for digits; convert on
  fashion also at 32 and 64, to find the T at which it matches tandem's T = 8);
* training time (the SNN stage; the shared teacher's time is listed once);
* accuracy before / after one epoch of on-chip calibration with the YAML's learning
  section, under `mismatch=0.4` and under `bits=3`, seeds 0..2, each method at the T it
  would deploy at: convert at the YAML's T, offline-ltl and tandem at the training T.

Every cell (teacher, training, one T, one calibration) writes its own JSON under
benchmarks/results/pretraining/NET/ and is skipped when it exists, so an interrupted
run continues where it stopped (training itself resumes from its checkpoint). The
weights and checkpoints stay in benchmarks/results/pretraining-work/ (not committed).
The summary is benchmarks/results/pretraining.json with a figure beside it (.png).
"""
from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from inference import machine_info, save_figure  # noqa: E402

from chipsim.io.atomic import write_json  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CELLS = RESULTS / "pretraining"
WORK = RESULTS / "pretraining-work"
METHODS = ("convert", "offline-ltl", "tandem")
#: extra rows: label -> (method, overrides of the net's settings)
VARIANTS = {"tandem-equal-time": ("tandem", {"ltl_samples": None}),
            "tandem-progressive": ("tandem", {"tandem_progressive": True})}
NOISE = ("mismatch=0.4", "bits=3")

#: per net: teacher epochs and batch, SNN-stage samples per epoch and epochs, eval Ts, default test / calib samples
SETTINGS = {
    "digits": {"epochs": 40, "batch_size": 32, "ltl_samples": None, "ltl_epochs": 10, "ltl_lr": 1e-3,
               "ltl_batch_size": 32, "ts": (4, 8, 16, 32), "eval_samples": None, "calib_samples": None,
               "variants": ("tandem-progressive",)},
    "fashion": {"epochs": 10, "batch_size": 128, "ltl_samples": 20000, "ltl_epochs": 1, "ltl_lr": 2e-4,
                "ltl_batch_size": 32, "ts": (4, 8, 16), "eval_samples": 2000, "calib_samples": 2000,
                # tandem's step costs about a third of offline LTL's: the whole 60,000-image epoch takes
                # about the training time offline LTL takes for its 20,000
                "variants": ("tandem-equal-time", "tandem-progressive"),
                "convert_extra_ts": (32, 64)},      # how long conversion needs to reach tandem's T = 8
}


def variant_yaml(name: str, T: int) -> Path:
    """The bundled YAML with time_steps = T (learning.warmup keeps its number of learning ticks)."""
    from chipsim.models import MODELS_DIR

    data = yaml.safe_load((MODELS_DIR / f"{name}.yaml").read_text())
    learn = data.get("learning", {})
    if "warmup" in learn:
        learn["warmup"] = max(0, int(learn["warmup"]) - (int(data["time_steps"]) - T))
    data["time_steps"] = T
    data.pop("weights", None)
    path = WORK / name / f"{name}-T{T}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(data, sort_keys=False)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def shipped_t(name: str) -> int:
    from chipsim.config import load_net
    from chipsim.models import MODELS_DIR

    return load_net(MODELS_DIR / f"{name}.yaml").time_steps


def cell(path: Path, compute) -> dict:
    """The cell's JSON if it exists, else compute, write and return it."""
    if path.is_file():
        return json.loads(path.read_text())
    t0 = time.perf_counter()
    row = compute()
    row["cell_seconds"] = round(time.perf_counter() - t0, 1)
    write_json(path, row)
    print(f"  wrote {path.relative_to(ROOT)}", flush=True)
    return row


def train_teacher(name: str, s: dict, args) -> dict:
    from chipsim.models.pretrain import PretrainOptions, pretrain

    out = WORK / name / "teacher.h5"
    ckpt = WORK / name / "teacher.pretrain" / "checkpoint.pt"
    opts = PretrainOptions(net=name, teacher_only=True, epochs=s["epochs"], batch_size=s["batch_size"], out=out,
                           seed=0, threads=args.threads, progress=args.progress, resume=ckpt.exists())
    summary = pretrain(opts)
    state = __import__("torch").load(ckpt, weights_only=False)
    return {"teacher_accuracy": summary["teacher_accuracy"], "teacher_state_dict": summary["teacher_state_dict"],
            "epochs": s["epochs"], "batch_size": s["batch_size"], "seconds": state["seconds"]}


def train_method(name: str, label: str, s: dict, teacher: dict, args) -> dict:
    from chipsim.models.pretrain import PretrainOptions, pretrain

    method, overrides = VARIANTS.get(label, (label, {}))
    s = {**s, **overrides}
    out = WORK / name / f"{label}.h5"
    ckpt = WORK / name / f"{label}.pretrain" / "checkpoint.pt"
    opts = PretrainOptions(net=str(variant_yaml(name, args.train_t)), method=method,
                           teacher=Path(teacher["teacher_state_dict"]), out=out, ltl_epochs=s["ltl_epochs"],
                           ltl_samples=s["ltl_samples"], ltl_lr=s["ltl_lr"], ltl_batch_size=s["ltl_batch_size"],
                           eval_samples=args.eval_samples or s["eval_samples"], seed=0, threads=args.threads,
                           tandem_progressive=s.get("tandem_progressive", False),
                           progress=args.progress, resume=ckpt.exists())
    t0 = time.perf_counter()
    summary = pretrain(opts)
    return {"method": method, "label": label, "train_t": args.train_t, "weights": str(out.relative_to(ROOT)),
            "wall_seconds": round(time.perf_counter() - t0, 1), "training_seconds": summary["training_seconds"],
            "teacher_accuracy_file": summary["teacher_accuracy"], "snn_accuracy_at_train_t": summary["snn_accuracy"],
            "float_snn_accuracy": summary.get("float_snn_accuracy"),
            "settings": {k: s.get(k) for k in ("ltl_samples", "ltl_epochs", "ltl_lr", "ltl_batch_size",
                                               "tandem_progressive")}}


def evaluate(name: str, weights: str, T: int, samples: int | None) -> dict:
    from chipsim.workflows.runner import RunOptions, run_inference

    outcome = run_inference(RunOptions(net=str(variant_yaml(name, T)), weights=str(ROOT / weights),
                                       samples=samples))
    sm = outcome.summary
    return {"T": T, "accuracy": sm["accuracy"], "samples": sm["samples"], "synops": sm["synops"],
            "spikes_per_sample": sum(v["spikes"] for v in sm["layers"].values()) / max(1, sm["samples"]),
            "chip_s": sm["chip_s"]}


def calibrate(name: str, weights: str, T: int, noise: str, seed: int, samples, calib_samples) -> dict:
    from chipsim.workflows.calibrate import CalibOptions, run_calibration

    with tempfile.TemporaryDirectory() as tmp:
        sm = run_calibration(CalibOptions(net=str(variant_yaml(name, T)), weights=str(ROOT / weights),
                                          noise=(noise,), seed=seed, epochs=1, samples=samples,
                                          calib_samples=calib_samples, out=Path(tmp) / "cal"))
    return {"noise": noise, "seed": seed, "T": T, "accuracy_before": sm["accuracy_before"],
            "accuracy_after": sm["accuracy_after"], "test_samples": sm["samples"],
            "calibration_samples": sm["calibration_samples"]}


def run_net(name: str, args) -> None:
    s = SETTINGS[name]
    folder = CELLS / name
    samples = args.eval_samples or s["eval_samples"]
    calib_samples = args.calib_samples or s["calib_samples"]
    print(f"{name}: teacher", flush=True)
    teacher = cell(folder / "teacher.json", lambda: train_teacher(name, s, args))
    labels = METHODS + tuple(s.get("variants", ()))
    for method in labels:
        print(f"{name}: {method}", flush=True)
        tr = cell(folder / method / "train.json", lambda: train_method(name, method, s, teacher, args))
        for T in s["ts"] + (s.get("convert_extra_ts", ()) if method == "convert" else ()):
            cell(folder / method / f"eval-T{T}.json", lambda: evaluate(name, tr["weights"], T, samples))
    for seed in range(args.seeds):             # calibrations last: the slowest cells
        for noise in NOISE:
            for method in labels:
                tr = json.loads((folder / method / "train.json").read_text())
                print(f"{name}: {method} calibration {noise} seed {seed}", flush=True)
                T = shipped_t(name) if tr["method"] == "convert" else tr["train_t"]     # each as it would deploy
                cell(folder / method / f"calib-{noise}-s{seed}.json",
                     lambda: calibrate(name, tr["weights"], T, noise, seed, samples, calib_samples))


# --------------------------------------------------------------------------- summary


def _mean(xs):
    return sum(xs) / len(xs) if xs else None


def collect() -> dict:
    nets = {}
    for folder in sorted(p for p in CELLS.iterdir() if p.is_dir()) if CELLS.is_dir() else []:
        name = folder.name
        entry = {"teacher": json.loads((folder / "teacher.json").read_text())
                 if (folder / "teacher.json").is_file() else None, "methods": {}}
        for method in METHODS + tuple(VARIANTS):
            m = folder / method
            if not (m / "train.json").is_file():
                continue
            evals = sorted((json.loads(p.read_text()) for p in m.glob("eval-T*.json")), key=lambda r: r["T"])
            calib = [json.loads(p.read_text()) for p in sorted(m.glob("calib-*.json"))]
            cal = {}
            for noise in NOISE:
                rows = [r for r in calib if r["noise"] == noise]
                if rows:
                    cal[noise] = {"seeds": len(rows), "T": rows[0]["T"],
                                  "before": _mean([r["accuracy_before"] for r in rows]),
                                  "after": _mean([r["accuracy_after"] for r in rows]),
                                  "rows": [{k: r[k] for k in ("seed", "accuracy_before", "accuracy_after")}
                                           for r in rows]}
            entry["methods"][method] = {"train": json.loads((m / "train.json").read_text()),
                                        "eval": [{"T": r["T"], "accuracy": r["accuracy"], "samples": r["samples"],
                                                  "synops_per_sample": r["synops"]["synops_per_sample"],
                                                  "spikes_per_sample": r["spikes_per_sample"]} for r in evals],
                                        "calibration": cal}
        entry["verdicts"] = verdicts(entry)
        nets[name] = entry
    return nets


def _acc(entry, method, T):
    for r in entry["methods"].get(method, {}).get("eval", []):
        if r["T"] == T:
            return r
    return None


def verdicts(entry) -> dict:
    """The issue's two targets per tandem row, computed from the cells (absent where a cell is missing)."""
    out = {}
    conv = entry["methods"].get("convert", {}).get("eval", [])
    c16 = _acc(entry, "convert", 16)
    for label in entry["methods"]:
        t8 = _acc(entry, label, 8) if label.startswith("tandem") else None
        if not t8:
            continue
        v = out[label] = {}
        if c16:
            v["T8_vs_convert_T16"] = {"tandem_T8": t8["accuracy"], "convert_T16": c16["accuracy"],
                                      "met": t8["accuracy"] >= c16["accuracy"]}
        # the cheapest convert T that reaches tandem's T=8 accuracy; if none does, the most accurate one
        reach = [r for r in conv if r["accuracy"] >= t8["accuracy"]]
        ref = min(reach, key=lambda r: r["T"]) if reach else (max(conv, key=lambda r: r["accuracy"]) if conv else None)
        if ref:
            v["synops_at_equal_accuracy"] = {
                "tandem_T": 8, "tandem_accuracy": t8["accuracy"], "tandem_synops": t8["synops_per_sample"],
                "convert_T": ref["T"], "convert_accuracy": ref["accuracy"], "convert_synops": ref["synops_per_sample"],
                "convert_reaches_tandem_accuracy": bool(reach),
                "met": t8["synops_per_sample"] < ref["synops_per_sample"]}
    return out


def markdown_table(nets: dict) -> str:
    """The README table: accuracy (synaptic ops) per T, SNN-stage training time, calibration means."""
    ts = sorted({r["T"] for e in nets.values() for m in e["methods"].values() for r in m["eval"]})
    head = ["net", "method"] + [f"T={t}" for t in ts] + ["SNN training (s)"] + [f"{n}, before -> after" for n in NOISE]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, e in nets.items():
        for label, m in e["methods"].items():
            by_t = {r["T"]: r for r in m["eval"]}
            cells = [f"{100 * by_t[t]['accuracy']:.2f} % ({by_t[t]['synops_per_sample'] / 1e6:.2f} M)"
                     if t in by_t else "" for t in ts]
            sec = m["train"]["training_seconds"].get("snn", 0.0)
            cal = [f"{100 * c['before']:.1f} -> {100 * c['after']:.1f} (T={c['T']})" if (c := m["calibration"].get(n))
                   else "" for n in NOISE]
            lines.append("| " + " | ".join([name, label] + cells + [f"{sec:.0f}"] + cal) + " |")
    return "\n".join(lines)


def plot(nets: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"convert": "tab:blue", "offline-ltl": "tab:orange", "tandem": "tab:green",
               "tandem-equal-time": "tab:olive", "tandem-progressive": "tab:cyan"}
    fig, axes = plt.subplots(len(nets), 3, figsize=(13, 3.6 * len(nets)), squeeze=False)
    for row, (name, entry) in zip(axes, nets.items()):
        for method, m in entry["methods"].items():
            ts = [r["T"] for r in m["eval"]]
            acc = [100 * r["accuracy"] for r in m["eval"]]
            ops = [r["synops_per_sample"] for r in m["eval"]]
            row[0].plot(ts, acc, "o-", color=colours[method], label=method)
            row[1].plot(ops, acc, "o-", color=colours[method], label=method)
            for t, x, y in zip(ts, ops, acc):
                row[1].annotate(f"T{t}", (x, y), fontsize=7, textcoords="offset points", xytext=(3, 3))
        row[0].set_xscale("log", base=2)
        row[0].set(xlabel="time steps T", ylabel="noise-free chip accuracy (%)", title=f"{name}: accuracy vs T")
        row[1].set_xscale("log")
        row[1].set(xlabel="synaptic ops per image (chip counters)", ylabel="accuracy (%)",
                   title=f"{name}: accuracy vs synaptic ops")
        labels, before, after = [], [], []
        for method, m in entry["methods"].items():
            for noise, c in m["calibration"].items():
                labels.append(f"{method}\n{noise}")
                before.append(100 * c["before"])
                after.append(100 * c["after"])
        xs = range(len(labels))
        row[2].bar([x - 0.2 for x in xs], before, 0.4, label="before", color="0.7")
        row[2].bar([x + 0.2 for x in xs], after, 0.4, label="after 1 epoch", color="tab:purple")
        row[2].set_xticks(list(xs), labels, fontsize=6, rotation=35, ha="right")
        if before:
            row[2].set_ylim(max(0.0, min(before + after) - 5), 100)
        row[2].set(ylabel="accuracy (%), mean of seeds", title=f"{name}: on-chip calibration")
        for ax in row:
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
    save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", default="digits,fashion")
    ap.add_argument("--train-t", type=int, default=8, help="time steps offline-ltl and tandem train at")
    ap.add_argument("--eval-samples", type=int, default=None, help="test images (default: digits all, fashion 2000)")
    ap.add_argument("--calib-samples", type=int, default=None,
                    help="calibration images (default: digits all, fashion 2000)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    ap.add_argument("--replot", action="store_true", help="only rebuild the summary JSON and figure from the cells")
    args = ap.parse_args()
    if not args.replot:
        for name in args.nets.split(","):
            if name not in SETTINGS:
                ap.error(f"--nets: {name!r} has no settings here; expected some of {', '.join(SETTINGS)}")
            run_net(name, args)
    nets = collect()
    path = RESULTS / "pretraining.json"
    write_json(path, {"nets": nets, "machine": machine_info(), "host": socket.gethostname(),
                      "command": "python benchmarks/pretraining.py " + (" ".join(sys.argv[1:]) if not args.replot
                                                                        else f"--nets {','.join(nets)}"),
                      "cells": str(CELLS.relative_to(ROOT))})
    if nets:
        plot(nets, path.with_suffix(".png"))
    for name, entry in nets.items():
        print(f"\n{name}")
        for method, m in entry["methods"].items():
            accs = "  ".join(f"T{r['T']} {100 * r['accuracy']:.2f}% ({r['synops_per_sample'] / 1e3:.0f}k ops)"
                             for r in m["eval"])
            cal = "  ".join(f"{k}: {100 * c['before']:.2f} -> {100 * c['after']:.2f} ({c['seeds']} seeds)"
                            for k, c in m["calibration"].items())
            print(f"  {method:<12} {accs}\n  {'':<12} {cal}")
        print(" ", json.dumps(entry["verdicts"]))
    print()
    print(markdown_table(nets))
    print("wrote", path, "and", path.with_suffix(".png"))


if __name__ == "__main__":
    main()
