"""Integer neuron dynamics (paper Eq. 1 and 3), one layer, one tick, one sample.

    U[t] = leak(U[t-1]) + I[t] - theta * S[t-1]     reset: subtract (paper Eq. 1)
    U[t] = (1 - S[t-1]) * leak(U[t-1]) + I[t]       reset: zero (paper code)
    S[t] = U[t] >= theta                            (Eq. 3)
    C[t] = C[t-1] + S[t]                            spike accumulator

Precisions: U is a signed `membrane_bits` register held in int32 and computed
in int64 (or in int32 lanes where the host proves that exact, see
Chip.narrow_datapath), saturated once per tick (each saturation counted); C is an unsigned
`counter_bits` register (saturation counted); theta and the leak multiplier
are per-neuron integer registers (so device mismatch can perturb each one).

leak(u) = sign(u) * ((|u| * a) >> F): sign-magnitude truncation toward zero,
so a negative membrane decays to zero exactly like a positive one (an
arithmetic shift of a negative number would round toward -inf instead).
IF neurons have a = 2^F, which is the identity.
"""
import numpy as np
from numba import njit, uint64

from .layout import C_CNT_SAT, C_MEM_SAT, C_MEM_UPDATES, C_SILENCED, C_SPIKES, RESET_ZERO
from .rng import lane_bits, tick_key

#: spike-state value of a neuron that fired but whose spike was dropped (per-tick silencing)
DROPPED = 2


@njit(inline="always", cache=True)
def leak(u, a, leak_bits):
    """Truncating multiplicative leak of an int64 membrane value."""
    mag = ((u if u >= 0 else -u) * a) >> leak_bits
    return mag if u >= 0 else -mag


@njit(nogil=True, cache=True)
def add_thermal(cur, acc, n, sigma, tkey, th_v, additive):
    """Thermal noise on the input current, cur[i] <- I + round(sigma * scale_i * xi), acc[i] <- 0, with
    scale_i = |I| (scope current) or theta_i (`additive`, Buechel et al.: std sigma (theta - reset)).

    xi ~ N(0, 1) (Irwin-Hall, kernels/rng.py) per neuron under the (sample, tick) key `tkey`.
    The 16-bit fields go through int32 so the loop vectorises on AVX2."""
    for i in range(n):
        x = np.int64(cur[i]) + np.int64(acc[i])
        h = lane_bits(tkey, i)
        m = uint64(0xFFFF)
        total = np.int32(h & m) + np.int32((h >> uint64(16)) & m) + np.int32((h >> uint64(32)) & m) \
            + np.int32(h >> uint64(48))
        xi = (np.float64(total) - 131070.0) * (1.7320508075688772 / 65536.0)
        scale = np.float64(th_v[i]) if additive else np.float64(abs(x))
        cur[i] = x + np.int64(np.floor(sigma * scale * xi + 0.5))
        acc[i] = 0


@njit(inline="always", cache=True)
def integrate_wide(u_v, s_v, c_v, th_v, a_v, en_v, cu, ac, n, leak_bits, zero_reset, spiking, count_now,
                   umin, umax, cmax):
    """The integrate-and-fire loop in int64 arithmetic (any register widths the config allows).
    Returns (spikes, membrane saturations, counter saturations)."""
    mem_sat = 0
    cnt_sat = 0
    n_spikes = 0
    for i in range(n):
        u = np.int64(u_v[i])
        mag = (abs(u) * np.int64(a_v[i])) >> leak_bits
        u = mag if u >= 0 else -mag
        th = np.int64(th_v[i])
        fired = s_v[i] != 0       # reset by the last tick's spike (DROPPED spikes reset too)
        u = (np.int64(0) if zero_reset else u - th) if fired else u
        u = u + np.int64(cu[i]) + np.int64(ac[i])
        u = u if en_v[i] != 0 else np.int64(0)
        hi = u > umax
        lo = u < umin
        mem_sat += hi | lo
        u = umax if hi else (umin if lo else u)
        u_v[i] = np.int32(u)
        s = (u >= th) & spiking
        s_v[i] = np.uint8(s)
        c = np.int64(c_v[i]) + (s & count_now)
        cs = c > cmax
        cnt_sat += cs
        c_v[i] = np.int32(cmax if cs else c)
        n_spikes += s
    return n_spikes, mem_sat, cnt_sat


