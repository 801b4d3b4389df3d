"""Synapse devices in the learning circuit: the conductance change each programming pulse gives.

The learning rule (kernels/learning.py) decides how many pulses a cell gets
and in which direction; a device model decides how far each one moves it.
Models follow IBM aihwkit's pulsed-device definitions (simulator/configs/
devices.py; fits in simulator/presets/devices.py), in device units where the
register bound `wmax` is w = 1 (so a cell's state in LSBs is w * wmax):

    linear      dw = +- s_d                                     (ConstantStepDevice)
    softbounds  up: s_+ (1 - w / b_max)    down: s_- (1 - w / b_min)
    linearstep  up: s_+ (1 - g_+ w / w_max) down: s_- (1 - g_- w / w_min)   (LinearStepDevice,
                g_d = |gamma_d + gamma_d_dtod xi| per cell, slopes against the mean bounds)
    expstep     z = 2 a w / (b_max - b_min) + b
                up: s_+ max(1 - A_+ e^{gamma_+ z}, 0)  down: s_- max(1 - A_- e^{-gamma_- z}, 0)  (ExpStepDevice)
    powstep     omega = (b_max - w) / (b_max - b_min)
                up: s_+ omega^{g_+}     down: s_- (1 - omega)^{g_-}                (PowStepDevice)

and every pulse is multiplied by (1 + c2c * xi) (cycle-to-cycle noise, a
fresh draw per pulse) and the state clipped to [b_min, b_max] and to the
register range. Device-to-device variation, per cell, as aihwkit draws it:

    gain = 1 + dw_dtod xi0,  r = up_down_dtod xi1
    s_+ = |up_bias + gain + r| * step,  s_- = |down_bias + gain - r| * step
          (up_bias = min(up_down, 0), down_bias = -max(up_down, 0))
    b_max = w_max (1 + w_max_dtod xi2),  b_min = w_min (1 + w_min_dtod xi3)   (swapped if crossed)
    linearstep: xi4, xi5 vary gamma_+ and gamma_-; powstep: g_d = |bias_d + 1 + pow_dtod xi4 +- pud xi5| gamma

`step` is one register level (wstep LSBs): the learning rule's pulse size
still sets how many pulses fire, as for the linear cell. The xi_j of a cell
are pure functions of (layer key, cell index, j) (kernels/rng.py: lane j of
one hash of the cell), so the
parameters are drawn once per cell without being stored and do not depend on
the order cells are touched; c2c draws are addressed by (sample, tick, pair,
pulse). xi are the Irwin-Hall draws of `fast_normal` (truncated at 3.46 sigma).

Precision: the cell's state is int32 fixed point, 16 fractional bits of an
LSB (exact for |w| < 2^15 LSBs, i.e. weight registers up to 16 bits). Device
math is float64; each pulse adds floor(dw * 2^16 + 1/2) to the state, and the
weight register the crossbar reads is wstep * floor((state + wstep * 2^15) /
(wstep * 2^16)) (round half up to a level), saturated at +-wmax. A linear
device without variation moves the state by exactly one level per pulse, so
the register follows the integer datapath bit for bit.

Deviations from aihwkit: c2c noise is multiplicative for every model
(aihwkit's `mult_noise: false` adds it instead); ExpStep's complex noise
(dw_min_std_add, dw_min_std_slope) and the apparent-weight write noise are
not modelled; the step is the chip's register level, not aihwkit's dw_min
(c2c is rescaled to keep aihwkit's absolute spread, chipsim/core/synapse.py).
"""
import numpy as np
from numba import njit

from .layout import C_W_SAT
from .rng import fast_normal, hash4, lane_bits

# device models (column D_MODEL)
DEV_LINEAR = 0
DEV_SOFTBOUNDS = 1
DEV_LINEARSTEP = 2
DEV_EXPSTEP = 3
DEV_POWSTEP = 4

# endurance failure modes (column D_FAIL)
FAIL_CURRENT = 0
FAIL_LOW = 1
FAIL_HIGH = 2

