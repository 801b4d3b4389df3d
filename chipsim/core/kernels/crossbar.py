"""Event-driven crossbar reads: work scales with the number of input events.

A weighted layer is a crossbar matrix of FAN_IN rows x OUT_C columns, stored
row-major in a flat array so one input event reads one contiguous row:
  * fc:   row j = input neuron j in chip order (y, x, c),
  * conv: row (ky * k + kx) * C_in + c, an im2col row in (ky, kx, c) order;
          each output position gathers the rows of the spikes in its window.
Activations are laid out (y, x, c), channels innermost, so the C_out-long row
add is a contiguous vector add, and spike lists are sorted, so an output's
rows come in ascending order and are summed eight at a time in registers
before they touch the accumulator.

Exact narrow accumulation: rows are added into `acc` (int16 when the weights
are <= 8 bits and the input is binary); after every `limit = 32767 //
weight_max` rows an output moves `acc` into the int32 current `cur`, so the
narrow register never overflows. The result equals int32 accumulation bit
for bit; it only halves the vector width needed.

Tile activations: a crossbar tile (row band x column tile) is read for an
output position in a tick when at least one of its rows is active; with the
rows ascending, that is the number of distinct row bands among them. The
reads of each row band are counted too (a band's column tiles are read
together, so each has the band's reads), and the busiest band's count is
kept per tick (`C_TILE_BUSIEST`): a tile reads one output position at a time,
so the timing engine's read phase lasts at least that many rounds
(chipsim/architect/timing.py). Every count is exact; the structured layouts
count per window position or per input position, never per row.
"""
import numpy as np
from numba import njit

from .layout import C_IN_EVENTS, C_SYN_AC, C_SYN_MAC, C_TILE_ACT, C_TILE_BUSIEST

#: weight bytes a run-major conv read keeps in cache at once (conv_read): about half a core's L2
BLOCK_BYTES = 256 * 1024


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
    if r + 4 <= stop:
        w0 = Wm[base + rows[r]]
        w1 = Wm[base + rows[r + 1]]
        w2 = Wm[base + rows[r + 2]]
        w3 = Wm[base + rows[r + 3]]
        for o in range(out_c):
            a_row[o] += (w0[o] + w1[o]) + (w2[o] + w3[o])
        r += 4
    if r + 2 <= stop:
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
def add_rows_flushed(a_row, c_row, Wm, rows, n, limit):
    """a_row += the crossbar rows Wm[rows[0:n]], moving a_row into the int32 current c_row
    (and clearing it) after every `limit` rows, so the narrow accumulator never overflows."""
    r = 0
    while r < n:
        if r > 0:
            for o in range(a_row.shape[0]):
                c_row[o] += a_row[o]
                a_row[o] = 0
        chunk = min(limit, n - r)
        add_rows(a_row, Wm, 0, rows, r, r + chunk)
        r += chunk


