"""One learning step on tiny nets, computed by hand (both modes), and the gated-update counters."""
import dataclasses

import numpy as np
import pytest

from chipsim.chip import Chip
from chipsim.config import LearningConfig, parse_net
from chipsim.kernels import layout as K
from chipsim.learning import setup_learning

from tiny import bundle, fc_chain


def learn_fc(config, weights=((6, 3),), bias=(0,), x=(1, 0), target=3, T=3, weight_bits=8):
    net = fc_chain([2, 1], T=T, weight_bits=weight_bits)
    chip = Chip(net, bundle(net, [np.array(weights)], biases=[np.array(bias)], thresholds=[10]))
    setup = setup_learning(chip, config, seed=0)
    res = chip.run(np.array([x], np.int32), learning=setup, targets=np.array([[target]]))
    w = chip.registers.weights[chip.weight_slice("fc1")].tolist()
    b = chip.registers.bias[chip.bias_slice("fc1")].tolist()
    return w, b, res.counters[0].sum(axis=0)[0]


BASE = LearningConfig(enabled=True, mode="sign", pulse=1, p=1.0, warmup=1, target_bits=2)


def test_sign_mode_by_hand():
    # theta 10, gate |U - 10| < 5, target rate 3/3 = 1, warm-up 1 tick, input x = (1, 0).
    # t=0: U = 6, no spike; warm-up: no update.
    # t=1: U = 12 -> spike, C = 1; gate open; target*t - C*R = 3*2 - 1*3 = 3 > 0 -> +1 pulse:
    #      w0 = 7 (input 1 is silent: no pulse), bias = 1.
    # t=2: I = 7 + 1 = 8, U = 12 - 10 + 8 = 10 -> spike, C = 2; |10 - 10| < 5; 3*3 - 2*3 = 3 > 0:
    #      w0 = 8, bias = 2.
    w, b, c = learn_fc(BASE)
    assert w == [8, 3] and b == [2]
    assert c[K.C_UNGATED] == 4          # 2 learning ticks x 1 neuron x fan-in 2
    assert c[K.C_BOXCAR] == 4 and c[K.C_SIGN] == 4
    assert c[K.C_PULSES] == 2 and c[K.C_CELL_WRITES] == 2 and c[K.C_BIAS_WRITES] == 2
    assert c[K.C_W_SAT] == 0


def test_no_learning_during_warmup():
    w, b, c = learn_fc(dataclasses.replace(BASE, warmup=3))
    assert w == [6, 3] and b == [0]
    assert c[K.C_UNGATED] == 0


def test_dead_zone_closes_the_sign_gate():
    # dead zone 0.5: t=1: U = 12, C = 1, diff = 3 <= floor(0.5 * 3 * 2) = 3: no update.
    # t=2: I = 6, U = 12 - 10 + 6 = 8, no spike, C = 1; diff = 9 - 3 = 6 > floor(0.5 * 9) = 4: update.
    w, b, c = learn_fc(dataclasses.replace(BASE, dead_zone=0.5))
    assert w == [7, 3] and b == [1]
    assert c[K.C_BOXCAR] == 4 and c[K.C_SIGN] == 2 and c[K.C_PULSES] == 1
    # dead zone 0.7: thresholds floor(4.2) = 4 and floor(6.3) = 6 close both ticks
    w, b, c = learn_fc(dataclasses.replace(BASE, dead_zone=0.7))
    assert w == [6, 3] and b == [0]
    assert c[K.C_BOXCAR] == 4 and c[K.C_SIGN] == 0 and c[K.C_PULSES] == 0


def test_negative_error_depresses():
    # target 0: t=1 diff = 0*2 - 1*3 = -3 -> w0 = 5, bias -1; t=2: I = 5 - 1 = 4, U = 12 - 10 + 4 = 6,
    # no spike, C = 1; gate |6 - 10| = 4 < 5 open; diff = -3 -> w0 = 4, bias -2.
    w, b, _ = learn_fc(BASE, target=0)
    assert w == [4, 3] and b == [-2]


def test_weights_saturate_and_are_counted():
    # 4-bit weights: range [-7, 7]; w0 = 6 -> 7 -> 8 clipped to 7
    w, _, c = learn_fc(dataclasses.replace(BASE, bias=False), weight_bits=4)
    assert w == [7, 3]
    assert c[K.C_W_SAT] == 1 and c[K.C_PULSES] == 2


def test_no_bias_learning_when_disabled():
    w, b, c = learn_fc(dataclasses.replace(BASE, bias=False))
    assert b == [0] and c[K.C_BIAS_WRITES] == 0
    # t=1: w0 = 7; t=2: I = 7, U = 12 - 10 + 7 = 9, no spike, C = 1; gate open, diff 3*3 - 3 > 0: w0 = 8
    assert w == [8, 3]


