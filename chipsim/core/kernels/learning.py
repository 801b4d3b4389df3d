"""The learning circuit of Figure 1(d): online LTL (paper Eq. 8-11) for one layer, one tick.

For neuron i after the warm-up, with t = ticks elapsed (1-based):

    rate target  r_i = target_i / R            R = 2^target_bits - 1 (host, fixed point)
    error        e_i = r_i - C_i[t] / t        -> compared in integers: target_i * t - C_i * R
    boxcar gate  |U_i[t] - theta_i| < (p / 2) * theta_i            (Eq. 8, p a fraction of theta)
    sign gate    |e_i| > dead_zone + dead_zone_spikes / t    (in counts: |r_i t - C_i[t]| > dead_zone t + spikes)
    update       dW_ij = -lr * zeta_i * (1/p) * x_j,  zeta_i = -(2/t) e_i     (Eq. 10-11)

Modes: `sign` writes a programming pulse of +-pulse LSBs in the direction of
sign(e_i) to every cell (i, j) whose input j was active this tick (a
comparator is all it needs; a pulse finer than the register's level fires a
whole level with probability pulse / level, so `pulse` may be fractional:
those Bernoulli draws come from geometric skipping over each group's pairs,
kernels/skip.py, so the cost follows the pulses that fire, not the gated
pairs; the bias and threshold-trim fractions are skipped over the gated
neurons the same way);
`exact` writes dW in LSBs, stochastically
rounded with a counter-based draw (seeded, batch- and thread-independent).
Biases get the same rule with x_j = 1.

Threshold trim (`L_TH_STEP` > 0, off by default; not in the paper): a gated
neuron also moves its own threshold register by a step against sign(e_i)
(firing too little lowers it), within a window around the nominal threshold.
It is the same gradient sign: dS/dtheta = -boxcar(U - theta). A conv neuron
shares its weights and bias with every output position, so only a
per-neuron register can undo its own threshold mismatch.

Multi-bit inputs (the direct encoder's values into the first layer, full
scale X): by default a nonzero value is one active input, as a spike is. With
`L_X_FULL` = X > 1 (`multibit_input: scale`), a sign pulse on input value x
fires with probability (pulse / level) * x / X, so the expected change is
proportional to x as the gradient is; and the bias, whose register counts in
1/X of a weight LSB at full-scale input, learns as an input held at X: its
pulse is pulse * X LSBs (exact mode: the weight rule with x = X, times X).

A convolution cell is shared by every
output position: each (position, input) pair is one pulse; `cell_writes`
counts distinct cells per tick (a bitmap of the layer's cells, cleared each
tick; small enough to stay in cache, unlike a stamp per cell).

Row writes (for the timing engine's write ports, NeuroSim's row-by-row model):
the synapses of one group (an fc layer's tick, a conv layer's output position)
are written one active crossbar row at a time; each row with at least one
pulse is counted with its largest SET (weight up) and RESET (weight down) pulse
count. A row spans the layer's column tiles (they are written together).

Every write saturates at the layer's register range (counted) and, with write
noise s > 0, is scaled by (1 + s * xi) and stochastically rounded (counted).

Synapse devices (`program_cell`, kernels/device.py): with a device model on a
layer, a write of n levels is n pulses through the device, which moves the
cell's fixed-point state (16 fraction bits) as its pulse response gives, and
the register reads the nearest level; pulses are counted as requested. Every
learning run also counts writes per cell (a write: a tick in which the cell
got pulses), and cells frozen by --noise stuck or by their endurance take no
writes. The linear default keeps the plain register write above.
"""
import numpy as np
from numba import njit

