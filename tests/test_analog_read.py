"""Column ADCs (chip.adc_bits, chip.adc_range) and read noise (--noise read=S): the analog read of
kernels/analog.py against a dense numpy reference, bit for bit; its counters; statistics with fixed seeds and
stated tolerances; independence of batch size and threads; the errors of bad settings."""
import json
import math

import numba
import numpy as np
import pytest
from click.testing import CliRunner

from chipsim.cli.main import main
from chipsim.config import ConfigError, LearningConfig, parse_net
from chipsim.core.chip import Chip
from chipsim.core.kernels import layout as K
from chipsim.core.learning import setup_learning
from chipsim.noise import NoiseSpecError, apply_noise, parse_noise

from test_thermal_scopes import xi
from tiny import bundle

T = 3


def conv_net(encoder="direct", tile_rows=7, T=T, input_bits=4, **chip):
    """One 3x3 conv layer on a 3x5x5 input (fan-in 27: with 7-row tiles, 4 row bands whose edges cut
    through kernel offsets), non-firing (threshold 10^6): its membrane is the running sum of its currents."""
    data = {"name": "c", "input_shape": [3, 5, 5], "time_steps": T,
            "encoder": {"kind": encoder, "input_bits": input_bits},
            "chip": {"tile_rows": tile_rows, "tile_cols": 3, **chip},
            "layers": [{"name": "conv", "type": "conv", "out": 4, "kernel": 3, "padding": 1}]}
    return parse_net(data, "<conv>")


def fc_net(encoder="direct", tile_rows=6, T=T, input_bits=4, **chip):
    data = {"name": "f", "input_shape": [20, 1, 1], "time_steps": T,
            "encoder": {"kind": encoder, "input_bits": input_bits},
            "chip": {"tile_rows": tile_rows, **chip}, "readout": "potential",
            "layers": [{"type": "flatten"}, {"name": "fc", "type": "fc", "out": 6}]}
    return parse_net(data, "<fc>")


def make_chip(net, seed=0):
    rng = np.random.default_rng(seed)
    layer = net.weighted_layers[0]
    shape = (4, 3, 3, 3) if layer.type == "conv" else (6, 20)
    w = rng.integers(-60, 61, shape)
    b = rng.integers(-30, 31, shape[0])
    return Chip(net, bundle(net, [w], biases=[b], thresholds=[10**6]))


def increments(chip, x, sample_ids):
    """The layer's current per tick and neuron, read off its non-firing membrane; and the counters."""
    res = chip.run(x, record=("membrane",), sample_ids=np.asarray(sample_ids))
    u = res.membrane.astype(np.int64)
    return np.diff(np.concatenate([np.zeros_like(u[:, :1]), u], axis=1), axis=1), res.counters


def active_rows(chip, x):
    """Per output position, the (ascending) crossbar rows of the nonzero inputs x (chip input order) and
    their values: fc row j = input j; conv row (ky k + kx) in_c + c of the window input (iy, ix, c)."""
    layer = chip.layers[0]
    if layer.type == "fc":
        j = np.flatnonzero(x)
        return [(j, x[j])]
    in_c, in_h, in_w = layer.in_shape
    _, out_h, out_w = layer.out_shape
    k, s, p = layer.kernel, layer.stride, layer.padding
    img = x.reshape(in_h, in_w, in_c)
    out = []
    for oy in range(out_h):
        for ox in range(out_w):
            rows, vals = [], []
            for ky in range(k):
                for kx in range(k):
                    iy, ix = oy * s - p + ky, ox * s - p + kx
                    if 0 <= iy < in_h and 0 <= ix < in_w:
                        for c in range(in_c):
                            if img[iy, ix, c]:
                                rows.append((ky * k + kx) * in_c + c)
                                vals.append(img[iy, ix, c])
            out.append((np.array(rows, np.int64), np.array(vals, np.int64)))
    return out