def test_exact_mode_by_hand():
    # dW = lr * (2 / t) * e * x / p with lr 18, p 1:
    # t=1: e = (3*2 - 1*3) / (3*2) = 0.5 -> dW = 18 * 1 * 0.5 = 9 exactly (stochastic rounding of an
    #      integer is exact): w0 = 15, bias = 9.
    # t=2: I = 15 + 9 = 24, U = 12 - 10 + 24 = 26 -> spike; gate |26 - 10| = 16 >= 5: closed.
    w, b, c = learn_fc(dataclasses.replace(BASE, mode="exact", lr=18.0))
    assert w == [15, 3] and b == [9]
    assert c[K.C_BOXCAR] == 2 and c[K.C_SIGN] == 2
    assert c[K.C_PULSES] == 9          # 9 LSB moved on one cell = 9 pulses


def test_exact_mode_stochastic_rounding_is_unbiased_and_seeded():
    # dW = 0.2 per update on average: over many cells the mean change matches, and reruns agree
    net = fc_chain([400, 1], T=2)
    def once(seed):
        chip = Chip(net, bundle(net, [np.zeros((1, 400))], thresholds=[10]))
        cfg = LearningConfig(enabled=True, mode="exact", lr=0.25, p=2.5, warmup=0, target_bits=1, bias=False)
        # t=0: U = 0, gate |0 - 10| < 12.5 open; diff = 1*1 - 0 = 1, e = 1 -> dW = 0.25 * 2 * 1 * 1 / 2.5 = 0.2
        setup = setup_learning(chip, cfg, seed)
        chip.run(np.ones((1, 400), np.int32), learning=setup, targets=np.array([[1]]))
        return chip.registers.weights.astype(int)
    a, b, c = once(0), once(0), once(1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # at t=1: U = sum of w (~80) -> gate closed; so only t=0 counts: each cell +1 with probability 0.2,
    # mean 0.2 within 4 standard errors sqrt(0.2 * 0.8 / 400)
    assert set(np.unique(a)) <= {0, 1}
    assert abs(a.mean() - 0.2) < 4 * np.sqrt(0.16 / 400)


def test_conv_cells_are_shared_across_positions():
    # 1x3x3 input, all ones (direct); 2x2 kernel, all weights 3; 2x2 output positions, theta 20.
    # t=0: I = 4 * 3 = 12 at each position, U = 12 < 20, C = 0; gate |12 - 20| < 10 open;
    #      target 1 (R = 1): diff = 1 -> +1 pulse per (position, input) = 4 x 4 = 16 pulses,
    #      on 4 distinct cells (each +4): weights 7.
    # t=1: I = 28, U = 40 -> gate |40 - 20| = 20 closed.
    data = {"name": "c", "input_shape": [1, 3, 3], "time_steps": 2,
            "layers": [{"name": "conv", "type": "conv", "out": 1, "kernel": 2}]}
    net = parse_net(data, "<conv>")
    chip = Chip(net, bundle(net, [np.full((1, 1, 2, 2), 3)], thresholds=[20]))
    cfg = LearningConfig(enabled=True, mode="sign", pulse=1, p=1.0, warmup=0, target_bits=1, bias=False)
    setup = setup_learning(chip, cfg, seed=0)
    res = chip.run(np.ones((1, 9), np.int32), learning=setup, targets=np.ones((1, 4)))
    assert chip.registers.weights.tolist() == [7, 7, 7, 7]
    c = res.counters[0].sum(axis=0)[0]
    assert c[K.C_PULSES] == 16 and c[K.C_CELL_WRITES] == 4
    assert c[K.C_UNGATED] == 2 * 4 * 4 and c[K.C_BOXCAR] == 16 and c[K.C_SIGN] == 16


def test_gated_update_identities_on_a_random_net():
    rng = np.random.default_rng(3)
    net = fc_chain([30, 20, 5], T=12)
    chip = Chip(net, bundle(net, [rng.integers(-20, 40, (20, 30)), rng.integers(-20, 40, (5, 20))],
                            thresholds=[200, 100]))
    setup = setup_learning(chip, LearningConfig(enabled=True, warmup=2, p=0.8, target_bits=4), seed=0)
    res = chip.run(rng.integers(0, 9, (8, 30)).astype(np.int32), learning=setup,
                   targets=rng.integers(0, 16, (8, setup.n_targets)))
    c = res.counters.sum(axis=(0, 1))
    for li in range(2):
        assert c[li, K.C_SIGN] <= c[li, K.C_BOXCAR] <= c[li, K.C_UNGATED]
        assert c[li, K.C_UNGATED] == 8 * 10 * chip.layers[li].n_out * chip.layers[li].fan_in
        assert c[li, K.C_CELL_WRITES] <= c[li, K.C_PULSES] <= c[li, K.C_SIGN]
    assert c[:, K.C_PULSES].sum() > 0
