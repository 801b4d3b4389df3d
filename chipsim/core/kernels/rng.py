"""Counter-based random draws: a pure function of (key, a, b, c), no generator state.

Every draw is addressed by its coordinates (e.g. sample index, tick, neuron),
so results do not depend on batch size, batch order or thread count. The
64-bit key comes from numpy's SeedSequence (see noise/seeding.py); mixing uses
the SplitMix64 finaliser, whose output passes BigCrush for sequential inputs.
"""
import numpy as np
from numba import njit, uint64

_GOLDEN = uint64(0x9E3779B97F4A7C15)
_M1 = uint64(0xBF58476D1CE4E5B9)
_M2 = uint64(0x94D049BB133111EB)


@njit(inline="always", cache=True)
def mix64(z):
    z = (z ^ (z >> uint64(30))) * _M1
    z = (z ^ (z >> uint64(27))) * _M2
    return z ^ (z >> uint64(31))


@njit(inline="always", cache=True)
def hash4(key, a, b, c):
    """64 random bits addressed by (key, a, b, c); a, b, c are non-negative integers."""
    h = mix64(uint64(key) + _GOLDEN * uint64(a + 1))
    h = mix64(h + _GOLDEN * uint64(b + 1))
    return mix64(h + _GOLDEN * uint64(c + 1))


@njit(inline="always", cache=True)
def unit(bits):
    """Uniform double in [0, 1) from the top 53 of 64 random bits."""
    return np.float64(bits >> uint64(11)) * (1.0 / 9007199254740992.0)


@njit(inline="always", cache=True)
def uniform(key, a, b, c):
    """Uniform double in [0, 1) with 53 random bits."""
    return unit(hash4(key, a, b, c))


@njit(inline="always", cache=True)
def normal(key, a, b, c):
    """Standard normal draw (Box-Muller on two counter-addressed uniforms)."""
    u1 = uniform(key, a, b, 2 * c)
    u2 = uniform(key, a, b, 2 * c + 1)
    return np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2)


@njit(inline="always", cache=True)
def tick_key(key, sample, tick):
    """Per-(sample, tick) key, computed once per layer and tick; lanes then cost one mix each."""
    h = mix64(uint64(key) + _GOLDEN * uint64(sample + 1))
    return mix64(h + _GOLDEN * uint64(tick + 1))


@njit(inline="always", cache=True)
def lane_bits(tkey, lane):
    """64 random bits for lane `lane` (e.g. a neuron) under a tick key."""
    return mix64(tkey + _GOLDEN * uint64(lane + 1))


@njit(inline="always", cache=True)
def fast_normal(bits):
    """Approximately standard normal from 64 bits: Irwin-Hall sum of four 16-bit uniforms.

    Mean exactly 0 and variance 1 - 2^-32; values on a 2^-16 grid; tails are
    truncated at +-sqrt(12) = 3.46 sigma. One hash per draw instead of two plus
    log/cos keeps per-tick noise cheap enough for every neuron of VGG-11.
    """
    m = uint64(0xFFFF)
    total = np.float64(bits & m) + np.float64((bits >> uint64(16)) & m) \
        + np.float64((bits >> uint64(32)) & m) + np.float64(bits >> uint64(48))
    # each term uniform on {0..65535}: mean 32767.5, variance (65536^2 - 1) / 12
    return (total - 131070.0) * (1.7320508075688772 / 65536.0)
