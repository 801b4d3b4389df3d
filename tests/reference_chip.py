"""A plain, dense numpy re-implementation of the chip's forward pass (for tests only).

Written from the documented semantics, not from the kernels: no event lists,
no narrow accumulators, no crossbar matrices. Activations are kept in the
teacher layout (C, H, W); weights are used as stored in the weight files
(conv (out, in_c, k, k), fc (out, in) with `in` in (C, H, W) order). Only
when results are compared with the chip are they put in chip order (y, x, c).

Semantics implemented (one tick, one layer):

* input current  I = bias + W * x (conv: cross-correlation with zero padding and
  stride; fc: matrix-vector product over the (C, H, W)-flattened input), in int64;
  avg pooling: I = number of input spikes in the k x k window (fixed weight 1);
* membrane       subtract: U = leak(U) - theta * S_prev + I,
                 zero:     U = (S_prev ? 0 : leak(U)) + I,
                 memoryless (OR pooling): U = I (membrane cleared every tick);
  leak(u) = sign(u) * ((|u| * a) >> F); U saturates to the signed membrane range;
* spikes         S = U >= theta (never for a non-spiking potential-readout layer);
* counter        C = min(C + S, counter_max), saturations counted;
* delay          layer l sees layer l-1's spikes of tick t-1, the first layer the
                 host input of tick t-1 (nothing at tick 0; the bias still flows);
* readout        count: most spikes, ties by higher membrane, then lower index;
                 potential: highest membrane, ties by lower index.

Counters derived independently (per sample, tick, chip layer): see COUNTERS.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: counter columns this reference derives, in chipsim.core.kernels.layout.COUNTER_NAMES spelling
COUNTERS = (
    "spikes",
    "input_events",
    "synaptic_events_ac",
    "synaptic_events_mac",
    "membrane_updates",
    "membrane_saturations",
    "counter_saturations",
    "tile_activations",
    "tile_reads_busiest",
)
_IDX = {name: i for i, name in enumerate(COUNTERS)}


@dataclass
class RefResult:
    U: np.ndarray             #: (B, N) int64 final membrane, all chip layers, chip order
    C: np.ndarray             #: (B, N) int64 final spike counters
    spikes: np.ndarray        #: (B, T, N) uint8 spikes after every tick
    membrane: np.ndarray      #: (B, T, N) int64 membrane after every tick
    counters: np.ndarray      #: (B, T, L, len(COUNTERS)) int64
    predictions: np.ndarray   #: (B,) int64
    counts: np.ndarray        #: (B, classes) last layer's spike counters
    potentials: np.ndarray    #: (B, classes) last layer's final membrane
    layer_names: tuple        #: names of the chip layers (flatten removed)
    layer_sizes: tuple        #: neurons per chip layer


def to_chip(a: np.ndarray) -> np.ndarray:
    """(C, H, W) -> flat (y, x, c) order."""
    return np.ascontiguousarray(np.transpose(a, (1, 2, 0))).reshape(-1)


def from_chip(v: np.ndarray, shape) -> np.ndarray:
    """Flat (y, x, c) order -> (C, H, W)."""
    c, h, w = shape
    return np.ascontiguousarray(np.asarray(v).reshape(h, w, c).transpose(2, 0, 1))


def leak(u: np.ndarray, a: int, bits: int) -> np.ndarray:
    """sign(u) * ((|u| * a) >> bits), elementwise, in Python integers' semantics (int64 here)."""
    mag = (np.abs(u) * a) >> bits
    return np.where(u >= 0, mag, -mag)


def _conv_windows(x: np.ndarray, k: int, stride: int, pad: int, oh: int, ow: int):
    """Yield (oy, ox, patch) with patch = zero-padded x[:, window] of shape (C, k, k)."""
    c, h, w = x.shape
    xp = np.zeros((c, h + 2 * pad, w + 2 * pad), x.dtype)
    xp[:, pad:pad + h, pad:pad + w] = x
    for oy in range(oh):
        for ox in range(ow):
            y0, x0 = oy * stride, ox * stride
            yield oy, ox, xp[:, y0:y0 + k, x0:x0 + k]


