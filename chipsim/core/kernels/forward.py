"""One sample through the whole chip, layer by layer; a batch in parallel over samples.

Time semantics: at tick t layer l integrates the spikes layer l-1 fired at
tick t (no delay, as the paper's code and most software SNNs do) or at tick
t-1 (delay: Eq. 2 as written, S^{l-1}[t-1]; the first layer then sees the host
input of tick t-1, and the output needs as many ticks as there are layers to
fill the pipeline).

Execution order: a layer depends only on the layer below and on its own state
(its weights, thresholds, membranes, counters and learning circuit), so each
layer runs all T ticks before the next one starts, reading the spike lists the
layer below kept for every tick. The results are those of running every layer
at each tick in turn, bit for bit, but a layer's weights and membranes stay in
cache across its T ticks instead of being evicted by the other layers every
tick (VGG-11's 2.4 MB conv6-conv8 crossbars were read from memory each tick).

Samples are independent: the host spreads them over threads (chip.py), and
results do not depend on batch size or thread count.
"""
import numpy as np
from numba import njit

from .analog import analog_read
from .crossbar import conv_read, fc_read, init_current, multibit_conv_read, multibit_fc_read, pool_read
from .learning import learn_layer
from .layout import (ADC_RANGE, B_OFF, COL_TILES, FAN_IN, IN_C, IN_W, IN_H, KERNEL, KIND, KIND_CONV, KIND_FC,
                     MEMORYLESS, N_OFF, N_OUT, OUT_C, OUT_H, OUT_W, P_CMAX, P_DELAY,
                     L_ON, P_ACC_LIMIT, P_BIAS_MAX, P_DIRECT, IN_COUNTS, IN_HELD,
                     P_LEAK_BITS, P_NARROW, P_TARGET_MAX, P_WARMUP, P_MAX_N, P_N_IN, P_RECORD, P_T, P_UMAX,
                     P_UMIN, PAD, RESET, ROW_BANDS, SPIKING, STRIDE, W_OFF, NZ_SILENCE, NZ_THERMAL,
                     NZ_THERMAL_ADD, NZ_THERMAL_IN, NZ_READ, P_ADC_HALF, THERMAL_FRAC_BITS)
from .neuron import update_neurons
from .rng import fast_normal, lane_bits, tick_key


@njit(nogil=True, cache=True)
def decode_packed(packed_row, n_in, events):
    """Indices of the set bits of a big-endian bit-packed spike vector (np.packbits order)."""
    n = 0
    for byte_i in range(packed_row.shape[0]):
        byte = packed_row[byte_i]
        if byte == 0:
            continue
        for bit in range(8):
            if byte & (128 >> bit):
                j = byte_i * 8 + bit
                if j < n_in:
                    events[n] = j
                    n += 1
    return n


@njit(nogil=True, cache=True)
def decode_values(values_row, events, values):
    """Nonzero entries of a multi-bit input vector: their indices to `events`, values to `values`."""
    n = 0
    for j in range(values_row.shape[0]):
        v = values_row[j]
        if v != 0:
            events[n] = j
            values[n] = v
            n += 1
    return n


@njit(nogil=True, cache=True)
def layer_read(li, desc, W, bias, params, cur, acc, events, values, n_events, multibit,
               limit, tile_rows, counters):
    """Crossbar (or pooling) read of layer `li` for one tick: cur + acc = input current."""
    kind = desc[li, KIND]
    n = desc[li, N_OUT]
    out_c = desc[li, OUT_C]
    positions = desc[li, OUT_H] * desc[li, OUT_W]
    if multibit:
        init_current(cur, acc, bias, desc[li, B_OFF], positions, out_c)
        if kind == KIND_CONV:
            multibit_conv_read(cur, W, desc[li, W_OFF], desc[li, IN_C], desc[li, IN_H], desc[li, IN_W], out_c,
                               desc[li, OUT_H], desc[li, OUT_W], desc[li, KERNEL], desc[li, STRIDE],
                               desc[li, PAD], events, values, n_events, tile_rows, desc[li, ROW_BANDS],
                               desc[li, COL_TILES], counters)
        else:
            multibit_fc_read(cur, W, desc[li, W_OFF], out_c, events, values, n_events, tile_rows,
                             desc[li, ROW_BANDS], desc[li, COL_TILES], counters)
    elif kind == KIND_FC:
        fc_read(cur, acc, W, desc[li, W_OFF], bias, desc[li, B_OFF], desc[li, FAN_IN], out_c, events, n_events,
                limit, tile_rows, desc[li, ROW_BANDS], desc[li, COL_TILES], counters)
    elif kind == KIND_CONV:
        conv_read(cur, acc, W, desc[li, W_OFF], bias, desc[li, B_OFF], desc[li, IN_C], desc[li, IN_H],
                  desc[li, IN_W], out_c, desc[li, OUT_H], desc[li, OUT_W], desc[li, KERNEL], desc[li, STRIDE],
                  desc[li, PAD], events, n_events, limit, tile_rows, desc[li, ROW_BANDS], desc[li, COL_TILES],
                  counters)
    else:
        cur[:n] = 0
        acc[:n] = 0
        pool_read(cur, desc[li, IN_C], desc[li, IN_W], desc[li, OUT_W], desc[li, KERNEL], events,
                  n_events, counters)


