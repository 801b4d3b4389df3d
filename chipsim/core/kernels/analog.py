"""Analog crossbar reads: each tile's column partial sums, read noise on each column current, column ADCs.

A weighted layer is read here instead of by the exact event-driven reads of
crossbar.py when the chip has column ADCs (`chip.adc_bits`, `chip.adc_range`)
or read noise (`--noise read=S`, noise/read.py). For output position p, row
band b (crossbar rows [b R, (b + 1) R), R = tile_rows: one tile row of the
crossbar, read with all its column tiles) and column o:

    s_pbo = sum_{active rows j in band b} W[j, o] x_j      x_j = 1 (a spike) or the input value / 2^F
    a_pbo = s_pbo + sigma sqrt(sum_j x_j^2) xi_pbo         read noise, sigma in weight LSBs per active cell
    y_pbo = round(range q / H),  q = clip(round(a_pbo H / range), -H, H - 1)    with an ADC, H = 2^(adc_bits-1)
          = round(a_pbo)                                                        without
    I_po  = bias_o + sum_b y_pbo                           (the digital accumulation of the tiles' outputs)

range is the layer's full scale in its input units (layout.ADC_RANGE):
chip.adc_range times the input's full-scale value, 1 for spikes and
2^input_bits - 1 for the direct encoder's pixels (the events encoder's cap for
counts). The rows are driven at their value over full scale (a DAC level), so
one ADC design with full scale adc_range weight LSBs at full-scale input
serves every layer; the digital side rescales its code. Thermally perturbed
spikes (about 1) keep a spike layer's range.

round(v) = floor(v + 1/2) throughout. Without noise and with F = 0 the ADC is
integer arithmetic, q = floor((2 s H + range) / (2 range)) and y = floor((2 q
range + H) / (2 H)), so it is exact; with noise or fraction bits a_pbo is a
float64 (exact for the integer part below 2^53) and q = floor(a H / range + 1/2).
The bias register is added digitally, after the ADCs. Precision: s in int64,
a in float64, q and y in int64, I in the int32 current register (the host
bounds it: chip.py, Chip.narrow_datapath, and noise/read.py).

Read noise is per cell and per read in the model: every active cell j adds an
independent N(0, (sigma x_j)^2) to its column's current on every read. Their
sum over a band is exactly N(0, sigma^2 sum_j x_j^2), so it is drawn once per
column current (sample, tick, position, band, column) from a counter-based
hash: the same distribution for fan-in / R times fewer draws than one per cell,
still independent of batch size, threads and order. Deviations: xi is the
Irwin-Hall draw of kernels/rng.py (variance 1, |xi| <= 3.46), and a single
cell's own noise is not a separate quantity.

Multi-bit inputs (the direct encoder's pixels, event counts, thermally
perturbed inputs) drive the rows as amplitudes (pulse width or DAC level), one
conversion per column per tile read, as costs.py prices it; bit-serial reads
with one conversion per input bit plane are not modelled.

Counts: the same input events, synaptic events, tile activations and
busiest row band's reads (C_TILE_BUSIEST) as the exact reads, plus ADC
conversions and clips, read-noise draws and the sum of their squares
(layout.C_ADC_*, C_READ_*).
"""
import numpy as np
from numba import njit

from .crossbar import index_events, window_rows
from .layout import (C_ADC_CLIP, C_ADC_CONV, C_IN_EVENTS, C_READ_DRAWS, C_READ_SQ, C_SYN_AC, C_SYN_MAC,
                     C_TILE_ACT, C_TILE_BUSIEST)
from .rng import fast_normal, lane_bits


@njit(inline="always", cache=True)
def adc_code(s, H, rng):
    """The ADC code of an exact integer partial sum s: round(s H / range), in integer arithmetic."""
    return (2 * s * H + rng) // (2 * rng)


@njit(inline="always", cache=True)
def adc_value(q, H, rng):
    """The digital value of code q in whole LSBs: round(q range / H)."""
    return (2 * q * rng + H) // (2 * H)


