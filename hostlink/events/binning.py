"""Binning address events into the chip's T ticks and input lines (the `events` encoder's kernel).

For recording b with events k in file order (timestamps non-decreasing):

* window: [lo, hi) with lo = t_first + start, hi = lo + length when the YAML
  sets ``window_ms: [start, length]``, else the whole recording,
  lo = t_first, hi = t_last + 1 (t_first, t_last: its first and last event);
* tick: by time, tick = (t_k - lo) * T // (hi - lo); by count, the m-th of
  the n in-window events goes to tick = m * T // n (equal event counts);
* input: x' = x * W' // W, y' = y * H' // H (downsampling sums the events of
  a block of sensor pixels), channel c = p with split polarity (0 = OFF,
  1 = ON), 0 when merged; line j = (y' * W' + x') * C + c, the chip's
  (y, x, c) order;
* value of a (tick, line) bin: `spike` -- one spike however many events fell
  in it; `count` -- the number of events, clipped at `cap`.

Counted per recording (int64): in_files (events decoded), in_window,
delivered (AER words the host sends: non-empty bins) and merged = in_window -
delivered (events folded into another's bin by binning or downsampling;
with `count`, `clipped` of them were lost to the cap). Nothing is drawn, so
the result is exact and the same for any batch or thread split.
"""
from __future__ import annotations

import numpy as np
from numba import njit

S_IN_FILES, S_IN_WINDOW, S_DELIVERED, S_MERGED, S_CLIPPED = range(5)
N_STATS = 5


@njit(nogil=True, cache=True)
def _window(t, s, e, start_us, length_us):
    """(first, end) event indices and (lo, span) of recording events s:e's window."""
    lo = t[s] + start_us
    hi = lo + length_us if length_us > 0 else t[e - 1] + 1
    a = s + np.searchsorted(t[s:e], lo)
    z = s + np.searchsorted(t[s:e], hi)
    return a, z, lo, hi - lo


@njit(nogil=True, cache=True)
def bin_spikes(x, y, t, p, offsets, sensor_w, sensor_h, out_c, out_h, out_w, T, start_us, length_us,
               by_count, packed, stats):
    """Spike bins, bit-packed in np.packbits order into `packed` (B, T, ceil(n_in / 8)) uint8, zeroed by
    the caller; per-recording counts into `stats` (B, N_STATS) int64."""
    B = offsets.shape[0] - 1
    for b in range(B):
        s, e = offsets[b], offsets[b + 1]
        stats[b, S_IN_FILES] = e - s
        if e == s:
            continue
        a, z, lo, span = _window(t, s, e, start_us, length_us)
        n = z - a
        delivered = 0
        for k in range(a, z):
            tick = (k - a) * T // n if by_count else (t[k] - lo) * T // span
            c = p[k] if out_c == 2 else 0
            j = ((y[k] * out_h // sensor_h) * out_w + x[k] * out_w // sensor_w) * out_c + c
            bit = np.uint8(0x80 >> (j & 7))
            byte = packed[b, tick, j >> 3]
            if byte & bit == 0:
                packed[b, tick, j >> 3] = byte | bit
                delivered += 1
        stats[b, S_IN_WINDOW] = n
        stats[b, S_DELIVERED] = delivered
        stats[b, S_MERGED] = n - delivered


@njit(nogil=True, cache=True)
def bin_counts(x, y, t, p, offsets, sensor_w, sensor_h, out_c, out_h, out_w, T, start_us, length_us,
               by_count, cap, counts, stats):
    """Event counts per bin, clipped at `cap`, into `counts` (B, T, n_in) int32 zeroed by the caller."""
    B = offsets.shape[0] - 1
    for b in range(B):
        s, e = offsets[b], offsets[b + 1]
        stats[b, S_IN_FILES] = e - s
        if e == s:
            continue
        a, z, lo, span = _window(t, s, e, start_us, length_us)
        n = z - a
        delivered = 0
        clipped = 0
        for k in range(a, z):
            tick = (k - a) * T // n if by_count else (t[k] - lo) * T // span
            c = p[k] if out_c == 2 else 0
            j = ((y[k] * out_h // sensor_h) * out_w + x[k] * out_w // sensor_w) * out_c + c
            v = counts[b, tick, j]
            if v == 0:
                delivered += 1
            if v < cap:
                counts[b, tick, j] = v + 1
            else:
                clipped += 1
        stats[b, S_IN_WINDOW] = n
        stats[b, S_DELIVERED] = delivered
        stats[b, S_MERGED] = n - delivered
        stats[b, S_CLIPPED] = clipped