# device parameters per chip layer (array `dparams`, float64)
D_ON = 0            # 1.0: this layer's cells go through the device model (else the plain register write)
D_MODEL = 1
D_W_MAX = 2         # mean bounds, device units (register bound = 1)
D_W_MIN = 3
D_W_MAX_DTOD = 4
D_W_MIN_DTOD = 5
D_DW_DTOD = 6       # d2d spread of the step
D_UP_DOWN = 7       # systematic up/down asymmetry
D_UP_DOWN_DTOD = 8
D_C2C = 9           # c2c spread of each pulse, relative to the step
D_GAMMA_UP = 10     # linearstep slopes; expstep exponents
D_GAMMA_DOWN = 11
D_GAMMA_UP_DTOD = 12
D_GAMMA_DOWN_DTOD = 13
D_A_UP = 14         # expstep
D_A_DOWN = 15
D_ES_A = 16
D_ES_B = 17
D_POW_GAMMA = 18    # powstep
D_POW_GAMMA_DTOD = 19
D_POW_UP_DOWN = 20
D_POW_UP_DOWN_DTOD = 21
D_ENDURANCE = 22    # writes a cell takes; the next one fails it (0: unlimited)
D_FAIL = 23         # FAIL_*: where a failed cell sticks
D_ANY_FROZEN = 24   # 1.0: some cell may be frozen (stuck cells, or an endurance limit): read the mask
N_DPARAMS = 25

#: fraction bits of the per-cell state
FRAC_BITS = 16
ONE = 1 << FRAC_BITS


@njit(inline="always", cache=True)
def cell_seed(key, cell):
    """64 bits that fix a cell's device-to-device draws (one hash per write)."""
    return hash4(key, cell, 0, 0)


@njit(inline="always", cache=True)
def cell_normal(seed, j):
    """The j-th device-to-device draw of a cell (seed = cell_seed(layer key, cell))."""
    return fast_normal(lane_bits(seed, j))


@njit(inline="always", cache=True)
def cell_bounds(dp, seed):
    """(b_min, b_max) of a cell in device units."""
    b_max = dp[D_W_MAX] * (1.0 + dp[D_W_MAX_DTOD] * cell_normal(seed, 2))
    b_min = dp[D_W_MIN] * (1.0 + dp[D_W_MIN_DTOD] * cell_normal(seed, 3))
    if b_min > b_max:
        return b_max, b_min
    return b_min, b_max


@njit(inline="always", cache=True)
def cell_scale(dp, seed, up):
    """Relative step of a cell in one direction (1 for a nominal cell), aihwkit's up/down rule."""
    gain = 1.0 + dp[D_DW_DTOD] * cell_normal(seed, 0)
    r = dp[D_UP_DOWN_DTOD] * cell_normal(seed, 1)
    ud = dp[D_UP_DOWN]
    if up:
        return abs((ud if ud < 0.0 else 0.0) + gain + r)
    return abs((-ud if ud > 0.0 else 0.0) + gain - r)


@njit(inline="always", cache=True)
def pulse_factor(dp, seed, w, up, b_min, b_max, s):
    """State dependence of one pulse at w (device units): the model's factor, >= 0, times the cell's
    relative step `s` in that direction (cell_scale)."""
    model = np.int64(dp[D_MODEL])
    f = 1.0
    if model == DEV_SOFTBOUNDS:
        f = 1.0 - w / b_max if up else 1.0 - w / b_min
    elif model == DEV_LINEARSTEP:
        if up:
            g = abs(dp[D_GAMMA_UP] + dp[D_GAMMA_UP_DTOD] * cell_normal(seed, 4))
            f = 1.0 - g * w / dp[D_W_MAX]
        else:
            g = abs(dp[D_GAMMA_DOWN] + dp[D_GAMMA_DOWN_DTOD] * cell_normal(seed, 5))
            f = 1.0 - g * w / dp[D_W_MIN]
    elif model == DEV_EXPSTEP:
        z = 2.0 * dp[D_ES_A] * w / (b_max - b_min) + dp[D_ES_B]
        if up:
            f = 1.0 - dp[D_A_UP] * np.exp(dp[D_GAMMA_UP] * z)
        else:
            f = 1.0 - dp[D_A_DOWN] * np.exp(-dp[D_GAMMA_DOWN] * z)
    elif model == DEV_POWSTEP:
        omega = (b_max - w) / (b_max - b_min)
        omega = min(max(omega, 0.0), 1.0)
        gg = 1.0 + dp[D_POW_GAMMA_DTOD] * cell_normal(seed, 4)
        rr = dp[D_POW_UP_DOWN_DTOD] * cell_normal(seed, 5)
        pud = dp[D_POW_UP_DOWN]
        if up:
            g = abs((pud if pud < 0.0 else 0.0) + gg + rr) * dp[D_POW_GAMMA]
            f = omega ** g
        else:
            g = abs((-pud if pud > 0.0 else 0.0) + gg - rr) * dp[D_POW_GAMMA]
            f = (1.0 - omega) ** g
    if f < 0.0:
        f = 0.0
    return s * f


