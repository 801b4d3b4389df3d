"""One learning step on tiny nets, computed by hand (both modes), and the gated-update counters."""
import dataclasses

import numpy as np
import pytest

from chipsim.core.chip import Chip
from chipsim.config import LearningConfig, parse_net
from chipsim.core.kernels import layout as K
from chipsim.core.learning import setup_learning

from tiny import bundle, fc_chain


def learned_fc_chip(config, weights=((6, 3),), bias=(0,), x=(1, 0), target=3, T=3, weight_bits=8):
    """A 2 -> 1 fc chip (threshold 10) after one learning sample; returns (chip, counters summed over ticks)."""
    net = fc_chain([2, 1], T=T, weight_bits=weight_bits)
    chip = Chip(net, bundle(net, [np.array(weights)], biases=[np.array(bias)], thresholds=[10]))
    setup = setup_learning(chip, config, seed=0)
    res = chip.run(np.array([x], np.int32), learning=setup, targets=np.array([[target]]))
    return chip, res.counters[0].sum(axis=0)[0]


def learn_fc(config, **kw):
    chip, counters = learned_fc_chip(config, **kw)
    w = chip.registers.weights[chip.weight_slice("fc1")].tolist()
    b = chip.registers.bias[chip.bias_slice("fc1")].tolist()
    return w, b, counters


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


def test_dead_zone_in_spikes_closes_the_sign_gate():
    # dead_zone_spikes 1 (R = 3): |target * t - C * R| <= 3 does not update.
    # t=1: diff = 3 <= 3: no update; t=2: I = 6, U = 8, C = 1: diff = 9 - 3 = 6 > 3: update (w0 = 7, bias 1).
    w, b, c = learn_fc(dataclasses.replace(BASE, dead_zone_spikes=1.0))
    assert w == [7, 3] and b == [1]
    assert c[K.C_BOXCAR] == 4 and c[K.C_SIGN] == 2 and c[K.C_PULSES] == 1
    # both together: dead_zone 0.5 at t=2 is floor(0.5 * 3 * 3 + 1 * 3) = 7 >= 6: no update at all
    w, b, c = learn_fc(dataclasses.replace(BASE, dead_zone=0.5, dead_zone_spikes=1.0))
    assert w == [6, 3] and b == [0] and c[K.C_SIGN] == 0


def test_multibit_input_scale_by_hand():
    # input_bits 3: full scale X = 7. pulse 7 on input value 3 is 7 * 3 / 7 = 3 whole levels (no draw);
    # the bias (an input held at full scale, in 1/7 of that) moves 7 * 7 = 49 LSBs.
    # t=0: warm-up. t=1: I = 3 * 6 = 18 -> U = 36 - 20 = ... see below; only the first update is checked.
    net = fc_chain([2, 1], T=2, input_bits=3)
    chip = Chip(net, bundle(net, [np.array([[6, 3]])], biases=[np.array([0])], thresholds=[100]))
    cfg = dataclasses.replace(BASE, pulse=7, warmup=0, multibit_input="scale")
    setup = setup_learning(chip, cfg, seed=0)
    # t=0: I = 18, U = 18, gate |18 - 100| < 50? no -> widen the gate: p = 2 (|U - theta| < theta)
    setup.lparams[0, K.L_P_Q] = 2 * 65536
    res = chip.run(np.array([[3, 0]], np.int32), learning=setup, targets=np.array([[3]]))
    # t=0: U = 18, C = 0, diff = 3 > 0: w0 += 3 (input 1 is 0: no pulse), bias += 49
    # t=1: I = 9 * 3 + 49 = 76, U = 94, no spike, gate open, diff = 6 > 0: w0 += 3, bias += 49
    assert chip.registers.weights[chip.weight_slice("fc1")].tolist() == [12, 3]
    assert chip.registers.bias[chip.bias_slice("fc1")].tolist() == [98]
    c = res.counters[0].sum(axis=0)[0]
    assert c[K.C_PULSES] == 6 and c[K.C_BIAS_WRITES] == 2
    # the default (count) gives one whole pulse of 7 per active input and a bias pulse of 7
    chip = Chip(net, bundle(net, [np.array([[6, 3]])], biases=[np.array([0])], thresholds=[100]))
    setup = setup_learning(chip, dataclasses.replace(cfg, multibit_input="count"), seed=0)
    setup.lparams[0, K.L_P_Q] = 2 * 65536
    chip.run(np.array([[3, 0]], np.int32), learning=setup, targets=np.array([[3]]))
    assert chip.registers.weights[chip.weight_slice("fc1")].tolist() == [20, 3]
    assert chip.registers.bias[chip.bias_slice("fc1")].tolist() == [14]


def test_multibit_input_scale_applies_to_the_host_fed_layer_only():
    net = fc_chain([4, 3, 2], input_bits=5)
    chip = Chip(net, bundle(net, [np.ones((3, 4)), np.ones((2, 3))]))
    setup = setup_learning(chip, LearningConfig(enabled=True, multibit_input="scale"), seed=0)
    assert setup.lparams[:, K.L_X_FULL].tolist() == [31.0, 1.0]
    setup = setup_learning(chip, LearningConfig(enabled=True), seed=0)
    assert setup.lparams[:, K.L_X_FULL].tolist() == [1.0, 1.0]