@njit(nogil=True, cache=True)
def convert_band(c_row, part, ssq, frac_bits, sigma, tkey, lane0, adc_half, adc_range, counters):
    """c_row += the converted column currents of one tile read: part (int64, out_c) holds the band's exact
    column sums in units of 2^-frac_bits LSB, ssq the sum of the squared input values (same units squared)."""
    out_c = c_row.shape[0]
    H = np.int64(adc_half)
    rng = np.int64(adc_range)
    analog = sigma > 0.0 or frac_bits > 0
    scale = 1.0 / np.float64(np.int64(1) << frac_bits)
    sd = sigma * np.sqrt(np.float64(ssq)) * scale
    sq = np.int64(0)
    for o in range(out_c):
        if analog:
            a = np.float64(part[o]) * scale
            if sigma > 0.0:
                z = sd * fast_normal(lane_bits(tkey, lane0 + o))
                a += z
                sq += np.int64(np.floor(z * z * 256.0 + 0.5))
            if H > 0:
                q = np.int64(np.floor(a * np.float64(H) / np.float64(rng) + 0.5))
            else:
                y = np.int64(np.floor(a + 0.5))
        elif H > 0:
            q = adc_code(part[o], H, rng)
        else:
            y = part[o]
        if H > 0:
            if q > H - 1:
                q = H - 1
                counters[C_ADC_CLIP] += 1
            elif q < -H:
                q = -H
                counters[C_ADC_CLIP] += 1
            y = adc_value(q, H, rng)
        c_row[o] = np.int32(np.int64(c_row[o]) + y)
    if H > 0:
        counters[C_ADC_CONV] += out_c
    if sigma > 0.0:
        counters[C_READ_DRAWS] += out_c
        counters[C_READ_SQ] += sq


@njit(nogil=True, cache=True)
def read_bands(c_row, Wm, rows, which, values, n, multibit, pos, tile_rows, row_bands, part, frac_bits, sigma,
               tkey, adc_half, adc_range, counters, band_reads):
    """c_row += sum over the row bands of the ascending active rows rows[0:n] of their converted column
    sums (convert_band); `which[r]` indexes row r's input value when `multibit`. Returns the bands read,
    each one's read added to band_reads[band]."""
    out_c = c_row.shape[0]
    bands = 0
    r = 0
    while r < n:
        band = rows[r] // tile_rows
        edge = (band + 1) * tile_rows
        part[:] = 0
        ssq = np.int64(0)
        while r < n and rows[r] < edge:
            w_row = Wm[rows[r]]
            if multibit:
                v = np.int64(values[which[r]])
                for o in range(out_c):
                    part[o] += np.int64(w_row[o]) * v
                ssq += v * v
            else:
                for o in range(out_c):
                    part[o] += w_row[o]
                ssq += np.int64(1) << (2 * frac_bits)
            r += 1
        convert_band(c_row, part, ssq, frac_bits, sigma, tkey, (pos * row_bands + band) * out_c, adc_half,
                     adc_range, counters)
        band_reads[band] += 1
        bands += 1
    return bands


@njit(nogil=True, cache=True)
def analog_read(cur, W, w_off, bias, b_off, is_conv, fan_in, in_c, in_h, in_w, out_c, out_h, out_w, k, stride,
                pad, events, values, n_events, multibit, frac_bits, sigma, tkey, adc_half, adc_range, tile_rows,
                row_bands, col_tiles, counters):
    """cur <- bias + the analog read of a weighted layer (module docstring): every output position gathers
    its active rows (fc: the input events; conv: its window's rows, ascending), band by band.

    `values` are the inputs' values with `frac_bits` fraction bits when `multibit` (else every input is a
    spike of value 2^frac_bits, i.e. 1); `sigma` the read noise in weight LSBs per active cell under tick key
    `tkey`; adc_half = 2^(adc_bits - 1) (0: no ADC)."""
    Wm = W[w_off:w_off + fan_in * out_c].reshape(fan_in, out_c)
    positions = out_h * out_w if is_conv else 1
    rows = np.empty(fan_in, np.int32)
    which = np.empty(fan_in, np.int32)
    part = np.empty(out_c, np.int64)
    band_reads = np.zeros(max(row_bands, 1), np.int64)      # reads of each row band (the busiest bounds timing)
    first = np.empty(in_h * in_w + 1 if is_conv else 1, np.int64)
    if is_conv:
        index_events(events, n_events, in_c, in_h * in_w, first)
    else:
        for r in range(n_events):
            rows[r] = events[r]
            which[r] = r
    targets = 0
    bands = 0
    for pos in range(positions):
        c_row = cur[pos * out_c:(pos + 1) * out_c]
        for o in range(out_c):
            c_row[o] = bias[b_off + o]
        if is_conv:
            oy = pos // out_w
            n = window_rows(oy, pos - oy * out_w, k, stride, pad, in_h, in_w, in_c, events, first, rows, which,
                            multibit)
        else:
            n = n_events
        if n == 0:
            continue
        bands += read_bands(c_row, Wm, rows, which, values, n, multibit, pos, tile_rows, row_bands, part,
                            frac_bits, sigma, tkey, adc_half, adc_range, counters, band_reads)
        targets += n
    counters[C_IN_EVENTS] += n_events
    counters[C_SYN_MAC if multibit else C_SYN_AC] += targets * out_c
    counters[C_TILE_ACT] += bands * col_tiles
    counters[C_TILE_BUSIEST] = max(counters[C_TILE_BUSIEST], band_reads.max())
