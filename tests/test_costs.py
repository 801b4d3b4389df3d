"""Cost model against arithmetic by hand, counter identities on random nets, chip presets."""
import dataclasses

import numpy as np
import pytest

from chipsim.core.chip import Chip
from chipsim.config import ChipConfig, ConfigError, CostConfig, LearningConfig, bundled_chips, load_chip, \
    load_net, parse_net, with_chip_preset
from chipsim.architect.costs import calibration_cost, geometry, inference_cost, synops_ratio
from chipsim.architect.counters import chip_geometry, identity_violations
from chipsim.core.kernels import layout as K
from chipsim.core.learning import setup_learning
from chipsim.models import MODELS_DIR

from tiny import bundle, fc_chain

COSTS = CostConfig(cycles_tile_read=5, cycles_neuron_update=2, cycles_learn_gate=3, parallel_tiles=4,
                   parallel_neurons=2, write_pulse_ns=50.0, write_phases=2, parallel_write_arrays=8,
                   update_pulse_train=31, energy_accumulate_pj=1.0, energy_mac_pj=3.0, energy_weight_read_pj=0.5,
                   energy_column_read_pj=0.25, energy_neuron_update_pj=0.1, energy_spike_pj=2.0,
                   energy_learn_gate_pj=0.7, energy_weight_write_pj=4.0, static_power_mw=1.0)


def priced(net, delay=False):
    chip = dataclasses.replace(net.chip, costs=COSTS, delay=delay, clock_mhz=100.0)
    return dataclasses.replace(net, chip=chip)


def two_layer_run(delay):
    # direct input (1, 0, 2, 0); fc1: 3 neurons, all weights 1, theta 3; fc2: 2 neurons, weights 1, theta 10
    net = priced(fc_chain([4, 3, 2], T=2), delay)
    chip = Chip(net, bundle(net, [np.ones((3, 4)), np.ones((2, 3))], thresholds=[3, 10]))
    res = chip.run(np.array([[1, 0, 2, 0]], np.int32))
    return chip, res.counters[0]                      # (T, L, C)


def test_counts_and_costs_of_a_tiny_net_by_hand():
    chip, c = two_layer_run(delay=False)
    # tick t (both ticks alike): fc1 gets 2 multi-bit events -> 2 x 3 = 6 MACs, one tile read, current 3:
    # all 3 neurons spike; fc2 gets 3 spikes -> 3 x 2 = 6 ACs, one tile read, U = 3, 6: no spike.
    for t in range(2):
        assert c[t, 0, [K.C_SYN_MAC, K.C_TILE_ACT, K.C_SPIKES, K.C_MEM_UPDATES]].tolist() == [6, 1, 3, 3]
        assert c[t, 1, [K.C_SYN_AC, K.C_TILE_ACT, K.C_SPIKES, K.C_MEM_UPDATES]].tolist() == [6, 1, 0, 2]
    cost = inference_cost(chip.chip, chip_geometry(chip), c, n_samples=1)
    # cycles per tick: fc1 = 1 read x 5 / min(4 parallel, 1 tile) + 3 updates x 2 / 2 = 8; fc2 = 5 + 2 = 7
    assert cost["cycles_per_sample"] == pytest.approx(2 * (8 + 7))
    assert cost["latency_us_per_sample"] == pytest.approx(30 / 100)          # 100 MHz
    assert cost["throughput_samples_per_s"] == pytest.approx(1e6 / 0.3)
    e = cost["energy_pj_per_sample"]
    assert e["synaptic_mac"] == pytest.approx(12 * 3.0)
    assert e["synaptic_ac"] == pytest.approx(12 * 1.0)
    assert e["weight_reads"] == pytest.approx(24 * 0.5)
    assert e["column_reads"] == pytest.approx(2 * 3 * 0.25 + 2 * 2 * 0.25)   # tile reads x columns in use
    assert e["neuron_updates"] == pytest.approx(10 * 0.1)
    assert e["spikes"] == pytest.approx(6 * 2.0)
    assert e["weight_writes"] == e["learn_gates"] == 0
    assert cost["energy_pj_static_per_sample"] == pytest.approx(1.0 * 0.3 * 1e3)   # 1 mW x 0.3 us = 300 pJ
    assert cost["energy_uj_per_sample_total"] == pytest.approx((75.5 + 300) * 1e-6)
    syn = synops_ratio(COSTS, chip_geometry(chip), c.sum(axis=0), 1)
    assert syn["synops_per_sample"] == 24 and syn["ann_macs_per_sample"] == 4 * 3 + 3 * 2
    assert syn["synops_per_mac"] == pytest.approx(24 / 18)
    assert syn["compute_energy_ratio"] == pytest.approx((12 * 1.0 + 12 * 3.0) / (18 * 3.0))