@njit(nogil=True, cache=True)
def layer_analog_read(li, desc, W, bias, params, cur, acc, events, values, n_events, multibit, frac_bits,
                      read_sigma, read_key, tile_rows, counters):
    """Analog read of weighted layer `li` for one tick (kernels/analog.py): tile partial sums with read noise
    of std `read_sigma` LSBs per active cell (key `read_key`) and the chip's column ADCs; cur holds the
    whole current (acc <- 0)."""
    acc[:desc[li, N_OUT]] = 0
    analog_read(cur, W, desc[li, W_OFF], bias, desc[li, B_OFF], desc[li, KIND] == KIND_CONV, desc[li, FAN_IN],
                desc[li, IN_C], desc[li, IN_H], desc[li, IN_W], desc[li, OUT_C], desc[li, OUT_H], desc[li, OUT_W],
                desc[li, KERNEL], desc[li, STRIDE], desc[li, PAD], events, values, n_events, multibit, frac_bits,
                read_sigma, read_key, params[P_ADC_HALF], desc[li, ADC_RANGE], tile_rows, desc[li, ROW_BANDS],
                desc[li, COL_TILES], counters)


@njit(nogil=True, cache=True)
def thermal_input_read(li, desc, W, bias, params, cur, acc, events, values, n_events, multibit, sigma, tkey,
                       noisy, wide, analog, read_sigma, read_key, tile_rows, counters):
    """Crossbar read of weighted layer `li` with thermal noise on every input element (scope input):

        x'_j = x_j (1 + sigma xi_j),   I = bias + round(sum_j W_j x'_j)

    with x_j the pixel value (direct input) or 1 (a spike) and xi_j ~ N(0, 1)
    drawn per (sample, tick, input element j) under `tkey`. x'_j goes to the
    crossbar as a multi-bit value with F = THERMAL_FRAC_BITS fraction bits,
    round(x'_j 2^F), summed in int64 (`wide`) and rounded back to whole LSBs,
    half up; noise/thermal.py proves the result fits the int32 current.
    Counted as multi-bit reads (MACs). With `analog` (column ADCs or read
    noise) the perturbed inputs go through the analog read instead, which
    rounds each tile's partial sum (kernels/analog.py)."""
    F = THERMAL_FRAC_BITS
    one = np.float64(1 << F)
    for e in range(n_events):
        x = np.float64(values[e]) if multibit else 1.0
        xi = fast_normal(lane_bits(tkey, events[e]))
        noisy[e] = np.int32(np.floor(x * (1.0 + sigma * xi) * one + 0.5))
    if analog:
        layer_analog_read(li, desc, W, bias, params, cur, acc, events, noisy, n_events, True, F, read_sigma,
                          read_key, tile_rows, counters)
        return
    zero = np.zeros(desc[li, OUT_C], bias.dtype)
    n = desc[li, N_OUT]
    if desc[li, KIND] == KIND_CONV:
        init_current(wide, acc, zero, 0, desc[li, OUT_H] * desc[li, OUT_W], desc[li, OUT_C])
        multibit_conv_read(wide, W, desc[li, W_OFF], desc[li, IN_C], desc[li, IN_H], desc[li, IN_W],
                           desc[li, OUT_C], desc[li, OUT_H], desc[li, OUT_W], desc[li, KERNEL], desc[li, STRIDE],
                           desc[li, PAD], events, noisy, n_events, tile_rows, desc[li, ROW_BANDS],
                           desc[li, COL_TILES], counters)
    else:
        init_current(wide, acc, zero, 0, 1, desc[li, OUT_C])
        multibit_fc_read(wide, W, desc[li, W_OFF], desc[li, OUT_C], events, noisy, n_events, tile_rows,
                         desc[li, ROW_BANDS], desc[li, COL_TILES], counters)
    out_c = desc[li, OUT_C]
    b_off = desc[li, B_OFF]
    half = np.int64(1) << (F - 1)
    for i in range(n):
        cur[i] = np.int32(np.int64(bias[b_off + i % out_c]) + ((wide[i] + half) >> F))


