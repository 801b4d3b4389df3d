"""The timing engine's headline figures on the bundled VGG-11 (T = 16, shipped YAML), against the analytic model.

    python benchmarks/timing.py                 # about 5 minutes on 2 busy cores
    python benchmarks/timing.py --quick         # smoke run: 16 images, 1 overhead round

What it measures (writes benchmarks/results/timing-vgg11.json and .png):
  1. VGG-11 inference (`chipsim run --timing`, the net's bundled CIFAR-10 test subset) on the
     `digital45` chip (the net's own) and on `rram256`: latency per image from the engine and from
     the analytic model (costs.py, the baseline in the same run), the bounding resource, area per block;
  2. the batch size at which the default host link stops being the bound, and the link bandwidth
     below which it becomes the bound at batch 64;
  3. one calibration image (CIFAR-10 train, the shipped learning section, teacher targets): its
     cycles on 1, 4 and 16 write ports (`parallel_write_arrays`), engine and analytic, on both chips;
  4. the cost of `--timing`: run_inference with and without it, interleaved rounds (median, spread);
  5. re-pricing 100 chip configurations of the recorded VGG-11 run (chipsim/workflows/chip_sweep.price).
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from chipsim.io.atomic import write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CIFAR = Path("/work/shared/data/cifar10-jpeg.tar.xz")
PORTS = (1, 4, 16)


def net_on(chip_name: str, tmp: Path) -> str:
    """Path of models/vgg11.yaml re-pointed at a chip preset (written under tmp)."""
    import yaml

    from chipsim.config import net_mapping_with_chip

    path = tmp / f"vgg11-{chip_name}.yaml"
    path.write_text(yaml.safe_dump(net_mapping_with_chip(ROOT / "models" / "vgg11.yaml", chip_name)))
    return str(path)


def inference(net: str, samples: int, out: Path | None, timing: bool):
    from chipsim.workflows.runner import RunOptions, run_inference

    t0 = time.perf_counter()
    res = run_inference(RunOptions(net=net, samples=samples, batch_size=64, timing=timing, out=out))
    return res, time.perf_counter() - t0


def headline(res) -> dict:
    s = res.summary
    t = s["timing"]
    return {"accuracy": s["accuracy"], "samples": s["samples"],
            "engine_latency_us": t["latency_us_per_sample"],
            "engine_cycles": t["cycles_per_sample"],
            "analytic_latency_us": t["analytic"]["latency_us_per_sample"],
            "engine_over_analytic": t["analytic"]["engine_over_analytic"],
            "bound": t["bound"], "utilisation": t["utilisation"], "stalls": t["stall_cycles_per_sample"],
            "critical_resource_per_layer": {k: v["resource"] for k, v in t["critical_resource_per_layer"].items()},
            "host_link": t["host_link"], "area_mm2": s["area"]["total_mm2"], "area_blocks_mm2": s["area"]["blocks_mm2"],
            "energy_uj_per_sample": s["cost"]["energy_uj_per_sample_total"]}


def link_threshold(run_dir: Path) -> dict:
    """Bandwidth (Gbit/s) below which the link bounds VGG-11 at batch 64 (bisection on re-pricing)."""
    from chipsim.workflows.chip_sweep import _load_run, chip_with, price

    run = _load_run(run_dir)
    lo, hi = 1e-4, 10.0
    for _ in range(40):
        mid = (lo * hi) ** 0.5
        chip = chip_with(run["net"]["chip"], {"costs.link_gbit_s": mid})
        if price(run, chip)["bound"] == "host link":
            lo = mid
        else:
            hi = mid
    return {"link_bound_below_gbit_s_at_batch_64": hi}


def calibration_image(chip_name: str, tmp: Path) -> dict:
    """One CIFAR-10 training image learned on chip: its cycles on 1, 4 and 16 write ports."""
    from chipsim.architect.costs import inference_cost
    from chipsim.architect.counters import chip_geometry
    from chipsim.architect.timing import schedule, timing_counts
    from chipsim.core.learning import setup_learning
    from chipsim.hostlink.datasets import load_dataset
    from chipsim.hostlink.encoders import Encoder
    from chipsim.hostlink.teacher import TeacherTargets
    from chipsim.workflows.calibrate import TRAIN_ID_BASE, learning_config
    from chipsim.workflows.runner import deploy, encoder_key, resolve_net_option, resolve_weights

    net = resolve_net_option(net_on(chip_name, tmp))
    bundle, source = resolve_weights(net, None, 0)
    chip, _ = deploy(net, bundle, source, (), 0)
    setup = setup_learning(chip, learning_config(net, ()), 0)
    train = load_dataset(str(CIFAR), "train", limit=1)
    teacher = TeacherTargets(net, bundle.teacher, setup, train.pixel_max, train.images)
    enc = Encoder(net.encoder.kind, net.time_steps, train.pixel_max, net.encoder.input_bits, net.encoder.max_rate,
                  encoder_key(0))
    ids = np.array([TRAIN_ID_BASE], np.int64)
    res = chip.run(enc.encode(train.images[:1], ids), sample_ids=ids, learning=setup,
                   targets=teacher.targets(train.images[:1], train.labels[:1]))
    geo = chip_geometry(chip)
    counts = timing_counts(res.counters)
    out = {"rows_written": int(counts[..., 4].sum()), "pulses": int(res.counters[..., 11].sum())}
    for ports in PORTS:
        cfg = dataclasses.replace(net.chip, costs=dataclasses.replace(net.chip.costs, parallel_write_arrays=ports))
        sched = schedule(cfg, geo, counts)
        analytic = inference_cost(cfg, geo, res.counters.sum(axis=0), 1)
        out[f"ports_{ports}"] = {"engine_cycles": int(sched.sample_cycles[0]),
                                 "engine_us": float(sched.sample_cycles[0]) / cfg.clock_mhz,
                                 "write_port_cycles": int(sched.busy["write_ports"][0]),
                                 "analytic_cycles": analytic["cycles_per_sample"]}
    return out


def overhead(net: str, samples: int, rounds: int) -> dict:
    """The cost of --timing: run_inference with and without it, interleaved (order alternating), and the
    seconds the timing code itself takes inside the timed runs (the recorder's per-batch copy and the
    engine, link and area models after the run), which is what the flag adds: the chip's kernels are the
    same code either way, so the whole-run ratio mostly shows how noisy the shared machine is."""
    import chipsim.workflows.runner as runner
    from chipsim.architect import timed_run

    spent = {"s": 0.0}

    def timed(fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent["s"] += time.perf_counter() - t0
        return wrapper

    sections, add = runner._timing_sections, timed_run.TimingRecorder.add
    runner._timing_sections, timed_run.TimingRecorder.add = timed(sections), timed(add)
    with_t, without, code = [], [], []
    try:
        for r in range(rounds):
            for timing in ((True, False) if r % 2 == 0 else (False, True)):
                spent["s"] = 0.0
                _, wall = inference(net, samples, None, timing)
                (with_t if timing else without).append(wall)
                if timing:
                    code.append(spent["s"])
    finally:
        runner._timing_sections, timed_run.TimingRecorder.add = sections, add
    ratios = [a / b for a, b in zip(with_t, without)]
    fractions = [c / b for c, b in zip(code, without)]
    return {"samples": samples, "rounds": rounds, "with_timing_s": with_t, "without_s": without,
            "timing_code_s": code, "timing_code_fraction_median": statistics.median(fractions),
            "timing_code_fraction_max": max(fractions),
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)}


def reprice_100(run_dir: Path) -> dict:
    from chipsim.workflows.chip_sweep import _load_run, chip_with, price

    run = _load_run(run_dir)
    grid = list(itertools.product((4, 16, 64, 256), (1, 4, 16, 64, 256), (0.25, 1.0, 4.0, 16.0, 64.0)))[:100]
    t0 = time.perf_counter()
    rows = [price(run, chip_with(run["net"]["chip"], {"costs.parallel_tiles": a, "costs.parallel_neurons": b,
                                                       "costs.spike_events_per_cycle": c})) for a, b, c in grid]
    wall = time.perf_counter() - t0
    return {"configs": len(rows), "samples": int(run["counts"].shape[0]), "wall_s": wall,
            "fastest_latency_us": min(r["latency_us_per_sample"] for r in rows),
            "slowest_latency_us": max(r["latency_us_per_sample"] for r in rows)}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from chipsim.io.atomic import atomic_path

    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(14, 4.2))
    chips = list(result["vgg11"])
    x = np.arange(len(chips))
    a1.bar(x - 0.2, [result["vgg11"][c]["analytic_latency_us"] for c in chips], 0.4, label="analytic (costs.py)")
    a1.bar(x + 0.2, [result["vgg11"][c]["engine_latency_us"] for c in chips], 0.4, label="timing engine")
    a1.set_xticks(x, chips)
    a1.set_ylabel("latency per image (us)")
    a1.set_title("VGG-11 T=16 inference")
    a1.legend(fontsize=8)
    for c in chips:
        blocks = result["vgg11"][c]["area_blocks_mm2"]
        left = 0.0
        for i, (k, v) in enumerate(blocks.items()):
            a2.barh(c, v, left=left, color=plt.get_cmap("tab10")(i), label=k if c == chips[0] else None)
            left += v
    a2.set_xlabel("area (mm^2)")
    a2.set_title("area per block")
    a2.legend(fontsize=7)
    for c in result["calibration"]:
        cal = result["calibration"][c]
        a3.plot(PORTS, [cal[f"ports_{p}"]["engine_us"] for p in PORTS], "o-", label=f"{c} engine")
        a3.plot(PORTS, [cal[f"ports_{p}"]["analytic_cycles"] / result["clock_mhz"][c] for p in PORTS], "x--",
                label=f"{c} analytic")
    a3.set_xscale("log", base=2)
    a3.set_yscale("log")
    a3.set_xlabel("write ports (parallel_write_arrays)")
    a3.set_ylabel("one calibration image (us)")
    a3.set_title("learning one image")
    a3.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--overhead-only", action="store_true",
                    help="Only re-measure the --timing overhead into an existing timing-vgg11.json.")
    args = ap.parse_args(argv)
    from chipsim.config import load_net

    samples = 16 if args.quick else args.samples
    rounds = 1 if args.quick else args.rounds
    if args.overhead_only:
        import json

        path = RESULTS / "timing-vgg11.json"
        result = json.loads(path.read_text())
        with tempfile.TemporaryDirectory() as tmpdir:
            result["overhead"] = overhead(net_on("digital45", Path(tmpdir)), samples, rounds)
        write_json(path, result)
        print(json.dumps(result["overhead"], indent=1))
        return 0
    result = {"machine": "2-core AMD EPYC VM (shared), no GPU", "net": "models/vgg11.yaml (T=16, bundled weights)",
              "data": "cifar10-test-subset (bundled CIFAR-10 test images); calibration: one CIFAR-10 train image",
              "samples": samples, "vgg11": {}, "calibration": {}, "clock_mhz": {}}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for chip in ("digital45", "rram256"):
            net = net_on(chip, tmp)
            res, wall = inference(net, samples, tmp / f"run-{chip}", True)
            result["vgg11"][chip] = {**headline(res), "wall_s": wall}
            result["clock_mhz"][chip] = load_net(net).chip.clock_mhz
            result["vgg11"][chip].update(link_threshold(tmp / f"run-{chip}"))
            print(f"{chip}: engine {result['vgg11'][chip]['engine_latency_us']:.1f} us, analytic "
                  f"{result['vgg11'][chip]['analytic_latency_us']:.1f} us, {result['vgg11'][chip]['bound']}, "
                  f"area {result['vgg11'][chip]['area_mm2']:.2f} mm^2", flush=True)
            if CIFAR.is_file():
                result["calibration"][chip] = calibration_image(chip, tmp)
                print(f"{chip} calibration image: " + ", ".join(
                    f"{p} ports {result['calibration'][chip][f'ports_{p}']['engine_cycles']} cycles" for p in PORTS),
                    flush=True)
        result["reprice"] = reprice_100(tmp / "run-digital45")
        print(f"re-pricing {result['reprice']['configs']} configs: {result['reprice']['wall_s']:.2f} s", flush=True)
        result["overhead"] = overhead(net_on("digital45", tmp), samples, rounds)
        o = result["overhead"]
        print(f"--timing: its code {o['timing_code_fraction_median'] * 100:.2f} % of a run (max "
              f"{o['timing_code_fraction_max'] * 100:.2f} %); whole runs x{o['ratio_median']:.3f} "
              f"({o['ratio_min']:.3f}-{o['ratio_max']:.3f}, machine noise)", flush=True)
    name = "timing-vgg11-quick" if args.quick else "timing-vgg11"
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / f"{name}.json", result)
    plot(result, RESULTS / f"{name}.png")
    print(f"wrote {RESULTS / (name + '.json')}, {RESULTS / (name + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