CONV_NET = {"name": "c", "input_shape": [1, 8, 8], "time_steps": 4,
            "layers": [{"name": "c1", "type": "conv", "out": 2, "kernel": 3, "padding": 1},
                       {"name": "c2", "type": "conv", "out": 2, "kernel": 3, "stride": 2, "padding": 1},
                       {"type": "flatten"}, {"name": "f1", "type": "fc", "out": 3},
                       {"name": "f2", "type": "fc", "out": 2}]}


def _conv_chip(learning):
    net = parse_net({**CONV_NET, "learning": learning}, "<conv>")
    rng = np.random.default_rng(0)
    shapes = [(2, 1, 3, 3), (2, 2, 3, 3), (3, 32), (2, 3)]
    return net, Chip(net, bundle(net, [rng.integers(-5, 6, s) for s in shapes], thresholds=[300, 10, 10, 10]))


def test_per_layer_pulse_reaches_the_kernel_parameters():
    # c1: 8x8 = 64 output positions, c2: 4x4 = 16, f1/f2: 1
    net, chip = _conv_chip({"pulse": 0.5, "lr": 2.0, "layer_pulse": {"c2": 0.25, "f1": 0.125}})
    lp = setup_learning(chip, net.learning, seed=0).lparams
    assert lp[:, K.L_PULSE].tolist() == [0.5, 0.25, 0.125, 0.5]
    assert lp[:, K.L_LR].tolist() == [2.0] * 4
    net, chip = _conv_chip({"pulse": 0.5, "lr": 2.0, "layer_pulse": {"c2": 0.25}, "pulse_scale": "positions",
                            "dead_zone_spikes": 1.5})
    setup = setup_learning(chip, net.learning, seed=0)
    lp = setup.lparams
    assert lp[:, K.L_PULSE].tolist() == [0.5 / 64, 0.25 / 16, 0.5, 0.5]
    assert lp[:, K.L_LR].tolist() == [2.0 / 64, 2.0 / 16, 2.0, 2.0]
    assert lp[:, K.L_DEAD_SPIKES].tolist() == [1.5] * 4
    # a non-learning layer keeps an all-zero row
    net, chip = _conv_chip({"layers": ["c2", "f1"], "pulse": 0.5, "layer_pulse": {"f1": 0.125}})
    lp = setup_learning(chip, net.learning, seed=0).lparams
    assert lp[:, K.L_PULSE].tolist() == [0.0, 0.5, 0.125, 0.0]


def test_per_layer_pulse_drives_the_updates():
    # sign mode, every pulse a stochastic fraction: a layer whose own pulse is tiny makes no pulses,
    # whatever the global pulse, and the others still do
    def pulses(learning):
        net, chip = _conv_chip({"layers": ["c1", "c2"], "p": 2.0, **learning})
        setup = setup_learning(chip, net.learning, seed=0)
        x = np.random.default_rng(1).integers(0, 40, (2, 64)).astype(np.int32)
        res = chip.run(x, learning=setup, targets=np.full((2, setup.n_targets), 200))
        return res.counters.sum(axis=(0, 1))[:2, K.C_PULSES]
    assert all(pulses({"pulse": 0.5}) > 20)
    c1, c2 = pulses({"pulse": 0.5, "layer_pulse": {"c1": 1e-6}})
    assert c1 == 0 and c2 > 20
    c1, c2 = pulses({"pulse": 1e-6, "layer_pulse": {"c1": 0.5}})
    assert c1 > 20 and c2 == 0


def test_learn_overrides_set_per_layer_pulses():
    from chipsim.workflows.calibrate import learning_config
    from chipsim.workflows.runner import RunError

    net, _ = _conv_chip({"pulse": 0.5})
    cfg = learning_config(net, ("layer_pulse={c1: 0.01, f1: 0.2}", "pulse_scale=positions"))
    assert cfg.layer_pulse == {"c1": 0.01, "f1": 0.2} and cfg.pulse_scale == "positions"
    with pytest.raises(RunError, match=r"--learn: learning\.layer_pulse\.c7: expected a learning layer"):
        learning_config(net, ("layer_pulse={c7: 0.01}",))


def _theta_after(config, **kw):
    chip, counters = learned_fc_chip(config, **kw)
    return int(chip.registers.theta[chip.layer_slice("fc1")][0]), counters


def test_threshold_trim_by_hand():
    # as test_sign_mode_by_hand, plus a threshold step of 0.1 x 10 = 1 LSB against sign(error):
    # t=1 and t=2 both have a positive error (firing too little), so theta 10 -> 9 -> 8
    trim = dataclasses.replace(BASE, threshold_pulse=0.1, threshold_range=0.15)     # window [8, 12]
    theta, c = _theta_after(trim)
    assert theta == 8 and c[K.C_THRESHOLD_WRITES] == 2 and c[K.C_W_SAT] == 0
    # window [9, 11]: the second step clips at 9, counted as a register saturation
    theta, c = _theta_after(dataclasses.replace(trim, threshold_range=0.1))
    assert theta == 9 and c[K.C_THRESHOLD_WRITES] == 2 and c[K.C_W_SAT] == 1
    # off by default: thresholds are fixed registers, as in the paper
    theta, c = _theta_after(BASE)
    assert theta == 10 and c[K.C_THRESHOLD_WRITES] == 0
    # too much firing raises it: target 0, the spike at t=1 gives a negative error
    theta, c = _theta_after(trim, target=0)
    assert theta > 10 and c[K.C_THRESHOLD_WRITES] >= 1