@njit(inline="always", cache=True)
def integrate_narrow(u_v, s_v, c_v, th_v, a_v, en_v, cu, ac, n, leak_bits, zero_reset, spiking, count_now,
                     umin, umax, cmax, count_can_saturate):
    """The same loop in int32 lanes (eight per AVX2 vector). Exact under the host's bounds:
    leak_bits <= 15 and a < 2^(31 - leak_bits), so with |u| = hi * 2^F + lo,
    (|u| * a) >> F = hi * a + ((lo * a) >> F) has no product beyond int32; and
    |leak(u)| + theta + |input current| < 2^31. Every np.int32(...) below marks a value the
    bounds keep in range; Numba would otherwise widen int32 arithmetic to int64. The shifts are
    np.right_shift, which Numba types int32 -> int32: `>>` would widen to int64, and LLVM cannot narrow
    a shift by a variable amount back, so the loop ran in 64-bit lanes at half speed.
    The counter saturates without forming C + 1 (C may be 2^31 - 1)."""
    lb = np.int32(leak_bits)
    mask = np.int32((1 << leak_bits) - 1)
    umx = np.int32(umax)
    umn = np.int32(umin)
    cmx = np.int32(cmax)
    sp = np.int32(1 if spiking else 0)
    cn = np.int32(1 if count_now else 0)
    zr = zero_reset
    mem_sat = np.int32(0)
    cnt_sat = np.int32(0)
    n_spikes = np.int32(0)
    for i in range(n):
        u = u_v[i]
        a = a_v[i]
        neg = u < 0
        au = np.int32(-u) if neg else u
        mag = np.int32(np.right_shift(au, lb) * a + np.right_shift(np.int32(np.int32(au & mask) * a), lb))
        u = np.int32(-mag) if neg else mag
        th = th_v[i]
        fired = s_v[i] != 0
        u = (np.int32(0) if zr else np.int32(u - th)) if fired else u
        x = np.int32(u + cu[i] + ac[i])
        x = x if en_v[i] != 0 else np.int32(0)
        hi = x > umx
        lo = x < umn
        mem_sat = np.int32(mem_sat + (hi | lo))
        x = umx if hi else (umn if lo else x)
        u_v[i] = x
        s = np.int32(x >= th) & sp
        s_v[i] = np.uint8(s)
        inc = s & cn
        c = c_v[i]
        cs = (c == cmx) & (inc != 0) & count_can_saturate
        cnt_sat = np.int32(cnt_sat + cs)
        c_v[i] = c if cs else np.int32(c + inc)
        n_spikes = np.int32(n_spikes + s)
    return n_spikes, mem_sat, cnt_sat


