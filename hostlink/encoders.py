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
* `events`: address events of an event camera, binned into T ticks
            (:class:`EventEncoder`, kernel in hostlink/events/binning.py).
Frame spikes travel bit-packed (np.packbits order), T x ceil(n_in / 8) bytes a
sample; events travel as AER words (address bits + tick bits [+ count bits]).
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
        if kind not in ("rate", "if", "direct"):     # events: EventEncoder
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

    def host_link(self, n_inputs: int, n_samples: int) -> dict:
        """The host-link byte counts of `n_samples` samples (summary.json's host_link, less the stream)."""
        return {"bytes_in_per_sample": self.host_bytes(n_inputs), "bytes_in_total": self.host_bytes(n_inputs) * n_samples}


def _bits(n: int) -> int:
    """Bits that address n distinct values (at least 1)."""
    return max(1, (int(n) - 1).bit_length())


class EventEncoder:
    """The `events` encoder: a batch of recordings (an EventSet) -> packed spikes (B, T, ceil(n_in / 8)),
    or, with bin_value count, counts (B, T, n_in) int32 clipped at cap.

    Every encoded sample's counts (in_files, in_window, delivered, merged, clipped) are kept by sample
    index, so the totals do not depend on how samples were batched."""

    kind = "events"

    def __init__(self, config, time_steps: int, input_shape: tuple[int, int, int]):
        self.config = config
        self.T = int(time_steps)
        self.shape = tuple(int(v) for v in input_shape)        # (C, H', W')
        self.n_inputs = int(np.prod(self.shape))
        w = config.window_ms
        self.start_us = 0 if w is None else int(round(w[0] * 1000))
        self.length_us = -1 if w is None else max(1, int(round(w[1] * 1000)))
        self.counts = config.bin_value == "count"
        self._stats: dict[int, np.ndarray] = {}      # sample index -> its counts (ids may be sparse, 64-bit)

    def encode(self, events, sample_ids: np.ndarray) -> np.ndarray:
        from chipsim.hostlink.events.binning import N_STATS, bin_counts, bin_spikes

        ids = np.asarray(sample_ids, np.int64)
        B = len(events)
        if ids.shape != (B,):
            raise ValueError(f"sample_ids: expected shape ({B},), got {ids.shape}")
        c, h, w = self.shape
        sw, sh = self.config.sensor
        stats = np.zeros((B, N_STATS), np.int64)
        args = (events.x, events.y, events.t, events.p, events.offsets, sw, sh, c, h, w, self.T,
                self.start_us, self.length_us, self.config.binning == "count")
        if self.counts:
            out = np.zeros((B, self.T, self.n_inputs), np.int32)
            bin_counts(*args, self.config.cap, out, stats)
        else:
            out = np.zeros((B, self.T, (self.n_inputs + 7) // 8), np.uint8)
            bin_spikes(*args, out, stats)
        self._keep(ids, stats)
        return out

    def _keep(self, ids: np.ndarray, stats: np.ndarray) -> None:
        for i, row in zip(ids.tolist(), stats):
            self._stats[i] = row

    def sample_stats(self) -> np.ndarray:
        """(samples encoded, 5) int64: in_files, in_window, delivered, merged, clipped, by sample index."""
        if not self._stats:
            return np.zeros((0, 5), np.int64)
        return np.stack([self._stats[i] for i in sorted(self._stats)])

    def input_events(self) -> dict:
        """summary.json's input_events: in_window = delivered + merged, exactly."""
        tot = self.sample_stats().sum(axis=0)
        out = {"in_files": int(tot[0]), "in_window": int(tot[1]), "delivered": int(tot[2]), "merged": int(tot[3])}
        if self.counts:
            out["clipped"] = int(tot[4])
        return out

    @property
    def word_bits(self) -> dict:
        """Fields of one AER word: the input line's address, the tick, and with counts the count."""
        value = _bits(self.config.cap + 1) if self.counts else 0
        return {"address_bits": _bits(self.n_inputs), "tick_bits": _bits(self.T), "value_bits": value}

    def sample_bytes(self) -> np.ndarray:
        """Bytes per encoded sample: its delivered words, packed back to back, rounded up to whole bytes."""
        bits = sum(self.word_bits.values())
        return (self.sample_stats()[:, 2] * bits + 7) // 8

    def host_link(self, n_inputs: int, n_samples: int) -> dict:
        per = self.sample_bytes()
        total = int(per.sum())
        return {"bytes_in_per_sample": total / max(1, len(per)), "bytes_in_total": total,
                "aer": {"words": int(self.sample_stats()[:, 2].sum()), **self.word_bits,
                        "word_bits": sum(self.word_bits.values()),
                        "frame_bytes_per_sample": self.T * ((n_inputs + 7) // 8)}}

    @property
    def frame_max(self) -> int:
        """Largest value of `frames`: T ticks of at most cap each."""
        return self.T * (self.config.cap if self.counts else 1)

    def frames(self, events, batch: int = 256) -> np.ndarray:
        """(N, C, H', W') uint8 (uint16 past 255): each input's spikes (or counts) summed over the T ticks -- the rate image a
        frame-based teacher sees (x = frame / (T * cap) is the input's rate per tick)."""
        from chipsim.hostlink.events.binning import N_STATS, bin_counts

        c, h, w = self.shape
        n = len(events)
        out = np.zeros((n, h, w, c), np.uint16)
        cap = self.config.cap if self.counts else 1
        sw, sh = self.config.sensor
        for s in range(0, n, batch):
            part = events[np.arange(s, min(n, s + batch))]
            counts = np.zeros((len(part), self.T, self.n_inputs), np.int32)
            bin_counts(part.x, part.y, part.t, part.p, part.offsets, sw, sh, c, h, w, self.T, self.start_us,
                       self.length_us, self.config.binning == "count", cap, counts,
                       np.zeros((len(part), N_STATS), np.int64))
            out[s:s + len(part)] = counts.sum(axis=1).reshape(len(part), h, w, c)
        out = out.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(out, np.uint8 if self.frame_max <= 255 else np.uint16)


def make_encoder(net, pixel_max: int, key: int):
    """The encoder of `net` (frames: pixel depth `pixel_max`; events: the YAML's events settings)."""
    if net.encoder.kind == "events":
        return EventEncoder(net.encoder.events, net.time_steps, net.input_shape)
    return Encoder(net.encoder.kind, net.time_steps, pixel_max, net.encoder.input_bits, net.encoder.max_rate, key)