@njit(nogil=True, cache=True)
def count_bands_ascending(rows, n, tile_rows, row_bands):
    """Distinct row bands (crossbar row tiles) among the ascending rows rows[0:n] (n > 0) of a
    crossbar with `row_bands` bands. Divides only when a row crosses into a new band (a division
    per row cost more than the row adds of a narrow layer)."""
    if row_bands == 1:
        return 1
    bands = 0
    edge = 0           # first row past the current band; rows >= 0, so the first row opens a band
    for r in range(n):
        row = rows[r]
        if row >= edge:
            bands += 1
            edge = (row // tile_rows + 1) * tile_rows
    return bands


@njit(nogil=True, cache=True)
def count_bands_into(rows, n, tile_rows, band_reads):
    """count_bands_ascending for a crossbar of several bands, adding each band's read to band_reads[band]
    (+1 per band among the rows: one output position's read); returns the bands. Divides only when a row
    crosses into a new band."""
    bands = 0
    edge = 0           # first row past the current band; rows >= 0, so the first row opens a band
    for r in range(n):
        row = rows[r]
        if row >= edge:
            band = row // tile_rows
            band_reads[band] += 1
            bands += 1
            edge = (band + 1) * tile_rows
    return bands


@njit(nogil=True, cache=True)
def offset_band_reads(events, first, in_c, in_h, in_w, tile_rows, k, stride, pad, out_h, out_w):
    """(tile reads summed over bands, reads of the busiest band) of a conv read whose kernel offsets own
    whole row bands (in_c = m tile_rows), for one column tile.

    Band (ky k + kx) m + j holds channels [j tile_rows, (j + 1) tile_rows) of offset (ky, kx); it is read
    at output (oy, ox) iff input position (oy s - pad + ky, ox s - pad + kx) has an event in that channel
    group. So its reads are a box sum, over a lattice of step s, of the group's presence map A_j (1 where
    an input position has an event in group j): with the strided summed-area table

        Q[y + s, x + s] = A_j[y, x] + Q[y, x + s] + Q[y + s, x] - Q[y, x]     (Q = 0 on its first s rows
                                                                               and columns)
    the lattice box y0, y0 + s, .., y1 by x0, .., x1 sums to
        Q[y1 + s, x1 + s] - Q[y0, x1 + s] - Q[y1 + s, x0] + Q[y0, x0].
    The box of offset (ky, kx) is the outputs' input rows oy s - pad + ky that lie in [0, in_h) (and the
    same for columns). Summing over the bands gives the tile reads, which equals counting per output
    window by exchanging the sums. Cost: one presence test (m - 1 binary searches in the position's
    sorted events) and one table entry per input position and group, four lookups per band; no work per
    output position or row. Exact int32/int64 counts (at most out_h out_w per band)."""
    m = in_c // tile_rows
    in_hw = in_h * in_w
    s = stride
    present = np.zeros(m * in_hw, np.uint8)
    for p in range(in_hw):
        lo = first[p]
        end = first[p + 1]
        edge = p * in_c
        j = 0
        while lo < end:
            edge += tile_rows
            hi = end
            if j < m - 1:             # first event at or past the group's end
                a = lo
                while a < hi:
                    mid = (a + hi) >> 1
                    if events[mid] < edge:
                        a = mid + 1
                    else:
                        hi = mid
            if hi > lo:
                present[j * in_hw + p] = 1
            lo = hi
            j += 1
    # each offset's lattice box: the rows y0..y1 (step s) its outputs read, empty when y0 > y1
    y0 = np.empty(k, np.int64)
    y1 = np.empty(k, np.int64)
    x0 = np.empty(k, np.int64)
    x1 = np.empty(k, np.int64)
    for kk in range(k):
        lo_y = max(0, (pad - kk + s - 1) // s)          # first output row whose input row is >= 0
        hi_y = min(out_h - 1, (in_h - 1 + pad - kk) // s)
        y0[kk] = lo_y * s - pad + kk
        y1[kk] = hi_y * s - pad + kk if hi_y >= lo_y else y0[kk] - s
        lo_x = max(0, (pad - kk + s - 1) // s)
        hi_x = min(out_w - 1, (in_w - 1 + pad - kk) // s)
        x0[kk] = lo_x * s - pad + kk
        x1[kk] = hi_x * s - pad + kk if hi_x >= lo_x else x0[kk] - s
    Q = np.zeros((in_h + s, in_w + s), np.int32)
    total = 0
    busiest = 0
    for j in range(m):
        a = present[j * in_hw:(j + 1) * in_hw]
        for y in range(in_h):
            for x in range(in_w):
                Q[y + s, x + s] = a[y * in_w + x] + Q[y, x + s] + Q[y + s, x] - Q[y, x]
        for ky in range(k):
            if y1[ky] < y0[ky]:
                continue
            for kx in range(k):
                if x1[kx] < x0[kx]:
                    continue
                reads = np.int64(Q[y1[ky] + s, x1[kx] + s] - Q[y0[ky], x1[kx] + s] - Q[y1[ky] + s, x0[kx]]
                                 + Q[y0[ky], x0[kx]])
                total += reads
                busiest = max(busiest, reads)
    return total, busiest


@njit(inline="always", cache=True)
def window_events(oy, ox, k, stride, pad, in_h, in_w, first):
    """Number of input events in output (oy, ox)'s window."""
    ix0 = ox * stride - pad
    lo = max(ix0, 0)
    hi = min(ix0 + k, in_w)
    n = 0
    if lo < hi:
        for ky in range(k):
            iy = oy * stride - pad + ky
            if 0 <= iy < in_h:
                n += first[iy * in_w + hi] - first[iy * in_w + lo]
    return n


@njit(inline="always", cache=True)
def window_bands(oy, ox, k, stride, pad, in_h, in_w, first, offset_band, band_reads):
    """Distinct row bands (crossbar row tiles) among output (oy, ox)'s window rows when whole kernel
    offsets share bands (tile_rows a multiple of in_c, see conv_read): the number of distinct
    offset_band[ky * k + kx] among offsets with events, each one's read added to band_reads. The
    offsets come in ascending order, so a band's offsets are adjacent. The cost is per window
    position, not per row."""
    ix0 = ox * stride - pad
    total = 0
    last = -1
    for ky in range(k):
        iy = oy * stride - pad + ky
        if iy < 0 or iy >= in_h:
            continue
        for ix in range(max(ix0, 0), min(ix0 + k, in_w)):
            p = iy * in_w + ix
            if first[p + 1] > first[p]:
                band = offset_band[ky * k + ix - ix0]
                if band != last:
                    total += 1
                    band_reads[band] += 1
                    last = band
    return total


@njit(nogil=True, cache=True)
def fc_read(cur, acc, W, w_off, bias, b_off, fan_in, out_c, events, n_events, limit, tile_rows, row_bands,
            col_tiles, counters):
    """Binary input: cur + acc = bias + sum over input spikes j of crossbar row j (events ascending)."""
    Wm = W[w_off:w_off + fan_in * out_c].reshape(fan_in, out_c)
    init_current(cur, acc, bias, b_off, 1, out_c)
    if n_events > 0:
        add_rows_flushed(acc[:out_c], cur[:out_c], Wm, events, n_events, limit)
        bands = count_bands_ascending(events, n_events, tile_rows, row_bands)
        counters[C_TILE_ACT] += bands * col_tiles
        # one output position: every band read is read once
        counters[C_TILE_BUSIEST] = max(counters[C_TILE_BUSIEST], 1)
    counters[C_IN_EVENTS] += n_events
    counters[C_SYN_AC] += n_events * out_c


@njit(inline="always", cache=True)
def index_events(events, n_events, in_c, in_hw, first):
    """first[p] .. first[p + 1] <- the events at input position p (events are sorted).

    A merge walk over positions and events: a division per event (its
    position) cost as much as the row adds of a narrow layer."""
    e = 0
    first[0] = 0
    for p in range(in_hw):
        end = (p + 1) * in_c
        while e < n_events and events[e] < end:
            e += 1
        first[p + 1] = e


@njit(inline="always", cache=True)
def window_rows(oy, ox, k, stride, pad, in_h, in_w, in_c, events, first, rows, which, with_which):
    """The crossbar rows (ascending) of the input events in output (oy, ox)'s window, and (if
    `with_which`: learning reads multi-bit input values) in `which` the index of each one's
    event; returns how many there are.

    One kernel row's inputs are adjacent positions, so their events are one
    contiguous run of the sorted list: an event j at (iy, ix), channel c, has
    row (ky * k + ix - ix0) * in_c + c = j + (ky * k - iy * in_w - ix0) * in_c,
    with ix0 the window's (possibly padded) left edge; one shift per run."""
    ix0 = ox * stride - pad
    lo = max(ix0, 0)
    hi = min(ix0 + k, in_w)
    if lo >= hi:
        return 0
    n = 0
    for ky in range(k):
        iy = oy * stride - pad + ky
        if iy < 0 or iy >= in_h:
            continue
        e0 = first[iy * in_w + lo]
        run = first[iy * in_w + hi] - e0
        shift = np.int32((ky * k - iy * in_w - ix0) * in_c)
        # copy through slices: indexed by the loop counter alone, the loop vectorises (rows[n + q]
        # would carry Numba's negative-index wrap-around test per element and stay scalar)
        src = events[e0:e0 + run]
        dst = rows[n:n + run]
        for q in range(run):
            dst[q] = src[q] + shift
        if with_which:
            dst_which = which[n:n + run]
            for q in range(run):
                dst_which[q] = np.int32(e0 + q)
        n += run
    return n


@njit(nogil=True, cache=True)
def run_major_rows(cur, acc, Wm, in_c, in_h, in_w, out_c, out_h, out_w, k, stride, pad, events, first, limit, span):
    """Add every output position's window rows, `span` kernel offsets of one kernel row at a time;
    returns the rows added.

    The inputs under `span` adjacent offsets of kernel row ky are adjacent positions of input row iy,
    so their events are one contiguous run of the sorted list, and event j maps to crossbar row
    j + (ky * k - iy * in_w - ix0) * in_c (ix0: the window's left edge), whatever the offset. So the
    rows are summed straight from the event list, with no gather, while the offsets' block of
    span * in_c crossbar rows stays in cache across all positions. Each position's accumulator holds
    up to `limit` rows between moves into the current."""
    held = np.zeros(out_h * out_w, np.int64)
    targets = 0
    for ky in range(k):
        for kx0 in range(0, k, span):
            for oy in range(out_h):
                iy = oy * stride - pad + ky
                if iy < 0 or iy >= in_h:
                    continue
                for ox in range(out_w):
                    ix0 = ox * stride - pad
                    lo = max(ix0 + kx0, 0)
                    hi = min(ix0 + min(kx0 + span, k), in_w)
                    if lo >= hi:
                        continue
                    e = first[iy * in_w + lo]
                    end = first[iy * in_w + hi]
                    targets += end - e
                    pos = oy * out_w + ox
                    a_row = acc[pos * out_c:(pos + 1) * out_c]
                    shift = (ky * k - iy * in_w - ix0) * in_c
                    while e < end:
                        if held[pos] == limit:
                            c_row = cur[pos * out_c:(pos + 1) * out_c]
                            for o in range(out_c):
                                c_row[o] += a_row[o]
                                a_row[o] = 0
                            held[pos] = 0
                        chunk = min(limit - held[pos], end - e)
                        add_rows(a_row, Wm, shift, events, e, e + chunk)
                        held[pos] += chunk
                        e += chunk
    return targets


#: conv_read orders (see its docstring)
ORDER_SCATTER = 0
ORDER_RUN_MAJOR = 1
ORDER_GATHER = 2


@njit(inline="always", cache=True)
def conv_read_order(n_events, in_h, in_w, span, structured, row_bands):
    """Which order conv_read sums in: scatter for fewer events than input positions on one row band,
    run-major for runs of at least eight events on average (with a band layout counted per window
    position), else gather."""
    if row_bands == 1 and n_events < in_h * in_w:
        return ORDER_SCATTER
    if (structured or row_bands == 1) and n_events * span >= 8 * in_h * in_w:
        return ORDER_RUN_MAJOR
    return ORDER_GATHER


@njit(nogil=True, cache=True)
def scatter_rows(cur, Wm, in_c, in_w, out_c, out_h, out_w, k, stride, pad, events, n_events, touched):
    """cur += each event's crossbar row at every output position whose window holds the event;
    returns the rows added and sets touched[pos] = 1 for each output position that got one.

    For sparse input (fewer events than input positions) visiting the events beats visiting every
    output position's window. The rows go straight into the int32 current: at most k * k rows per
    event, and integer sums are exact in any order, so this equals the other orders bit for bit."""
    targets = 0
    for e in range(n_events):
        j = events[e]
        p = j // in_c                       # a division per event is cheap on sparse input
        c = j - p * in_c
        iy = p // in_w
        ix = p - iy * in_w
        for ky in range(k):
            ty = iy + pad - ky              # = oy * stride for the output row that reads (iy, ky)
            if ty < 0 or ty % stride != 0 or ty // stride >= out_h:
                continue
            oy = ty // stride
            for kx in range(k):
                tx = ix + pad - kx
                if tx < 0 or tx % stride != 0 or tx // stride >= out_w:
                    continue
                pos = oy * out_w + tx // stride
                w_row = Wm[(ky * k + kx) * in_c + c]
                c_row = cur[pos * out_c:(pos + 1) * out_c]
                for o in range(out_c):
                    c_row[o] += w_row[o]
                touched[pos] = 1
                targets += 1
    return targets


@njit(nogil=True, cache=True)
def conv_read(cur, acc, W, w_off, bias, b_off, in_c, in_h, in_w, out_c, out_h, out_w, k, stride, pad, events,
              n_events, limit, tile_rows, row_bands, col_tiles, counters, block_bytes=BLOCK_BYTES):
    """Binary input: the crossbar rows of the active inputs in each output position's window.

    The events (sorted, so each input position's channels are contiguous) are
    indexed by input position once (except for the scatter). Three orders give the same sums (integer
    sums are exact in any order, so the current is the same bit for bit):
      * scatter (fewer events than input positions, one row band: a rate-coded
        first layer): scatter_rows adds each event's rows to the outputs that
        read it, so the work is per event, not per output window;
      * run-major (runs of at least eight events on average, and a band layout
        counted per position, see below): run_major_rows, which sums each run
        straight from the event list. A run spans a whole kernel row when the
        kernel row's weights fit `block_bytes` (about half a core's L2 cache),
        else one kernel offset, so the weights being read stay in cache;
      * gather (sparser input): every output position collects its window's
        rows (kernel offset ky * k + kx, then channel: ascending crossbar rows)
        and sums them eight at a time across the whole window, so sparse
        positions still fill the eight-row register sums; each position's
        current starts at the bias right before, while it is in cache.
    On VGG-11 at 10 % activity the run-major order reads conv2-conv7 10-20 %
    faster than the gather."""
    Wm = W[w_off:w_off + k * k * in_c * out_c].reshape(k * k * in_c, out_c)
    # tile activations: row (ky * k + kx) * in_c + c lies in band ((ky * k + kx) * in_c + c) // tile_rows.
    # When in_c is a multiple of tile_rows each kernel offset owns whole bands ("whole"): the bands' reads
    # are box sums over the input positions (offset_band_reads). When tile_rows is a multiple of in_c whole
    # offsets share one band: counted per window position (window_bands). Other shapes walk the rows
    # (count_bands_into); one band needs no band index at all.
    whole = in_c % tile_rows == 0
    structured = row_bands > 1 and (whole or tile_rows % in_c == 0)
    span = k if k * in_c * out_c * W.itemsize <= block_bytes else 1
    order = conv_read_order(n_events, in_h, in_w, span, structured, row_bands)
    # the scatter walks the events themselves: no per-position index
    first = np.empty(0 if order == ORDER_SCATTER else in_h * in_w + 1, np.int64)
    if order != ORDER_SCATTER:
        index_events(events, n_events, in_c, in_h * in_w, first)
    per_band = row_bands > 1 and not whole            # band reads accumulated position by position
    band_reads = np.zeros(row_bands if per_band else 0, np.int64)
    offset_band = np.empty(k * k if structured and not whole else 0, np.int64)
    if structured and not whole:
        for kk in range(k * k):
            offset_band[kk] = kk * in_c // tile_rows
    targets = 0
    bands = 0
    if order == ORDER_SCATTER:
        init_current(cur, acc, bias, b_off, out_h * out_w, out_c)
        touched = np.zeros(out_h * out_w, np.uint8)
        targets = scatter_rows(cur, Wm, in_c, in_w, out_c, out_h, out_w, k, stride, pad, events, n_events,
                               touched)
        for pos in range(out_h * out_w):
            bands += touched[pos]
    elif order == ORDER_RUN_MAJOR:
        init_current(cur, acc, bias, b_off, out_h * out_w, out_c)
        targets = run_major_rows(cur, acc, Wm, in_c, in_h, in_w, out_c, out_h, out_w, k, stride, pad, events,
                                 first, limit, span)
        if row_bands == 1:
            for oy in range(out_h):
                for ox in range(out_w):
                    bands += window_events(oy, ox, k, stride, pad, in_h, in_w, first) > 0
        elif not whole:
            for oy in range(out_h):
                for ox in range(out_w):
                    bands += window_bands(oy, ox, k, stride, pad, in_h, in_w, first, offset_band, band_reads)
    else:
        rows = np.empty(k * k * in_c, np.int32)
        for oy in range(out_h):
            for ox in range(out_w):
                pos = oy * out_w + ox
                a_row = acc[pos * out_c:(pos + 1) * out_c]
                c_row = cur[pos * out_c:(pos + 1) * out_c]
                init_current(c_row, a_row, bias, b_off, 1, out_c)
                n = window_rows(oy, ox, k, stride, pad, in_h, in_w, in_c, events, first, rows, rows, False)
                if n == 0:
                    continue
                add_rows_flushed(a_row, c_row, Wm, rows, n, limit)
                targets += n
                if row_bands == 1:
                    bands += 1
                elif structured and not whole:
                    bands += window_bands(oy, ox, k, stride, pad, in_h, in_w, first, offset_band, band_reads)
                elif not whole:
                    bands += count_bands_into(rows, n, tile_rows, band_reads)
    if row_bands == 1:
        busiest = bands
    elif whole:
        bands, busiest = offset_band_reads(events, first, in_c, in_h, in_w, tile_rows, k, stride, pad, out_h,
                                           out_w)
    else:
        busiest = band_reads.max()
    counters[C_IN_EVENTS] += n_events
    counters[C_SYN_AC] += targets * out_c
    counters[C_TILE_ACT] += bands * col_tiles
    counters[C_TILE_BUSIEST] = max(counters[C_TILE_BUSIEST], busiest)


@njit(nogil=True, cache=True)
def multibit_fc_read(cur, W, w_off, out_c, events, values, n_events, tile_rows, row_bands, col_tiles, counters):
    """Multi-bit input into an fc layer (direct encoder): cur += W[j] * value_j, int32 (MACs)."""
    for e in range(n_events):
        j = events[e]
        v = np.int32(values[e])
        w_row = W[w_off + j * out_c:w_off + (j + 1) * out_c]
        for o in range(out_c):
            cur[o] += w_row[o] * v
    if n_events > 0:
        counters[C_TILE_ACT] += count_bands_ascending(events, n_events, tile_rows, row_bands) * col_tiles
        counters[C_TILE_BUSIEST] = max(counters[C_TILE_BUSIEST], 1)   # one output position
    counters[C_IN_EVENTS] += n_events
    counters[C_SYN_MAC] += n_events * out_c


@njit(nogil=True, cache=True)
def multibit_conv_read(cur, W, w_off, in_c, in_h, in_w, out_c, out_h, out_w, k, stride, pad, events, values,
                       n_events, tile_rows, row_bands, col_tiles, counters):
    """Multi-bit input into a conv layer (direct encoder): each output position gathers its window's
    rows times their input values, four rows at a time in int32 registers (MACs).

    Gathered as the binary conv_read is (int32 sums wrap alike in any order,
    so this equals a scatter per input bit for bit); the direct input is
    nearly dense, so the per-position walk costs little."""
    first = np.empty(in_h * in_w + 1, np.int64)
    index_events(events, n_events, in_c, in_h * in_w, first)
    Wm = W[w_off:w_off + k * k * in_c * out_c].reshape(k * k * in_c, out_c)
    rows = np.empty(k * k * in_c, np.int32)
    which = np.empty(k * k * in_c, np.int32)
    band_reads = np.zeros(row_bands, np.int64)
    targets = 0
    bands = 0
    for oy in range(out_h):
        for ox in range(out_w):
            pos = oy * out_w + ox
            c_row = cur[pos * out_c:(pos + 1) * out_c]
            n = window_rows(oy, ox, k, stride, pad, in_h, in_w, in_c, events, first, rows, which, True)
            if n == 0:
                continue
            r = 0
            while r + 4 <= n:
                w0 = Wm[rows[r]]
                w1 = Wm[rows[r + 1]]
                w2 = Wm[rows[r + 2]]
                w3 = Wm[rows[r + 3]]
                v0 = np.int32(values[which[r]])
                v1 = np.int32(values[which[r + 1]])
                v2 = np.int32(values[which[r + 2]])
                v3 = np.int32(values[which[r + 3]])
                for o in range(out_c):
                    c_row[o] += (w0[o] * v0 + w1[o] * v1) + (w2[o] * v2 + w3[o] * v3)
                r += 4
            while r < n:
                w0 = Wm[rows[r]]
                v0 = np.int32(values[which[r]])
                for o in range(out_c):
                    c_row[o] += w0[o] * v0
                r += 1
            targets += n
            if row_bands == 1:
                bands += 1
            else:
                bands += count_bands_into(rows, n, tile_rows, band_reads)
    busiest = bands if row_bands == 1 else band_reads.max()
    counters[C_IN_EVENTS] += n_events
    counters[C_SYN_MAC] += targets * out_c
    counters[C_TILE_ACT] += bands * col_tiles
    counters[C_TILE_BUSIEST] = max(counters[C_TILE_BUSIEST], busiest)


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