def test_delay_is_a_layer_pipeline():
    chip, c = two_layer_run(delay=True)
    # delay: fc1 sees the host input of t-1 (nothing at t=0), fc2 sees fc1's spikes of t-1 (none at t=0, 1).
    assert c[:, 0, K.C_TILE_ACT].tolist() == [0, 1] and c[:, 1, K.C_TILE_ACT].tolist() == [0, 0]
    cost = inference_cost(chip.chip, chip_geometry(chip), c, n_samples=1)
    # t=0: max(fc1 0 + 3, fc2 0 + 2) = 3; t=1: max(5 + 3, 2) = 8
    assert cost["cycles_per_sample"] == pytest.approx(3 + 8)
    assert cost["pipeline"].startswith("layer pipeline")


def learn_one_layer():
    # tests/test_learning.py::test_sign_mode_by_hand: 3 ticks, warm-up 1, one +1 pulse at t=1 and t=2 on w0
    net = priced(fc_chain([2, 1], T=3))
    chip = Chip(net, bundle(net, [np.array([[6, 3]])], thresholds=[10]))
    setup = setup_learning(chip, LearningConfig(enabled=True, mode="sign", pulse=1, p=1.0, warmup=1,
                                                target_bits=2), seed=0)
    res = chip.run(np.array([[1, 0]], np.int32), learning=setup, targets=np.array([[3]]))
    return chip, res.counters[0]


def test_write_latency_both_models_by_hand():
    chip, c = learn_one_layer()
    t = c.sum(axis=0)[0]
    assert t[[K.C_UNGATED, K.C_SIGN, K.C_PULSES, K.C_CELL_WRITES, K.C_BIAS_WRITES]].tolist() == [4, 4, 2, 2, 2]
    cost = inference_cost(chip.chip, chip_geometry(chip), c, n_samples=1)
    # row by row: one written row per learning tick with one SET cell -> 1 slot each, 2 x 50 ns
    assert cost["write_latency_us_per_sample"]["row_by_row"] == pytest.approx(0.100)
    # fully parallel: 2 learning ticks x 31-pulse train x 50 ns
    assert cost["write_latency_us_per_sample"]["parallel_pulse_train"] == pytest.approx(2 * 31 * 0.050)
    # cycles: 3 ticks x (5 read + 1 x 2 / 2 neuron) + 2 gate checks x 3 / 2 + 2 writes x 50 ns at 100 MHz
    assert cost["cycles_per_sample"] == pytest.approx(3 * 6 + 2 * 1.5 + 2 * 5)
    assert cost["latency_us_per_sample_parallel_update"] == pytest.approx((3 * 6 + 2 * 1.5 + 2 * 155) / 100)
    e = cost["energy_pj_per_sample"]
    assert e["weight_writes"] == pytest.approx(2 * 4.0) and e["bias_writes"] == pytest.approx(2 * 4.0)
    assert e["learn_gates"] == pytest.approx(2 * 0.7) and e["synaptic_mac"] == pytest.approx(3 * 3.0)
    # a calibration run keeps only the sum over ticks: the same numbers without a pipeline
    cal = calibration_cost(chip.chip, chip_geometry(chip), c.sum(axis=0), n_samples=1)
    assert cal["cycles_per_sample"] == pytest.approx(cost["cycles_per_sample"])
    assert cal["energy_pj_per_sample"] == pytest.approx(cost["energy_pj_per_sample"])