class _Layer:
    """One chip layer with its registers, in the reference's own terms."""

    def __init__(self, cfg, net, lw, in_shape, last: bool):
        chip = net.chip
        self.cfg = cfg
        self.name = cfg.name
        self.kind = cfg.type if cfg.type != "pool" else "pool_" + cfg.pool
        self.in_shape = tuple(in_shape)          # shape of the activation actually received (pre-flatten)
        self.out_shape = tuple(cfg.out_shape)
        self.n = int(np.prod(self.out_shape))
        full = 1 << chip.leak_bits
        self.leak_bits = chip.leak_bits
        self.memoryless = False
        self.spiking = True
        if cfg.weighted:
            self.weight = np.asarray(lw.weight, np.int64)
            self.bias = np.asarray(lw.bias, np.int64)
            self.theta = int(lw.threshold)
            self.a = int(round(net.neuron.alpha * full)) if net.neuron.model == "LIF" else full
            self.reset = net.neuron.reset
            if last and net.readout == "potential":
                self.spiking = False
                self.a = full
            out_c = self.out_shape[0]
            self.col_tiles = math.ceil(out_c / chip.tile_cols)
        else:
            k = cfg.kernel
            self.theta = k * k if cfg.pool == "avg" else 1
            self.a = full
            self.reset = "subtract"
            self.memoryless = cfg.pool == "or"
        self.tile_rows = chip.tile_rows

    # ---------------------------------------------------------------- input current + read counters
    def read(self, x: np.ndarray, multibit: bool, row: np.ndarray) -> np.ndarray:
        """Input current (out_shape, int64) for input x (in_shape); adds the read counters to `row`."""
        active = x != 0
        n_events = int(active.sum())
        row[_IDX["input_events"]] += n_events
        syn = "synaptic_events_mac" if multibit else "synaptic_events_ac"
        oc, oh, ow = self.out_shape
        if self.kind == "fc":
            flat = x.reshape(-1)                               # teacher (C, H, W) flatten order
            cur = self.bias + self.weight @ flat
            row[_IDX[syn]] += n_events * oc
            chip_rows = np.nonzero(to_chip(active))[0]       # crossbar row = input's chip index
            band_reads = np.zeros(-(-flat.size // self.tile_rows), np.int64)
            band_reads[np.unique(chip_rows // self.tile_rows)] += 1     # one output position
            row[_IDX["tile_activations"]] += int(band_reads.sum()) * self.col_tiles
            row[_IDX["tile_reads_busiest"]] = int(band_reads.max())
            return cur.reshape(self.out_shape)
        if self.kind == "conv":
            k, s, p = self.cfg.kernel, self.cfg.stride, self.cfg.padding
            c_in = self.in_shape[0]
            # im2col row of (c, ky, kx) is (ky * k + kx) * C_in + c
            row_index = (np.arange(k)[None, :, None] * k + np.arange(k)[None, None, :]) * c_in \
                + np.arange(c_in)[:, None, None]
            cur = np.empty(self.out_shape, np.int64)
            targets = 0
            band_reads = np.zeros(-(-row_index.size // self.tile_rows), np.int64)   # reads of each row band
            act_windows = _conv_windows(active, k, s, p, oh, ow)
            for (oy, ox, patch), (_, _, amask) in zip(_conv_windows(x, k, s, p, oh, ow), act_windows):
                cur[:, oy, ox] = self.bias + np.tensordot(self.weight, patch, axes=([1, 2, 3], [0, 1, 2]))
                targets += int(amask.sum())
                band_reads[np.unique(row_index[amask] // self.tile_rows)] += 1
            row[_IDX[syn]] += targets * oc
            row[_IDX["tile_activations"]] += int(band_reads.sum()) * self.col_tiles
            row[_IDX["tile_reads_busiest"]] = int(band_reads.max())
            return cur
        # pooling: every input lies in exactly one k x k window (fan-out 1)
        k = self.cfg.kernel
        c, h, w = self.in_shape
        cur = x.reshape(c, h // k, k, w // k, k).sum(axis=(2, 4))
        row[_IDX[syn]] += n_events
        return cur

    # ---------------------------------------------------------------- neuron update
    def fire(self, U, S, C, cur, umin, umax, cmax, row):
        if self.memoryless:
            u = np.zeros_like(U)
        else:
            u = U.copy()
            if self.a != (1 << self.leak_bits):
                u = leak(u, self.a, self.leak_bits)
            if self.reset == "zero":
                u = np.where(S != 0, 0, u)
            else:
                u = u - self.theta * S.astype(np.int64)
        u = u + cur
        row[_IDX["membrane_saturations"]] += int((u > umax).sum() + (u < umin).sum())
        u = np.clip(u, umin, umax)
        s = (u >= self.theta) if self.spiking else np.zeros(u.shape, bool)
        c = C + s
        row[_IDX["counter_saturations"]] += int((c > cmax).sum())
        c = np.minimum(c, cmax)
        row[_IDX["spikes"]] += int(s.sum())
        row[_IDX["membrane_updates"]] += u.size
        return u, s.astype(np.int64), c


def _readout(counts: np.ndarray, pots: np.ndarray, mode: str) -> int:
    idx = range(len(pots))
    if mode == "potential":
        return max(idx, key=lambda i: (int(pots[i]), -i))
    return max(idx, key=lambda i: (int(counts[i]), int(pots[i]), -i))


def run_reference(net, bundle, inputs: np.ndarray) -> RefResult:
    """Run a batch through the reference.

    inputs: direct encoder: (B, n_in) integer values in chip input order (y, x, c);
            otherwise unpacked binary spikes (B, T, n_in) in chip input order.
    """
    chip = net.chip
    T = net.time_steps
    direct = net.encoder.kind == "direct"
    chip_layers = [layer for layer in net.layers if layer.type != "flatten"]
    layers = []
    shape = tuple(net.input_shape)
    for i, cfg in enumerate(chip_layers):
        lw = bundle.layers[cfg.name] if cfg.weighted else None
        layers.append(_Layer(cfg, net, lw, shape, i == len(chip_layers) - 1))
        shape = tuple(cfg.out_shape)
    L = len(layers)
    sizes = [layer.n for layer in layers]
    N = sum(sizes)
    offs = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    umin, umax = -(1 << (chip.membrane_bits - 1)), (1 << (chip.membrane_bits - 1)) - 1
    cmax = (1 << chip.counter_bits) - 1
    inputs = np.asarray(inputs)
    B = inputs.shape[0]

    out_U = np.zeros((B, N), np.int64)
    out_C = np.zeros((B, N), np.int64)
    rec_S = np.zeros((B, T, N), np.uint8)
    rec_U = np.zeros((B, T, N), np.int64)
    counters = np.zeros((B, T, L, len(COUNTERS)), np.int64)
    preds = np.zeros(B, np.int64)
    for b in range(B):
        U = [np.zeros(layer.out_shape, np.int64) for layer in layers]
        S = [np.zeros(layer.out_shape, np.int64) for layer in layers]
        C = [np.zeros(layer.out_shape, np.int64) for layer in layers]
        history = [[None] * T for _ in layers]          # spikes of each layer after each tick
        for t in range(T):
            for li, layer in enumerate(layers):
                row = counters[b, t, li]
                src_t = t - 1 if chip.delay else t
                if li == 0:
                    if src_t < 0:
                        x = np.zeros(layer.in_shape, np.int64)
                    elif direct:
                        x = from_chip(inputs[b], layer.in_shape).astype(np.int64)
                    else:
                        x = from_chip(inputs[b, src_t], layer.in_shape).astype(np.int64)
                    multibit = direct
                else:
                    x = history[li - 1][src_t] if src_t >= 0 else np.zeros(layer.in_shape, np.int64)
                    multibit = False
                cur = layer.read(x, multibit, row)
                U[li], S[li], C[li] = layer.fire(U[li], S[li], C[li], cur, umin, umax, cmax, row)
                history[li][t] = S[li]
            for li in range(L):
                sl = slice(offs[li], offs[li + 1])
                rec_S[b, t, sl] = to_chip(S[li])
                rec_U[b, t, sl] = to_chip(U[li])
        for li in range(L):
            sl = slice(offs[li], offs[li + 1])
            out_U[b, sl] = to_chip(U[li])
            out_C[b, sl] = to_chip(C[li])
        last = slice(offs[L - 1], offs[L])
        preds[b] = _readout(out_C[b, last], out_U[b, last], net.readout)
    last = slice(offs[L - 1], offs[L])
    return RefResult(out_U, out_C, rec_S, rec_U, counters, preds, out_C[:, last], out_U[:, last],
                     tuple(layer.name for layer in layers), tuple(sizes))