from .layout import (B_OFF, C_BIAS_WRITES, C_BOXCAR, C_CELL_WRITES, C_PULSES, C_ROW_RESET, C_ROW_RMW, C_ROW_SET,
                     C_SIGN, C_THRESHOLD_WRITES, C_UNGATED, C_WRITE_ROWS, C_W_SAT, C_WRITE_NOISE, FAN_IN, IN_C, IN_H, IN_W, KERNEL, KIND, KIND_CONV, L_BIAS,
                     L_DEAD, L_DEAD_SPIKES, L_LR, L_MODE, L_P_Q, L_PULSE, L_T_OFF, L_TH_HI, L_TH_LO, L_TH_STEP,
                     L_X_FULL, MODE_EXACT, N_OFF, N_OUT, OUT_C, OUT_W, PAD, STRIDE, W_OFF, C_DEVICE_FAILURES)
from .crossbar import index_events, window_rows
from .device import D_ANY_FROZEN, D_ENDURANCE, D_ON, device_pulses, fail_cell
from .rng import fast_normal, hash4, unit
from .skip import accept, group_stream, log_keep, next_fire, take_fire

@njit(inline="always", cache=True)
def tally_row(counters, set_max, reset_max):
    """Count one crossbar row write: its largest SET and RESET pulse counts (NeuroSim's row-by-row
    write costs max SET + max RESET pulse slots per row; a one-phase write costs the larger)."""
    if set_max > 0 or reset_max > 0:
        counters[C_WRITE_ROWS] += 1
        counters[C_ROW_SET] += set_max
        counters[C_ROW_RESET] += reset_max
        counters[C_ROW_RMW] += max(set_max, reset_max)


@njit(inline="always", cache=True)
def tally_whole_rows(counters, n_rows, levels, gerr, m0, m1):
    """Count `n_rows` row writes that each give every gated neuron gsel[m0:m1] `levels` pulses
    in the direction of its error gerr (whole sign pulses)."""
    up = 0
    down = 0
    for m in range(m0, m1):
        if gerr[m] > 0:
            up = 1
        else:
            down = 1
    if n_rows > 0 and levels > 0 and m1 > m0:
        counters[C_WRITE_ROWS] += n_rows
        counters[C_ROW_SET] += n_rows * levels * up
        counters[C_ROW_RESET] += n_rows * levels * down
        counters[C_ROW_RMW] += n_rows * levels


@njit(inline="always", cache=True)
def stochastic_round(x, bits):
    """floor(x + u), u uniform in [0, 1) from `bits`: unbiased rounding to an integer."""
    return np.int64(np.floor(x + unit(bits)))


@njit(inline="always", cache=True)
def clip_counted(v, bound, counters):
    """Saturate a register write at +-bound, counting every clip."""
    if v > bound:
        counters[C_W_SAT] += 1
        return bound
    if v < -bound:
        counters[C_W_SAT] += 1
        return -bound
    return v


@njit(inline="always", cache=True)
def write_cell(W, cell, delta, wmax, noise, nkey, sample_id, t, pair, counters):
    """Add `delta` LSBs to cell W[cell] with optional write noise (draws addressed by `pair`); saturate."""
    if noise > 0.0:
        scale = 1.0 + noise * fast_normal(hash4(nkey, sample_id, t, 2 * pair))
        delta = stochastic_round(delta * scale, hash4(nkey, sample_id, t, 2 * pair + 1))
        counters[C_WRITE_NOISE] += 1
    W[cell] = clip_counted(np.int64(W[cell]) + delta, wmax, counters)


