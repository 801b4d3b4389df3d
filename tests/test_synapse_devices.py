"""Synapse devices (kernels/device.py, chipsim/core/synapse.py), writes per cell, endurance, stuck cells, drift.

* Each model's pulse response equals a plain-Python implementation of aihwkit's
  equations (written here from the published model definitions) on random
  states and pulse trains: exactly, c2c noise included, since both take the
  same counter-based draws; the draws' statistics are checked apart
  (stated tolerances, fixed seeds).
* The linear preset through the device path (forced by a huge endurance)
  learns bit for bit as the plain register write: the fixed-point state is exact.
* Writes per cell: a hand count on one fc tick; the sum over cells equals the
  kernel's distinct-cell-write counter on a conv net.
* Endurance: a cell takes exactly E writes, write E + 1 fails it (counted).
* Stuck fractions and drift statistics; determinism across batch size and threads.
* Bad presets: errors name the file and the key.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import pytest

from chipsim.config import ConfigError, LearningConfig
from chipsim.core.chip import Chip
from chipsim.core.kernels import device as D
from chipsim.core.kernels import layout as K
from chipsim.core.kernels.device import device_pulses
from chipsim.core.kernels.rng import fast_normal, hash4, lane_bits
from chipsim.core.learning import setup_learning
from chipsim.core.synapse import SynapseModel, device_keys, device_params, parse_synapse, resolve_synapse
from chipsim.noise import apply_noise
from chipsim.noise.drift import drift_exponent

from test_layer_order import inputs, make_chip
from test_sparse_draws import R, T, tick
from tiny import bundle, fc_chain

ONE = 1 << 16
MODELS = {
    "linear": SynapseModel(model="linear", w_max_dtod=0.2, w_min_dtod=0.2, dw_min_dtod=0.3, dw_min_std=0.3,
                           up_down=0.1, up_down_dtod=0.05),
    "softbounds": SynapseModel(model="softbounds", w_max=0.8, w_min=-0.6, w_max_dtod=0.2, w_min_dtod=0.2,
                               dw_min_dtod=0.2, dw_min_std=0.4, up_down=-0.2, up_down_dtod=0.05),
    "linearstep": SynapseModel(model="linearstep", w_max=1.17, w_min=-0.83, w_max_dtod=0.05, w_min_dtod=0.05,
                               dw_min_dtod=0.1, dw_min_std=0.3, gamma_up=0.3, gamma_down=0.5, gamma_up_dtod=0.05,
                               gamma_down_dtod=0.05),
    "expstep": SynapseModel(model="expstep", w_max_dtod=0.3, w_min_dtod=0.3, dw_min=0.00135, dw_min_dtod=0.2,
                            dw_min_std=5.0, up_down=0.26, up_down_dtod=0.05, a=-0.5, b=-0.5, gamma_up=5.0,
                            gamma_down=5.0, A_up=-1.18445, A_down=-0.081404),
    "powstep": SynapseModel(model="powstep", w_max_dtod=0.3, w_min_dtod=0.3, dw_min_dtod=0.3, dw_min_std=0.3,
                            pow_gamma=1.5, pow_gamma_dtod=0.1, pow_up_down=0.2, pow_up_down_dtod=0.05),
}


def one_layer_chip(weight_bits=8):
    net = fc_chain([20, 10], T=T, weight_bits=weight_bits)
    return Chip(net, bundle(net, [np.zeros((10, 20))], thresholds=[1000]))


# ---------------------------------------------------------------- the reference, from aihwkit's definitions
def xi(key, cell, j):
    return fast_normal(np.uint64(lane_bits(np.uint64(hash4(key, cell, 0, 0)), j)))


def reference_pulses(m: SynapseModel, key_d2d, key_c2c, cell, g, levels, wmax, wstep, sample, t, pair):
    """The cell's fixed-point state after `levels` pulses (sign = direction), per the module docstring."""
    b_max = m.w_max * (1 + m.w_max_dtod * xi(key_d2d, cell, 2))
    b_min = m.w_min * (1 + m.w_min_dtod * xi(key_d2d, cell, 3))
    if b_min > b_max:
        b_min, b_max = b_max, b_min
    gain = 1 + m.dw_min_dtod * xi(key_d2d, cell, 0)
    r = m.up_down_dtod * xi(key_d2d, cell, 1)
    up = levels > 0
    if up:
        s = abs(min(m.up_down, 0.0) + gain + r)
    else:
        s = abs(-max(m.up_down, 0.0) + gain - r)
    c2c = m.dw_min_std * (m.dw_min * wmax / wstep if m.dw_min else 1.0)
    lo = math.ceil(max(b_min, -1.0) * wmax * ONE)
    hi = math.floor(min(b_max, 1.0) * wmax * ONE)
    key = np.uint64(hash4(key_c2c, sample, t, pair))
    for k in range(abs(levels)):
        w = g / (wmax * ONE)
        if m.model == "linear":
            f = 1.0
        elif m.model == "softbounds":
            f = 1 - w / b_max if up else 1 - w / b_min
        elif m.model == "linearstep":
            if up:
                f = 1 - abs(m.gamma_up + m.gamma_up_dtod * xi(key_d2d, cell, 4)) * w / m.w_max
            else:
                f = 1 - abs(m.gamma_down + m.gamma_down_dtod * xi(key_d2d, cell, 5)) * w / m.w_min
        elif m.model == "expstep":
            z = 2 * m.a * w / (b_max - b_min) + m.b
            f = 1 - m.A_up * math.exp(m.gamma_up * z) if up else 1 - m.A_down * math.exp(-m.gamma_down * z)
        else:
            omega = min(max((b_max - w) / (b_max - b_min), 0.0), 1.0)
            gg = 1 + m.pow_gamma_dtod * xi(key_d2d, cell, 4)
            rr = m.pow_up_down_dtod * xi(key_d2d, cell, 5)
            if up:
                f = omega ** (abs(min(m.pow_up_down, 0.0) + gg + rr) * m.pow_gamma)
            else:
                f = (1 - omega) ** (abs(-max(m.pow_up_down, 0.0) + gg - rr) * m.pow_gamma)
        dw = s * max(f, 0.0) * wstep * (1 + c2c * fast_normal(np.uint64(lane_bits(key, k))))
        step = math.floor(dw * ONE + 0.5)
        g = min(max(g + step if up else g - step, lo), hi)
    unit = wstep * ONE
    return g, max(-wmax, min(wmax, ((g + unit // 2) // unit) * wstep))


@pytest.mark.parametrize("name", list(MODELS))
def test_pulse_response_matches_the_reference(name):
    chip = one_layer_chip()
    model = MODELS[name]
    dp = device_params(chip, model, np.ones(1, bool))[0]
    kd, kc = device_keys(11, 1)[0]
    wmax, wstep = 127, 1
    rng = np.random.default_rng(1)
    cells = 300
    state = rng.integers(-wmax * ONE, wmax * ONE, cells).astype(np.int32)
    W = np.zeros(cells, np.int16)
    counters = np.zeros(K.N_COUNTERS, np.int64)
    moved = 0
    for rep in range(4):                       # a pulse train per cell: 4 bursts of -6..6 pulses
        levels = rng.integers(-6, 7, cells)
        for c in range(cells):
            g0 = int(state[c])
            if levels[c] == 0:
                continue
            device_pulses(W, state, c, int(levels[c]), wmax, wstep, dp, kd, kc, 0.0, np.uint64(0), 5, rep, c + 100,
                          counters)
            g_ref, w_ref = reference_pulses(model, kd, kc, c, g0, int(levels[c]), wmax, wstep, 5, rep, c + 100)
            assert int(state[c]) == g_ref, (name, c, rep)
            assert int(W[c]) == w_ref, (name, c, rep)
            moved += int(state[c]) != g0
    assert moved > cells            # the trains did move the cells


def test_linear_without_variation_moves_one_level_per_pulse():
    chip = one_layer_chip()
    dp = device_params(chip, SynapseModel(), np.ones(1, bool), force=True)[0]
    state = np.array([5 * ONE, -126 * ONE], np.int32)
    W = np.zeros(2, np.int16)
    counters = np.zeros(K.N_COUNTERS, np.int64)
    device_pulses(W, state, 0, 3, 127, 1, dp, np.uint64(1), np.uint64(2), 0.0, np.uint64(0), 0, 0, 0, counters)
    device_pulses(W, state, 1, -3, 127, 1, dp, np.uint64(1), np.uint64(2), 0.0, np.uint64(0), 0, 0, 1, counters)
    assert state.tolist() == [8 * ONE, -127 * ONE] and W.tolist() == [8, -127]
    assert counters[K.C_W_SAT] == 1                       # the second write cut at the bound, counted once


def test_d2d_and_c2c_statistics():
    """The per-cell step spread is dw_min_dtod, the per-pulse spread c2c (Irwin-Hall draws: 4000 cells,
    20000 pulses; tolerances 5 standard errors)."""
    chip = one_layer_chip()
    m = SynapseModel(model="linear", dw_min_dtod=0.3, dw_min_std=0.2)
    dp = device_params(chip, m, np.ones(1, bool))[0]
    kd, kc = device_keys(3, 1)[0]
    n = 4000
    # one pulse up from 0 with c2c off: the step is s_+ = gain (up_down 0), mean 1, spread 0.3
    no_c2c = dp.copy()
    no_c2c[D.D_C2C] = 0.0
    state = np.zeros(n, np.int32)
    W = np.zeros(n, np.int16)
    counters = np.zeros(K.N_COUNTERS, np.int64)
    for c in range(n):
        device_pulses(W, state, c, 1, 127, 1, no_c2c, kd, kc, 0.0, np.uint64(0), 0, 0, c, counters)
    steps = state / ONE
    assert abs(steps.mean() - 1.0) < 5 * 0.3 / math.sqrt(n)
    assert abs(steps.std() - 0.3) < 5 * 0.3 / math.sqrt(2 * n)
    # one cell, many pulses of fresh c2c noise: spread 0.2 around its own step
    state1 = np.zeros(1, np.int32)
    W1 = np.zeros(1, np.int16)
    d = []
    for p in range(20000):
        before = int(state1[0])
        device_pulses(W1, state1, 0, 1 if before <= 0 else -1, 127, 1, dp, kd, kc, 0.0, np.uint64(0), 1, p, 0,
                      counters)
        d.append(abs(int(state1[0]) - before) / ONE)
    d = np.array(d)
    rel = d / d.mean()
    assert abs(rel.std() - 0.2) < 5 * 0.2 / math.sqrt(2 * d.size) + 0.01


# ---------------------------------------------------------------- learning through the device path
def learn(chip, setup, batch=7, n=7, seed=5, threads=1):
    targets = np.random.default_rng(seed).integers(0, 8, (n, setup.n_targets))
    x = inputs(chip, "rate", n, np.random.default_rng(seed + 1))
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    counters = []
    try:
        for s in range(0, n, batch):
            res = chip.run(x[s:s + batch], sample_ids=np.arange(s, min(n, s + batch)), learning=setup,
                           targets=targets[s:s + batch])
            counters.append(res.counters.sum(axis=(0, 1)))
    finally:
        numba.set_num_threads(before)
    return sum(counters)


def conv_setup(synapse, pulse=1.0, noise=("mismatch=0.1",)):
    chip = make_chip(False, "rate", "avg", seed=3)
    if noise:
        apply_noise(chip, list(noise), seed=2)
    config = LearningConfig(enabled=True, warmup=2, p=0.9, target_bits=3, pulse=pulse)
    return chip, setup_learning(chip, config, seed=4, synapse=synapse)


@pytest.mark.parametrize("pulse", [1.0, 0.4, 2.0])
def test_linear_through_the_device_path_is_bit_identical(pulse):
    # (write noise, mismatch.write, is kept as a fraction in the device state instead of rounded: left out)
    chip_a, setup_a = conv_setup(None, pulse, noise=("mismatch.weights=0.1",))
    forced = SynapseModel(endurance=2**60)          # not ideal: takes the device path, never fails
    chip_b, setup_b = conv_setup(forced, pulse, noise=("mismatch.weights=0.1",))
    assert setup_a.dparams[:, D.D_ON].sum() == 0 and setup_b.dparams[:, D.D_ON].sum() > 0
    ca = learn(chip_a, setup_a)
    cb = learn(chip_b, setup_b)
    assert ca[:, K.C_PULSES].sum() > 100
    assert np.array_equal(chip_a.registers.weights, chip_b.registers.weights)
    assert np.array_equal(ca, cb)
    assert np.array_equal(chip_a.synapse_cells.writes, chip_b.synapse_cells.writes)


@pytest.mark.parametrize("synapse,pulse", [("softbounds", 0.5), (None, 1.0), (None, 0.5)])
def test_writes_per_cell_sum_to_the_distinct_write_counter(synapse, pulse):
    chip, setup = conv_setup(MODELS.get(synapse), pulse, noise=("mismatch.weights=0.1",))
    c = learn(chip, setup)
    writes = chip.synapse_cells.writes
    assert c[:, K.C_CELL_WRITES].sum() > 100
    assert int(writes.sum()) == int(c[:, K.C_CELL_WRITES].sum())


def fc_tick_case(endurance=0, fail_at="current"):
    net = fc_chain([6, 4], T=T)
    chip = Chip(net, bundle(net, [np.zeros((4, 6))], thresholds=[1000]))
    cfg = LearningConfig(enabled=True, mode="sign", pulse=1.0, p=1.0, warmup=T - 1, target_bits=2, bias=False)
    model = SynapseModel(endurance=endurance, fail_at=fail_at) if endurance else None
    setup = setup_learning(chip, cfg, seed=7, synapse=model)
    gated = np.array([True, False, True, True])
    sign = np.array([1, 1, -1, 1])
    events = np.array([0, 2, 5], np.int32)
    return chip, setup, gated, sign, events


def test_writes_per_cell_hand_count():
    """One fc tick: exactly the cells (active row, gated neuron) are written once; three ticks: three times."""
    chip, setup, gated, sign, events = fc_tick_case()
    for k in range(3):
        tick(chip, setup, gated, sign, events, np.zeros(1, np.int32), False, sample_id=k)
    hand = np.zeros((6, 4), np.uint32)         # crossbar rows x columns
    for row in events:
        hand[row, gated] = 3
    assert np.array_equal(chip.synapse_cells.writes.reshape(6, 4), hand)


@pytest.mark.parametrize("fail_at,stuck_value", [("current", None), ("high", 127), ("low", -127)])
def test_endurance_fails_a_cell_at_exactly_the_configured_write(fail_at, stuck_value):
    E = 3
    chip, setup, gated, sign, events = fc_tick_case(endurance=E, fail_at=fail_at)
    cells = len(events) * int(gated.sum())
    for k in range(E + 3):
        # tick() writes into a fresh zero array; use the chip's registers instead, through the device state
        dW, _, _, counters = tick(chip, setup, gated, sign, events, np.zeros(1, np.int32), False, sample_id=k)
        failed = int(counters[K.C_DEVICE_FAILURES])
        assert failed == (cells if k == E else 0), k
        state = chip.synapse_cells.state.reshape(6, 4) >> 16
        expect = np.zeros((6, 4), np.int64)
        for row in events:
            expect[row, gated] = np.where(sign[gated] > 0, 1, -1) * min(k + 1, E)
        if k >= E and stuck_value is not None:
            for row in events:
                expect[row, gated] = stuck_value
        assert np.array_equal(state, expect), k
    assert int(chip.synapse_cells.frozen.sum()) == cells
    assert chip.synapse_cells.writes.max() == E + 3


@pytest.mark.parametrize("name", list(MODELS))
def test_determinism_across_batch_size_and_threads_with_every_model(name):
    """Every model with endurance failures, stuck cells, drift and write noise on: batch 7 on one thread,
    batch 1, and batch 3 on two threads (the layer pipeline) give the same chip, bit for bit."""
    import dataclasses

    model = dataclasses.replace(MODELS[name], endurance=3, fail_at="high")
    out = []
    for batch, threads in ((7, 1), (1, 1), (3, 2)):
        chip, setup = conv_setup(model, 0.6, noise=("mismatch=0.1", "stuck=0.05", "stuck.value=low",
                                                    "drift=3600"))
        c = learn(chip, setup, batch=batch, threads=threads)
        out.append((chip.registers.weights.copy(), c, chip.synapse_cells.writes.copy(),
                    chip.synapse_cells.state.copy(), chip.synapse_cells.frozen.copy()))
    assert out[0][1][:, K.C_DEVICE_FAILURES].sum() > 0
    for other in out[1:]:
        for a, b in zip(out[0], other):
            assert np.array_equal(a, b)


# ---------------------------------------------------------------- stuck cells and drift
def test_stuck_fraction_values_and_frozen_learning():
    chip = make_chip(False, "rate", "avg", seed=3)
    before = chip.registers.weights.astype(np.int64).copy()
    report = apply_noise(chip, ["stuck=0.2", "stuck.value=high"], seed=9)
    frozen = chip.synapse_cells.frozen.astype(bool)
    n = frozen.size
    assert abs(frozen.mean() - 0.2) < 4 * math.sqrt(0.2 * 0.8 / n)
    from chipsim.noise.seeding import generator

    for li, layer in enumerate(chip.layers):          # exactly the seeded Bernoulli draw per cell
        if layer.weighted:
            ws = chip.weight_slice(layer.name)
            draw = generator(9, "stuck", li, "cells").random(ws.stop - ws.start) < 0.2
            assert np.array_equal(frozen[ws], draw)
    w = chip.registers.weights.astype(np.int64)
    wmax = int(chip.registers.weight_max.max())
    assert (w[frozen] == wmax).all() and np.array_equal(w[~frozen], before[~frozen])
    total = sum(v["stuck"] for v in report["realised"]["stuck"].values())
    assert total == int(frozen.sum())
    config = LearningConfig(enabled=True, warmup=2, p=0.9, target_bits=3, pulse=1.0)
    setup = setup_learning(chip, config, seed=4)
    assert setup.dparams[:, D.D_ON].sum() > 0          # frozen cells take the device path
    learn(chip, setup)
    after = chip.registers.weights.astype(np.int64)
    assert (after[frozen] == wmax).all()
    assert not np.array_equal(after[~frozen], w[~frozen])


def test_drift_statistics():
    g = np.full(200_000, 0.5)
    nu = drift_exponent(g, np.random.default_rng(0).standard_normal(g.size))
    mu = min(max(-0.0155 * math.log(0.5) + 0.0244, 0.049), 0.1)
    sig = min(max(-0.0125 * math.log(0.5) - 0.0059, 0.008), 0.045)
    assert abs(nu.mean() - mu) < 5 * sig / math.sqrt(g.size)     # mu >> sig: |.| hardly folds
    assert abs(nu.std() - sig) < 0.01 * sig + 5 * sig / math.sqrt(2 * g.size)
    chip = make_chip(False, "rate", "avg", seed=3)
    w0 = chip.registers.weights.astype(np.int64).copy()
    year = 365 * 24 * 3600.0
    early = make_chip(False, "rate", "avg", seed=3)             # a minute: ((60 + 20) / 20)^-nu = 4^-nu
    apply_noise(early, ["drift=60"], seed=1)
    li0 = next(i for i, layer in enumerate(early.layers) if layer.weighted)
    ws0 = early.weight_slice(early.layers[li0].name)
    from chipsim.noise.seeding import generator

    nu0 = drift_exponent(w0[ws0] / float(early.registers.weight_max[li0]),
                         generator(1, "drift", li0, "nu").standard_normal(ws0.stop - ws0.start))
    assert np.array_equal(early.registers.weights[ws0], np.round(w0[ws0] * 4.0 ** -nu0))
    rep = apply_noise(chip, [f"drift={year}"], seed=1)["realised"]["drift"]
    w1 = chip.registers.weights.astype(np.int64)
    for li, layer in enumerate(chip.layers):          # each cell exactly: G0 ((t + t0) / t0)^-nu, re-rounded
        if not layer.weighted:
            continue
        ws = chip.weight_slice(layer.name)
        nu_l = drift_exponent(w0[ws] / float(chip.registers.weight_max[li]), generator(1, "drift", li, "nu").standard_normal(ws.stop - ws.start))
        assert np.array_equal(w1[ws], np.round(w0[ws] * ((year + 20.0) / 20.0) ** -nu_l))
        assert 0.04 < rep[layer.name]["nu_mean"] < 0.11
    assert np.abs(w1).sum() < 0.6 * np.abs(w0).sum()
    chip2 = make_chip(False, "rate", "avg", seed=3)
    apply_noise(chip2, ["drift=0"], seed=1)
    assert np.array_equal(chip2.registers.weights, w0)


# ---------------------------------------------------------------- presets and their errors
def test_bundled_presets_parse_and_cite_sources():
    from chipsim.core.synapse import preset_names

    names = preset_names()
    assert {"linear", "rram-es", "rram-sb", "ecram", "capacitor", "pcm", "powstep"} <= set(names)
    for name in names:
        m = resolve_synapse(name)
        assert m.sources, name
    assert resolve_synapse("linear").is_ideal


@pytest.mark.parametrize("data,key", [
    ({"model": "linear", "w_maxx": 1.0}, "w_maxx"),
    ({"model": "linearstep", "A_up": 1.0}, "A_up"),
    ({"model": "bogus"}, "model"),
    ({"model": "linear", "w_min": 0.5}, "w_min"),
    ({"model": "linear", "dw_min_dtod": "a lot"}, "dw_min_dtod"),
    ({"model": "linear", "fail_at": "sideways"}, "fail_at"),
    ({"model": "linear", "endurance": -1}, "endurance"),
])
def test_bad_presets_name_the_file_and_key(data, key):
    with pytest.raises(ConfigError) as err:
        parse_synapse("bad.yaml", data)
    assert str(err.value).startswith(f"bad.yaml: {key}:"), str(err.value)


def test_bad_preset_file_through_the_cli(tmp_path):
    from click.testing import CliRunner

    from chipsim.cli.main import main

    bad = tmp_path / "dev.yaml"
    bad.write_text("model: expstep\ngamma_up: [1]\n")
    result = CliRunner().invoke(main, ["run", "--net", "digits", "--calibrate-epochs", "1", "--samples", "10",
                                       "--calib-samples", "10", "--synapse", str(bad), "--out",
                                       str(tmp_path / "o"), "--no-progress"])
    assert result.exit_code != 0 and f"{bad}: gamma_up:" in result.output, result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(main, ["run", "--net", "digits", "--calibrate-epochs", "1", "--synapse", "nope",
                                       "--out", str(tmp_path / "p"), "--no-progress"])
    assert result.exit_code != 0 and "--synapse nope: no such preset" in result.output, result.output
    result = CliRunner().invoke(main, ["run", "--net", "digits", "--synapse", "pcm", "--no-progress"])
    assert result.exit_code != 0 and "--synapse applies to calibration" in result.output, result.output
    result = CliRunner().invoke(main, ["sweep", "--net", "digits", "--noise", "mismatch=0,0.2", "--synapse", "pcm",
                                       "--out", str(tmp_path / "s"), "--no-progress"])
    assert result.exit_code != 0 and "--synapse applies to calibration" in result.output, result.output


# ---------------------------------------------------------------- calibration: resume, summary, report
def test_writes_per_cell_survive_a_resumed_calibration_and_reach_the_report(tmp_path):
    import h5py
    from click.testing import CliRunner

    from chipsim.cli.main import main
    from chipsim.workflows.calibrate import CalibOptions, _Killed, run_calibration

    common = dict(net="digits", samples=30, calib_samples=96, batch_size=16, noise=("mismatch=0.2", "stuck=0.02"),
                  synapse="rram-es", checkpoint_every=16)
    whole = run_calibration(CalibOptions(**common, out=tmp_path / "whole"))
    with pytest.raises(_Killed):
        run_calibration(CalibOptions(**common, out=tmp_path / "cut", stop_after_batches=3))
    resumed = run_calibration(CalibOptions(**common, out=tmp_path / "cut"))
    assert resumed["resumed"] and resumed["writes_per_cell"] == whole["writes_per_cell"]
    with h5py.File(tmp_path / "whole" / "run.h5") as a, h5py.File(tmp_path / "cut" / "run.h5") as b:
        wa, wb = a["synapse_cells/writes"][()], b["synapse_cells/writes"][()]
        assert np.array_equal(wa, wb) and np.array_equal(a["registers/weights"][()], b["registers/weights"][()])
    cells = whole["writes_per_cell"]["all"]
    assert cells["max"] > 0 and sum(cells["hist_counts"]) == cells["cells"]
    total = sum(v["cell_writes"] for v in whole["learning_layers"].values())
    assert cells["mean"] == pytest.approx(total / cells["cells"])
    result = CliRunner().invoke(main, ["report", str(tmp_path / "whole")])
    assert result.exit_code == 0, result.output
    assert "synapse rram-es: writes per cell mean" in result.output
    assert (tmp_path / "whole" / "writes_per_cell.png").is_file()


def test_device_state_follows_registers_changed_without_it():
    """A chip calibrated with the plain register write (its cell states untouched) and calibrated again
    through a device: the device starts from the registers as they are, not from stale states."""
    chip, setup = conv_setup(None, 1.0, noise=("mismatch.weights=0.1",))
    learn(chip, setup)
    w = chip.registers.weights.copy()
    config = LearningConfig(enabled=True, warmup=2, p=0.9, target_bits=3, pulse=1.0)
    again = setup_learning(chip, config, seed=4, synapse=SynapseModel(endurance=2**60))
    cells = chip.synapse_cells
    assert np.array_equal(cells.state.astype(np.int64) >> 16, w.astype(np.int64))
    assert again.dparams[:, D.D_ON].any()
