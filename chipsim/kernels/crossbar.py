"""Event-driven crossbar reads: work scales with the number of input events.

A weighted layer is a crossbar matrix of FAN_IN rows x OUT_C columns, stored
row-major in a flat array so one input event reads one contiguous row:
  * fc:   row j = input neuron j in chip order (y, x, c),
  * conv: row (ky * k + kx) * C_in + c, an im2col row in (ky, kx, c) order;
          a spike at (y, x, c) is scattered to every output position whose
          window covers (y, x).
Activations are laid out (y, x, c), channels innermost, so the C_out-long row
add is a contiguous vector add, and the spikes of one input position arrive
together (spike lists are sorted), so their rows are summed before they touch
the accumulator.

Exact narrow accumulation: rows are added into `acc` (int16 when the weights
are <= 8 bits and the input is binary); each output position counts the rows
it has received and flushes `acc` into the int32 current `cur` before
`limit = 32767 // weight_max` rows could overflow it. The result equals int32
accumulation bit for bit; it only halves the memory traffic.

Tile activations: a crossbar tile (row band x column tile) is read for an
output position in a tick when at least one of its rows is active. `marks`
(int32 scratch) with a per-(tick, layer) `stamp` avoids clearing it.
"""
import numpy as np
from numba import njit

from .layout import C_IN_EVENTS, C_SYN_AC, C_SYN_MAC, C_TILE_ACT


@njit(nogil=True, cache=True)
def init_current(cur, acc, bias, b_off, positions, out_c):
    """cur <- bias broadcast over positions (one bias register per output channel); acc <- 0."""
    b_row = bias[b_off:b_off + out_c]
    for p in range(positions):
        c_row = cur[p * out_c:(p + 1) * out_c]
        for o in range(out_c):
            c_row[o] = b_row[o]
    acc[:positions * out_c] = 0


@njit(nogil=True, cache=True)
def add_rows(a_row, Wm, base, rows, start, stop):
    """a_row += sum of the crossbar rows Wm[base + rows[r]] for r in [start, stop).

    Up to eight rows are summed in registers before one load/store of the
    accumulator (|sum of eight 8-bit weights| < 2^15; the flush limit keeps
    the accumulator itself exact)."""
    out_c = a_row.shape[0]
    r = start
    while r + 8 <= stop:
        w0 = Wm[base + rows[r]]
        w1 = Wm[base + rows[r + 1]]
        w2 = Wm[base + rows[r + 2]]
        w3 = Wm[base + rows[r + 3]]
        w4 = Wm[base + rows[r + 4]]
        w5 = Wm[base + rows[r + 5]]
        w6 = Wm[base + rows[r + 6]]
        w7 = Wm[base + rows[r + 7]]
        for o in range(out_c):
            a_row[o] += ((w0[o] + w1[o]) + (w2[o] + w3[o])) + ((w4[o] + w5[o]) + (w6[o] + w7[o]))
        r += 8
    while r + 2 <= stop:
        w0 = Wm[base + rows[r]]
        w1 = Wm[base + rows[r + 1]]
        for o in range(out_c):
            a_row[o] += w0[o] + w1[o]
        r += 2
    if r < stop:
        w0 = Wm[base + rows[r]]
        for o in range(out_c):
            a_row[o] += w0[o]


@njit(nogil=True, cache=True)
def add_rows_checked(cur2, acc2, fill, pos, Wm, base, rows, start, stop, limit):
    """add_rows into output position `pos`, flushing acc -> cur before `limit` rows are exceeded."""
    a_row = acc2[pos]
    r = start
    while r < stop:
        room = limit - fill[pos]
        if room <= 0:
            c_row = cur2[pos]
            for o in range(a_row.shape[0]):
                c_row[o] += a_row[o]
                a_row[o] = 0
            fill[pos] = 0
            room = limit
        chunk = min(room, stop - r)
        add_rows(a_row, Wm, base, rows, r, r + chunk)
        fill[pos] += chunk
        r += chunk


@njit(nogil=True, cache=True)
def count_bands(rows, start, stop, row_base, tile_rows, marks, mark_base, stamp):
    """Mark the row bands of rows row_base + rows[r] (ascending); return how many were new."""
    lo = (row_base + rows[start]) // tile_rows
    hi = (row_base + rows[stop - 1]) // tile_rows
    new = 0
    if lo == hi:  # the common case: all rows in one band
        if marks[mark_base + lo] != stamp:
            marks[mark_base + lo] = stamp
            new = 1
        return new
    for r in range(start, stop):
        m = mark_base + (row_base + rows[r]) // tile_rows
        if marks[m] != stamp:
            marks[m] = stamp
            new += 1
    return new


@njit(nogil=True, cache=True)
def window_targets(y, x, k, stride, pad, out_h, out_w, pos_out, kk_out):
    """Output positions reached by an input at (y, x), with the kernel offset kk = ky * k + kx
    that connects them; returns how many (edges and stride taken into account)."""
    n = 0
    for ky in range(k):
        ny = y + pad - ky
        if ny < 0 or ny % stride != 0:
            continue
        oy = ny // stride
        if oy >= out_h:
            continue
        for kx in range(k):
            nx = x + pad - kx
            if nx < 0 or nx % stride != 0:
                continue
            ox = nx // stride
            if ox >= out_w:
                continue
            pos_out[n] = oy * out_w + ox
            kk_out[n] = ky * k + kx
            n += 1
    return n


