"""Event-camera input: reading speed, a 10,000-recording N-MNIST folder, and the cost of an event run
against a frame run with the same input spikes.

    python benchmarks/event_input.py [--recordings 10000] [--rounds 3]

1. Decoding speed on one core (numba and BLAS threads 1): an N-MNIST .bin, an AEDAT 2.0 and an AEDAT 3.1
   file of 4 M random events each, read from memory; best of `--rounds`.
2. Loading a synthetic N-MNIST-layout folder (Train/<digit>/*.bin, `--recordings` files of ~4,000 events,
   real N-MNIST's mean) written to a temporary folder (removed afterwards): wall time of load_events.
3. digits-dvs (bundled net and data, shipped YAML): per-sample host + chip time of the events encoder
   against a frame run with the same input spikes -- the same net with the rate encoder on the events'
   rate images (frame = spike count over T, pixel_max = T, so each input's expected spikes equal the
   events'), interleaved rounds. The cost model's energy per sample is reported for both.
Writes benchmarks/results/event_input.json and event_input.png.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
N_EVENTS = 4_000_000


def _one_core() -> None:
    import numba
    from threadpoolctl import threadpool_limits

    numba.set_num_threads(1)
    threadpool_limits(1)


def reading_speed(rounds: int) -> dict:
    from chipsim.hostlink.events.formats import read_events, write_aedat2, write_aedat31, write_nmnist

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 34, N_EVENTS), rng.integers(0, 34, N_EVENTS)
    t, p = np.sort(rng.integers(0, 1 << 23, N_EVENTS)), rng.integers(0, 2, N_EVENTS)
    out = {}
    for name, data in (("nmnist.bin", write_nmnist(x, y, t, p)), ("aedat2.aedat", write_aedat2(x, y, t, p)),
                       ("aedat31.aedat", write_aedat31(x, y, t, p))):
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            rec = read_events(name, data, name)
            best = min(best, time.perf_counter() - t0)
        assert len(rec) == N_EVENTS
        out[name.split(".")[0]] = {"events": N_EVENTS, "seconds": round(best, 4),
                                   "events_per_s": round(N_EVENTS / best)}
    return out


def folder_load(n: int) -> dict:
    from chipsim.hostlink.events.dataset import load_events
    from chipsim.hostlink.events.formats import write_nmnist

    rng = np.random.default_rng(1)
    root = Path(tempfile.mkdtemp(prefix="nmnist-layout-"))
    try:
        t0 = time.perf_counter()
        for i in range(n):
            k = int(rng.integers(3000, 5000))
            d = root / "Train" / str(i % 10)
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{i:05d}.bin").write_bytes(write_nmnist(rng.integers(0, 34, k), rng.integers(0, 34, k),
                                                          np.sort(rng.integers(0, 300_000, k)), rng.integers(0, 2, k)))
        write_s = time.perf_counter() - t0
        os.sync()
        t0 = time.perf_counter()
        ds = load_events(root, "train", sensor=(34, 34))
        load_s = time.perf_counter() - t0
        return {"recordings": len(ds), "events": ds.images.n_events, "load_s": round(load_s, 2),
                "events_per_s": round(ds.images.n_events / load_s), "write_s": round(write_s, 2),
                "note": "freshly written files (page cache warm)"}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_cost(rounds: int, batch: int = 64) -> dict:
    from chipsim.config import load_net
    from chipsim.core.chip import Chip
    from chipsim.core.weights import load_weights
    from chipsim.architect.counters import cost_estimate
    from chipsim.hostlink.encoders import Encoder, EventEncoder
    from chipsim.hostlink.events.dataset import load_events
    from chipsim.models import resolve_net

    net = load_net(resolve_net("digits-dvs"))
    data = load_events("digits-dvs", "test", sensor=net.encoder.events.sensor)
    chip = Chip(net, load_weights(net.weights))
    ev_enc = EventEncoder(net.encoder.events, net.time_steps, net.input_shape)
    frames = ev_enc.frames(data.images)
    frame_net = dataclasses.replace(net, encoder=dataclasses.replace(net.encoder, kind="rate", events=None))
    frame_chip = Chip(frame_net, load_weights(net.weights))
    rate = Encoder("rate", net.time_steps, net.time_steps, key=7)
    n = len(data)
    chip.warm_up()
    frame_chip.warm_up()
    rate.encode(frames[:1], np.arange(1))                 # compile (or load) both encoders' kernels first
    ev_enc.encode(data.images[np.arange(1)], np.arange(1))

    def go(kind: str) -> tuple[float, int, np.ndarray]:
        spikes, counters = 0, None
        t0 = time.perf_counter()
        for s in range(0, n, batch):
            ids = np.arange(s, min(n, s + batch))
            if kind == "events":
                inp = ev_enc.encode(data.images[ids], ids)
                res = chip.run(inp, sample_ids=ids)
            else:
                inp = rate.encode(frames[ids], ids)
                res = frame_chip.run(inp, sample_ids=ids)
            spikes += int(np.unpackbits(inp).sum())
            c = res.counters.sum(axis=0)
            counters = c if counters is None else counters + c
        return time.perf_counter() - t0, spikes, counters

    times = {"events": [], "frames": []}
    for _ in range(rounds):
        for kind in ("events", "frames"):
            dt, spikes, counters = go(kind)
            times[kind].append(dt)
            if kind == "events":
                ev_spikes, ev_cost = spikes, cost_estimate(chip, counters, n)
            else:
                fr_spikes, fr_cost = spikes, cost_estimate(frame_chip, counters, n)
    ratio = [e / f for e, f in zip(times["events"], times["frames"])]
    return {"samples": n, "batch": batch, "rounds": rounds,
            "input_spikes": {"events": ev_spikes, "frames": fr_spikes},
            "host_chip_s": {k: [round(v, 4) for v in vs] for k, vs in times.items()},
            "ratio_events_over_frames": {"per_round": [round(r, 3) for r in ratio], "median": round(float(np.median(ratio)), 3),
                                         "min": round(min(ratio), 3), "max": round(max(ratio), 3)},
            "energy_uj_per_sample": {"events": ev_cost["energy_uj_per_sample_total"],
                                     "frames": fr_cost["energy_uj_per_sample_total"]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--recordings", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    _one_core()
    results = {"machine": os.uname().nodename, "reading": reading_speed(args.rounds),
               "folder": folder_load(args.recordings), "run_cost": run_cost(args.rounds)}
    from chipsim.io.atomic import write_json

    RESULTS.mkdir(exist_ok=True)
    write_json(RESULTS / "event_input.json", results)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    names = list(results["reading"])
    a.bar(names, [results["reading"][k]["events_per_s"] / 1e6 for k in names])
    a.axhline(10, color="k", ls="--", lw=1, label="target 10 M/s")
    a.set_ylabel("M events/s, one core")
    a.legend()
    rc = results["run_cost"]["host_chip_s"]
    b.bar(["events", "frames (same spikes)"], [np.median(rc["events"]), np.median(rc["frames"])])
    b.set_ylabel("s for digits-dvs test (360)")
    fig.tight_layout()
    fig.savefig(RESULTS / "event_input.png", dpi=120)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
