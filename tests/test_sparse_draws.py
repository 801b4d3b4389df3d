"""Fractional pulses drawn by geometric skipping are statistically per-pair Bernoulli draws.

The learning kernel (kernels/learning.py, kernels/skip.py) draws only the
pulses that fire. Here one learning tick of a hand-gated layer is repeated
for many sample ids (independent draws), and the pairs that fired are read
off the weight deltas. A plain per-pair reference (numpy Bernoulli draws on
the same gating) is run beside it, and both must match the Bernoulli law:
marginal rate of every pair, independence of pairs, per-row and
per-neuron counts. Tolerances are stated per check (sigma-multiples of the
binomial spread for N trials; all seeds are fixed).
"""
import math

import numpy as np
import pytest

from chipsim.core.chip import Chip
from chipsim.config import LearningConfig, parse_net
from chipsim.core.kernels import layout as K
from chipsim.core.kernels.learning import learn_layer
from chipsim.core.learning import setup_learning

from tiny import bundle, fc_chain

N_TRIALS = 3000
T = 4
R = 3                                   # target_bits 2


def tick(chip, setup, gated, sign, events, values, multibit, sample_id, li=0):
    """One learning tick (t = T - 1) of layer li from zero weights: returns (weight, bias, theta deltas, counters)."""
    r = chip.registers
    desc = chip.desc
    n = int(desc[li, K.N_OUT])
    off = int(desc[li, K.N_OFF])
    W = np.zeros_like(r.weights, dtype=np.int16)
    bias = np.zeros_like(r.bias)
    theta = r.theta.copy()
    U = theta.copy()                    # |U - theta| = 0: every boxcar open
    C = np.zeros(chip.n_neurons, np.int32)
    targets = np.zeros(n, np.uint16)
    targets[gated & (sign > 0)] = R     # diff = R * T > 0: potentiate
    C[off:off + n][gated & (sign < 0)] = T          # diff = -R * T: depress
    counters = np.zeros(K.N_COUNTERS, np.int64)
    pos_start = np.zeros(max(chip.n_inputs, chip.max_layer) + 2, np.int64)
    gsel = np.empty(n, np.int64)
    gerr = np.empty(n, np.float64)
    learn_layer(li, desc, W, bias, theta, U, C, events, values, len(events), multibit, targets, setup.lparams[li],
                T, R, 127, 1, chip.chip.bias_max, 0.0, np.uint64(0), setup.lkeys[li, 1], sample_id, T - 1,
                pos_start, gsel, gerr, setup.written, counters, chip.learning_device(setup))
    return W.astype(np.int64), bias.astype(np.int64), theta.astype(np.int64) - r.theta, counters


def fc_case(q=0.2, bias_pulse=False, th=0.0, input_bits=1, multibit=False):
    net = fc_chain([40, 30], T=T, input_bits=input_bits)
    chip = Chip(net, bundle(net, [np.zeros((30, 40))], thresholds=[1000]))
    cfg = LearningConfig(enabled=True, mode="sign", pulse=q, p=1.0, warmup=T - 1, target_bits=2,
                         bias=bias_pulse, threshold_pulse=th, threshold_range=0.5,
                         multibit_input="scale" if multibit else "count")
    setup = setup_learning(chip, cfg, seed=7)
    rng = np.random.default_rng(3)
    gated = rng.random(30) < 0.6
    sign = np.where(rng.random(30) < 0.5, 1, -1)
    events = np.sort(rng.choice(40, 25, replace=False)).astype(np.int32)
    return chip, setup, gated, sign, events


def fired_pairs(chip, setup, gated, sign, events, values=None, multibit=False):
    """(N_TRIALS, fan_in, n_out) 0/1: which pairs fired in each trial (signs checked on the way)."""
    vals = np.zeros(1, np.int32) if values is None else values
    out = np.empty((N_TRIALS, 40, 30), np.int8)
    for s in range(N_TRIALS):
        W, _, _, _ = tick(chip, setup, gated, sign, events, vals, multibit, s)
        d = W[:40 * 30].reshape(40, 30)
        assert np.all(d * sign[None, :] >= 0), "a pulse went against sign(error)"
        out[s] = np.abs(d)
    return out


def reference_pairs(q, gated, events, rng):
    """Per-pair Bernoulli(q) draws on the same gating: the plain reference."""
    mask = np.zeros((40, 30), bool)
    mask[np.ix_(events, np.flatnonzero(gated))] = True
    return (rng.random((N_TRIALS, 40, 30)) < q) & mask[None]


