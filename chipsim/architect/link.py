"""The host link as a part of the chip's timing: batches down, results up, double-buffered.

Parameters (`chip.costs`): `link_gbit_s` (each direction, full duplex; 0 =
unlimited), `link_latency_ns` (fixed cost of one batch transfer) and
`link_buffers` (input batches the chip holds: 2 is the double buffering that
chipsim.hostlink.stream.BatchStream does in software). Times are in chip cycles.

Traffic of batch b with n_b samples (the byte counts the run records):
    down  = n_b x (input bytes per sample + target bytes per sample)
    up    = n_b x result bytes per sample + counter registers (layers x counters x 4 bytes)
    transfer cycles = ceil(latency) + ceil(bytes / bytes per cycle)

Schedule (batch b, k = link_buffers):
    down_start[b] = max(down_end[b-1], chip_end[b-k])   a buffer is free once the chip is done with it
    chip_start[b] = max(chip_end[b-1], down_end[b])     the chip waits for its input (stall cause `link`)
    up_start[b]   = max(up_end[b-1], chip_end[b])
The run is link-bound when a link direction is busier than the chip. In steady
state each batch costs max(down(n), chip(n), up(n)); the chip stops being
bounded by the link at the smallest batch size n with down(n) <= n c and
up(n) <= n c (c = mean cycles per sample): the latency is amortised over the
batch, the bandwidth never is.
"""
from __future__ import annotations

import math

import numpy as np

from chipsim.core.kernels import layout as K

#: largest batch size the link-bound search tries
MAX_BATCH = 1 << 16


def bytes_per_cycle(costs, clock_mhz: float) -> float:
    """Link bytes per chip cycle; inf when the bandwidth is unlimited (0)."""
    if costs.link_gbit_s <= 0:
        return math.inf
    return costs.link_gbit_s * 1e9 / 8.0 / (clock_mhz * 1e6)


def transfer_cycles(costs, clock_mhz: float, nbytes) -> np.ndarray:
    """Cycles of batch transfers of `nbytes` (array): latency plus bytes over bandwidth, each rounded up."""
    nbytes = np.asarray(nbytes, np.float64)
    lat = math.ceil(costs.link_latency_ns * clock_mhz / 1000.0 - 1e-9)
    bpc = bytes_per_cycle(costs, clock_mhz)
    moving = np.zeros_like(nbytes) if math.isinf(bpc) else np.ceil(nbytes / bpc - 1e-9)
    return np.where(nbytes > 0, lat + moving, 0).astype(np.int64)


def counter_bytes(n_layers: int) -> int:
    """Bytes of the counter registers read back per batch (32-bit registers)."""
    return n_layers * K.N_COUNTERS * 4


def link_schedule(costs, clock_mhz: float, sample_cycles: np.ndarray, batch_size: int, down_per_sample: int,
                  up_per_sample: int, up_per_batch: int) -> dict:
    """Schedule the batches of a run (samples in order, `batch_size` each) on the link and the chip."""
    cyc = np.asarray(sample_cycles, np.int64)
    n = len(cyc)
    bs = max(1, int(batch_size))
    starts = np.arange(0, n, bs)
    sizes = np.minimum(bs, n - starts)
    chip = np.add.reduceat(cyc, starts) if n else np.zeros(0, np.int64)
    down = transfer_cycles(costs, clock_mhz, sizes * down_per_sample)
    up = transfer_cycles(costs, clock_mhz, sizes * up_per_sample + up_per_batch)
    k = max(1, int(costs.link_buffers))
    nb = len(sizes)
    down_end = np.zeros(nb, np.int64)
    chip_end = np.zeros(nb, np.int64)
    up_end = np.zeros(nb, np.int64)
    chip_stall = 0
    link_wait = 0
    for b in range(nb):
        free = chip_end[b - k] if b >= k else 0
        prev_down = down_end[b - 1] if b else 0
        d0 = max(prev_down, free)
        link_wait += d0 - prev_down
        down_end[b] = d0 + down[b]
        prev_chip = chip_end[b - 1] if b else 0
        c0 = max(prev_chip, down_end[b])
        chip_stall += c0 - prev_chip
        chip_end[b] = c0 + chip[b]
        up_end[b] = max(up_end[b - 1] if b else 0, chip_end[b]) + up[b]
    total = int(up_end[-1]) if nb else 0
    busy_chip, busy_down, busy_up = int(chip.sum()), int(down.sum()), int(up.sum())
    bound = "link" if max(busy_down, busy_up) > busy_chip else "chip"
    mean = float(cyc.mean()) if n else 0.0
    return {
        "model": "chipsim/architect/link.py (full duplex, per-batch latency, link_buffers input batches)",
        "gbit_s": costs.link_gbit_s, "latency_ns": costs.link_latency_ns, "buffers": k, "batch_size": bs,
        "bytes_down_per_sample": int(down_per_sample), "bytes_up_per_sample": int(up_per_sample),
        "bytes_up_per_batch": int(up_per_batch),
        "total_cycles": total, "busy_cycles_chip": busy_chip, "busy_cycles_down": busy_down,
        "busy_cycles_up": busy_up,
        "chip_stall_cycles": int(chip_stall),          # the chip idle, waiting for input (the first batch included)
        "link_stall_cycles": int(link_wait),           # the link idle, waiting for a free input buffer
        "bound": bound,
        "link_bound_below_batch_size": link_bound_batch(costs, clock_mhz, mean, down_per_sample, up_per_sample,
                                                        up_per_batch),
    }


def link_bound_batch(costs, clock_mhz: float, mean_cycles: float, down_per_sample: int, up_per_sample: int,
                     up_per_batch: int) -> int | None:
    """Smallest batch size at which neither link direction is busier than the chip (None: none up to
    MAX_BATCH, the link's bandwidth bounds at any batch size); 1 when the link never bounds."""
    b = np.arange(1, MAX_BATCH + 1, dtype=np.int64)
    ok = (transfer_cycles(costs, clock_mhz, b * down_per_sample) <= b * mean_cycles) & \
         (transfer_cycles(costs, clock_mhz, b * up_per_sample + up_per_batch) <= b * mean_cycles)
    return int(b[np.argmax(ok)]) if ok.any() else None
