"""What counting costs: the chip's kernels with and without their counters, timed side by side.

    python benchmarks/counters.py              # digits inference + learning, VGG-11 (random weights) inference
    python benchmarks/counters.py --quick      # fewer rounds and samples

The kernels have no counters-off switch (counting is inline, a few adds per layer and
tick, plus the tile-activation band counts per event group). To measure its price without
touching them, this script builds a counters-off copy of chipsim/core/kernels in a temporary
package by source rewriting and times both on the same inputs:

  * every `counters[...] += ...` statement, the locals that only feed counters
    (`bands`, `targets`, `mem_sat`, `cnt_sat`, `silenced`), the tile-activation
    `count_bands` calls, the per-tick replay of the first layer's counts, and the
    distinct-cell-write bitmap of shared conv cells (`written`) are removed;
  * everything else is byte for byte the same source (numba caching off for the copy).

The copy is checked before timing: identical predictions, spikes and weights, and an
all-zero counter table. Both variants get the same preallocated (B, T, L, C) counter
array, so the difference is the counting work inside the kernels; the host-side
counter handling of a run (allocating the table per batch, the two reductions in
chipsim/workflows/runner.py) is timed separately. Rounds alternate the two variants (the machine
is shared, load hits both alike); medians over rounds are reported. Results go to
benchmarks/results/counters-<host>-<date>.json.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import importlib
import platform
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "chipsim" / "kernels"
RESULTS = ROOT / "benchmarks" / "results"

_DROP = re.compile(r"^(\s*)(counters\[[^\]]*\]\s*\+=|row \+= first_counts|first_counts\[:\] = row|"
                   r"(bands|targets|mem_sat|cnt_sat|silenced|disabled\[li\])\s*\+=|"
                   r"(mem_sat|cnt_sat) = np\.int32\((mem_sat|cnt_sat) \+|written\[.*\] = 0$).*$")
_STAMP = re.compile(r"^(\s*)(if shared:)\s*$")


def strip_counting(source: str) -> tuple[str, int]:
    """The kernel source without its counting statements; returns (source, lines changed)."""
    out, changed = [], 0
    for line in source.splitlines():
        m = _DROP.match(line)
        if m:
            out.append(f"{m.group(1)}pass  # counting removed")
            changed += 1
            continue
        m = _STAMP.match(line)
        if m:
            out.append(f"{m.group(1)}if False:  # counting removed")
            changed += 1
            continue
        out.append(line.replace("cache=True", "cache=False"))
    return "\n".join(out) + "\n", changed


def build_nocount_package(tmp: Path):
    pkg = tmp / "kernels_nocount"
    pkg.mkdir()
    changed = {}
    for src in KERNELS.glob("*.py"):
        text, n = strip_counting(src.read_text())
        (pkg / src.name).write_text(text)
        changed[src.name] = n
    sys.path.insert(0, str(tmp))
    return importlib.import_module("kernels_nocount.forward"), changed


def run_variant(forward, chip, inputs, ids, learning=None, targets=None, counters=None):
    """Chip.run's kernel call with `forward` (either the real module or the counters-off copy)."""
    from chipsim.core.kernels import layout as K

    r = chip.registers
    B, N, T = inputs.shape[0], chip.n_neurons, chip.net.time_steps
    direct = chip.net.encoder.kind == "direct"
    in_direct = np.ascontiguousarray(inputs, np.int32) if direct else np.zeros((1, 1), np.int32)
    in_packed = np.zeros((1, 1, 1), np.uint8) if direct else np.ascontiguousarray(inputs, np.uint8)
    U, S, C = np.empty((B, N), np.int32), np.empty((B, N), np.uint8), np.empty((B, N), np.int32)
    if counters is None:
        counters = np.zeros((B, T, len(chip.layers), K.N_COUNTERS), np.int64)
    rec = np.zeros((1, 1, 1), np.uint8), np.zeros((1, 1, 1), np.int32)
    learn = learning is not None
    acc = np.zeros(1, chip.acc_dtype(chip.largest_weight(learning)))
    head = (chip.desc, r.weights, r.bias, r.theta, r.leak, r.enabled, chip.params(0, learning),
            chip.chip.tile_rows, acc, r.noise_rate, r.noise_key, ids, in_packed, in_direct, U, S, C, counters, *rec)
    if learn:
        tail = (targets, learning.lparams, learning.lkeys,
                np.stack([r.weight_max, r.weight_step], axis=1).astype(np.int64), float(chip.write_noise[0]),
                chip.learning_device(learning), learning.written)
    else:
        tail = (np.zeros((1, 1), np.uint16), np.zeros((1, K.N_LPARAMS)), np.zeros((1, 2), np.uint64),
                np.zeros((1, 2), np.int64), 0.0, importlib.import_module("chipsim.core.chip")._NO_DEV,
                np.zeros(1, np.uint8))
    if hasattr(forward, "run_samples"):         # one kernel for inference and learning, samples in sequence
        forward.run_samples(0, B, *head, learn, *tail)
    elif learn:                                  # older kernels
        forward.learn_batch(*head, *tail)
    else:
        forward.run_batch(*head)
    return U, S, C, counters