def test_rram_write_phases_estimate():
    # synthetic fc layer (fan-in 4, 6 neurons, one tile): 2 learning ticks with 3 gated neurons each,
    # 2 active inputs -> 12 pulses on 12 cells; 3 cells per written row -> 4 rows, 2 phases (SET, RESET)
    net = priced(fc_chain([4, 6], T=2))
    geo = geometry(net.layers, 256, 256)
    x = np.zeros((1, 1, K.N_COUNTERS))
    x[0, 0, K.C_UNGATED] = 2 * 6 * 4
    x[0, 0, K.C_SIGN] = 2 * 3 * 4
    x[0, 0, K.C_PULSES] = x[0, 0, K.C_CELL_WRITES] = 12
    cost = calibration_cost(net.chip, geo, x[0], n_samples=1)
    assert cost["write_latency_us_per_sample"]["row_by_row"] == pytest.approx(4 * 2 * 0.050)
    sram = dataclasses.replace(net.chip, costs=dataclasses.replace(COSTS, write_phases=1))
    assert calibration_cost(sram, geo, x[0], 1)["write_latency_us_per_sample"]["row_by_row"] == \
        pytest.approx(4 * 0.050)


# --------------------------------------------------------------------------- identities on random nets

def random_conv_net():
    data = {"name": "rnd", "input_shape": [2, 7, 7], "time_steps": 6, "encoder": {"kind": "rate"},
            "layers": [{"name": "c1", "type": "conv", "out": 5, "kernel": 3, "stride": 2, "padding": 1},
                       {"name": "c2", "type": "conv", "out": 4, "kernel": 3, "padding": 0},
                       {"type": "flatten"}, {"name": "f3", "type": "fc", "out": 6}],
            "chip": {"tile_rows": 16, "tile_cols": 4}}
    return parse_net(data, "<rnd>")


def conv_fanout(layer):
    """Output positions reached by each input position, by brute force over the windows."""
    c, h, w = layer.in_shape
    _, oh, ow = layer.out_shape
    f = np.zeros((h, w), np.int64)
    for oy in range(oh):
        for ox in range(ow):
            for ky in range(layer.kernel):
                for kx in range(layer.kernel):
                    y, x = oy * layer.stride - layer.padding + ky, ox * layer.stride - layer.padding + kx
                    if 0 <= y < h and 0 <= x < w:
                        f[y, x] += 1
    return f


def test_synaptic_events_are_spikes_times_fanout_on_a_random_net():
    rng = np.random.default_rng(7)
    net = random_conv_net()
    weights = [rng.integers(-3, 9, (5, 2, 3, 3)), rng.integers(-3, 9, (4, 5, 3, 3)), rng.integers(-3, 9, (6, 16))]
    chip = Chip(net, bundle(net, weights, thresholds=[6, 12, 10]))
    B, T, n_in = 3, net.time_steps, 2 * 7 * 7
    bits = (rng.random((B, T, n_in)) < 0.3).astype(np.uint8)        # chip input order (y, x, c)
    res = chip.run(np.packbits(bits, axis=2), record=("spikes",))
    counts = res.counters.sum(axis=(0, 1))
    inputs = {"c1": bits, "c2": res.spikes[:, :, chip.layer_slice("c1")],
              "f3": res.spikes[:, :, chip.layer_slice("c2")]}
    assert res.spikes.sum() > 0
    for li, layer in enumerate(chip.layers):
        s = inputs[layer.name]
        c_in, h, w = layer.in_shape
        if layer.type == "conv":
            per_input = np.repeat(conv_fanout(layer).reshape(-1), c_in) * layer.out_shape[0]   # (y, x, c) order
        else:
            per_input = np.full(s.shape[2], layer.out_shape[0])
        assert counts[li, K.C_SYN_AC] == int((s * per_input).sum()), layer.name
        assert counts[li, K.C_IN_EVENTS] == int(s.sum())
        assert counts[li, K.C_SPIKES] == int(res.spikes[:, :, chip.layer_slice(layer.name)].sum())
    assert identity_violations(res.counters, chip_geometry(chip), ticks=B * T) == []
    assert counts[:, K.C_TILE_BUSIEST].min() > 0
    for delta, li in ((1, 0), (-1, 1)):              # the busiest band off by one read: outside the bounds
        broken = res.counters.copy()
        sel = broken[..., li, K.C_TILE_ACT] > 0
        broken[..., li, K.C_TILE_BUSIEST] = np.where(
            sel, (broken[..., li, K.C_TILE_ACT] // chip_geometry(chip)[li].col_tiles if delta > 0
                  else -(-broken[..., li, K.C_TILE_ACT] // (chip_geometry(chip)[li].col_tiles
                                                          * chip_geometry(chip)[li].row_bands))) + delta, 0)
        assert any("busiest band" in m for m in identity_violations(broken, chip_geometry(chip))), li