@njit(inline="always", cache=True)
def update_synapse(W, cell, x, exact, gain_err, sgn, pulse_levels, wmax, wstep, noise, nkey, ekey, sample_id,
                   t, pair, shared, written, counters, x_scale, dev, li):
    """One gated (neuron, active input) pair: compute dW, write the cell.

    Sign mode moves `pulse_levels` register levels in the direction `sgn`; a
    fractional part becomes a pulse with that probability (a stochastic pulse,
    as in RPU-style analog updates), so the expected change is `pulse` LSBs
    whatever the register width; with `x_scale` > 0 (= 1 / full-scale input) the
    pulse fires with probability scaled by x * x_scale. Every random draw is addressed by (sample,
    tick, pair), pair = neuron * fan_in + crossbar row, so an update does not
    depend on the order pairs are visited in. Returns (pulses, 1 if the cell
    was not yet written this tick). Only `shared` (conv) cells can be written
    twice in a tick, so only they consult the `written` bitmap."""
    if exact:
        levels = stochastic_round(gain_err * x, hash4(ekey, sample_id, t, pair))
    else:
        if x_scale > 0.0:
            pulse_levels = pulse_levels * x * x_scale
        levels = np.int64(pulse_levels)
        frac = pulse_levels - levels
        if frac > 0.0:
            levels += unit(hash4(ekey, sample_id, t, pair)) < frac
        levels *= sgn
    if levels == 0:
        return 0, 0
    return abs(levels), program_cell(W, cell, levels * wstep, wmax, wstep, noise, nkey, sample_id, t, pair, shared,
                                     written, counters, dev, li)


@njit(inline="always", cache=True)
def mark_written(written, cell):
    """Set the cell's bit in the per-tick bitmap; 1 if it was not set yet."""
    byte = cell >> 3
    bit = np.uint8(1 << (cell & 7))
    if written[byte] & bit:
        return 0
    written[byte] |= bit
    return 1


@njit(inline="always", cache=True)
def program_cell(W, cell, delta, wmax, wstep, noise, nkey, sample_id, t, pair, shared, written, counters, dev, li):
    """Write `delta` LSBs (a whole number of levels, one pulse each) to cell W[cell]; returns 1 if the
    cell was not yet written this tick (distinct-write counting, as `mark_written`).

    `dev` = (dparams, dkeys, state, writes, frozen) (chipsim/core/synapse.py): `writes` (uint32 per
    cell, when it holds every cell) counts each tick a cell is written in; with dparams[li, D_ON]
    the pulses go through the layer's device model (kernels/device.py) unless the cell is frozen
    (stuck, or failed: its endurance of E writes is spent, the write number E + 1 fails it, counted
    in C_DEVICE_FAILURES). Pulses are counted by the callers as requested, whatever the cell does."""
    dparams, dkeys, state, writes, frozen = dev
    new = mark_written(written, cell) if shared else 1
    if writes.shape[0] == W.shape[0] and new:
        writes[cell] += 1
    dp = dparams[li]
    if dp[D_ON] == 0.0:
        write_cell(W, cell, delta, wmax, noise, nkey, sample_id, t, pair, counters)
        return new
    if dp[D_ANY_FROZEN] != 0.0 and frozen[cell]:     # the mask is read only where a cell can be frozen
        return new
    endurance = dp[D_ENDURANCE]
    if endurance > 0.0 and writes[cell] > endurance:
        frozen[cell] = 1
        fail_cell(W, state, cell, dp, dkeys[li, 0], wmax, wstep)
        counters[C_DEVICE_FAILURES] += 1
        return new
    device_pulses(W, state, cell, delta // wstep, wmax, wstep, dp, dkeys[li, 0], dkeys[li, 1], noise, nkey,
                  sample_id, t, pair, counters)
    return new


