"""On-chip calibration speed of the bundled nets, with their own YAML learning sections, on real data.

    python benchmarks/learning.py [--nets vgg11,vgg11-w4,fashion,digits] [--images N] [--no-synthetic]
    python benchmarks/learning.py --replot benchmarks/results/learning-<host>-<date>.json

Headline rows (one per bundled net): the net deployed with its bundled weights under
mismatch=0.2 (seed 0), learning with the `learning:` section its YAML ships, on the
training split of its real data (CIFAR-10 JPEG archive for vgg11 and vgg11-w4,
Fashion-MNIST, digits), in batches of 64 as `chipsim run --calibrate-epochs` runs them.
Measured in one run, each on a freshly deployed chip:

* chip learning, 1 and 2 threads (targets computed beforehand): images/s, and whether the
  calibrated chips are identical (they must be: the 2-thread run is the layer pipeline);
* end to end, 1 and 2 threads: the host streams encoded images and teacher targets in a
  producer thread while the chip learns (the CLI's path), so the host's teacher shares the cores;
* inference on the same chip, 1 and 2 threads: the learning overhead is learning time over
  inference time at 1 thread;
* per image: pulses fired, sign-gated neurons and sign-gated pairs (gated neurons x fan-in,
  the updates the rule asks for), boxcar-gated pairs;
* a split of the 1-thread learning time per image into crossbar read, neuron update,
  gating (learning with zero pulses, no bias or threshold writes, minus inference), synapse and
  register writes (full learning minus gating) and host (teacher targets and encoding, from the
  producer). The read/neuron split times the neuron kernel alone on each layer (layer_fire)
  and takes the rest of inference as read. The parts come from separate runs whose weights
  evolve slightly differently, so they add up to the total only approximately.

Secondary row (--no-synthetic skips it): the old synthetic case, a random-weight VGG-11 tuned
to 10 % activity learning with whole pulses (pulse 1) against the noise-free chip's rates.

Writes benchmarks/results/learning-<host>-<date>.json and a figure beside it (.png).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import socket
import sys
import time
from pathlib import Path

import numba
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from inference import build_chip, machine_info, save_figure, tune_activity  # noqa: E402

from chipsim.io.atomic import write_json  # noqa: E402
from chipsim.workflows.calibrate import TRAIN_ID_BASE, learning_config  # noqa: E402
from chipsim.hostlink.datasets import load_dataset  # noqa: E402
from chipsim.hostlink.encoders import Encoder  # noqa: E402
from chipsim.hostlink.stream import BatchStream  # noqa: E402
from chipsim.hostlink.teacher import TeacherTargets  # noqa: E402
from chipsim.core.kernels import layout as K  # noqa: E402
from chipsim.core.kernels.forward import disabled_counts, layer_fire  # noqa: E402
from chipsim.core.learning import setup_learning  # noqa: E402
from chipsim.workflows.runner import deploy, encoder_key, resolve_net_option, resolve_weights  # noqa: E402

CIFAR = str(ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.xz")
NETS = {"vgg11": CIFAR, "vgg11-w4": CIFAR, "fashion": None, "digits": None}
IMAGES = {"vgg11": 192, "vgg11-w4": 256, "fashion": 1024, "digits": 1024}
BATCH = 64
NOISE = ("mismatch=0.2",)


class Workload:
    """A bundled net, its training images, encoded inputs and teacher targets (computed once)."""

    def __init__(self, name: str, data: str | None, n: int):
        self.net = resolve_net_option(name)
        self.bundle, self.source = resolve_weights(self.net, None, 0)
        self.data = data or self.net.data
        t0 = time.perf_counter()
        train = load_dataset(self.data, "train", limit=n)
        self.load_s = time.perf_counter() - t0
        self.images, self.labels = train.images, train.labels
        self.pixel_max = train.pixel_max
        self.config = learning_config(self.net, ())
        chip = self.fresh_chip()
        self.encoder = Encoder(self.net.encoder.kind, self.net.time_steps, train.pixel_max,
                               self.net.encoder.input_bits, self.net.encoder.max_rate, encoder_key(0))
        self.teacher = TeacherTargets(self.net, self.bundle.teacher, self.setup(chip), train.pixel_max, train.images)
        self.ids = TRAIN_ID_BASE + np.arange(len(self.images))
        t0 = time.perf_counter()
        self.x = self.encoder.encode(self.images, self.ids)
        self.targets = self.teacher.targets(self.images, self.labels)
        self.host_s_per_img = (time.perf_counter() - t0) / len(self.images)

    def fresh_chip(self):
        return deploy(self.net, self.bundle, self.source, NOISE, 0)[0]

    def setup(self, chip):
        return setup_learning(chip, self.config, 0)


def with_threads(n: int, fn):
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        return fn()
    finally:
        numba.set_num_threads(old)


def learn(w: Workload, threads: int, edit=None, stream: bool = False) -> dict:
    """Calibrate a fresh chip on all of w's images in batches of 64; `edit(setup)` changes the learning
    parameters (the split's variants); `stream`: targets and inputs from the host producer thread."""
    chip = w.fresh_chip()
    setup = w.setup(chip)
    if edit:
        edit(setup)
    # compile / load the kernels and let the pipeline measure its layers on a throw-away chip
    warm = w.fresh_chip()
    with_threads(threads, lambda: warm.run(w.x[:2], sample_ids=w.ids[:2], learning=w.setup(warm),
                                           targets=w.targets[:2]))
    n = len(w.images)
    batches = [(i, min(n, i + BATCH)) for i in range(0, n, BATCH)]
    counters = np.zeros((len(chip.layers), K.N_COUNTERS), np.int64)

    def make(j):
        a, b = batches[j]
        return w.encoder.encode(w.images[a:b], w.ids[a:b]), w.teacher.targets(w.images[a:b], w.labels[a:b])

    def body():
        nonlocal counters
        t0 = time.perf_counter()
        src = BatchStream(make, len(batches)) if stream else \
            ((w.x[a:b], w.targets[a:b]) for a, b in batches)
        for j, (x, tg) in enumerate(src):
            a, b = batches[j]
            res = chip.run(x, sample_ids=w.ids[a:b], learning=setup, targets=tg)
            counters += res.counters.sum(axis=(0, 1))
        return time.perf_counter() - t0, (src.stats.to_dict() if stream else None)

    seconds, stats = with_threads(threads, body)
    r = chip.registers
    digest = hash((r.weights.tobytes(), r.bias.tobytes(), r.theta.tobytes()))
    out = {"img_s": n / seconds, "seconds": seconds, "digest": digest, "counters": counters, "chip": chip}
    if stats:
        out["stream"] = stats
    return out


def inference(w: Workload, chip, threads: int, reps: int = 3) -> float:
    x, ids = w.x, w.ids
    with_threads(threads, lambda: chip.run(x[:2], sample_ids=ids[:2]))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for a in range(0, len(x), BATCH):
            with_threads(threads, lambda a=a: chip.run(x[a:a + BATCH], sample_ids=ids[a:a + BATCH]))
        times.append(time.perf_counter() - t0)
    return len(x) / float(np.median(times))


def neuron_seconds_per_img(chip, reps: int = 5) -> float:
    """The neuron kernel alone (layer_fire) on every layer for T ticks, with currents near threshold."""
    desc, r = chip.desc, chip.registers
    T = chip.net.time_steps
    params = chip.params()
    rng = np.random.default_rng(0)
    N = chip.n_neurons
    U, S, C = np.zeros(N, np.int32), np.zeros(N, np.uint8), np.zeros(N, np.int32)
    cur = np.empty(chip.max_layer, np.int32)
    acc = np.zeros(chip.max_layer, chip.acc_dtype(chip.largest_weight()))
    spikes = np.empty(chip.max_layer, np.int32)
    counters = np.zeros(K.N_COUNTERS, np.int64)
    disabled = disabled_counts(desc, r.enabled)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for li in range(len(chip.layers)):
            n, off = int(desc[li, K.N_OUT]), int(desc[li, K.N_OFF])
            cur[:n] = (r.theta[off:off + n] * rng.uniform(0, 0.4, n)).astype(np.int32)
            for t in range(T):
                layer_fire(li, desc, r.theta, r.leak, r.enabled, params, U, S, C, cur, acc, spikes, counters,
                           r.noise_rate, r.noise_key, 0, t, disabled)
        best = min(best, time.perf_counter() - t0)
    return best


def per_image(chip, counters: np.ndarray, n: int, learning_layers) -> dict:
    fan_in = np.array([layer.fan_in for layer in chip.layers], np.int64)
    rows = [li for li, name in enumerate(chip.layer_names) if name in learning_layers]
    c = counters[rows]
    gated_neurons = (c[:, K.C_SIGN] // fan_in[rows]).sum()
    return {"pulses": float(c[:, K.C_PULSES].sum() / n), "sign_gated_neurons": float(gated_neurons / n),
            "sign_gated_pairs": float(c[:, K.C_SIGN].sum() / n), "boxcar_gated_pairs": float(c[:, K.C_BOXCAR].sum() / n),
            "ungated_pairs": float(c[:, K.C_UNGATED].sum() / n),
            "synaptic_events": float((counters[:, K.C_SYN_AC] + counters[:, K.C_SYN_MAC]).sum() / n)}


def no_writes(setup) -> None:
    """Gating only: zero pulses, no bias or threshold writes (the skip streams fire nothing)."""
    setup.lparams[:, K.L_PULSE] = 0.0
    setup.lparams[:, K.L_BIAS] = 0.0
    setup.lparams[:, K.L_TH_STEP] = 0.0


def measure_net(name: str, data: str | None, n: int, log=print) -> dict:
    w = Workload(name, data, n)
    log(f"{name}: {len(w.images)} training images ({w.data}), host {w.host_s_per_img * 1e3:.1f} ms/img")
    one = learn(w, 1)
    two = learn(w, 2)
    e2e1 = learn(w, 1, stream=True)
    e2e2 = learn(w, 2, stream=True)
    gating = learn(w, 1, edit=no_writes)
    chip = one["chip"]
    inf1 = inference(w, chip, 1)
    inf2 = inference(w, chip, 2)
    neuron_ms = neuron_seconds_per_img(chip) * 1e3
    forward_ms = 1e3 / inf1
    split = {"read": forward_ms - neuron_ms, "neuron": neuron_ms,
             "gating": 1e3 / gating["img_s"] - forward_ms, "synapse_and_register_writes": 1e3 / one["img_s"] - 1e3 / gating["img_s"],
             "host": w.host_s_per_img * 1e3}
    row = {
        "net": name, "data": w.data, "images": len(w.images), "batch": BATCH, "noise": list(NOISE),
        "learning": dataclasses.asdict(w.config),
        "learning_img_s": {"threads_1": one["img_s"], "threads_2": two["img_s"]},
        "learning_speedup_2_threads": two["img_s"] / one["img_s"],
        "identical_1_2_threads": one["digest"] == two["digest"] == e2e1["digest"] == e2e2["digest"],
        "end_to_end_img_s": {"threads_1": e2e1["img_s"], "threads_2": e2e2["img_s"]},
        "end_to_end_speedup_2_threads": e2e2["img_s"] / e2e1["img_s"],
        "host_stream": {"threads_1": e2e1["stream"], "threads_2": e2e2["stream"]},
        "inference_img_s": {"threads_1": inf1, "threads_2": inf2},
        "learning_overhead_over_inference": inf1 / one["img_s"],
        "per_image": per_image(chip, one["counters"], len(w.images), w.teacher.setup.layers),
        "time_split_ms_per_img_1_thread": split,
        "pipeline_stages_2_threads": [list(s) for s in two["chip"].__dict__.get("_pipelines", {}).get(2).last_stages]
        if two["chip"].__dict__.get("_pipelines", {}).get(2) else None,
        "data_load_s": w.load_s,
    }
    log(f"  learning {one['img_s']:.1f} img/s (1 thread), {two['img_s']:.1f} (2 threads, x{row['learning_speedup_2_threads']:.2f}), "
        f"identical {row['identical_1_2_threads']}; end to end {e2e1['img_s']:.1f} / {e2e2['img_s']:.1f}; "
        f"inference {inf1:.1f} / {inf2:.1f}; overhead x{row['learning_overhead_over_inference']:.2f}")
    log("  split ms/img: " + ", ".join(f"{k} {v:.2f}" for k, v in split.items()))
    pi = row["per_image"]
    log(f"  per image: {pi['pulses']:.0f} pulses, {pi['sign_gated_neurons']:.0f} gated neurons, "
        f"{pi['sign_gated_pairs'] / 1e6:.1f} M gated pairs")
    return row


def synthetic_row(n: int = 64, log=print) -> dict:
    """Random-weight VGG-11 at 10 % activity, whole pulses, targets = the noise-free chip's own rates."""
    from chipsim.config import LearningConfig
    from chipsim.noise import apply_noise

    net, _, chip = build_chip(0)
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(n, 3, 32, 32)).astype(np.uint8)
    enc = Encoder("direct", net.time_steps, 255, 8)
    x = enc.encode(images, np.arange(n))
    tune_activity(chip, 0.10, x[:4])
    ref = chip.run(x, record=("spikes",))
    counts = (ref.spikes == 1).sum(axis=1)
    cfg = LearningConfig(enabled=True, mode="sign", pulse=1.0, warmup=12, dead_zone=0.05)
    row = {"net": "vgg11 (random weights, 10 % activity)", "images": n, "learning": dataclasses.asdict(cfg),
           "targets": "noise-free chip rates", "learning_img_s": {}}
    for threads in (1, 2):
        noisy = build_chip(0)[2]
        noisy.registers.theta[:] = chip.registers.theta
        apply_noise(noisy, list(NOISE), seed=0)
        setup = setup_learning(noisy, cfg, seed=0)
        full = (1 << cfg.target_bits) - 1
        tg = np.zeros((n, setup.n_targets), np.int64)
        for name, sl in setup.target_slices.items():
            tg[:, sl] = np.round(counts[:, chip.layer_slice(name)] / net.time_steps * full)
        with_threads(threads, lambda: noisy.run(x[:2], sample_ids=np.arange(2) + 10**6, learning=setup,
                                                targets=tg[:2]))
        t0 = time.perf_counter()
        res = with_threads(threads, lambda: noisy.run(x, sample_ids=np.arange(n), learning=setup, targets=tg))
        row["learning_img_s"][f"threads_{threads}"] = n / (time.perf_counter() - t0)
        row["pulses_per_img"] = float(res.counters[..., K.C_PULSES].sum() / n)
    log(f"synthetic: {row['learning_img_s']['threads_1']:.1f} / {row['learning_img_s']['threads_2']:.1f} img/s, "
        f"{row['pulses_per_img'] / 1e6:.2f} M pulses/img")
    return row


def plot(result: dict, path: Path) -> None:
    """Left: img/s per bundled net (inference and learning, 1 and 2 threads; end to end at 2).
    Right: where one thread's learning time per image goes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["nets"]
    names = [r["net"] for r in rows]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8))
    x = np.arange(len(rows))
    bars = [("inference, 1 thread", lambda r: r["inference_img_s"]["threads_1"]),
            ("learning, 1 thread", lambda r: r["learning_img_s"]["threads_1"]),
            ("learning, 2 threads", lambda r: r["learning_img_s"]["threads_2"]),
            ("learning end to end, 2 threads", lambda r: r["end_to_end_img_s"]["threads_2"])]
    width = 0.2
    for k, (label, get) in enumerate(bars):
        ax.bar(x + (k - 1.5) * width, [get(r) for r in rows], width=width, label=label)
    ax.axhline(20, color="k", ls=":", lw=1, label="target: vgg11 learning 20 img/s per core")
    ax.set_yscale("log")
    ax.set_xticks(x, names)
    ax.set_ylabel("images per second")
    ax.legend(fontsize=7)
    ax.set_title("calibration of the bundled nets (YAML learning sections, mismatch=0.2)", fontsize=9)
    parts = ["read", "neuron", "gating", "synapse_and_register_writes", "host"]
    bottom = np.zeros(len(rows))
    for part in parts:
        v = np.array([max(0.0, r["time_split_ms_per_img_1_thread"][part]) for r in rows])
        bx.bar(x, v, bottom=bottom, label=part.replace("_", " "))
        bottom += v
    bx.set_xticks(x, names)
    bx.set_ylabel("ms per image (1 thread)")
    bx.set_yscale("log")
    bx.legend(fontsize=7)
    bx.set_title("learning time per image, split (host runs beside the chip)", fontsize=9)
    save_figure(fig, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", default=",".join(NETS), help="comma-separated bundled nets")
    ap.add_argument("--images", type=int, default=None, help="training images per net (default: per-net sizes)")
    ap.add_argument("--no-synthetic", action="store_true", help="skip the synthetic whole-pulse row")
    ap.add_argument("--out", type=Path, default=None, help="result JSON (default benchmarks/results/learning-HOST-DATE.json)")
    ap.add_argument("--replot", type=Path, default=None, help="redraw the figure of a saved result and exit")
    args = ap.parse_args(argv)
    if args.replot:
        import json

        plot(json.loads(args.replot.read_text()), args.replot.with_suffix(".png"))
        return 0
    if numba.config.NUMBA_NUM_THREADS < 2:
        raise SystemExit("benchmarks/learning.py: needs 2 Numba threads (a machine with 2 cores or NUMBA_NUM_THREADS=2)")
    out = args.out or ROOT / "benchmarks" / "results" / f"learning-{socket.gethostname()}-{_dt.date.today()}.json"
    started = time.perf_counter()
    nets = [s.strip() for s in args.nets.split(",") if s.strip()]
    unknown = [s for s in nets if s not in NETS]
    if unknown:
        raise SystemExit(f"--nets: unknown {unknown}; expected some of {list(NETS)}")
    rows = [measure_net(name, NETS[name], args.images or IMAGES[name]) for name in nets]
    result = {
        "benchmark": "learning", "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(), "command": "python benchmarks/learning.py " + " ".join(argv or sys.argv[1:]),
        "nets": rows,
        "secondary": [] if args.no_synthetic else [synthetic_row()],
        "seconds": time.perf_counter() - started,
    }
    vgg = next((r for r in rows if r["net"] == "vgg11"), None)
    if vgg:
        result["targets"] = {
            "vgg11_learning_img_s_1_thread >= 20": vgg["learning_img_s"]["threads_1"] >= 20,
            "vgg11_learning_speedup_2_threads >= 1.7": vgg["learning_speedup_2_threads"] >= 1.7,
            "vgg11_end_to_end_speedup_2_threads >= 1.7": vgg["end_to_end_speedup_2_threads"] >= 1.7,
            "vgg11_learning_overhead_over_inference <= 3": vgg["learning_overhead_over_inference"] <= 3,
            "identical_1_2_threads": all(r["identical_1_2_threads"] for r in rows),
        }
    write_json(out, result)
    plot(result, out.with_suffix(".png"))
    print("wrote", out, "and", out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