def workload_digits(n: int):
    from chipsim.core.chip import Chip
    from chipsim.hostlink.datasets import load_dataset
    from chipsim.hostlink.encoders import Encoder
    from chipsim.workflows.runner import resolve_net_option, resolve_weights

    net = resolve_net_option("digits")
    bundle, source = resolve_weights(net, None, 0)
    chip = Chip(net, bundle, source)
    data = load_dataset("digits", "test", limit=n)
    enc = Encoder(net.encoder.kind, net.time_steps, data.pixel_max, net.encoder.input_bits, net.encoder.max_rate, 1)
    ids = np.arange(len(data), dtype=np.int64)
    return chip, enc.encode(data.images, ids), ids


def workload_vgg(n: int):
    from chipsim.core.chip import Chip
    from chipsim.hostlink.datasets import load_dataset
    from chipsim.hostlink.encoders import Encoder
    from chipsim.workflows.runner import resolve_net_option, resolve_weights

    net = resolve_net_option("vgg11")
    bundle, source = resolve_weights(net, "random", 0)
    chip = Chip(net, bundle, source)
    data = load_dataset(net.data, "test", limit=n)
    enc = Encoder(net.encoder.kind, net.time_steps, data.pixel_max, net.encoder.input_bits, net.encoder.max_rate, 1)
    ids = np.arange(len(data), dtype=np.int64)
    return chip, enc.encode(data.images, ids), ids


def time_pair(real, nocount, make_args, rounds: int) -> dict:
    """Alternate the two variants `rounds` times; medians and per-round ratios.

    Both variants write into one counter table, allocated and touched once before
    timing and cleared outside the timer: a fresh np.zeros table per call would
    charge the counting variant alone with the first-touch page faults of memory
    the other never writes (37 MB for 2,880 digits samples), which is an
    allocation cost (timed apart, `host_side_per_digits_batch_s`), not counting work."""
    from chipsim.core.kernels import layout as K

    t_real, t_off = [], []
    table = None
    for r in range(rounds):
        order = ((real, t_real), (nocount, t_off)) if r % 2 == 0 else ((nocount, t_off), (real, t_real))
        for mod, sink in order:
            args, kwargs = make_args()
            chip, inputs = args[0], args[1]
            shape = (inputs.shape[0], chip.net.time_steps, len(chip.layers), K.N_COUNTERS)
            if table is None or table.shape != shape:
                table = np.ones(shape, np.int64)
            table[...] = 0
            t0 = time.perf_counter()
            run_variant(mod, *args, **kwargs, counters=table)
            sink.append(time.perf_counter() - t0)
    ratios = [a / b for a, b in zip(t_real, t_off)]
    return {"with_counters_s": statistics.median(t_real), "without_counters_s": statistics.median(t_off),
            "overhead": statistics.median(t_real) / statistics.median(t_off) - 1.0,
            "overhead_per_round_median": statistics.median(ratios) - 1.0,
            "rounds": rounds, "times_with": t_real, "times_without": t_off}