def candidates(fc_draws, source: str, seed: int) -> np.ndarray:
    """(trials, active rows, gated neurons) 0/1: the candidate pairs' draws of the kernel, or of the
    per-pair reference (seeded) on the same gating."""
    fired, gated, events = fc_draws
    if source == "reference":
        fired = reference_pairs(0.2, gated, events, np.random.default_rng(seed))
    return fired[:, events][:, :, gated]


def binomial_tv(counts: np.ndarray, n: int, q: float) -> float:
    """Total-variation distance between the empirical distribution of `counts` and Binomial(n, q)."""
    emp = np.bincount(counts.ravel(), minlength=n + 1) / counts.size
    pmf = np.array([math.comb(n, k) * q**k * (1 - q)**(n - k) for k in range(n + 1)])
    return 0.5 * float(np.abs(emp - pmf).sum())


@pytest.fixture(scope="module")
def fc_draws():
    chip, setup, gated, sign, events = fc_case()
    return fired_pairs(chip, setup, gated, sign, events), gated, events


def test_only_gated_pairs_on_active_rows_fire(fc_draws):
    fired, gated, events = fc_draws
    mask = np.zeros((40, 30), bool)
    mask[np.ix_(events, np.flatnonzero(gated))] = True
    assert fired.max() <= 1
    assert not fired[:, ~mask].any()                # exact: no pulse off the gated, active pairs


@pytest.mark.parametrize("source", ["kernel", "reference"])
def test_marginal_rates_match_q(fc_draws, source):
    q = 0.2
    rates = candidates(fc_draws, source, 1).mean(axis=0)          # every candidate pair's firing rate
    sigma = math.sqrt(q * (1 - q) / N_TRIALS)
    assert np.abs(rates - q).max() < 4.5 * sigma           # ~450 pairs: the largest of them within 4.5 sigma
    assert abs(rates.mean() - q) < 4 * sigma / math.sqrt(rates.size)


@pytest.mark.parametrize("source", ["kernel", "reference"])
def test_pairs_are_independent(fc_draws, source):
    x = candidates(fc_draws, source, 2).reshape(N_TRIALS, -1).astype(np.float64)
    x -= x.mean(axis=0)
    x /= x.std(axis=0)
    corr = x.T @ x / N_TRIALS
    off = corr[~np.eye(len(corr), dtype=bool)]
    se = 1 / math.sqrt(N_TRIALS)
    # ~200,000 pair-pairs: the largest |correlation| of independent pairs stays below 5.5 standard errors,
    # their mean within 4 standard errors of its own spread, and neighbours in the skip order
    # (the next gated neuron on the same row) are uncorrelated as a group
    assert np.abs(off).max() < 5.5 * se
    assert abs(off.mean()) < 4 * se / math.sqrt(len(corr))
    neighbours = np.diagonal(corr, offset=1)
    assert abs(neighbours.mean()) < 4 * se / math.sqrt(len(neighbours))


@pytest.mark.parametrize("source", ["kernel", "reference"])
def test_per_row_and_per_neuron_counts_are_binomial(fc_draws, source):
    q = 0.2
    pairs = candidates(fc_draws, source, 4)
    rows, g = pairs.shape[1], pairs.shape[2]
    per_row = pairs.sum(axis=2)           # (trials, active rows) ~ Binomial(g, q)
    per_neuron = pairs.sum(axis=1)        # (trials, gated neurons) ~ Binomial(25, q)
    # 75,000 and 54,000 samples: sampling TV of a 20-point binomial is about 0.01
    assert binomial_tv(per_row, g, q) < 0.02
    assert binomial_tv(per_neuron, rows, q) < 0.02
    assert abs(per_row.var() - g * q * (1 - q)) < 0.05 * g * q * (1 - q)


def test_multibit_thinning_scales_each_pair_by_its_input():
    chip, setup, gated, sign, events = fc_case(q=0.6, input_bits=3, multibit=True)
    values = np.random.default_rng(9).integers(1, 8, len(events)).astype(np.int32)   # full scale 7
    fired = fired_pairs(chip, setup, gated, sign, events, values, multibit=True)
    rates = fired[:, events][:, :, gated].mean(axis=0)
    q = 0.6 * values[:, None] / 7.0 * np.ones((1, int(gated.sum())))
    sigma = np.sqrt(q * (1 - q) / N_TRIALS)
    assert np.abs((rates - q) / sigma).max() < 4.5
    # the rate follows the input value: the 1/7 rows fire about a seventh as often as the 7/7 rows
    lo, hi = rates[values == values.min()].mean(), rates[values == values.max()].mean()
    assert abs(lo / hi - values.min() / values.max()) < 0.1