def reference(chip, x, sigma=0.0, key=0, sample=0, tick=0, multibit=True):
    """The analog read's current (chip neuron order) and counts, from its equations (kernels/analog.py)."""
    layer = chip.layers[0]
    out_c = layer.out_shape[0]
    W = chip.registers.weights[chip.weight_slice(layer.name)].astype(np.int64).reshape(layer.fan_in, out_c)
    bias = chip.registers.bias[chip.bias_slice(layer.name)].astype(np.int64)
    R, bands_total = chip.chip.tile_rows, math.ceil(layer.fan_in / chip.chip.tile_rows)
    bits, rng = chip.chip.adc_bits, chip.chip.adc_range * chip.input_max     # full scale in input units
    H = (1 << (bits - 1)) if bits else 0
    cur, counts = [], dict(conv=0, clip=0, draws=0, sq=0, bands=0)
    for pos, (rows, vals) in enumerate(active_rows(chip, x)):
        c = bias.copy()
        v = vals if multibit else np.ones_like(vals)
        for band in np.unique(rows // R):
            sel = rows // R == band
            part = (W[rows[sel]] * v[sel, None]).sum(axis=0)
            ssq = int((v[sel] ** 2).sum())
            counts["bands"] += 1
            if sigma > 0:
                z = sigma * math.sqrt(ssq) * xi(key, sample, tick, (pos * bands_total + band) * out_c + np.arange(out_c))
                a = part.astype(np.float64) + z
                counts["draws"] += out_c
                counts["sq"] += int(np.floor(z * z * 256.0 + 0.5).sum())
                if H:
                    q = np.floor(a * H / rng + 0.5).astype(np.int64)
                else:
                    y = np.floor(a + 0.5).astype(np.int64)
            elif H:
                q = (2 * part * H + rng) // (2 * rng)
            else:
                y = part
            if H:
                counts["clip"] += int(((q > H - 1) | (q < -H)).sum())
                q = np.clip(q, -H, H - 1)
                y = (2 * q * rng + H) // (2 * H)
                counts["conv"] += out_c
            c = c + y
        cur.append(c)
    return np.concatenate(cur), counts


def chip_inputs(chip, batch, rng):
    """Direct multi-bit values (some zero) or packed rate spikes, and the same as per-tick value arrays."""
    n = chip.n_inputs
    if chip.input_mode == K.IN_HELD:
        x = rng.integers(0, chip.input_max + 1, (batch, n)).astype(np.int32)
        x[rng.random((batch, n)) < 0.3] = 0
        return x, np.repeat(x[:, None], chip.net.time_steps, axis=1)
    spikes = rng.random((batch, chip.net.time_steps, n)) < 0.4
    return np.packbits(spikes, axis=-1), spikes.astype(np.int64)


CASES = [("conv", "direct"), ("conv", "rate"), ("fc", "direct"), ("fc", "rate")]


def net_of(kind, encoder, **chip):
    return conv_net(encoder, **chip) if kind == "conv" else fc_net(encoder, **chip)


# ----------------------------------------------------------------- ADC: exact
@pytest.mark.parametrize("kind,encoder", CASES)
def test_adc_quantizes_each_tiles_partial_sums_like_the_dense_reference(kind, encoder):
    chip = make_chip(net_of(kind, encoder, adc_bits=4, adc_range=90))
    x, per_tick = chip_inputs(chip, 2, np.random.default_rng(1))
    inc, counters = increments(chip, x, [0, 1])
    total = dict(conv=0, clip=0, bands=0)
    for b in range(2):
        for t in range(T):
            expect, counts = reference(chip, per_tick[b, t], multibit=encoder == "direct")
            assert np.array_equal(inc[b, t], expect), (b, t)
            for key in total:
                total[key] += counts[key]
    c = counters.sum(axis=(0, 1))[0]
    assert total["clip"] > 0 and total["clip"] < total["conv"]      # the range cuts some sums, not all
    assert c[K.C_ADC_CONV] == total["conv"] and c[K.C_ADC_CLIP] == total["clip"]
    col_tiles = math.ceil(chip.layers[0].out_shape[0] / chip.chip.tile_cols)
    assert c[K.C_TILE_ACT] == total["bands"] * col_tiles
    assert c[K.C_READ_DRAWS] == 0


@pytest.mark.parametrize("kind,encoder", CASES)
def test_adc_of_unit_step_and_ample_range_is_the_exact_read(kind, encoder):
    """range = 2^(bits-1): one LSB per code; no sum reaches full scale: the ADC changes nothing, and every
    other counter equals the exact event-driven read's. (Direct input of 1 bit: full scale 1, as a spike's;
    wider inputs scale the range, so their step is 2^input_bits - 1 LSBs.)"""
    exact = make_chip(net_of(kind, encoder, input_bits=1))
    adc = make_chip(net_of(kind, encoder, input_bits=1, adc_bits=16, adc_range=1 << 15))
    x, _ = chip_inputs(exact, 3, np.random.default_rng(2))
    inc_a, c_a = increments(exact, x, [0, 1, 2])
    inc_b, c_b = increments(adc, x, [0, 1, 2])
    assert np.array_equal(inc_a, inc_b)
    assert c_b[..., K.C_ADC_CONV].sum() > 0 and c_b[..., K.C_ADC_CLIP].sum() == 0
    c_b[..., K.C_ADC_CONV] = 0
    assert np.array_equal(c_a, c_b)


# ----------------------------------------------------------------- read noise: exact and statistical
@pytest.mark.parametrize("kind,encoder", CASES)
@pytest.mark.parametrize("adc", [False, True])
def test_read_noise_is_the_per_column_formula_bit_for_bit(kind, encoder, adc):
    extra = dict(adc_bits=5, adc_range=400) if adc else {}
    chip = make_chip(net_of(kind, encoder, **extra))
    report = apply_noise(chip, ["read=0.05"], seed=3)
    sigma = 0.05 * chip.chip.weight_max
    assert report["realised"]["read"][chip.layers[0].name]["std_lsb_per_cell"] == sigma
    key = int(chip.registers.noise_key[0, K.NZ_READ])
    x, per_tick = chip_inputs(chip, 2, np.random.default_rng(4))
    inc, counters = increments(chip, x, [5, 8])
    draws = sq = 0
    for b, sid in enumerate((5, 8)):
        for t in range(T):
            expect, counts = reference(chip, per_tick[b, t], sigma, key, sid, t, multibit=encoder == "direct")
            assert np.array_equal(inc[b, t], expect), (b, t)
            draws += counts["draws"]
            sq += counts["sq"]
    c = counters.sum(axis=(0, 1))[0]
    assert c[K.C_READ_DRAWS] == draws and c[K.C_READ_SQ] == sq
    assert not np.array_equal(inc[0, 0], inc[0, 1]) or encoder == "rate"     # direct input: fresh per tick


def test_read_noise_statistics_per_column_current():
    """Zero weights, every input spiking: each column current is the sum over its 4 row bands of
    round(N(0, sigma^2 x 256)), sigma = 0.05 x 127 = 6.35 LSB per cell, so std sqrt(4 (256 sigma^2 + 1/12))
    = 203.2 LSB and mean 0. Over 2 samples x 4 ticks x 512 columns (4096 draws): mean within 4 standard
    errors (+-12.7), std within 4 %; the counters' realised std per draw within 3 % of 101.6."""
    data = {"name": "z", "input_shape": [1024, 1, 1], "time_steps": 4, "encoder": {"kind": "rate"},
            "readout": "potential", "layers": [{"type": "flatten"}, {"name": "fc", "type": "fc", "out": 512}]}
    net = parse_net(data, "<zero>")
    chip = Chip(net, bundle(net, [np.zeros((512, 1024))], thresholds=[10**6]))
    report = apply_noise(chip, ["read=0.05"], seed=7)
    inc, counters = increments(chip, np.full((2, 4, 128), 255, np.uint8), [0, 1])
    expected_std = math.sqrt(4 * (256 * 6.35 ** 2 + 1 / 12))
    assert abs(inc.mean()) < 4 * expected_std / math.sqrt(inc.size)
    assert abs(inc.std() / expected_std - 1) < 0.04
    c = counters.sum(axis=(0, 1))[0]
    assert c[K.C_READ_DRAWS] == 2 * 4 * 4 * 512
    from chipsim.architect.counters import layer_totals
    from chipsim.noise.read import realised

    realised(report, layer_totals(counters, chip.layer_names))
    assert abs(report["realised"]["read"]["fc"]["realised_std_lsb"] / (6.35 * 16) - 1) < 0.03


def test_read_noise_draws_are_fixed_per_sample_id_and_seed():
    chip = make_chip(conv_net("rate"))
    apply_noise(chip, ["read=0.1"], seed=3)
    x, _ = chip_inputs(chip, 1, np.random.default_rng(4))
    a, _ = increments(chip, np.repeat(x, 3, axis=0), [0, 1, 0])
    assert np.array_equal(a[0], a[2]) and not np.array_equal(a[0], a[1])
    other = make_chip(conv_net("rate"))
    apply_noise(other, ["read=0.1"], seed=4)
    b, _ = increments(other, x, [0])
    assert not np.array_equal(a[0], b[0])


# ----------------------------------------------------------------- learning: batch size and threads
def test_learning_with_adc_and_read_noise_is_independent_of_batch_size_and_threads():
    """Two conv layers learning on a chip with 5-bit ADCs, read noise and thermal input noise: batches of
    6, 1 and 2 samples, 1 and 2 threads (the layer pipeline): the same chip bit for bit."""
    data = {"name": "l", "input_shape": [2, 6, 6], "time_steps": 6, "encoder": {"kind": "rate"},
            "chip": {"tile_rows": 7, "adc_bits": 5, "adc_range": 120},
            "layers": [{"name": "c1", "type": "conv", "out": 4, "kernel": 3, "padding": 1},
                       {"name": "c2", "type": "conv", "out": 3, "kernel": 3, "padding": 1},
                       {"type": "flatten"}, {"name": "fc", "type": "fc", "out": 3}]}
    net = parse_net(data, "<learn>")
    rng = np.random.default_rng(0)
    weights = [rng.integers(-40, 41, (4, 2, 3, 3)), rng.integers(-40, 41, (3, 4, 3, 3)),
               rng.integers(-20, 21, (3, 108))]
    x = np.packbits(np.random.default_rng(1).random((6, 6, 72)) < 0.5, axis=-1)
    results = []
    for batch, threads in ((6, 1), (1, 1), (2, 2)):
        chip = Chip(net, bundle(net, weights, thresholds=[30, 30, 30]))
        apply_noise(chip, ["read=0.05", "thermal=0.1", "thermal.scope=input"], seed=2)
        setup = setup_learning(chip, LearningConfig(enabled=True, warmup=2, p=0.9, target_bits=3, pulse=0.5),
                               seed=4)
        targets = np.random.default_rng(5).integers(0, 8, (6, setup.n_targets))
        before = numba.get_num_threads()
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        total = 0
        try:
            for s in range(0, 6, batch):
                res = chip.run(x[s:s + batch], sample_ids=np.arange(s, s + batch), learning=setup,
                               targets=targets[s:s + batch])
                total = total + res.counters.sum(axis=(0, 1))
        finally:
            numba.set_num_threads(before)
        results.append((chip.registers.weights.copy(), total))
    assert results[0][1][:, K.C_PULSES].sum() > 0 and results[0][1][:, K.C_ADC_CLIP].sum() > 0
    for w, c in results[1:]:
        assert np.array_equal(w, results[0][0]) and np.array_equal(c, results[0][1])


# ----------------------------------------------------------------- settings and errors
def test_bad_adc_settings_name_the_key():
    with pytest.raises(ConfigError, match=r"<conv>: chip.adc_range: missing or 0; expected the ADC's full scale"):
        conv_net(adc_bits=4)
    with pytest.raises(ConfigError, match=r"<conv>: chip.adc_bits: missing"):
        conv_net(adc_range=100)
    assert conv_net(adc_bits=0, adc_range=100).chip.adc_bits == 0       # explicitly off (a sweep point)
    with pytest.raises(ConfigError, match=r"chip.adc_bits: expected an integer in \[0, 16\], got 17"):
        conv_net(adc_bits=17, adc_range=100)
    with pytest.raises(ConfigError, match=r"chip.adc_range: expected an integer in \[0, 1048576\], got 0.5"):
        conv_net(adc_bits=4, adc_range=0.5)
    with pytest.raises(ConfigError, match=r"<conv>: chip.adc_layer_ranges.conv9: unknown layer; expected a conv "
                                          r"or fc layer of the net \(conv\)"):
        conv_net(adc_bits=4, adc_range=100, adc_layer_ranges={"conv9": 50})
    with pytest.raises(ConfigError, match=r"chip.adc_layer_ranges.conv: expected an integer in \[1, 1048576\], got 0"):
        conv_net(adc_bits=4, adc_range=100, adc_layer_ranges={"conv": 0})
    with pytest.raises(ConfigError, match=r"chip.adc_layer_ranges: given without adc_range"):
        conv_net(adc_layer_ranges={"conv": 50})


@pytest.mark.parametrize("kind,encoder", [("conv", "direct"), ("fc", "rate")])
def test_a_layers_own_adc_range_replaces_the_chips(kind, encoder):
    """chip.adc_layer_ranges {layer: R}: that layer converts as if adc_range were R, bit for bit."""
    name = "conv" if kind == "conv" else "fc"
    own = make_chip(net_of(kind, encoder, adc_bits=4, adc_range=400, adc_layer_ranges={name: 60}))
    same = make_chip(net_of(kind, encoder, adc_bits=4, adc_range=60))
    other = make_chip(net_of(kind, encoder, adc_bits=4, adc_range=400))
    x, _ = chip_inputs(own, 3, np.random.default_rng(4))
    inc, c = increments(own, x, [0, 1, 2])
    inc_same, c_same = increments(same, x, [0, 1, 2])
    assert np.array_equal(inc, inc_same) and np.array_equal(c, c_same)
    assert not np.array_equal(inc, increments(other, x, [0, 1, 2])[0])


def test_bad_read_noise_is_refused_with_the_accepted_forms():
    assert parse_noise(["read=0.02"]).read == 0.02
    with pytest.raises(NoiseSpecError, match=r"--noise read=2: expected a value in \[0.0, 1.0\].*read=S"):
        parse_noise(["read=2"])
    with pytest.raises(NoiseSpecError, match="--noise read.scope=cell: unknown noise 'read.scope'"):
        parse_noise(["read.scope=cell"])


def test_cli_run_reports_the_adc_and_the_realised_read_noise(tmp_path):
    import yaml

    from chipsim.models import MODELS_DIR

    data = yaml.safe_load((MODELS_DIR / "digits.yaml").read_text())
    data["chip"].update(adc_bits=6, adc_range=200)
    data["weights"] = str(MODELS_DIR / data["weights"])
    net_file = tmp_path / "digits-adc.yaml"
    net_file.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["run", "--net", str(net_file), "--samples", "24", "--noise", "read=0.02",
                                    "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    adc = summary["adc"]
    assert adc["bits"] == 6 and adc["range_lsb"] == 200 and adc["step_lsb"] == 200 / 32
    first = next(iter(adc["layers"].values()))
    assert first["conversions"] > 0 and 0 <= first["clipped_fraction"] <= 1
    read = summary["noise"]["realised"]["read"]
    entry = next(iter(read.values()))
    assert entry["draws"] > 0 and entry["realised_std_lsb"] > 0