def check_same(real, nocount, chip, inputs, ids, **kw) -> None:
    a = run_variant(real, chip, inputs, ids, **kw)
    b = run_variant(nocount, chip, inputs, ids, **kw)
    for x, y, name in zip(a[:3], b[:3], ("U", "S", "C")):
        assert np.array_equal(x, y), f"counters-off copy changed {name}"
    assert b[3].sum() == 0 and a[3].sum() > 0, "the copy still counts"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=None)
    args = ap.parse_args()
    import numba

    from chipsim.core.kernels import forward as real
    from chipsim.core.learning import setup_learning

    numba.set_num_threads(args.threads)
    rounds = args.rounds or (3 if args.quick else 9)
    tmp = Path(tempfile.mkdtemp(prefix="chipsim-nocount-"))
    results = {"host": socket.gethostname(), "date": _dt.datetime.now().isoformat(timespec="seconds"),
               "python": platform.python_version(), "numba": numba.__version__, "threads": args.threads,
               "method": "counters-off copy of chipsim/core/kernels by source rewriting (see module docstring)",
               "kernel_sources_sha1": {p.name: hashlib.sha1(p.read_bytes()).hexdigest()[:12]
                                       for p in sorted(KERNELS.glob("*.py"))},
               "workloads": {}}
    try:
        nocount, changed = build_nocount_package(tmp)
        results["lines_changed"] = changed
        # ---- digits inference (direct encoder: multi-bit first layer, fc)
        n_dig = 64 if args.quick else 360
        chip, inputs, ids = workload_digits(n_dig)
        check_same(real, nocount, chip, inputs, ids)
        reps = 2 if args.quick else 8            # the test split 8 times over: ~0.3 s per timed run
        inputs8, ids8 = np.concatenate([inputs] * reps), np.arange(reps * len(ids), dtype=np.int64)
        results["workloads"]["digits_inference"] = {
            "samples": len(ids8), **time_pair(real, nocount, lambda: ((chip, inputs8, ids8), {}), rounds)}
        # ---- digits online learning (learn_batch, sign mode, every layer learns from tick 28 of 32)
        setup = setup_learning(chip, chip.net.learning, seed=0)
        rng = np.random.default_rng(0)
        targets = rng.integers(0, 256, (len(ids), setup.n_targets)).astype(np.uint16)
        saved = chip.registers.copy()

        def learn_args():
            chip.registers = saved.copy()
            setup.written[:] = 0
            return (chip, inputs, ids), {"learning": setup, "targets": targets}

        a = run_variant(real, *learn_args()[0], **learn_args()[1])
        w_real = chip.registers.weights.copy()
        b = run_variant(nocount, *learn_args()[0], **learn_args()[1])
        assert np.array_equal(w_real, chip.registers.weights) and np.array_equal(a[1], b[1])
        assert b[3].sum() == 0
        results["workloads"]["digits_learning"] = {"samples": n_dig, **time_pair(real, nocount, learn_args, rounds)}
        # ---- VGG-11 (conv, binary spikes after conv1), random weights, CIFAR-10 subset
        n_vgg = 2 if args.quick else 8
        chip, inputs, ids = workload_vgg(n_vgg)
        check_same(real, nocount, chip, inputs, ids)
        results["workloads"]["vgg11_inference"] = {
            "samples": n_vgg, **time_pair(real, nocount, lambda: ((chip, inputs, ids), {}), rounds)}
        # ---- host side: the counter table per batch (allocation + the runner's two reductions)
        from chipsim.core.kernels import layout as K

        B, T, L = 64, 32, 3
        t0 = time.perf_counter()
        reps = 200
        for _ in range(reps):
            c = np.zeros((B, T, L, K.N_COUNTERS), np.int64)
            c.sum(axis=0)
            c.sum(axis=1)
        results["host_side_per_digits_batch_s"] = (time.perf_counter() - t0) / reps
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"counters-{results['host']}-{results['date'][:10]}{'-quick' if args.quick else ''}.json"
    from chipsim.io.atomic import write_json

    write_json(out, results)
    print(f"{'workload':<18}{'with (s)':>10}{'without (s)':>13}{'overhead':>10}{'per-round':>11}")
    for name, w in results["workloads"].items():
        print(f"{name:<18}{w['with_counters_s']:>10.4f}{w['without_counters_s']:>13.4f}"
              f"{w['overhead'] * 100:>9.1f}%{w['overhead_per_round_median'] * 100:>10.1f}%")
    print(f"host side per digits batch (64 x 32 x 3 table): {results['host_side_per_digits_batch_s'] * 1e6:.0f} us")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