@njit(nogil=True, cache=True)
def sign_pulses(W, w_off, out_c, fan_in, rows, xs, n_rows, gsel, gerr, m0, m1, col_off, pulse_levels, x_scale,
                wstep, wmax, noise, nkey, stream, sample_id, t, shared, written, counters, dev, li):
    """Sign-mode writes of one group with a fractional pulse, by geometric skipping (kernels/skip.py).

    The group's pairs are (row r of `rows`, gated neuron gsel[m0 + m]) in the
    order f = r * g + m, g = m1 - m0. Each pair writes floor(pulse_levels)
    levels, plus one more with probability frac(pulse_levels); with multi-bit
    scaling (x_scale = 1 / full scale > 0, only when pulse_levels < 1) a
    candidate on row r fires with probability xs[r] * x_scale (thinning), so
    the pair fires with probability pulse_levels * x / X as the per-pair rule
    does. With no whole level only the pairs that fire are visited. The cell
    of a pair is w_off + row * out_c + neuron - col_off; `pair` addresses its
    write-noise draws as on the per-pair path. Returns (pulses, new cells)."""
    g = m1 - m0
    total = n_rows * g
    whole = np.int64(pulse_levels)
    lk = log_keep(pulse_levels - whole)
    pulses = 0
    cells = 0
    k = 0
    f = next_fire(stream, 0, 0, lk, total)
    if whole == 0:
        row_now = -1               # the row being written and whether it got SET / RESET pulses so far
        up = 0
        down = 0
        while f < total:
            r = f // g
            m = m0 + f - r * g
            fire = True
            if x_scale > 0.0:
                fire = accept(stream, k, xs[r] * x_scale)
            k += 1
            if fire:
                i = gsel[m]
                row = np.int64(rows[r])
                cell = w_off + row * out_c + i - col_off
                pulses += 1
                cells += program_cell(W, cell, wstep if gerr[m] > 0 else -wstep, wmax, wstep, noise, nkey,
                                      sample_id, t, i * fan_in + row, shared, written, counters, dev, li)
                if r != row_now:
                    tally_row(counters, up, down)
                    row_now = r
                    up = 0
                    down = 0
                if gerr[m] > 0:
                    up = 1
                else:
                    down = 1
            f = next_fire(stream, k, f + 1, lk, total)
        tally_row(counters, up, down)
        return pulses, cells
    f_pair = 0
    for r in range(n_rows):
        row = np.int64(rows[r])
        base = w_off + row * out_c - col_off
        up = 0
        down = 0
        for m in range(m0, m1):
            extra, k, f = take_fire(stream, k, f, f_pair, lk, total)
            levels = whole + extra
            f_pair += 1
            i = gsel[m]
            if levels == 0:
                continue
            pulses += levels
            cells += program_cell(W, base + i, levels * wstep if gerr[m] > 0 else -levels * wstep, wmax, wstep,
                                  noise, nkey, sample_id, t, i * fan_in + row, shared, written, counters, dev, li)
            if gerr[m] > 0:
                up = max(up, levels)
            else:
                down = max(down, levels)
        tally_row(counters, up, down)
    return pulses, cells


@njit(inline="always", cache=True)
def fractional_sign(exact, pulse_levels, x_scale):
    """Whether a sign-mode group goes through `sign_pulses` (a fractional pulse); exact mode, whole
    pulses and scaled multi-bit pulses of a level or more keep their per-pair paths."""
    if exact or (x_scale > 0.0 and pulse_levels >= 1.0):
        return False
    return not (np.int64(pulse_levels) == pulse_levels and pulse_levels > 0.0 and x_scale == 0.0)