@njit(nogil=True, cache=True)
def layer_fire(li, desc, theta, leak_a, enabled, params, U, S, C, cur, acc, spike_list, counters,
               noise_f, noise_k, sample_id, t, disabled):
    """Neuron update of layer `li` for one tick; writes the indices of the neurons that spiked
    to spike_list (at least the layer's size) and returns their count.

    noise_f[li] = the layer's dynamic noise rates (columns NZ_* of kernels/layout.py), noise_k[li] their
    64-bit keys; the input-scope thermal noise is applied in the read (thermal_input_read)."""
    n = desc[li, N_OUT]
    n_off = desc[li, N_OFF]
    return update_neurons(cur, acc, n, n_off, U, S, C, theta, leak_a, enabled, params[P_LEAK_BITS],
                          desc[li, RESET], desc[li, SPIKING] != 0, desc[li, MEMORYLESS] != 0,
                          params[P_UMIN], params[P_UMAX], params[P_CMAX], params[P_NARROW] != 0,
                          disabled[li], spike_list,
                          counters, noise_f[li, NZ_THERMAL], noise_f[li, NZ_SILENCE], noise_k[li, NZ_THERMAL],
                          noise_k[li, NZ_SILENCE], noise_f[li, NZ_THERMAL_ADD], noise_k[li, NZ_THERMAL_ADD],
                          sample_id, t, params[P_T])


@njit(nogil=True, cache=True)
def update_replayed_current(desc, W, bias, w_snap, b_snap, x, first_cur):
    """Keep the replayed first-layer current exact across a learning tick of the direct-input layer.

    The direct input x is the same every tick, so the current is
    cur = bias + W^T x; after an update, cur' = cur + dW^T x + d_bias, with dW
    and d_bias read off against the snapshots taken before the tick (w_snap,
    b_snap). A pulse costs the output positions that read its cell instead of
    a full multi-bit read of the layer every tick; int32 sums wrap alike in
    any order, so the result is that read bit for bit."""
    w_off = desc[0, W_OFF]
    b_off = desc[0, B_OFF]
    out_c = desc[0, OUT_C]
    fan_in = desc[0, FAN_IN]
    positions = desc[0, OUT_H] * desc[0, OUT_W]
    for o in range(out_c):
        d = np.int64(bias[b_off + o]) - np.int64(b_snap[o])
        if d != 0:
            b_snap[o] = bias[b_off + o]
            for p in range(positions):
                first_cur[p * out_c + o] = np.int32(np.int64(first_cur[p * out_c + o]) + d)
    is_conv = desc[0, KIND] == KIND_CONV
    k = desc[0, KERNEL]
    stride = desc[0, STRIDE]
    pad = desc[0, PAD]
    in_c = desc[0, IN_C]
    in_h = desc[0, IN_H]
    in_w = desc[0, IN_W]
    out_h = desc[0, OUT_H]
    out_w = desc[0, OUT_W]
    for cell in range(fan_in * out_c):
        d = np.int64(W[w_off + cell]) - np.int64(w_snap[cell])
        if d == 0:
            continue
        w_snap[cell] = W[w_off + cell]
        row = cell // out_c
        o = cell - row * out_c
        if not is_conv:
            first_cur[o] = np.int32(np.int64(first_cur[o]) + d * np.int64(x[row]))
            continue
        kk = row // in_c          # row = (ky * k + kx) * in_c + c
        c = row - kk * in_c
        ky = kk // k
        kx = kk - ky * k
        for oy in range(out_h):
            iy = oy * stride - pad + ky
            if iy < 0 or iy >= in_h:
                continue
            for ox in range(out_w):
                ix = ox * stride - pad + kx
                if ix < 0 or ix >= in_w:
                    continue
                v = np.int64(x[(iy * in_w + ix) * in_c + c])
                if v != 0:
                    q = (oy * out_w + ox) * out_c + o
                    first_cur[q] = np.int32(np.int64(first_cur[q]) + d * v)


