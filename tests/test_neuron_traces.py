"""Hand-computed traces of tiny IF and LIF nets: every value below was worked out on paper."""
import numpy as np
import pytest

from chipsim.core.kernels import layout as K

from tiny import fc_chain, run_direct


def trace(chip, res, layer="fc1"):
    sl = chip.layer_slice(layer)
    return res.membrane[0, :, sl][:, 0].tolist(), res.spikes[0, :, sl][:, 0].tolist()


def test_if_integrates_fires_and_subtracts_threshold():
    # I = 3 every tick, theta = 10: U = 3, 6, 9, 12 (spike), 12 - 10 + 3 = 5, 8, 11 (spike), 4
    net = fc_chain([1, 1], T=8)
    chip, res = run_direct(net, [[[3]]], [1])
    u, s = trace(chip, res)
    assert u == [3, 6, 9, 12, 5, 8, 11, 4]
    assert s == [0, 0, 0, 1, 0, 0, 1, 0]
    assert res.counts[0, 0] == 2


def test_reset_to_zero():
    # U = 3, 6, 9, 12 (spike) -> cleared, then 3, 6, 9, 12 (spike)
    net = fc_chain([1, 1], T=8, reset="zero")
    chip, res = run_direct(net, [[[3]]], [1])
    u, s = trace(chip, res)
    assert u == [3, 6, 9, 12, 3, 6, 9, 12]
    assert s == [0, 0, 0, 1, 0, 0, 0, 1]


def test_lif_leak_truncates_negative_values_toward_zero():
    # alpha = 0.5 -> a = 2048 with F = 12; input current -7 every tick.
    # leak(-7) = -(7 * 2048 >> 12) = -3 (an arithmetic shift would give -4)
    # U = -7, -3 - 7 = -10, -5 - 7 = -12, -6 - 7 = -13, -6 - 7 = -13
    net = fc_chain([1, 1], T=5, model="LIF", alpha=0.5)
    chip, res = run_direct(net, [[[-7]]], [1])
    u, _ = trace(chip, res)
    assert u == [-7, -10, -12, -13, -13]


def test_lif_leak_truncates_positive_values():
    # alpha = 0.75 -> a = 3072; I = 5, theta = 100 (never reached)
    # U = 5, (5*3072>>12)=3 -> 8, 6 -> 11, 8 -> 13, 9 -> 14
    net = fc_chain([1, 1], T=5, model="LIF", alpha=0.75)
    chip, res = run_direct(net, [[[5]]], [1], thresholds=[100])
    u, s = trace(chip, res)
    assert u == [5, 8, 11, 13, 14]
    assert s == [0] * 5


def test_membrane_saturates_and_is_counted():
    # 8-bit membrane: [-128, 127]. I = 100, theta = 120:
    # U = 100, 200 -> 127 (sat, spike), 127 - 120 + 100 = 107, 207 -> 127 (sat, spike), 107
    net = fc_chain([1, 1], T=5, membrane_bits=8)
    chip, res = run_direct(net, [[[100]]], [1], thresholds=[120])
    u, s = trace(chip, res)
    assert u == [100, 127, 107, 127, 107]
    assert s == [0, 1, 0, 1, 0]
    assert res.counters[0, :, 0, K.C_MEM_SAT].sum() == 2


def test_negative_membrane_saturates():
    # I = -100: U = -100, -200 -> -128 (sat), -228 -> -128 (sat), ...
    net = fc_chain([1, 1], T=4, membrane_bits=8)
    chip, res = run_direct(net, [[[-100]]], [1])
    u, _ = trace(chip, res)
    assert u == [-100, -128, -128, -128]
    assert res.counters[0, :, 0, K.C_MEM_SAT].tolist() == [0, 1, 1, 1]


def test_spike_counter_saturates_and_is_counted():
    # 2-bit counter saturates at 3; the neuron spikes every tick for 6 ticks
    net = fc_chain([1, 1], T=6, counter_bits=2)
    chip, res = run_direct(net, [[[10]]], [1])
    assert res.counts[0, 0] == 3
    assert res.counters[0, :, 0, K.C_CNT_SAT].sum() == 3
    assert res.counters[0, :, 0, K.C_SPIKES].sum() == 6