@njit(nogil=True, cache=True)
def learn_layer(li, desc, W, bias, theta, U, C, events, values, n_events, multibit, targets, lp, t1,
                target_max, wmax, wstep, bias_max, noise, nkey, ekey, sample_id, t, pos_start, gsel, gerr,
                written, counters, dev):
    """Apply online LTL to layer `li` after its neuron update in tick t (t1 = t + 1 ticks elapsed).

    Three passes: the gates pick the neurons that update; their threshold
    and bias registers move; then the synapses are written row by row, all
    gated columns of one active crossbar row together, as a row-parallel
    crossbar write does. That order touches each weight row once per output
    position (instead of once per gated neuron), and a shared conv cell sees
    its updates in ascending output position.

    Draw groups (kernels/skip.py), per tick: a conv output position p's
    synapse pairs are group p, an fc layer's are group 0; with P output
    positions (1 for fc), the gated neurons' fractional bias pulses are group
    P and their threshold-trim fractions group P + 1. Exact mode, and scaled
    multi-bit pulses of a level or more, draw per pair (pair = neuron *
    fan_in + row)."""
    n = desc[li, N_OUT]
    n_off = desc[li, N_OFF]
    out_c = desc[li, OUT_C]
    w_off = desc[li, W_OFF]
    fan_in = desc[li, FAN_IN]
    is_conv = desc[li, KIND] == KIND_CONV
    positions = n // out_c
    exact = lp[L_MODE] == MODE_EXACT
    p_q = np.int64(lp[L_P_Q])
    # sign mode: `pulse` LSBs per gated pair = pulse / wstep register levels (fractions are stochastic)
    pulse_levels = lp[L_PULSE] / wstep
    t_off = np.int64(lp[L_T_OFF])
    dead = np.int64(np.floor(lp[L_DEAD] * target_max * t1 + lp[L_DEAD_SPIKES] * target_max))
    # exact mode, in register levels: lr * (2 / t) * (1 / p), times e_i and x_j below
    gain = lp[L_LR] * 2.0 / t1 * 65536.0 / p_q / wstep
    learn_bias = lp[L_BIAS] != 0.0
    # multi-bit inputs at full scale x_full (> 1 only with `multibit_input: scale`): weight pulses fire with
    # probability x / x_full, the bias learns as an input held at x_full (its LSB is 1 / x_full)
    x_full = lp[L_X_FULL] if multibit and lp[L_X_FULL] > 1.0 else 1.0
    x_scale = 1.0 / x_full if x_full > 1.0 else 0.0
    counters[C_UNGATED] += n * fan_in
    boxcar = 0
    signed = 0
    # Branch-free compaction: most neurons are gated out, at random, so a branch per gate mispredicts;
    # every neuron writes its slot (signed <= i < n, inside gsel) and only a gated one advances it.
    for i in range(n):
        g = n_off + i
        th = np.int64(theta[g])
        dist = abs(np.int64(U[g]) - th)
        is_open = np.int64(2 * dist * 65536 < p_q * th)           # boxcar gate
        diff = np.int64(targets[t_off + i]) * t1 - np.int64(C[g]) * target_max
        outside = np.int64(diff > dead) | np.int64(diff < -dead)  # sign gate: no update inside the dead zone
        boxcar += is_open
        gsel[signed] = i
        gerr[signed] = diff                       # the count error; scaled to e_i below
        signed += is_open & outside
    for m in range(signed):
        gerr[m] = gerr[m] / (target_max * t1)     # e_i as a real number
    th_step = lp[L_TH_STEP]
    if signed > 0 and th_step > 0.0:
        # whole steps for every gated neuron, the fraction by skipping over them (group P + 1)
        th_lo = np.int64(lp[L_TH_LO])
        th_hi = np.int64(lp[L_TH_HI])
        whole = np.int64(th_step)
        lk = log_keep(th_step - whole)
        stream = group_stream(ekey, sample_id, t, positions + 1)
        k = 0
        f = next_fire(stream, 0, 0, lk, signed)
        for m in range(signed):
            extra, k, f = take_fire(stream, k, f, m, lk, signed)
            d_th = whole + extra
            if d_th == 0:
                continue
            g = n_off + gsel[m]
            th = np.int64(theta[g])
            v = th - d_th if gerr[m] > 0 else th + d_th      # firing too little: lower the threshold
            if v < th_lo or v > th_hi:
                v = th_lo if v < th_lo else th_hi
                counters[C_W_SAT] += 1
            theta[g] = v
            counters[C_THRESHOLD_WRITES] += 1
    if signed > 0 and learn_bias:
        b_pulse = lp[L_PULSE] * x_full
        whole = np.int64(b_pulse)
        lk = log_keep(b_pulse - whole)
        stream = group_stream(ekey, sample_id, t, positions)
        k = 0
        f = next_fire(stream, 0, 0, lk, signed)
        bias_draw = n * fan_in          # exact mode: bias draws are addressed past every synapse pair
        for m in range(signed):
            i = gsel[m]
            if exact:
                db = stochastic_round(gain * gerr[m] * wstep * x_full * x_full, hash4(ekey, sample_id, t,
                                                                                      bias_draw + i))
            else:
                extra, k, f = take_fire(stream, k, f, m, lk, signed)
                db = -(whole + extra) if gerr[m] < 0 else whole + extra
            if db != 0:
                cell = desc[li, B_OFF] + i % out_c
                bias[cell] = clip_counted(np.int64(bias[cell]) + db, bias_max, counters)
                counters[C_BIAS_WRITES] += 1
    pulses = 0
    cells = 0
    if signed > 0 and n_events > 0:
        if is_conv:
            pulses, cells = learn_conv_synapses(desc, li, W, events, values, n_events, multibit, exact, gain,
                                                pulse_levels, wmax, wstep, noise, nkey, ekey, sample_id, t,
                                                pos_start, gsel, gerr, signed, written, counters, x_scale, dev)
        elif fractional_sign(exact, pulse_levels, x_scale):
            pulses, cells = sign_pulses(W, w_off, out_c, fan_in, events, values, n_events, gsel, gerr, 0, signed,
                                        0, pulse_levels, x_scale, wstep, wmax, noise, nkey,
                                        group_stream(ekey, sample_id, t, 0), sample_id, t, False, written,
                                        counters, dev, li)
        else:
            levels = np.int64(pulse_levels)
            whole_pulses = not exact and levels == pulse_levels and levels > 0 and x_scale == 0.0
            if whole_pulses:
                tally_whole_rows(counters, n_events, levels, gerr, 0, signed)
            for e in range(n_events):
                row = np.int64(events[e])
                if whole_pulses:   # sign mode, whole pulses: no per-pair draw or float work
                    step = levels * wstep
                    for m in range(signed):
                        i = gsel[m]
                        program_cell(W, w_off + row * out_c + i, step if gerr[m] > 0 else -step, wmax, wstep,
                                     noise, nkey, sample_id, t, i * fan_in + row, False, written, counters, dev, li)
                    pulses += levels * signed
                    cells += signed
                    continue
                x = values[e] if multibit else 1
                up = 0
                down = 0
                for m in range(signed):
                    i = gsel[m]
                    p, new = update_synapse(W, w_off + row * out_c + i, x, exact, gain * gerr[m],
                                            1 if gerr[m] > 0 else -1, pulse_levels, wmax, wstep, noise, nkey,
                                            ekey, sample_id, t, i * fan_in + row, False, written, counters,
                                            x_scale, dev, li)
                    pulses += p
                    cells += new
                    if gerr[m] > 0:
                        up = max(up, p)
                    else:
                        down = max(down, p)
                tally_row(counters, up, down)
    counters[C_BOXCAR] += boxcar * fan_in
    counters[C_SIGN] += signed * fan_in
    counters[C_PULSES] += pulses
    counters[C_CELL_WRITES] += cells


