"""Sparse Bernoulli draws by geometric skipping: cost per pulse that fires, not per candidate.

A learning tick gives each candidate pair (gated neuron x active input row)
an independent firing probability q (a fractional pulse). Drawing a uniform
per pair costs a hash and a compare for each of tens of millions of pairs per
VGG-11 image, of which a few hundredths of a percent fire. Instead, the pairs
of one *group* (a conv output position, an fc layer's tick, or a layer's
gated neurons for the bias and threshold registers) are laid out in a fixed
order, and the gaps between firing pairs are drawn:

    gap_k = floor(log(1 - u_k) / log(1 - q)),   u_k uniform in [0, 1)

so P(gap >= n) = (1 - q)^n and every pair fires independently with
probability q, exactly as with one draw per pair. The k-th uniform of a group
is addressed by (layer key, sample, tick, group, k) through counter-based
hashing (rng.py), so the draws stay seeded and independent of batch size,
thread count and the order groups are visited in. Draws 2k + 1 are gaps,
draws 2k + 2 the acceptance draws of thinning (a pair with probability
q_j <= q fires when a candidate lands on it and a second uniform is below
q_j / q), used for multi-bit inputs whose pulse probability scales with the
input value.

Precision: uniforms carry 53 bits; positions are counted in float64, exact
for groups of fewer than 2^53 pairs.
"""
import numpy as np
from numba import njit, uint64

from .rng import hash4, lane_bits, unit

_SALT = uint64(0x736B69702D647261)      # skip streams never share bits with the per-pair draws of hash4(key, ...)


@njit(inline="always", cache=True)
def group_stream(key, sample_id, t, group):
    """Seed of the skip stream of one group in one tick."""
    return hash4(key ^ _SALT, sample_id, t, group)


@njit(inline="always", cache=True)
def stream_unit(stream, j):
    """j-th uniform in [0, 1) of a stream."""
    return unit(lane_bits(stream, j))


@njit(inline="always", cache=True)
def log_keep(q):
    """log(1 - q), the scale of the gaps; 0.0 means nothing fires (q <= 0)."""
    if q <= 0.0:
        return 0.0
    return np.log1p(-q)


@njit(inline="always", cache=True)
def next_fire(stream, k, start, lk, total):
    """Index of the first firing pair at or after `start` (the k-th gap of the stream), or `total`
    if none fires before the group ends."""
    if lk == 0.0:
        return total
    gap = np.floor(np.log1p(-stream_unit(stream, 2 * k)) / lk)
    if gap >= np.float64(total - start):
        return total
    return start + np.int64(gap)


@njit(inline="always", cache=True)
def accept(stream, k, ratio):
    """Thinning: the k-th candidate fires with probability `ratio` (<= 1)."""
    return stream_unit(stream, 2 * k + 1) < ratio


@njit(inline="always", cache=True)
def take_fire(stream, k, f, idx, lk, total):
    """Walk a group in order: (1 if index `idx` fires, the stream's next k and next firing index).

    For walks that visit every index anyway (a whole part for each, one more
    where the stream fires); `f` is the current next firing index."""
    if idx != f:
        return 0, k, f
    return 1, k + 1, next_fire(stream, k + 1, idx + 1, lk, total)
