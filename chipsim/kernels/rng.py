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
def uniform(key, a, b, c):
    """Uniform double in [0, 1) with 53 random bits."""
    return np.float64(hash4(key, a, b, c) >> uint64(11)) * (1.0 / 9007199254740992.0)


@njit(inline="always", cache=True)
def normal(key, a, b, c):
    """Standard normal draw (Box-Muller on two counter-addressed uniforms)."""
    u1 = uniform(key, a, b, 2 * c)
    u2 = uniform(key, a, b, 2 * c + 1)
    return np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2)