@njit(nogil=True, cache=True)
def update_neurons(cur, acc, n, n_off, U, S, C, theta, leak_a, enabled, leak_bits, reset_mode, spiking,
                   memoryless, umin, umax, cmax, narrow, disabled, spike_list, counters, thermal, tick_silence,
                   key_thermal, key_silence, thermal_add, key_thermal_add, sample_id, t, t_max):
    """Advance `n` neurons starting at `n_off` by one tick; input current = cur[i] + acc[i].

    Writes the indices (0-based within the layer) of the neurons that spiked to
    `spike_list` and returns how many there are. `counters` is the (tick, layer)
    row of the counter table. The main loop uses selects, not branches, so it
    vectorises; a second pass compacts the spike indices.

    Dynamic noise (off when 0): `thermal` = s adds round(s * |I| * xi) to the
    input current, xi ~ N(0, 1) drawn per (sample, tick, neuron) from the
    counter-based hash (a pass before the update); `thermal_add` = s adds
    round(s * theta_i * xi) likewise (its own key); `tick_silence` = p drops
    each spike with probability p, drawn likewise: the neuron still resets
    (its S holds DROPPED = 2), but the spike is neither delivered nor counted.
    A disabled neuron (frozen silencing) has its membrane held at 0 and never
    spikes; its ticks count as silenced (`disabled` of them in this layer, counted
    once per sample by the caller, since the enables do not change during a run).
    `t_max` = T: a counter register that holds T cannot saturate, which the
    common-case loop uses to drop that test.

    `narrow` (set by the host when it has proven that no intermediate value
    of this layer can leave int32, see Chip.narrow_datapath) selects the
    32-bit-lane loop, twice as fast as the 64-bit one and bit-identical.
    """
    u_v = U[n_off:n_off + n]
    s_v = S[n_off:n_off + n]
    c_v = C[n_off:n_off + n]
    th_v = theta[n_off:n_off + n]
    a_v = leak_a[n_off:n_off + n]
    en_v = enabled[n_off:n_off + n]
    cu = cur[:n]
    ac = acc[:n]
    if thermal > 0.0:
        add_thermal(cu, ac, n, thermal, tick_key(key_thermal, sample_id, t), th_v, False)
    if thermal_add > 0.0:
        add_thermal(cu, ac, n, thermal_add, tick_key(key_thermal_add, sample_id, t), th_v, True)
    zero_reset = reset_mode == RESET_ZERO
    drop = tick_silence > 0.0
    count_now = not drop           # with drops, a spike is counted in the drop pass below
    if memoryless:      # OR pooling: no state carried from the last tick, so no reset either
        u_v[:] = 0
        s_v[:] = 0
    silenced = disabled
    if narrow and spiking and count_now and not zero_reset and cmax >= t_max:
        # the common case with its flags as constants: the inlined loop drops their selects (~40 % faster);
        # a counter that holds T cannot saturate within T ticks, so that test goes too
        n_spikes, mem_sat, cnt_sat = integrate_narrow(u_v, s_v, c_v, th_v, a_v, en_v, cu, ac, n,
                                                      leak_bits, False, True, True, umin, umax, cmax, False)
    elif narrow:
        n_spikes, mem_sat, cnt_sat = integrate_narrow(u_v, s_v, c_v, th_v, a_v, en_v, cu, ac, n,
                                                      leak_bits, zero_reset, spiking, count_now,
                                                      umin, umax, cmax, True)
    else:
        n_spikes, mem_sat, cnt_sat = integrate_wide(u_v, s_v, c_v, th_v, a_v, en_v, cu, ac, n,
                                                    leak_bits, zero_reset, spiking, count_now, umin, umax, cmax)
    if drop and n_spikes > 0:
        base_s = tick_key(key_silence, sample_id, t)
        p_keep = uint64((1.0 - tick_silence) * 18446744073709549568.0)
        for i in range(n):
            if s_v[i] != 0:
                if lane_bits(base_s, i) >= p_keep:
                    s_v[i] = DROPPED         # fired and will reset, but the spike is lost on its way out
                    n_spikes -= 1
                    silenced += 1
                else:
                    c = c_v[i] + 1
                    if c > cmax:
                        cnt_sat += 1
                    else:
                        c_v[i] = c
    if n_spikes > 0:
        k = 0
        for i in range(n):   # branch-free compaction: write always, advance on a delivered spike
            spike_list[k] = i
            k += s_v[i] == 1
    counters[C_SPIKES] += n_spikes
    counters[C_MEM_UPDATES] += n
    counters[C_MEM_SAT] += mem_sat
    counters[C_CNT_SAT] += cnt_sat
    counters[C_SILENCED] += silenced
    return n_spikes