@njit(nogil=True, cache=True)
def run_layers(b, l0, l1, desc, W, bias, theta, leak_a, enabled, params, tile_rows, acc, noise_f, noise_k,
               sample_ids, in_packed, in_direct, U, S, C, counters, rec_S, rec_U,
               learn, targets, lparams, lkeys, wlim, write_sigma, dev, written, disabled, lists_a, lists_b,
               hand_in, n_hand_in, hand_out, n_hand_out):
    """Run layers l0..l1-1 of sample `b` for T ticks from a zero state; with `learn`, apply online LTL
    as it goes.

    `acc` is a 1-element array whose dtype selects the accumulator (int16 or
    int32). With the direct encoder the first layer's input is the same every
    tick, so its crossbar read is computed once and replayed, counted every
    tick as the hardware reads it every tick; when the first layer learns,
    each of its updates is added to the replayed current
    (`update_replayed_current`), which equals a fresh read bit for bit.
    With per-tick multi-bit input (IN_COUNTS: an event encoder's counts, up
    to its cap) tick t's values are in_direct[b, t * n_in:(t + 1) * n_in];
    the first layer reads them afresh every tick through the same multi-bit
    read (MACs) as the direct encoder, and learns on them likewise.
    Input-scope thermal noise (`thermal_input_read`) draws afresh every tick,
    so that read is not replayed; nor is the analog read (column ADCs, read
    noise: kernels/analog.py), which every weighted layer takes instead of the
    exact read when the chip has ADCs or the layer read noise. Learning sees the clean input events: the
    noise is in the analog drive, not in the event the learning circuit gates on.

    Learning (kernels/learning.py) runs after a learning layer's neuron update
    from tick `warmup` on, using the input events that layer integrated this
    tick; `targets[b]` holds the host's rate targets of all learning layers,
    `lparams`/`lkeys` the per-layer settings and keys, `wlim` (L, 2) the
    weight range and level step, `dev` the synapse devices' parameters and per-cell
    state (kernels/device.py, chipsim/core/synapse.py), `written` a bitmap of the cells (distinct-write
    counting of shared conv cells). `lists_a` and `lists_b` (T * largest layer,
    int32) hold the spike lists of two adjacent layers for every tick.

    A layer range (a pipeline stage, chipsim/core/pipeline.py) takes the spike
    lists of layer l0 - 1 from `hand_in` (tick t's list is
    hand_in[t * max_n:t * max_n + n_hand_in[t]]) and leaves those of layer
    l1 - 1 in `hand_out` when l1 < L; the whole net is l0 = 0, l1 = L. Only
    the range's own neurons, counters and registers are touched, so ranges
    of different samples may run at once.
    """
    if l1 <= l0:            # an empty range: nothing to run (the pipeline's warm-up call)
        return
    T = params[P_T]
    L = desc.shape[0]
    n_in = params[P_N_IN]
    delay = params[P_DELAY] != 0
    direct = params[P_DIRECT] == IN_HELD
    per_tick = params[P_DIRECT] == IN_COUNTS      # multi-bit values per tick: read afresh, never replayed
    first_learns = learn and lparams[0, L_ON] != 0.0
    record = params[P_RECORD]
    max_n = params[P_MAX_N]
    limit = params[P_ACC_LIMIT]
    warmup = params[P_WARMUP]
    target_max = params[P_TARGET_MAX]
    bias_max = params[P_BIAS_MAX]
    cur = np.empty(max_n, np.int32)
    accum = np.empty(max_n, acc.dtype)
    in_events = np.empty(n_in, np.int32)
    in_values = np.zeros(n_in, np.int32)
    empty_values = np.zeros(1, np.int32)
    pos_start = np.zeros((max(max_n, n_in) + 1) if learn else 1, np.int64)
    gsel = np.empty(max_n if learn else 1, np.int64)        # learning: gated neurons and their errors
    gerr = np.empty(max_n if learn else 1, np.float64)
    noisy = np.empty(max(max_n, n_in), np.int32)        # input-scope thermal: perturbed inputs, F fraction bits,
    wide = np.empty(max_n, np.int64)                      # and their crossbar sums
    n_direct = 0
    first_cur = np.empty(desc[0, N_OUT] if direct else 1, np.int32)
    first_acc = np.zeros(desc[0, N_OUT] if direct else 1, acc.dtype)
    first_counts = np.zeros(counters.shape[3], np.int64)
    have_first = False
    # the direct-input first layer's cells and biases before a learning tick (update_replayed_current)
    w_snap = np.empty(desc[0, FAN_IN] * desc[0, OUT_C] if first_learns and direct else 1, W.dtype)
    b_snap = np.empty(desc[0, OUT_C] if first_learns and direct else 1, bias.dtype)
    if direct and l0 == 0:
        for j in range(n_in):
            if in_direct[b, j] != 0:
                in_events[n_direct] = j
                in_values[n_direct] = in_direct[b, j]
                n_direct += 1
    lo = desc[l0, N_OFF]
    hi = desc[l1 - 1, N_OFF] + desc[l1 - 1, N_OUT]
    U[b, lo:hi] = 0
    S[b, lo:hi] = 0
    C[b, lo:hi] = 0
    # spike lists of the layer below (for every tick) and of this layer: tick t's list is
    # lists[t * max_n:t * max_n + n_spikes[t]]
    below = hand_in
    n_below = n_hand_in
    n_a = np.zeros(T, np.int64)
    n_b = np.zeros(T, np.int64)
    for li in range(l0, l1):
        off = desc[li, N_OFF]
        n = desc[li, N_OUT]
        if li == l1 - 1 and l1 < L:
            here, n_here = hand_out, n_hand_out
        elif (li - l0) % 2 == 0:
            here, n_here = lists_a, n_a
        else:
            here, n_here = lists_b, n_b
        # input-scope thermal noise: weighted layers only (pooling has no synapses)
        weighted = desc[li, KIND] == KIND_CONV or desc[li, KIND] == KIND_FC
        noisy_read = noise_f[li, NZ_THERMAL_IN] > 0.0 and weighted
        # column ADCs or read noise: the analog read (kernels/analog.py); never replayed (fresh draws, and the
        # ADC is not linear, so update_replayed_current would not hold)
        analog = weighted and (params[P_ADC_HALF] > 0 or noise_f[li, NZ_READ] > 0.0)
        read_sigma = noise_f[li, NZ_READ]
        for t in range(T):
            t_in = t - 1 if delay else t        # the tick whose spikes (or host input) this layer integrates
            row = counters[b, t, li]
            fire_cur, fire_acc = cur, accum
            if li == 0:
                n_ev = 0
                if t_in >= 0:
                    if per_tick:
                        n_ev = decode_values(in_direct[b, t_in * n_in:(t_in + 1) * n_in], in_events, in_values)
                    else:
                        n_ev = n_direct if direct else decode_packed(in_packed[b, t_in], n_in, in_events)
                events, values, multibit = in_events, in_values, direct or per_tick
                if direct and t_in >= 0 and have_first:
                    row += first_counts
                    if noise_f[0, NZ_THERMAL] > 0.0 or noise_f[0, NZ_THERMAL_ADD] > 0.0:
                        cur[:n] = first_cur     # thermal noise rewrites the current in place: use a copy
                        accum[:n] = 0
                    else:
                        fire_cur, fire_acc = first_cur, first_acc
                elif noisy_read:                # a fresh draw on every input element: nothing to replay
                    thermal_input_read(0, desc, W, bias, params, cur, accum, events, values, n_ev, multibit,
                                       noise_f[0, NZ_THERMAL_IN], tick_key(noise_k[0, NZ_THERMAL_IN],
                                                                           sample_ids[b], t),
                                       noisy, wide, analog, read_sigma,
                                       tick_key(noise_k[0, NZ_READ], sample_ids[b], t), tile_rows, row)
                elif analog:
                    layer_analog_read(0, desc, W, bias, params, cur, accum, events, values, n_ev, multibit, 0,
                                      read_sigma, tick_key(noise_k[0, NZ_READ], sample_ids[b], t), tile_rows, row)
                else:
                    layer_read(0, desc, W, bias, params, cur, accum, events, values, n_ev,
                               multibit, limit, tile_rows, row)
                    if direct and t_in >= 0:
                        first_cur[:] = cur[:n]
                        first_counts[:] = row
                        have_first = True
            else:
                n_ev = n_below[t_in] if t_in >= 0 else 0
                start = max(t_in, 0) * max_n
                events, values, multibit = below[start:start + n_ev], empty_values, False
                if noisy_read:
                    thermal_input_read(li, desc, W, bias, params, cur, accum, events, values, n_ev, multibit,
                                       noise_f[li, NZ_THERMAL_IN], tick_key(noise_k[li, NZ_THERMAL_IN],
                                                                            sample_ids[b], t),
                                       noisy, wide, analog, read_sigma,
                                       tick_key(noise_k[li, NZ_READ], sample_ids[b], t), tile_rows, row)
                elif analog:
                    layer_analog_read(li, desc, W, bias, params, cur, accum, events, values, n_ev, multibit, 0,
                                      read_sigma, tick_key(noise_k[li, NZ_READ], sample_ids[b], t), tile_rows, row)
                else:
                    layer_read(li, desc, W, bias, params, cur, accum, events, values, n_ev,
                               multibit, limit, tile_rows, row)
            n_here[t] = layer_fire(li, desc, theta, leak_a, enabled, params, U[b], S[b], C[b],
                                   fire_cur, fire_acc, here[t * max_n:(t + 1) * max_n], row, noise_f, noise_k,
                                   sample_ids[b], t, disabled)
            if learn and t >= warmup and lparams[li, L_ON] != 0.0:
                replayed = li == 0 and direct and have_first
                if replayed:
                    w_snap[:] = W[desc[0, W_OFF]:desc[0, W_OFF] + w_snap.shape[0]]
                    b_snap[:] = bias[desc[0, B_OFF]:desc[0, B_OFF] + b_snap.shape[0]]
                learn_layer(li, desc, W, bias, theta, U[b], C[b], events, values, n_ev, multibit,
                            targets[b], lparams[li], t + 1, target_max, wlim[li, 0], wlim[li, 1],
                            bias_max, write_sigma, lkeys[li, 0], lkeys[li, 1], sample_ids[b], t,
                            pos_start, gsel, gerr, written, row, dev)
                if replayed:
                    update_replayed_current(desc, W, bias, w_snap, b_snap, in_direct[b], first_cur)
            if record & 1:
                rec_S[b, t, off:off + n] = S[b, off:off + n]
            if record & 2:
                rec_U[b, t, off:off + n] = U[b, off:off + n]
        below, n_below = here, n_here