def test_bias_and_threshold_fractions_are_bernoulli_per_gated_neuron():
    chip, setup, gated, sign, events = fc_case(q=0.3, bias_pulse=True, th=0.0004)   # theta 1000: step 0.4 LSB
    db = np.empty((N_TRIALS, 30), np.int64)
    dth = np.empty((N_TRIALS, 30), np.int64)
    for s in range(N_TRIALS):
        _, bias, d_theta, _ = tick(chip, setup, gated, sign, events, np.zeros(1, np.int32), False, s)
        db[s], dth[s] = bias, d_theta
    assert not db[:, ~gated].any() and not dth[:, ~gated].any()
    assert np.all(db * sign >= 0) and np.all(dth * sign <= 0)     # firing too little lowers the threshold
    for delta, q in ((np.abs(db[:, gated]), 0.3), (np.abs(dth[:, gated]), 0.4)):
        rates = delta.mean(axis=0)
        assert delta.max() == 1
        assert np.abs(rates - q).max() < 4.5 * math.sqrt(q * (1 - q) / N_TRIALS)
        assert binomial_tv(delta.sum(axis=1), delta.shape[1], q) < 0.03


def test_conv_expected_writes_per_shared_cell():
    """A conv cell shared by several gated positions moves by q times the number of its gated pairs."""
    data = {"name": "c", "input_shape": [2, 5, 5], "time_steps": T, "encoder": {"kind": "rate"},
            "layers": [{"name": "conv", "type": "conv", "out": 4, "kernel": 3, "padding": 1}]}
    net = parse_net(data, "<conv>")
    chip = Chip(net, bundle(net, [np.zeros((4, 2, 3, 3))], thresholds=[1000]))
    q = 0.25
    setup = setup_learning(chip, LearningConfig(enabled=True, mode="sign", pulse=q, p=1.0, warmup=T - 1,
                                                target_bits=2, bias=False), seed=5)
    rng = np.random.default_rng(8)
    n = 4 * 25
    gated = rng.random(n) < 0.4
    sign = np.ones(n, np.int64)
    events = np.sort(rng.choice(50, 20, replace=False)).astype(np.int32)     # active inputs (y, x, c)
    fan_in = 18
    expected = np.zeros((fan_in, 4))                  # gated pairs per cell (row, channel)
    active = np.zeros(50, bool)
    active[events] = True
    for i in np.flatnonzero(gated):
        pos, co = divmod(i, 4)
        oy, ox = divmod(pos, 5)
        for ky in range(3):
            for kx in range(3):
                y, x = oy - 1 + ky, ox - 1 + kx
                if 0 <= y < 5 and 0 <= x < 5:
                    for c in range(2):
                        if active[(y * 5 + x) * 2 + c]:
                            expected[(ky * 3 + kx) * 2 + c, co] += 1
    deltas = np.empty((N_TRIALS, fan_in, 4))
    for s in range(N_TRIALS):
        W, _, _, c = tick(chip, setup, gated, sign, events, np.zeros(1, np.int32), False, s)
        deltas[s] = W[:fan_in * 4].reshape(fan_in, 4)
    mean = deltas.mean(axis=0)
    sigma = np.sqrt(expected * q * (1 - q) / N_TRIALS) + 1e-12
    assert expected.sum() > 200
    assert np.abs((mean - q * expected) / sigma)[expected > 0].max() < 4.5
    assert np.all(deltas[:, expected == 0] == 0)
    # per-cell variance of a sum of independent Bernoulli pairs: n q (1 - q), within 15 % for the busy cells
    busy = expected >= 4
    assert np.all(np.abs(deltas.var(axis=0)[busy] / (expected[busy] * q * (1 - q)) - 1) < 0.15)


def test_draws_are_seeded_and_keyed_by_sample():
    chip, setup, gated, sign, events = fc_case()
    a = tick(chip, setup, gated, sign, events, np.zeros(1, np.int32), False, 11)[0]
    b = tick(chip, setup, gated, sign, events, np.zeros(1, np.int32), False, 11)[0]
    c = tick(chip, setup, gated, sign, events, np.zeros(1, np.int32), False, 12)[0]
    assert np.array_equal(a, b) and not np.array_equal(a, c)
