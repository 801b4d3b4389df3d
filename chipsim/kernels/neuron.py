"""Integer neuron dynamics (paper Eq. 1 and 3), one layer, one tick, one sample.

    U[t] = leak(U[t-1]) + I[t] - theta * S[t-1]     reset: subtract (paper Eq. 1)
    U[t] = (1 - S[t-1]) * leak(U[t-1]) + I[t]       reset: zero (paper code)
    S[t] = U[t] >= theta                            (Eq. 3)
    C[t] = C[t-1] + S[t]                            spike accumulator

Precisions: U is a signed `membrane_bits` register held in int32 and computed
in int64, saturated once per tick (each saturation counted); C is an unsigned
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
from .rng import fast_normal, lane_bits, tick_key

#: spike-state value of a neuron that fired but whose spike was dropped (per-tick silencing)
DROPPED = 2


@njit(inline="always", cache=True)
def leak(u, a, leak_bits):
    """Truncating multiplicative leak of an int64 membrane value."""
    mag = ((u if u >= 0 else -u) * a) >> leak_bits
    return mag if u >= 0 else -mag


@njit(nogil=True, cache=True)
def update_neurons(cur, acc, n, n_off, U, S, C, theta, leak_a, enabled, leak_bits, reset_mode, spiking,
                   memoryless, umin, umax, cmax, spike_list, counters, thermal, tick_silence, key_thermal,
                   key_silence, sample_id, t):
    """Advance `n` neurons starting at `n_off` by one tick; input current = cur[i] + acc[i].

    Writes the indices (0-based within the layer) of the neurons that spiked to
    `spike_list` and returns how many there are. `counters` is the (tick, layer)
    row of the counter table. The first loop uses selects, not branches, so
    it vectorises; the second compacts the spike indices.

    Dynamic noise (off when 0): `thermal` = s adds round(s * |I| * xi) to the
    input current, xi ~ N(0, 1) drawn per (sample, tick, neuron) from the
    counter-based hash; `tick_silence` = p suppresses each spike with
    probability p, drawn likewise: the neuron still resets (its S holds
    DROPPED = 2), but the spike is neither delivered nor counted. A disabled neuron (frozen silencing) has
    its membrane held at 0 and never spikes; its ticks count as silenced.
    """
    u_v = U[n_off:n_off + n]
    s_v = S[n_off:n_off + n]
    c_v = C[n_off:n_off + n]
    th_v = theta[n_off:n_off + n]
    a_v = leak_a[n_off:n_off + n]
    en_v = enabled[n_off:n_off + n]
    full = np.int32(1) << leak_bits
    zero_reset = reset_mode == RESET_ZERO
    mem_sat = 0
    cnt_sat = 0
    silenced = 0
    n_spikes = 0
    noisy = thermal > 0.0 or tick_silence > 0.0
    if noisy:
        base_t = tick_key(key_thermal, sample_id, t)
        base_s = tick_key(key_silence, sample_id, t)
        p_keep = uint64((1.0 - tick_silence) * 18446744073709549568.0)
    for i in range(n):
        u = np.int64(u_v[i])
        if memoryless:
            u = np.int64(0)
        a = a_v[i]
        if a != full:
            u = leak(u, a, leak_bits)
        fired = s_v[i] != 0          # a dropped spike (DROPPED) still resets its neuron
        th = np.int64(th_v[i])
        if zero_reset:
            u = 0 if fired else u
        else:
            u = u - th if fired else u
        x = np.int64(cur[i]) + np.int64(acc[i])
        if noisy and thermal > 0.0:
            x += np.int64(np.floor(thermal * abs(x) * fast_normal(lane_bits(base_t, i)) + 0.5))
        en = en_v[i] != 0
        u = u + x if en else np.int64(0)
        mem_sat += (u > umax) + (u < umin)
        u = min(max(u, umin), umax)
        u_v[i] = u
        s = (u >= th) & spiking
        state = np.uint8(s)
        if noisy and tick_silence > 0.0 and s:
            if lane_bits(base_s, i) >= p_keep:
                # the neuron fired (and will reset) but the spike is lost on its way out
                s = False
                state = np.uint8(DROPPED)
                silenced += 1
        silenced += not en
        s_v[i] = state
        c = c_v[i] + np.int32(s)
        cnt_sat += c > cmax
        c_v[i] = min(c, cmax)
        n_spikes += s
    if n_spikes > 0:
        k = 0
        for i in range(n):   # branch-free compaction: write always, advance on a spike
            spike_list[k] = i
            k += s_v[i] == 1
    counters[C_SPIKES] += n_spikes
    counters[C_MEM_UPDATES] += n
    counters[C_MEM_SAT] += mem_sat
    counters[C_CNT_SAT] += cnt_sat
    counters[C_SILENCED] += silenced
    return n_spikes
