"""VGG-11 (CIFAR-10 shape, T=16) event-driven inference on the chip versus software peers.

    python benchmarks/inference.py            # full run (about 4-9 minutes on 2 busy cores)
    python benchmarks/inference.py --quick    # smoke run: 4 images, one round (about 30 s)

Needs torch==2.13.0 and snntorch (and optionally spikingjelly, see SPIKINGJELLY_NOTE);
a peer that cannot be imported is recorded as an error and skipped.

What it does
  1. Deploys models/vgg11.yaml with seeded random 8-bit weights and tunes every hidden
     layer's thresholds so that its firing rate is close to a target (5 %, 10 %, 20 %),
     layer by layer, on a few fixed-seed random images (`tune_activity`).
  2. Times the chip (numba kernels) at 1 and 2 threads for each activity, batch 16, and
     fits time per image against synaptic events per image.
  3. Times peers with the same net, the same integer weights (as float32) and the
     thresholds tuned for the chip at 10 %, so their activity is close to 10 % too
     (each peer's measured per-layer rates are reported):
       * snntorch   (nn.Conv2d / nn.Linear + snn.Leaky, subtract reset, step by step),
       * spikingjelly (multi-step mode: each layer runs on all T ticks at once),
       * a dense numpy float32 reference (NHWC im2col + BLAS sgemm per layer per tick).
     The direct input is the same every tick, so every implementation (the chip
     included) computes conv1 once and reuses its output for all T ticks.
     All configurations are timed round-robin (one batch each per round, order rotated,
     median over rounds), because the machine is shared: load hits all of them alike.
     Per-round ratios and images per CPU-second are reported as well.
  4. Writes benchmarks/results/inference-<hostname>-<date>[-quick].json (atomically),
     a figure beside it (.png: img/s per configuration; time per image against synaptic
     events per image) and prints a table. `--replot JSON` redraws the figure only.

Random uniform-noise images are used throughout: the benchmark measures speed at a
controlled activity, not accuracy.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import socket
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from chipsim.io.atomic import write_json

ROOT = Path(__file__).resolve().parents[1]
NET_PATH = ROOT / "models" / "vgg11.yaml"
RESULTS_DIR = ROOT / "benchmarks" / "results"

HEADLINE_RATE = 0.10
RATES = (0.05, 0.10, 0.20)
THREADS = (1, 2)
#: rate-coded input variant: each pixel spikes with probability pixel/255 * RATE_INPUT_MAX per tick,
#: 10 % on average for the uniform random images (the headline net is direct-coded, as in the paper)
RATE_INPUT_MAX = 0.20
TARGET_IMG_S_PER_CORE = 60.0
TARGET_SPEEDUP = 4.0
SETTLE_S = 0.25       # pause before each timed batch
TUNE_TOL = 0.10        # tuning stops when |rate / target - 1| <= 10 % (acceptance band is 20 %)
ACCEPT_TOL = 0.20

# Why spikingjelly may be missing or was installed the way it was; recorded in the JSON.
SPIKINGJELLY_NOTE = ("spikingjelly 2.0.0 requires torch>=2.6 plus torchvision, torchaudio, tensorboard, "
                     "scipy, matplotlib, ...: a plain `pip install spikingjelly` replaces the CPU torch "
                     "2.13.0 with torch 2.14.1 and the CUDA 13 wheels (several GB). Install it with "
                     "`pip install --no-deps spikingjelly loguru tqdm`; the activation_based API then "
                     "imports and runs on torch 2.13.0+cpu.")


# ---------------------------------------------------------------------------- utilities
def median(xs):
    return float(statistics.median(xs))


def loadavg() -> float | None:
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class Measurement:
    """One timed configuration (an implementation at a thread count). `setup` selects it
    (threads, thresholds), `call` runs one batch. Times are collected round-robin over all
    configurations (see measure_round_robin), so the load of the shared machine spreads
    evenly over them."""

    def __init__(self, key: str, threads: int, setup, call, batch: int):
        self.key, self.threads, self.setup, self.call, self.batch = key, threads, setup, call, batch
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.load: list[float | None] = []

    def once(self) -> float:
        self.setup()
        time.sleep(SETTLE_S)            # let spinning worker threads of the previous config go idle
        c0 = time.process_time()
        t0 = time.perf_counter()
        self.call()
        dt = time.perf_counter() - t0
        self.wall.append(dt)
        self.cpu.append(time.process_time() - c0)
        self.load.append(loadavg())
        return dt

    def summary(self) -> dict:
        times = self.wall
        med = median(times)
        best = min(times)
        return {"threads": self.threads, "batch": self.batch, "reps": len(times),
                "times_s": [round(t, 6) for t in times], "median_s": med, "best_s": best,
                "img_s": self.batch / med, "img_s_best": self.batch / best, "ms_per_img": 1e3 * med / self.batch,
                "cpu_per_wall": sum(self.cpu) / sum(times) if sum(times) > 0 else None,
                # images per CPU-second of this process: for 1 thread, the per-core throughput with the
                # time other processes took from the core removed (spin-waits count at 2 threads)
                "img_per_cpu_s": median([self.batch / c for c in self.cpu if c > 0]) if any(self.cpu) else None,
                "loadavg_1min": self.load}


def measure_round_robin(ms: list[Measurement], rounds: int, deadline: float, min_rounds: int, log=print) -> int:
    """Warm up every configuration once, then up to `rounds` rounds each timing every
    configuration once, the order rotated every round. After `min_rounds`, no round is started
    that would probably end after `deadline` (a time.perf_counter() value). Returns the rounds done."""
    for m in ms:
        m.setup()
        m.call()
    done = 0
    for r in range(rounds):
        t0 = time.perf_counter()
        k = r % len(ms)
        order = ms[k:] + ms[:k]
        for m in order:
            m.once()
        done += 1
        log(f"  round {r + 1}/{rounds}: " + ", ".join(f"{m.key} {m.batch / m.wall[-1]:.1f}" for m in ms))
        took = time.perf_counter() - t0
        if done >= min_rounds and done < rounds and time.perf_counter() + took > deadline:
            log(f"  stopping after {done} rounds: the time budget would be exceeded")
            break
    return done


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None


def machine_info() -> dict:
    import numba
    info = {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "numba_max_threads": numba.config.NUMBA_NUM_THREADS,
        "torch": package_version("torch"),
        "snntorch": package_version("snntorch"),
        "spikingjelly": package_version("spikingjelly"),
        "threadpoolctl": package_version("threadpoolctl"),
        "chipsim": package_version("chipsim"),
    }
    try:
        with open("/proc/loadavg") as f:
            info["loadavg_at_start"] = f.read().split()[:3]
    except OSError:
        pass
    info["git"] = git_state()
    return info


def git_state() -> dict:
    """Commit and uncommitted changes of the simulator sources measured (other work may be in flight)."""
    import subprocess

    def git(*a):
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=20).stdout
    try:
        dirty = git("status", "--porcelain", "--", "chipsim", "models", "noise", "hostlink")
        return {"commit": git("rev-parse", "HEAD").strip(),
                "dirty_files": [line[3:] for line in dirty.splitlines()]}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


# ---------------------------------------------------------------------------- the chip
def build_chip(seed: int):
    from chipsim.core.chip import Chip
    from chipsim.config import load_net
    from chipsim.core.weights import random_weights
    net = load_net(NET_PATH)
    bundle = random_weights(net, seed=seed)
    return net, bundle, Chip(net, bundle)


def build_rate_input_chip(net, bundle, seed: int):
    """The same net and weights fed by the rate encoder (seeded Bernoulli spikes) instead of the
    direct one: returns (chip, encode), encode(images in chip order) -> packed input spikes."""
    import dataclasses

    from chipsim.core.chip import Chip
    from chipsim.hostlink.encoders import Encoder

    rnet = dataclasses.replace(net, encoder=dataclasses.replace(net.encoder, kind="rate", max_rate=RATE_INPUT_MAX))
    enc = Encoder("rate", net.time_steps, 255, net.encoder.input_bits, RATE_INPUT_MAX, key=seed)

    def encode(x_chip: np.ndarray) -> np.ndarray:
        nchw = images_nchw(x_chip, net.input_shape).astype(np.int32)
        return enc.encode(nchw, np.arange(len(x_chip)))
    return Chip(rnet, bundle), encode


def hidden_layers(chip) -> list[str]:
    """Spiking layers (the potential-readout output layer is a non-spiking integrator)."""
    from chipsim.core.kernels import layout as K
    return [name for li, name in enumerate(chip.layer_names) if chip.desc[li, K.SPIKING] != 0]


def layer_rates(chip, counters: np.ndarray) -> dict[str, float]:
    """Firing rate per layer: spikes / (images x ticks x neurons)."""
    from chipsim.core.kernels import layout as K
    B, T = counters.shape[:2]
    spikes = counters[..., K.C_SPIKES].sum(axis=(0, 1))
    return {name: float(spikes[li]) / (B * T * chip.layers[li].n_out) for li, name in enumerate(chip.layer_names)}


def synop_stats(chip, counters: np.ndarray) -> dict:
    from chipsim.core.kernels import layout as K
    B = counters.shape[0]
    ac = counters[..., K.C_SYN_AC].sum(axis=(0, 1)) / B
    mac = counters[..., K.C_SYN_MAC].sum(axis=(0, 1)) / B
    spikes = counters[..., K.C_SPIKES].sum(axis=(0, 1)) / B
    return {
        "synops_per_img": float(ac.sum() + mac.sum()),
        "synops_ac_per_img": float(ac.sum()),
        "synops_mac_per_img": float(mac.sum()),
        "spikes_per_img": float(spikes.sum()),
        "synops_per_img_by_layer": {n: float(ac[i] + mac[i]) for i, n in enumerate(chip.layer_names)},
    }


def threshold_step(hist: list[tuple[float, float]], target: float) -> float:
    """Multiplicative threshold update from the (threshold, rate) history of one layer:
    theta <- theta * (target / r)^(1/g), g the log-log slope of rate vs theta estimated by
    secant from the last two iterates (g = -1 before that), clamped to a factor of 4."""
    th, r = hist[-1]
    if r <= 0:
        return 0.25
    slope = -1.0
    if len(hist) >= 2:
        (t0, r0), (t1, r1) = hist[-2], hist[-1]
        if r0 > 0 and r1 > 0 and t0 != t1 and r0 != r1:
            slope = float(np.log(r1 / r0) / np.log(t1 / t0))
            slope = min(-0.2, max(-10.0, slope))
    return min(4.0, max(0.25, (target / r) ** (1.0 / slope)))


def best_iterate(hist: list[tuple[float, float]], target: float) -> tuple[float, float]:
    return min(hist, key=lambda tr: abs(tr[1] / target - 1) if tr[1] > 0 else 1e9)


def tune_activity(chip, target: float, images: np.ndarray, tol: float = TUNE_TOL, max_iter: int = 10) -> dict:
    """Scale each hidden layer's thresholds, first layer to last, until its firing rate on
    `images` is within `tol` of `target`.

    A layer's rate depends only on the layers at and below it, so one pass in order is
    enough. Each layer: multiplicative fixed-point steps (see threshold_step) on the integer
    threshold registers. Modifies chip.registers.theta in place; returns the per-layer history.
    """
    theta = chip.registers.theta
    report = {}
    for name in hidden_layers(chip):
        sl = chip.layer_slice(name)
        th = float(theta[sl].mean())
        hist: list[tuple[float, float]] = []
        for _ in range(max_iter):
            theta[sl] = max(1, int(round(th)))
            r = layer_rates(chip, chip.run(images).counters)[name]
            hist.append((float(theta[sl][0]), r))
            if r > 0 and abs(r / target - 1) <= tol:
                break
            new = max(1.0, th * threshold_step(hist, target))
            if int(round(new)) == int(round(th)):   # integer threshold cannot move any closer
                break
            th = new
        best_t, best_r = best_iterate(hist, target)
        theta[sl] = int(best_t)
        report[name] = {"theta": int(best_t), "rate": best_r, "iterations": len(hist),
                        "history": [[int(t), round(r, 5)] for t, r in hist]}
    return report


# ---------------------------------------------------------------------------- peers
def float_layers(net, bundle, thetas: dict[str, int]) -> list[dict]:
    """The weighted layers as float32 arrays (weights in the teacher's tensor layout)."""
    out = []
    for layer in net.chip_layers:
        lw = bundle.layers[layer.name]
        out.append({"name": layer.name, "type": layer.type, "kernel": layer.kernel, "stride": layer.stride,
                    "padding": layer.padding, "in_shape": tuple(layer.in_shape),
                    "out_shape": tuple(layer.out_shape), "weight": lw.weight.astype(np.float32),
                    "bias": lw.bias.astype(np.float32), "threshold": float(thetas.get(layer.name, 0)),
                    "layer": layer})
    return out


def dense_macs_per_tick(layers: list[dict]) -> int:
    total = 0
    for spec in layers:
        oc, oh, ow = spec["out_shape"]
        fan_in = spec["layer"].fan_in
        total += oc * oh * ow * fan_in
    return total


def images_nchw(x_chip: np.ndarray, shape) -> np.ndarray:
    """Chip input order is (y, x, c); peers take (B, C, H, W) float32."""
    c, h, w = shape
    return np.ascontiguousarray(x_chip.reshape(-1, h, w, c).transpose(0, 3, 1, 2)).astype(np.float32)


def peer_rates(spike_sums: list[float], layers: list[dict], batch: int, T: int) -> dict[str, float]:
    rates = {}
    for spec, s in zip(layers, spike_sums):
        n = int(np.prod(spec["out_shape"]))
        rates[spec["name"]] = float(s) / (batch * T * n)
    return rates


class SnnTorchPeer:
    name = "snntorch"

    def __init__(self, layers, beta: float, T: int):
        import snntorch as snn
        import torch
        from torch import nn
        self.torch = torch
        self.T = T
        self.mods = []
        self.lifs = []
        for spec in layers:
            w = torch.from_numpy(spec["weight"])
            if spec["type"] == "conv":
                m = nn.Conv2d(w.shape[1], w.shape[0], spec["kernel"], stride=spec["stride"],
                              padding=spec["padding"], bias=True)
            else:
                m = nn.Linear(w.shape[1], w.shape[0], bias=True)
            with torch.no_grad():
                m.weight.copy_(w)
                m.bias.copy_(torch.from_numpy(spec["bias"]))
            m.eval()
            self.mods.append(m)
            self.lifs.append(snn.Leaky(beta=beta, threshold=spec["threshold"], reset_mechanism="subtract"))
        self.n_hidden = len(layers) - 1          # the last layer integrates (potential readout)
        self.first_fc = next(i for i, s in enumerate(layers) if s["type"] == "fc")

    def run(self, x: np.ndarray, count: bool = False):
        torch = self.torch
        with torch.no_grad():
            xt = torch.from_numpy(x)
            cur0 = self.mods[0](xt)               # direct input: the same current every tick
            mems = [lif.init_leaky() for lif in self.lifs[:self.n_hidden]]
            sums = [0.0] * self.n_hidden
            out = None
            for _ in range(self.T):
                spk, mems[0] = self.lifs[0](cur0, mems[0])
                if count:
                    sums[0] += float(spk.sum())
                h = spk
                for i in range(1, self.n_hidden):
                    if i == self.first_fc:
                        h = h.flatten(1)
                    spk, mems[i] = self.lifs[i](self.mods[i](h), mems[i])
                    if count:
                        sums[i] += float(spk.sum())
                    h = spk
                o = self.mods[-1](h)
                out = o if out is None else out + o
        return out.argmax(1).numpy(), sums

    def set_threads(self, n: int) -> None:
        self.torch.set_num_threads(n)


class SpikingJellyPeer:
    name = "spikingjelly"

    def __init__(self, layers, beta: float, T: int):
        import torch
        from spikingjelly.activation_based import functional, layer as sjl, neuron
        self.torch = torch
        self.functional = functional
        self.T = T
        tau = 1.0 / (1.0 - beta)                 # decay_input=False: H = V (1 - 1/tau) + X
        self.mods = []
        self.lifs = []
        self.first_fc = next(i for i, s in enumerate(layers) if s["type"] == "fc")
        self.flatten = sjl.Flatten(step_mode="m")
        for spec in layers:
            w = torch.from_numpy(spec["weight"])
            if spec["type"] == "conv":
                m = sjl.Conv2d(w.shape[1], w.shape[0], spec["kernel"], stride=spec["stride"],
                               padding=spec["padding"], bias=True, step_mode="m")
            else:
                m = sjl.Linear(w.shape[1], w.shape[0], bias=True, step_mode="m")
            with torch.no_grad():
                m.weight.copy_(w)
                m.bias.copy_(torch.from_numpy(spec["bias"]))
            m.eval()
            self.mods.append(m)
            self.lifs.append(neuron.LIFNode(tau=tau, decay_input=False, v_threshold=spec["threshold"],
                                            v_reset=None, detach_reset=True, step_mode="m"))
        self.n_hidden = len(layers) - 1
        # conv1 runs once on the image (single-step), its output is repeated over T
        self.mods[0].step_mode = "s"

    def tune(self, x: np.ndarray, target: float, tol: float = TUNE_TOL, max_iter: int = 8) -> dict:
        """spikingjelly's LIF subtracts the threshold before the leak (the chip and snntorch
        leak first), which leaves more charge after a spike; with the chip's thresholds it
        fires more. Rescale each layer's threshold, first to last, like tune_activity; in
        multi-step mode a layer's input current for all ticks is computed once per layer,
        so only the (cheap) LIF is re-run per iteration."""
        torch = self.torch
        report = {}
        with torch.no_grad():
            cur0 = self.mods[0](torch.from_numpy(x))
            cur = cur0.unsqueeze(0).expand(self.T, *cur0.shape)
            h = None
            for i in range(self.n_hidden):
                if i > 0:
                    if i == self.first_fc:
                        h = self.flatten(h)
                    cur = self.mods[i](h)
                lif = self.lifs[i]
                th0 = th = float(lif.v_threshold)
                hist: list[tuple[float, float]] = []
                for _ in range(max_iter):
                    lif.v_threshold = th
                    lif.reset()
                    r = float(lif(cur).mean())
                    hist.append((th, r))
                    if r > 0 and abs(r / target - 1) <= tol:
                        break
                    th = th * threshold_step(hist, target)
                best_th, best_r = best_iterate(hist, target)
                lif.v_threshold = best_th
                lif.reset()
                h = lif(cur)
                report[f"layer{i}"] = {"threshold": best_th, "scale_vs_chip": best_th / th0, "rate": best_r,
                                       "iterations": len(hist)}
            for lif in self.lifs:
                lif.reset()
        return report

    def run(self, x: np.ndarray, count: bool = False):
        torch = self.torch
        with torch.no_grad():
            for lif in self.lifs:
                lif.reset()
            cur0 = self.mods[0](torch.from_numpy(x))
            h = self.lifs[0](cur0.unsqueeze(0).expand(self.T, *cur0.shape))
            sums = [float(h.sum()) if count else 0.0]
            for i in range(1, self.n_hidden):
                if i == self.first_fc:
                    h = self.flatten(h)
                h = self.lifs[i](self.mods[i](h))
                sums.append(float(h.sum()) if count else 0.0)
            out = self.mods[-1](h).sum(0)
        return out.argmax(1).numpy(), sums

    def set_threads(self, n: int) -> None:
        self.torch.set_num_threads(n)


class NumpyDensePeer:
    """Dense float32 reference: NHWC activations, im2col (strided view + copy) and one
    sgemm per layer per tick through numpy's BLAS; LIF with subtract reset."""
    name = "numpy_dense"

    def __init__(self, layers, beta: float, T: int):
        from chipsim.core.chip import crossbar_matrix
        self.T = T
        self.beta = np.float32(beta)
        self.specs = []
        for spec in layers:
            mat = crossbar_matrix(spec["layer"], spec["weight"]).astype(np.float32)   # (fan_in, out), NHWC rows
            self.specs.append(dict(spec, mat=np.ascontiguousarray(mat)))
        self.n_hidden = len(layers) - 1
        self._limiter = None

    @staticmethod
    def _im2col(xp: np.ndarray, k: int, stride: int, oh: int, ow: int) -> np.ndarray:
        B, _, _, C = xp.shape
        sb, sh, sw, sc = xp.strides
        view = np.lib.stride_tricks.as_strided(
            xp, shape=(B, oh, ow, k, k, C), strides=(sb, sh * stride, sw * stride, sh, sw, sc), writeable=False)
        return view.reshape(B * oh * ow, k * k * C)          # copies (the im2col buffer)

    def _current(self, spec, h: np.ndarray, pads: dict) -> np.ndarray:
        B = h.shape[0]
        if spec["type"] == "fc":
            return h.reshape(B, -1) @ spec["mat"] + spec["bias"]
        c, hh, ww = spec["in_shape"]
        oc, oh, ow = spec["out_shape"]
        p = spec["padding"]
        xp = pads.get(spec["name"])
        if xp is None or xp.shape[0] != B:
            xp = np.zeros((B, hh + 2 * p, ww + 2 * p, c), np.float32)
            pads[spec["name"]] = xp
        xp[:, p:p + hh, p:p + ww, :] = h.reshape(B, hh, ww, c)
        cols = self._im2col(xp, spec["kernel"], spec["stride"], oh, ow)
        out = cols @ spec["mat"]
        out += spec["bias"]
        return out.reshape(B, oh * ow * oc)

    def run(self, x: np.ndarray, count: bool = False):
        x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        pads: dict = {}
        cur0 = self._current(self.specs[0], x_nhwc, pads)     # the same every tick
        mems = [None] * self.n_hidden
        spks = [None] * self.n_hidden
        sums = [0.0] * self.n_hidden
        out = None
        beta = self.beta
        for _ in range(self.T):
            h = None
            for i in range(self.n_hidden):
                spec = self.specs[i]
                cur = cur0 if i == 0 else self._current(spec, h, pads)
                thr = np.float32(spec["threshold"])
                if mems[i] is None:
                    mems[i] = cur.copy()
                else:
                    m = mems[i]
                    m *= beta
                    m -= spks[i] * thr
                    m += cur
                spks[i] = (mems[i] >= thr).astype(np.float32)
                if count:
                    sums[i] += float(spks[i].sum())
                h = spks[i]
            o = self._current(self.specs[-1], h, pads)
            out = o if out is None else out + o
        return out.argmax(1), sums

    def set_threads(self, n: int) -> None:
        from threadpoolctl import threadpool_limits
        if self._limiter is not None:
            self._limiter.restore_original_limits()
        self._limiter = threadpool_limits(limits=n, user_api="blas")


def prepare_peer(cls, layers, beta, T, x_nchw, x_tune, count_batch):
    """Build a peer, (spikingjelly) tune it, measure its rates; returns (peer or None, entry)."""
    entry: dict = {}
    try:
        peer = cls(layers, beta, T)
        peer.set_threads(max(THREADS))
        if hasattr(peer, "tune"):
            t0 = time.perf_counter()
            tuning = peer.tune(x_tune, HEADLINE_RATE)
            entry["tuning"] = {layers[int(k[5:])]["name"]: v for k, v in tuning.items()}
            entry["tuning_s"] = round(time.perf_counter() - t0, 2)
        _, sums = peer.run(x_nchw[:count_batch], count=True)
        rates = peer_rates(sums, layers[:-1], count_batch, T)
        entry["rates"] = rates
        entry["rates_measured_on_images"] = count_batch
        entry["mean_hidden_rate"] = float(np.mean(list(rates.values())))
        return peer, entry
    except Exception as exc:  # import error or API change: record and move on
        entry["error"] = f"{type(exc).__name__}: {exc}"
        entry["traceback"] = traceback.format_exc(limit=5)
        return None, entry


# ---------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: few images, one round")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default 16, quick 4)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="timed rounds; each round times every configuration once (default 5, quick 1)")
    ap.add_argument("--tune-images", type=int, default=None, help="images used to tune thresholds (default 4)")
    ap.add_argument("--seed", type=int, default=0, help="weight seed")
    ap.add_argument("--time-budget", type=float, default=540.0,
                    help="seconds: after 3 rounds, stop timing when the next round would end later (default 540)")
    ap.add_argument("--no-peers", action="store_true", help="time the chip only")
    ap.add_argument("--out", type=Path, default=None, help="output JSON path")
    ap.add_argument("--replot", type=Path, default=None, metavar="JSON",
                    help="only redraw the figure (JSON path with .png) from an earlier result")
    args = ap.parse_args(argv)
    if args.replot is not None:
        import json

        plot(json.loads(args.replot.read_text()), args.replot.with_suffix(".png"))
        print(f"wrote {args.replot.with_suffix('.png')}")
        return 0

    quick = args.quick
    batch = args.batch or (4 if quick else 16)
    rounds = args.rounds or (1 if quick else 5)
    n_tune = args.tune_images or (2 if quick else 4)
    t_start = time.perf_counter()
    now = _dt.datetime.now().astimezone()
    host = socket.gethostname()
    out_path = args.out or RESULTS_DIR / f"inference-{host}-{now:%Y-%m-%d}{'-quick' if quick else ''}.json"

    import numba
    numba.set_num_threads(max(THREADS))
    net, bundle, chip = build_chip(args.seed)
    T = net.time_steps
    x_tune = np.random.default_rng(1).integers(0, 256, size=(n_tune, chip.n_inputs)).astype(np.int32)
    x_bench = np.random.default_rng(2).integers(0, 256, size=(batch, chip.n_inputs)).astype(np.int32)
    hidden = hidden_layers(chip)
    base_theta = chip.registers.theta.copy()

    result: dict = {
        "benchmark": "inference",
        "date": now.isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/inference.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine_info(),
        "config": {
            "net": str(NET_PATH.relative_to(ROOT)), "net_name": net.name, "time_steps": T,
            "encoder": net.encoder.kind, "neuron": net.neuron.model, "alpha": net.neuron.alpha,
            "reset": net.neuron.reset, "weights": f"random_weights(seed={args.seed})",
            "weight_bits": net.chip.weight_bits, "batch": batch, "rounds": rounds,
            "tune_images": n_tune, "tune_image_seed": 1, "bench_image_seed": 2,
            "images": "uniform random integers in [0, 255] (3x32x32)", "quick": quick,
            "activity_targets": list(RATES), "headline_activity": HEADLINE_RATE, "threads": list(THREADS),
            "hidden_layers": hidden, "tune_tolerance": TUNE_TOL, "accept_tolerance": ACCEPT_TOL,
            "timing": ("wall time of one batch; every configuration (chip at each activity and thread count, "
                       "each peer at each thread count) is warmed up once, then timed once per round, "
                       f"round-robin with the order rotated each round and a {SETTLE_S}s pause before each "
                       "batch; img/s = batch / median time; cpu_per_wall = process CPU / wall (about the "
                       "thread count when the shared machine gave the threads their cores)"),
            "synops": "synaptic events per image from the chip counters: accumulates (binary spikes x "
                      "fan-out) + multiply-accumulates of the direct-encoded first layer (counted every "
                      "tick as the hardware reads it; the simulator computes it once and replays it)",
        },
    }

    # ---- activity tuning (chip)
    print(f"VGG-11 T={T}, batch {batch}, {rounds} round(s), {n_tune} tuning images{' (quick)' if quick else ''}",
          flush=True)
    chip_res: dict = {}
    tuned_theta: dict[float, np.ndarray] = {}
    keys = {r: f"rate_{int(round(r * 100)):02d}" for r in RATES}
    for target in [HEADLINE_RATE] + [r for r in RATES if r != HEADLINE_RATE]:
        t0 = time.perf_counter()
        numba.set_num_threads(max(THREADS))
        tune = tune_activity(chip, target, x_tune)
        tuned_theta[target] = chip.registers.theta.copy()
        tune_s = time.perf_counter() - t0
        counters = chip.run(x_bench).counters
        rates = layer_rates(chip, counters)
        hidden_rates = {n: rates[n] for n in hidden}
        entry = {"target_rate": target, "rates": hidden_rates,
                 "mean_hidden_rate": float(np.mean(list(hidden_rates.values()))),
                 "all_within_tolerance": bool(all(abs(r / target - 1) <= ACCEPT_TOL for r in hidden_rates.values())),
                 **synop_stats(chip, counters), "tuning_s": round(tune_s, 2), "tuning": tune}
        chip_res[keys[target]] = entry
        print(f"  chip @ {target:4.0%}: tuned in {tune_s:5.1f}s, rates {min(hidden_rates.values()):.3f}.."
              f"{max(hidden_rates.values()):.3f} (mean {entry['mean_hidden_rate']:.3f}), "
              f"{entry['synops_per_img'] / 1e6:.1f} M synops/img", flush=True)
    chip_res = {keys[r]: chip_res[keys[r]] for r in RATES}
    # the rate-coded input variant at the headline activity (input spikes ~10 % too)
    t0 = time.perf_counter()
    rate_chip, encode = build_rate_input_chip(net, bundle, seed=3)
    xr_tune, xr_bench = encode(x_tune), encode(x_bench)
    rate_tune = tune_activity(rate_chip, HEADLINE_RATE, xr_tune)
    counters = rate_chip.run(xr_bench).counters
    rates = layer_rates(rate_chip, counters)
    rate_hidden = {n: rates[n] for n in hidden_layers(rate_chip)}
    input_rate = float(np.unpackbits(xr_bench, axis=2)[..., :rate_chip.n_inputs].mean())
    rate_entry = {"target_rate": HEADLINE_RATE, "input_spike_rate": input_rate, "rate_input_max": RATE_INPUT_MAX,
                  "encoder": "rate (seeded Bernoulli, p = pixel / 255 * rate_input_max per tick)",
                  "rates": rate_hidden, "mean_hidden_rate": float(np.mean(list(rate_hidden.values()))),
                  **synop_stats(rate_chip, counters), "tuning_s": round(time.perf_counter() - t0, 2),
                  "tuning": rate_tune}
    print(f"  chip @ {HEADLINE_RATE:4.0%}, rate-coded input ({input_rate:.3f} input spikes/pixel/tick): rates "
          f"{min(rate_hidden.values()):.3f}..{max(rate_hidden.values()):.3f}, "
          f"{rate_entry['synops_per_img'] / 1e6:.1f} M synops/img", flush=True)
    try:
        result["machine"]["numba_threading_layer"] = numba.threading_layer()
    except Exception as exc:
        result["machine"]["numba_threading_layer"] = f"{type(exc).__name__}: {exc}"

    # ---- peers: build, tune (spikingjelly), measure rates
    thetas_10 = {n: int(tuned_theta[HEADLINE_RATE][chip.layer_slice(n)][0]) for n in chip.layer_names}
    layers = float_layers(net, bundle, thetas_10)
    macs = dense_macs_per_tick(layers)
    beta = 0.905
    peers: dict = {}
    peer_objs: dict = {}
    peer_info = {"beta": beta, "dense_macs_per_tick": macs, "dense_macs_per_img": macs * T,
                 "thresholds": {n: thetas_10[n] for n in hidden},
                 "weights": "the chip's integer weights as float32; thresholds = the chip's tuned at 10% "
                            "(spikingjelly: rescaled per layer to 10%, its reset order differs)",
                 "conv1": "computed once per image (direct input is constant), as the chip does"}
    x_nchw = images_nchw(x_bench, net.input_shape)
    if not args.no_peers:
        x_tune_nchw = images_nchw(x_tune, net.input_shape)
        count_batch = min(batch, 4 if quick else 8)
        for cls in (SnnTorchPeer, SpikingJellyPeer, NumpyDensePeer):
            obj, peers[cls.name] = prepare_peer(cls, layers, beta, T, x_nchw, x_tune_nchw, count_batch)
            if obj is None:
                print(f"  peer {cls.name}: {peers[cls.name]['error']}", flush=True)
            else:
                peer_objs[cls.name] = obj
                print(f"  peer {cls.name}: mean rate {peers[cls.name]['mean_hidden_rate']:.3f}", flush=True)
        peers["spikingjelly"]["note"] = SPIKINGJELLY_NOTE
        peers["numpy_dense"]["blas"] = blas_info()

    # ---- timing, round-robin over every configuration
    def chip_setup(target, n):
        def setup():
            chip.registers.theta[:] = tuned_theta[target]
            numba.set_num_threads(n)
        return setup

    def peer_setup(obj, n):
        return lambda: obj.set_threads(n)

    ms: list[Measurement] = []
    for target in RATES:
        for n in THREADS:
            ms.append(Measurement(f"chip{int(target * 100)}/{n}T", n, chip_setup(target, n),
                                  lambda: chip.run(x_bench), batch))
    for n in THREADS:
        ms.append(Measurement(f"chip{int(HEADLINE_RATE * 100)}-rate-input/{n}T", n,
                              (lambda n=n: numba.set_num_threads(n)), lambda: rate_chip.run(xr_bench), batch))
    for name, obj in peer_objs.items():
        for n in THREADS:
            ms.append(Measurement(f"{name}/{n}T", n, peer_setup(obj, n), (lambda o=obj: o.run(x_nchw)), batch))
    t0 = time.perf_counter()
    done = measure_round_robin(ms, rounds, t_start + args.time_budget, min(3, rounds),
                               log=lambda line: print(line, flush=True))
    result["timing_s"] = round(time.perf_counter() - t0, 1)
    result["config"]["rounds_done"] = done
    by_key = {m.key: m for m in ms}
    for target in RATES:
        entry = chip_res[keys[target]]
        for n in THREADS:
            summ = by_key[f"chip{int(target * 100)}/{n}T"].summary()
            summ["ns_per_synop"] = 1e9 * summ["median_s"] / (batch * entry["synops_per_img"])
            summ["ns_per_ac_synop"] = 1e9 * summ["median_s"] / (batch * entry["synops_ac_per_img"])
            entry[f"threads_{n}"] = summ
    for name in peer_objs:
        for n in THREADS:
            summ = by_key[f"{name}/{n}T"].summary()
            summ["ns_per_dense_mac"] = 1e9 * summ["median_s"] / (batch * macs * T)
            peers[name][f"threads_{n}"] = summ
    for n in THREADS:
        summ = by_key[f"chip{int(HEADLINE_RATE * 100)}-rate-input/{n}T"].summary()
        summ["ns_per_synop"] = 1e9 * summ["median_s"] / (batch * rate_entry["synops_per_img"])
        rate_entry[f"threads_{n}"] = summ
    chip.registers.theta[:] = tuned_theta[HEADLINE_RATE]

    # linear fit of time per image vs synops per image over the activities
    fit = {}
    for n in THREADS:
        xs = np.array([chip_res[k]["synops_per_img"] for k in chip_res])
        ys = np.array([chip_res[k][f"threads_{n}"]["median_s"] / batch for k in chip_res])
        slope, intercept = np.polyfit(xs, ys, 1)
        pred = slope * xs + intercept
        ss_res = float(((ys - pred) ** 2).sum())
        ss_tot = float(((ys - ys.mean()) ** 2).sum())
        fit[f"threads_{n}"] = {"ns_per_synop": float(slope * 1e9), "intercept_ms_per_img": float(intercept * 1e3),
                               "r2": 1 - ss_res / ss_tot if ss_tot > 0 else None,
                               "points_synops_s_per_img": [[float(a), float(b)] for a, b in zip(xs, ys)]}
    result["chip"] = {"results": chip_res, "rate_coded_input": rate_entry, "time_vs_synops_fit": fit,
                      "theta_initial": {n: int(base_theta[chip.layer_slice(n)][0]) for n in chip.layer_names}}
    result["peers"] = {"info": peer_info, "results": peers}

    # ---- ratios and targets
    head_key = keys[HEADLINE_RATE]
    head = chip_res[head_key]
    ratios: dict = {}
    for n in THREADS:
        chip_m = by_key[f"chip{int(HEADLINE_RATE * 100)}/{n}T"]
        chip_ips = head[f"threads_{n}"]["img_s"]
        best_name, best_ips = None, 0.0
        for pname in peer_objs:
            ips = peers[pname][f"threads_{n}"]["img_s"]
            if ips > best_ips:
                best_name, best_ips = pname, ips
        entry = {"chip_img_s": chip_ips, "faster_peer": best_name, "faster_peer_img_s": best_ips or None,
                 "chip_over_faster_peer": chip_ips / best_ips if best_ips else None}
        if best_name:
            peer_m = by_key[f"{best_name}/{n}T"]
            per_round = [p / c for p, c in zip(peer_m.wall, chip_m.wall)]   # same round: similar load
            entry["per_round_ratios"] = [round(r, 3) for r in per_round]
            entry["median_per_round_ratio"] = median(per_round)
            entry["chip_over_faster_peer_best_times"] = (head[f"threads_{n}"]["img_s_best"]
                                                         / peers[best_name][f"threads_{n}"]["img_s_best"])
        if n == 1 and peer_objs:
            # contention-robust variant: images per CPU-second (1 thread only)
            cpu_peer = max(peer_objs, key=lambda p: peers[p]["threads_1"]["img_per_cpu_s"] or 0)
            chip_cpu = head["threads_1"]["img_per_cpu_s"]
            peer_cpu = peers[cpu_peer]["threads_1"]["img_per_cpu_s"]
            entry["per_cpu_second"] = {"chip_img_per_cpu_s": chip_cpu, "faster_peer": cpu_peer,
                                       "faster_peer_img_per_cpu_s": peer_cpu,
                                       "chip_over_faster_peer": chip_cpu / peer_cpu if chip_cpu and peer_cpu else None}
        ratios[f"threads_{n}"] = entry
    result["ratios"] = ratios
    per_core = head["threads_1"]["img_s"]
    speedups = [r["chip_over_faster_peer"] for r in ratios.values() if r["chip_over_faster_peer"] is not None]
    result["targets"] = {
        f"chip_img_s_per_core_1thread >= {TARGET_IMG_S_PER_CORE:g}": bool(per_core >= TARGET_IMG_S_PER_CORE),
        # None when no peer could be timed (--no-peers, or every peer failed)
        f"chip >= {TARGET_SPEEDUP:g}x faster peer": bool(min(speedups) >= TARGET_SPEEDUP) if speedups else None,
        "details": {"chip_img_s_per_core_1thread": per_core,
                    "chip_img_per_cpu_s_1thread": head["threads_1"]["img_per_cpu_s"],
                    "min_speedup_over_faster_peer": min(speedups) if speedups else None,
                    "speedup_evaluated_at_threads": list(THREADS),
                    "activity_within_tolerance": bool(all(e["all_within_tolerance"] for e in chip_res.values()))},
    }
    result["machine"]["loadavg_at_end"] = loadavg()
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    write_json(out_path, result)
    plot(result, out_path.with_suffix(".png"))
    print_table(result)
    print(f"\nwrote {out_path} and {out_path.with_suffix('.png').name} ({result['wall_s']} s)")
    return 0


def plot(result: dict, path: Path) -> None:
    """Left: images per second of every configuration (1 and 2 threads). Right: the chip's time per
    image against its synaptic events per image at 5/10/20 % activity, with the linear fit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chip = result["chip"]["results"]
    rows = [(f"chip {e['target_rate']:.0%}", e) for e in chip.values()]
    if result["chip"].get("rate_coded_input"):
        rows.append(("chip 10%\nrate input", result["chip"]["rate_coded_input"]))
    rows += [(name, p) for name, p in result["peers"]["results"].items() if "threads_1" in p]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1.6, 1]})
    x = np.arange(len(rows))
    for dx, n in ((-0.2, 1), (0.2, 2)):
        ax.bar(x + dx, [e.get(f"threads_{n}", {}).get("img_s", 0) for _, e in rows], width=0.4,
               label=f"{n} thread{'s' if n > 1 else ''}")
    ax.axhline(TARGET_IMG_S_PER_CORE, color="k", ls=":", lw=1, label=f"target {TARGET_IMG_S_PER_CORE:g} img/s per core")
    ax.set_xticks(x, [name for name, _ in rows], fontsize=7)
    ax.set_ylabel("images per second")
    ax.legend(fontsize=7)
    ax.set_title(f"VGG-11, T={result['config']['time_steps']}, CIFAR-10 size (median of rounds)", fontsize=9)
    for n, marker in ((1, "o"), (2, "s")):
        fit = result["chip"]["time_vs_synops_fit"].get(f"threads_{n}")
        if not fit:
            continue
        pts = np.array(fit["points_synops_s_per_img"])
        xs = pts[:, 0] / 1e6
        bx.plot(xs, pts[:, 1] * 1e3, marker, label=f"{n} thread{'s' if n > 1 else ''}")
        line = np.linspace(0, xs.max() * 1.05, 20)
        bx.plot(line, fit["intercept_ms_per_img"] + fit["ns_per_synop"] * line, "k--", lw=0.8)   # ns x 1e6 events = ms
    bx.set_xlabel("synaptic events per image (millions)")
    bx.set_ylabel("ms per image")
    bx.set_xlim(left=0)
    bx.set_ylim(bottom=0)
    bx.legend(fontsize=7)
    bx.set_title("chip time is linear in spikes (5/10/20 % activity)", fontsize=9)
    save_figure(fig, path)


def save_figure(fig, path: Path) -> None:
    """Lay out `fig`, write it as a PNG atomically, and close it (the benchmarks' figures)."""
    import matplotlib.pyplot as plt

    from chipsim.io.atomic import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def blas_info() -> list:
    try:
        from threadpoolctl import threadpool_info
        return [{k: v for k, v in d.items() if k in ("user_api", "internal_api", "version", "architecture",
                                                    "num_threads", "filepath")} for d in threadpool_info()]
    except Exception as exc:
        return [f"{type(exc).__name__}: {exc}"]


def print_table(result: dict) -> None:
    chip = result["chip"]["results"]
    nan = float("nan")

    def ips(d, n):
        t = d.get(f"threads_{n}")
        return (t["img_s"], t["cpu_per_wall"] or nan) if t else (nan, nan)

    print(f"\n{'config':24s} {'rate':>6s} {'Mop/img':>8s} {'img/s 1T':>9s} {'(cpu)':>5s} {'img/s 2T':>9s} "
          f"{'(cpu)':>5s} {'ns/op 1T':>9s}")
    for e in chip.values():
        (i1, c1), (i2, c2) = ips(e, 1), ips(e, 2)
        t1 = e.get("threads_1", {})
        print(f"{'chip @ ' + format(e['target_rate'], '.0%'):24s} {e['mean_hidden_rate']:6.3f} "
              f"{e['synops_per_img'] / 1e6:8.1f} {i1:9.2f} {c1:5.2f} {i2:9.2f} {c2:5.2f} "
              f"{t1.get('ns_per_synop', nan):9.4f}")
    e = result["chip"].get("rate_coded_input")
    if e:
        (i1, c1), (i2, c2) = ips(e, 1), ips(e, 2)
        print(f"{'chip @ 10%, rate input':24s} {e['mean_hidden_rate']:6.3f} {e['synops_per_img'] / 1e6:8.1f} "
              f"{i1:9.2f} {c1:5.2f} {i2:9.2f} {c2:5.2f} {e.get('threads_1', {}).get('ns_per_synop', nan):9.4f}")
    macs = result["peers"]["info"]["dense_macs_per_img"]
    for name, p in result["peers"]["results"].items():
        if "threads_1" not in p:
            print(f"{name:24s} error: {p.get('error', '?')[:70]}")
            continue
        (i1, c1), (i2, c2) = ips(p, 1), ips(p, 2)
        print(f"{name:24s} {p['mean_hidden_rate']:6.3f} {macs / 1e6:8.1f} {i1:9.2f} {c1:5.2f} {i2:9.2f} {c2:5.2f} "
              f"{p['threads_1']['ns_per_dense_mac']:9.4f}")
    print("(chip ops = synaptic events; peer ops = dense MACs; cpu = process CPU time / wall time)")
    for n, f in result["chip"]["time_vs_synops_fit"].items():
        if f["r2"] is None:
            print(f"chip time fit ({n}): degenerate")
        else:
            print(f"chip time fit ({n}): {f['ns_per_synop']:.4f} ns/synop x synops + "
                  f"{f['intercept_ms_per_img']:.2f} ms/img  (r2 {f['r2']:.3f})")
    for n, r in result["ratios"].items():
        if r["chip_over_faster_peer"]:
            print(f"ratio {n}: chip {r['chip_img_s']:.2f} / {r['faster_peer']} {r['faster_peer_img_s']:.2f} img/s "
                  f"= {r['chip_over_faster_peer']:.2f}x (median of per-round ratios {r['median_per_round_ratio']:.2f}x)")
    r1 = result["ratios"].get("threads_1", {}).get("per_cpu_second")
    if r1 and r1["chip_over_faster_peer"]:
        print(f"per CPU-second, 1 thread: chip {r1['chip_img_per_cpu_s']:.2f} / {r1['faster_peer']} "
              f"{r1['faster_peer_img_per_cpu_s']:.2f} img = {r1['chip_over_faster_peer']:.2f}x")
    for k, v in result["targets"].items():
        if k != "details":
            print(f"target {k}: {v}")


if __name__ == "__main__":
    sys.exit(main())