@njit(nogil=True, cache=True)
def learn_conv_synapses(desc, li, W, events, values, n_events, multibit, exact, gain, pulse_levels, wmax, wstep,
                        noise, nkey, ekey, sample_id, t, pos_start, gsel, gerr, signed, written, counters,
                        x_scale, dev):
    """Synapse writes of a conv layer: per output position (ascending), per active input in its
    window, all gated output channels of that position. Returns (pulses, new cells)."""
    out_c = desc[li, OUT_C]
    w_off = desc[li, W_OFF]
    fan_in = desc[li, FAN_IN]
    k = desc[li, KERNEL]
    stride = desc[li, STRIDE]
    pad = desc[li, PAD]
    in_c = desc[li, IN_C]
    in_h = desc[li, IN_H]
    in_w = desc[li, IN_W]
    out_w = desc[li, OUT_W]
    levels = np.int64(pulse_levels)
    whole_pulses = not exact and levels == pulse_levels and levels > 0 and x_scale == 0.0
    fractional = fractional_sign(exact, pulse_levels, x_scale)
    step = levels * wstep
    writes = dev[3]
    count_writes = writes.shape[0] == W.shape[0]
    device = dev[0][li, D_ON] != 0.0
    index_events(events, n_events, in_c, in_h * in_w, pos_start)
    # this tick's written-cell bits of the layer (boundary bytes shared with a neighbour layer hold
    # only its finished ticks' bits, which it clears again itself)
    written[w_off >> 3:((w_off + fan_in * out_c) >> 3) + 1] = 0
    rows = np.empty(k * k * in_c, np.int32)
    which = np.empty(k * k * in_c, np.int32)
    xs = np.empty(k * k * in_c, np.int32)      # multi-bit scaling: the input value of each window row
    chan = np.empty(out_c, np.int64)           # whole noiseless pulses: the gated channels of a position
    delta = np.empty(out_c, np.int64)          # ... and their signed steps
    pulses = 0
    cells = 0
    sat = 0
    m0 = 0
    while m0 < signed:
        pos = gsel[m0] // out_c
        m1 = m0 + 1
        while m1 < signed and gsel[m1] // out_c == pos:
            m1 += 1
        oy = pos // out_w
        n = window_rows(oy, pos - oy * out_w, k, stride, pad, in_h, in_w, in_c, events, pos_start, rows, which, True)
        if fractional:
            if x_scale > 0.0:
                for r in range(n):
                    xs[r] = values[which[r]]
            p, c = sign_pulses(W, w_off, out_c, fan_in, rows, xs, n, gsel, gerr, m0, m1, pos * out_c,
                               pulse_levels, x_scale, wstep, wmax, noise, nkey,
                               group_stream(ekey, sample_id, t, pos), sample_id, t, True, written, counters,
                               dev, li)
            pulses += p
            cells += c
            m0 = m1
            continue
        if whole_pulses:
            tally_whole_rows(counters, n, levels, gerr, m0, m1)
        if whole_pulses and noise == 0.0 and not device:
            # the common case, hoisted: no draws, no float work, saturations counted once per position
            g = m1 - m0
            for m in range(g):
                chan[m] = gsel[m0 + m] - pos * out_c
                delta[m] = step if gerr[m0 + m] > 0 else -step
            for r in range(n):
                cell_row = w_off + np.int64(rows[r]) * out_c
                for m in range(g):
                    cell = cell_row + chan[m]
                    v = np.int64(W[cell]) + delta[m]
                    if v > wmax:
                        v = wmax
                        sat += 1
                    elif v < -wmax:
                        v = -wmax
                        sat += 1
                    W[cell] = v
                    new = mark_written(written, cell)
                    if count_writes:
                        writes[cell] += new
                    cells += new
            pulses += levels * g * n
            m0 = m1
            continue
        for r in range(n):
            row = np.int64(rows[r])
            cell_row = w_off + row * out_c - pos * out_c
            if whole_pulses:   # sign mode, whole pulses: no per-pair draw or float work
                for m in range(m0, m1):
                    i = gsel[m]
                    cells += program_cell(W, cell_row + i, step if gerr[m] > 0 else -step, wmax, wstep, noise, nkey,
                                          sample_id, t, i * fan_in + row, True, written, counters, dev, li)
                pulses += levels * (m1 - m0)
                continue
            x = values[which[r]] if multibit else 1
            up = 0
            down = 0
            for m in range(m0, m1):
                i = gsel[m]
                p, new = update_synapse(W, cell_row + i, x, exact, gain * gerr[m],
                                        1 if gerr[m] > 0 else -1, pulse_levels, wmax, wstep, noise, nkey, ekey,
                                        sample_id, t, i * fan_in + row, True, written, counters, x_scale, dev, li)
                pulses += p
                cells += new
                if gerr[m] > 0:
                    up = max(up, p)
                else:
                    down = max(down, p)
            tally_row(counters, up, down)
        m0 = m1
    counters[C_W_SAT] += sat
    return pulses, cells
