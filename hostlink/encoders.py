"""Spike encoders: images -> what the host sends to the chip's first layer.

All encoders work in chip input order (y, x, c) and are keyed by the global
sample index, so a sample's input is the same whatever batch it travels in.

* `rate`:   Bernoulli spikes, P(spike) = max_rate * x / pixel_max per tick,
            drawn from a counter-based hash of (seed key, sample, tick, input):
            an integer comparison, so exact and reproducible.
* `if`:     deterministic integrate-and-fire (sigma-delta): v += x each tick,
            spike and subtract pixel_max when v >= pixel_max.
* `direct`: the multi-bit pixel value itself, held on the input lines for all
            T ticks (sent once per sample).
Spikes travel bit-packed (np.packbits order), T x ceil(n_in / 8) bytes a sample.
"""
from __future__ import annotations

import numpy as np
from numba import njit, uint64

from chipsim.core.kernels.rng import hash4


def to_chip_order(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N, H * W * C): the chip's (y, x, c) input order."""
    n = images.shape[0]
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1)).reshape(n, -1)


@njit(nogil=True, cache=True)
def _rate_kernel(x, sample_ids, key, T, pixel_max, max_rate, out):
    n, n_in = x.shape
    for b in range(n):
        sid = sample_ids[b]
        for t in range(T):
            for j in range(n_in):
                # P = max_rate * x / pixel_max as a 32-bit integer threshold
                p = uint64(max_rate * x[b, j] / pixel_max * 4294967296.0)
                r = hash4(key, sid, t, j) >> uint64(32)
                out[b, t, j] = 1 if r < p else 0


@njit(nogil=True, cache=True)
def _if_kernel(x, T, pixel_max, out):
    n, n_in = x.shape
    for b in range(n):
        for j in range(n_in):
            v = 0
            for t in range(T):
                v += x[b, j]
                if v >= pixel_max:
                    out[b, t, j] = 1
                    v -= pixel_max
                else:
                    out[b, t, j] = 0


class Encoder:
    """Turns a batch of images into the chip's input; `host_bytes` is what crosses the link."""

    def __init__(self, kind: str, time_steps: int, pixel_max: int, input_bits: int = 8,
                 max_rate: float = 1.0, key: int = 0):
        if kind not in ("rate", "if", "direct"):
            raise ValueError(f"encoder.kind: expected 'rate', 'if' or 'direct', got {kind!r}")
        if kind == "direct" and pixel_max > (1 << input_bits) - 1:
            raise ValueError(f"encoder.input_bits: {input_bits} bits cannot carry pixel values up to "
                             f"{pixel_max}; expected input_bits >= {int(pixel_max).bit_length()}")
        self.kind = kind
        self.T = time_steps
        self.pixel_max = pixel_max
        self.input_bits = input_bits
        self.max_rate = max_rate
        self.key = np.uint64(key)

    def encode(self, images: np.ndarray, sample_ids: np.ndarray) -> np.ndarray:
        x = to_chip_order(images).astype(np.int32)
        if self.kind == "direct":
            return x
        spikes = np.empty((x.shape[0], self.T, x.shape[1]), np.uint8)
        if self.kind == "rate":
            _rate_kernel(x, sample_ids.astype(np.int64), self.key, self.T, float(self.pixel_max),
                         self.max_rate, spikes)
        else:
            _if_kernel(x, self.T, self.pixel_max, spikes)
        return np.packbits(spikes, axis=2)

    def host_bytes(self, n_inputs: int) -> int:
        """Bytes sent host -> chip per sample."""
        if self.kind == "direct":
            return n_inputs * ((self.input_bits + 7) // 8)
        return self.T * ((n_inputs + 7) // 8)