@njit(inline="always", cache=True)
def register_of(g, wmax, wstep):
    """The weight register of a cell state: the nearest level (half up), saturated at +-wmax."""
    unit = wstep * ONE
    v = ((np.int64(g) + (unit >> 1)) // unit) * wstep
    if v > wmax:
        return wmax
    if v < -wmax:
        return -wmax
    return v


@njit(inline="always", cache=True)
def device_pulses(W, state, cell, levels, wmax, wstep, dp, key_d2d, key_c2c, write_sigma, nkey, sample_id, t,
                  pair, counters):
    """Apply |levels| pulses in the direction of sign(levels) to cell `cell`: move its fixed-point
    state as the device gives, then set its weight register (a write cut at a bound counts one
    saturation). Write noise (mismatch.write) scales each
    pulse like c2c noise, with the draws of the plain write (kernels/learning.py, write_cell)."""
    seed = cell_seed(key_d2d, cell)
    b_min, b_max = cell_bounds(dp, seed)
    ref = np.float64(wmax)            # LSBs per device unit
    lo = np.int64(np.ceil(max(b_min, -1.0) * ref * ONE))
    hi = np.int64(np.floor(min(b_max, 1.0) * ref * ONE))
    up = levels > 0
    n = levels if up else -levels
    g = np.int64(state[cell])
    c2c = dp[D_C2C]
    pulse_key = hash4(key_c2c, sample_id, t, pair)
    noise_scale = 1.0
    if write_sigma > 0.0:
        noise_scale = 1.0 + write_sigma * fast_normal(hash4(nkey, sample_id, t, 2 * pair))
        counters[14] += 1       # C_WRITE_NOISE
    clipped = 0
    s = cell_scale(dp, seed, up)
    for k in range(n):
        w = g / (ref * ONE)
        dw = pulse_factor(dp, seed, w, up, b_min, b_max, s) * wstep * noise_scale
        if c2c > 0.0:
            dw *= 1.0 + c2c * fast_normal(lane_bits(pulse_key, k))
        step = np.int64(np.floor(dw * ONE + 0.5))
        g = g + step if up else g - step
        if g > hi:
            g = hi
            clipped = 1
        elif g < lo:
            g = lo
            clipped = 1
    counters[C_W_SAT] += clipped        # one saturation per write, as the plain register write counts it
    state[cell] = g
    W[cell] = register_of(g, wmax, wstep)


@njit(cache=True)
def fail_cell(W, state, cell, dp, key_d2d, wmax, wstep):
    """Endurance failure: the cell sticks at its current value or at its low or high bound."""
    mode = np.int64(dp[D_FAIL])
    if mode == FAIL_CURRENT:
        return
    b_min, b_max = cell_bounds(dp, cell_seed(key_d2d, cell))
    ref = np.float64(wmax)
    if mode == FAIL_LOW:
        g = np.int64(np.ceil(max(b_min, -1.0) * ref * ONE))
    else:
        g = np.int64(np.floor(min(b_max, 1.0) * ref * ONE))
    state[cell] = g
    W[cell] = register_of(g, wmax, wstep)