@njit(nogil=True, cache=True)
def fc_read(cur, acc, fill, W, w_off, fan_in, out_c, events, n_events, limit, tile_rows, col_tiles,
            rows, marks, stamp, counters):
    """Binary input: cur + acc += sum over input spikes j of crossbar row j."""
    Wm = W[w_off:w_off + fan_in * out_c].reshape(fan_in, out_c)
    for e in range(n_events):
        rows[e] = events[e]
    fill[0] = 0
    if n_events > 0:
        add_rows_checked(cur[:out_c].reshape(1, out_c), acc[:out_c].reshape(1, out_c), fill, 0, Wm,
                         0, rows, 0, n_events, limit)
        bands = count_bands(rows, 0, n_events, 0, tile_rows, marks, 0, stamp)
        counters[C_TILE_ACT] += bands * col_tiles
    counters[C_IN_EVENTS] += n_events
    counters[C_SYN_AC] += n_events * out_c


@njit(nogil=True, cache=True)
def conv_read(cur, acc, fill, W, w_off, in_c, in_w, out_c, out_h, out_w, k, stride, pad, events,
              n_events, limit, tile_rows, row_bands, col_tiles, rows, marks, stamp, counters):
    """Binary input: scatter each input position's active channels into the outputs it reaches."""
    positions = out_h * out_w
    Wm = W[w_off:w_off + k * k * in_c * out_c].reshape(k * k * in_c, out_c)
    cur2 = cur[:positions * out_c].reshape(positions, out_c)
    acc2 = acc[:positions * out_c].reshape(positions, out_c)
    fill[:positions] = 0
    for e in range(n_events):
        rows[e] = events[e] % in_c        # channel; the row is (ky * k + kx) * in_c + channel
    targets = 0
    bands = 0
    pos_t = np.empty(k * k, np.int64)
    kk_t = np.empty(k * k, np.int64)
    e = 0
    while e < n_events:
        yx = events[e] // in_c
        stop = e + 1
        bound = (yx + 1) * in_c
        while stop < n_events and events[stop] < bound:
            stop += 1
        y = yx // in_w
        n_t = window_targets(y, yx - y * in_w, k, stride, pad, out_h, out_w, pos_t, kk_t)
        for m in range(n_t):
            pos = pos_t[m]
            base = kk_t[m] * in_c
            add_rows_checked(cur2, acc2, fill, pos, Wm, base, rows, e, stop, limit)
            targets += stop - e
            bands += count_bands(rows, e, stop, base, tile_rows, marks, pos * row_bands, stamp)
        e = stop
    counters[C_IN_EVENTS] += n_events
    counters[C_SYN_AC] += targets * out_c
    counters[C_TILE_ACT] += bands * col_tiles


@njit(nogil=True, cache=True)
def multibit_read(cur, W, w_off, in_c, in_w, out_c, out_h, out_w, k, stride, pad, is_conv, events,
                  values, n_events, tile_rows, row_bands, col_tiles, marks, stamp, counters):
    """Multi-bit input (direct encoder): cur += W[row] * value, int32 throughout (MACs)."""
    targets = 0
    bands = 0
    pos_t = np.empty(k * k, np.int64)
    kk_t = np.empty(k * k, np.int64)
    for e in range(n_events):
        j = events[e]
        v = np.int32(values[e])
        if not is_conv:
            w_row = W[w_off + j * out_c:w_off + (j + 1) * out_c]
            for o in range(out_c):
                cur[o] += w_row[o] * v
            targets += 1
            m = j // tile_rows
            if marks[m] != stamp:
                marks[m] = stamp
                bands += 1
            continue
        c = j % in_c
        yx = j // in_c
        y = yx // in_w
        n_t = window_targets(y, yx - y * in_w, k, stride, pad, out_h, out_w, pos_t, kk_t)
        for t in range(n_t):
            pos = pos_t[t]
            row = kk_t[t] * in_c + c
            w_row = W[w_off + row * out_c:w_off + (row + 1) * out_c]
            c_row = cur[pos * out_c:(pos + 1) * out_c]
            for o in range(out_c):
                c_row[o] += w_row[o] * v
            targets += 1
            m = pos * row_bands + row // tile_rows
            if marks[m] != stamp:
                marks[m] = stamp
                bands += 1
    counters[C_IN_EVENTS] += n_events
    counters[C_SYN_MAC] += targets * out_c
    counters[C_TILE_ACT] += bands * col_tiles


@njit(nogil=True, cache=True)
def pool_read(cur, in_c, in_w, out_w, k, events, n_events, counters):
    """Non-overlapping k x k pooling: each input spike adds 1 to its window's neuron."""
    for e in range(n_events):
        j = events[e]
        c = j % in_c
        yx = j // in_c
        y = yx // in_w
        x = yx - y * in_w
        cur[((y // k) * out_w + x // k) * in_c + c] += 1
    counters[C_IN_EVENTS] += n_events
    counters[C_SYN_AC] += n_events