def test_bias_is_added_every_tick():
    # w * x = 2, bias 1 -> I = 3 every tick: same trace as the first test
    net = fc_chain([1, 1], T=4)
    chip, res = run_direct(net, [[[2]]], [1], biases=[[1]])
    u, _ = trace(chip, res)
    assert u == [3, 6, 9, 12]


@pytest.mark.parametrize("delay, first_spikes", [(False, (0, 0)), (True, (1, 2))])
def test_delay_shifts_each_layer_by_one_tick(delay, first_spikes):
    # input 1 -> fc1 (w 10, theta 10: spikes whenever it gets input) -> fc2 (same)
    net = fc_chain([1, 1, 1], T=5, delay=delay)
    chip, res = run_direct(net, [[[10]], [[10]]], [1])
    s1 = res.spikes[0, :, chip.layer_slice("fc1")][:, 0]
    s2 = res.spikes[0, :, chip.layer_slice("fc2")][:, 0]
    assert int(np.argmax(s1)) == first_spikes[0]
    assert int(np.argmax(s2)) == first_spikes[1]
    assert s2.sum() == 5 - first_spikes[1]
    assert chip.pipeline_fill == (2 if delay else 0)


def test_readout_ties_broken_by_membrane_then_index():
    # theta 10, T 4. w=5: U 5,10(s),5,10(s) -> 2 spikes, U 10. w=6: 6,12(s),8,14(s) -> 2 spikes, U 14.
    net = fc_chain([1, 3], T=4)
    chip, res = run_direct(net, [[[5], [6], [5]]], [1])
    assert res.counts[0].tolist() == [2, 2, 2]
    assert res.potentials[0].tolist() == [10, 14, 10]
    assert res.predictions[0] == 1
    # identical neurons: the lower index wins
    chip, res = run_direct(net, [[[5], [5], [4]]], [1])
    assert res.predictions[0] == 0


def test_potential_readout_integrates_without_spiking():
    # non-spiking output: U accumulates I = w every tick, argmax of U
    net = fc_chain([1, 2], T=3, readout="potential")
    chip, res = run_direct(net, [[[20], [-5]]], [1])
    assert res.potentials[0].tolist() == [60, -15]
    assert res.counts[0].tolist() == [0, 0]
    assert res.predictions[0] == 0


def test_counters_of_a_tiny_two_layer_net():
    # 2 direct inputs (values 1 and 0) -> 3 neurons -> 2 neurons, T = 2, no delay.
    # fc1 weights rows: input0 -> [10, 4, 0]; input1 -> [1, 1, 1]; theta 10.
    # tick 0: input events 1 (only input0 nonzero) -> MACs 3; fc1 U = [10, 4, 0] -> spike n0.
    # fc2: 1 input spike x fan-out 2 -> 2 ACs; w from n0 = [10, 3] -> U = [10, 3] -> spike.
    # tick 1: fc1 U = [10, 8, 0] -> spike n0; fc2 U = [10, 6] -> spike.
    net = fc_chain([2, 3, 2], T=2)
    w1 = [[10, 1], [4, 1], [0, 1]]
    w2 = [[10, 0, 0], [3, 0, 0]]
    chip, res = run_direct(net, [w1, w2], [1, 0])
    c = res.counters[0].sum(axis=0)   # (L, C)
    assert c[0, K.C_IN_EVENTS] == 2 and c[0, K.C_SYN_MAC] == 6 and c[0, K.C_SYN_AC] == 0
    assert c[0, K.C_SPIKES] == 2 and c[0, K.C_MEM_UPDATES] == 6
    assert c[1, K.C_IN_EVENTS] == 2 and c[1, K.C_SYN_AC] == 4 and c[1, K.C_SYN_MAC] == 0
    assert c[1, K.C_SPIKES] == 2 and c[1, K.C_MEM_UPDATES] == 4
    assert c[:, K.C_TILE_ACT].tolist() == [2, 2]   # one 256x256 tile read per tick per layer
    assert res.predictions[0] == 0