def test_gated_update_identities_on_a_random_conv_net():
    rng = np.random.default_rng(11)
    net = random_conv_net()
    chip = Chip(net, bundle(net, [rng.integers(-3, 9, (5, 2, 3, 3)), rng.integers(-3, 9, (4, 5, 3, 3)),
                                  rng.integers(-3, 9, (6, 16))], thresholds=[6, 12, 10]))
    setup = setup_learning(chip, LearningConfig(enabled=True, warmup=2, p=0.8, target_bits=4, dead_zone=0.1),
                           seed=1)
    bits = (rng.random((4, net.time_steps, 2 * 7 * 7)) < 0.3).astype(np.uint8)
    res = chip.run(np.packbits(bits, axis=2), learning=setup,
                   targets=rng.integers(0, 16, (4, setup.n_targets)).astype(np.uint16))
    c = res.counters.sum(axis=(0, 1))
    for li in range(3):
        assert c[li, K.C_SIGN] <= c[li, K.C_BOXCAR] <= c[li, K.C_UNGATED]
        assert c[li, K.C_UNGATED] == 4 * (net.time_steps - 2) * chip.layers[li].n_out * chip.layers[li].fan_in
    assert c[:, K.C_PULSES].sum() > 0 and c[:, K.C_SIGN].sum() < c[:, K.C_BOXCAR].sum()
    assert identity_violations(res.counters, chip_geometry(chip), ticks=4 * net.time_steps) == []
    broken = res.counters.sum(axis=(0, 1)).copy()
    broken[0, K.C_SIGN] = broken[0, K.C_BOXCAR] + 1
    assert any("sign-gated" in m for m in identity_violations(broken, chip_geometry(chip)))


# --------------------------------------------------------------------------- presets

def test_default_costs_are_the_digital45_preset():
    assert CostConfig(**load_chip("digital45").settings["costs"]) == CostConfig()
    assert ChipConfig().tile_rows == load_chip("digital45").settings["tile_rows"]


@pytest.mark.parametrize("name", bundled_chips())
def test_every_preset_prices_a_digits_run(name):
    preset = load_chip(name)
    assert preset.sources, f"{name}: a preset must cite its sources"
    net = with_chip_preset(load_net(MODELS_DIR / "digits.yaml"), name)
    assert net.chip.costs == CostConfig(**{**dataclasses.asdict(CostConfig()), **preset.settings["costs"]})
    assert net.chip.weight_bits == 8 and net.chip.delay is False          # widths and delay stay the net's
    shapes = [(layer.n_out, layer.fan_in) for layer in net.weighted_layers]
    chip = Chip(net, bundle(net, [np.ones(s) for s in shapes], thresholds=[50, 50, 50]))
    res = chip.run(np.full((2, 64), 3, np.int32))
    cost = inference_cost(net.chip, chip_geometry(chip), res.counters.sum(axis=0), 2)
    assert np.isfinite(cost["cycles_per_sample"]) and cost["energy_uj_per_sample_total"] > 0


def test_preset_in_net_yaml_and_errors(tmp_path):
    data = {"name": "p", "input_shape": [4, 1, 1], "time_steps": 2, "layers": [{"type": "flatten"},
                                                                              {"type": "fc", "out": 2}],
            "chip": {"preset": "rram256", "clock_mhz": 50, "costs": {"write_pulse_ns": 20}}}
    chip = parse_net(data, "x.yaml").chip
    assert chip.clock_mhz == 50 and chip.tile_rows == 256                    # own keys win over the preset's
    assert chip.costs.write_pulse_ns == 20 and chip.costs.write_phases == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nweight_bits: 4\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: weight_bits: unknown key"):
        load_chip(bad)
    bad.write_text("name: bad\ncosts: {energy_mac_pj: -1}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: costs.energy_mac_pj: expected a number >= 0.0"):
        load_chip(bad)
    with pytest.raises(ConfigError, match=r"x.yaml: chip.preset: chip preset 'nope'.*digital45"):
        parse_net({**data, "chip": {"preset": "nope"}}, "x.yaml")