@njit(nogil=True, cache=True)
def disabled_counts(desc, enabled):
    """Silenced (disabled) neurons per layer: fixed during a run."""
    L = desc.shape[0]
    disabled = np.zeros(L, np.int64)
    for li in range(L):
        for i in range(desc[li, N_OFF], desc[li, N_OFF] + desc[li, N_OUT]):
            disabled[li] += enabled[i] == 0
    return disabled


@njit(nogil=True, cache=True)
def run_samples(start, stop, desc, W, bias, theta, leak_a, enabled, params, tile_rows, acc, noise_f, noise_k,
                sample_ids, in_packed, in_direct, U, S, C, counters, rec_S, rec_U,
                learn, targets, lparams, lkeys, wlim, write_sigma, dev, written):
    """Run samples start..stop-1 of a batch, one after another.

    Inference calls this from several host threads on disjoint sample ranges
    (the kernel releases the GIL; each sample only writes its own rows), so
    results do not depend on the thread count; learning calls it once for the
    whole batch when it runs on one thread (the weights change from sample to
sample; on more threads chipsim/core/pipeline.py runs layer ranges of
consecutive samples at once, calling `run_layers` directly). One
    compiled function serves both, which halves the first-run compile time."""
    L = desc.shape[0]
    disabled = disabled_counts(desc, enabled)
    lists_a = np.empty(params[P_T] * params[P_MAX_N], np.int32)
    lists_b = np.empty(params[P_T] * params[P_MAX_N], np.int32)
    no_lists = np.empty(1, np.int32)
    no_counts = np.zeros(1, np.int64)
    for b in range(start, stop):
        run_layers(b, 0, L, desc, W, bias, theta, leak_a, enabled, params, tile_rows, acc, noise_f, noise_k,
                   sample_ids, in_packed, in_direct, U, S, C, counters, rec_S, rec_U,
                   learn, targets, lparams, lkeys, wlim, write_sigma, dev, written, disabled, lists_a, lists_b,
                   no_lists, no_counts, no_lists, no_counts)
