"""Noise package: parser, realised statistics (fixed seeds, stated tolerances), scopes, determinism."""
import numba
import numpy as np
import pytest

from chipsim.core.chip import Chip
from chipsim.noise import NoiseSpecError, apply_noise, parse_noise
from chipsim.noise.seeding import generator
from chipsim.workflows.runner import RunError, RunOptions, run_inference

from tiny import bundle, fc_chain


def big_chip(n_in=256, n_out=256, w=100, T=4, theta=10**6, model="IF", alpha=1.0, readout="potential"):
    net = fc_chain([n_in, n_out], T=T, readout=readout, model=model, alpha=alpha)
    weights = np.full((n_out, n_in), w)
    return Chip(net, bundle(net, [weights], thresholds=[theta]))


# ----------------------------------------------------------------- parser
def test_parser_accepts_kinds_subkeys_and_presets():
    spec = parse_noise(["mismatch=0.2", "mismatch.leak=0.1", "bits=4", "thermal=0.05", "silence=0.1"])
    assert spec.mismatch_weights == 0.2 and spec.mismatch_leak == 0.1 and spec.bits == 4
    assert spec.thermal == 0.05 and spec.silence == 0.1 and spec.silence_scope == "chip"
    dyn = parse_noise(["preset=dynapse"])
    assert (dyn.mismatch_weights, dyn.mismatch_leak) == (0.2, 0.1)
    assert parse_noise(["preset=dynapse", "mismatch.weights=0"]).mismatch_weights == 0.0
    assert parse_noise(["preset=ideal"]).is_ideal


@pytest.mark.parametrize("item, message", [
    ("jitter=0.1", "unknown noise 'jitter'; accepted: mismatch=S"),
    ("mismatch=abc", "expected a number, got 'abc'"),
    ("mismatch=1.5", "expected a value in [0.0, 1.0], got 1.5"),
    ("bits=1", "expected a value in [2, 16]"),
    ("bits=3.5", "expected a whole number of bits"),
    ("silence=1", "expected a value in [0.0, 1.0)"),
    ("silence.scope=layer", "expected chip or tick"),
    ("preset=loihi", "unknown preset 'loihi'; expected one of ideal, dynapse"),
    ("mismatch", "expected KIND=VALUE"),
    ("mismatch.gain=0.1", "unknown noise 'mismatch.gain'"),
])
def test_parser_errors_list_what_is_accepted(item, message):
    with pytest.raises(NoiseSpecError) as err:
        parse_noise([item])
    assert message in str(err.value)


def test_cli_level_error_names_the_flag():
    with pytest.raises(RunError, match="--noise thermal=5"):
        run_inference(RunOptions(noise=("thermal=5",), samples=10))


# ----------------------------------------------------------------- mismatch
def test_mismatch_realised_spread_matches_request():
    # 65,536 cells of nominal 50 (127 is 7.7 sigma away: no saturation): the realised relative
    # spread must be 0.2 within 0.01 (standard error of a std over n draws ~ 0.2 / sqrt(2n) =
    # 0.0006; integer rounding adds < 0.1 %), the mean 1 within 0.005 (5 standard errors)
    chip = big_chip(w=50)
    report = apply_noise(chip, ["mismatch.weights=0.2"], seed=1)["realised"]["mismatch"]["fc1"]["weights"]
    w = chip.registers.weights.astype(float)
    assert abs(w.mean() / 50 - 1) < 0.005
    assert abs(w.std() / 50 - 0.2) < 0.01
    assert abs(report["std"] - 0.2) < 0.01 and abs(report["mean"]) < 0.005
    assert report["saturations"] == 0
    # at nominal 120 the upper tail saturates at 127, and every saturation is counted
    hot = big_chip(w=120)
    rep = apply_noise(hot, ["mismatch.weights=0.2"], seed=1)["realised"]["mismatch"]["fc1"]["weights"]
    xi = generator(1, "mismatch", 0, "weights").standard_normal(65536)
    expected = int((np.round(120 * (1 + 0.2 * xi)) > 127).sum())
    assert rep["saturations"] == expected > 0


def test_mismatch_is_frozen_seeded_and_not_shared_between_layers():
    net = fc_chain([64, 64, 64], T=2)
    make = lambda: Chip(net, bundle(net, [np.full((64, 64), 50), np.full((64, 64), 50)]))
    a, b, c = make(), make(), make()
    apply_noise(a, ["mismatch=0.2"], seed=3)
    apply_noise(b, ["mismatch=0.2"], seed=3)
    apply_noise(c, ["mismatch=0.2"], seed=4)
    assert np.array_equal(a.registers.weights, b.registers.weights)
    assert not np.array_equal(a.registers.weights, c.registers.weights)
    w1 = a.registers.weights[a.weight_slice("fc1")]
    w2 = a.registers.weights[a.weight_slice("fc2")]
    assert not np.array_equal(w1, w2)       # same shape, independent draws
    # thresholds drawn too (per neuron), and identically for every sample: frozen
    assert len(np.unique(a.registers.theta)) > 1
    x = np.full((1, 64), 1, np.int32)
    r0 = a.run(np.repeat(x, 2, axis=0), sample_ids=np.array([0, 7]))
    assert np.array_equal(r0.counts[0], r0.counts[1])


def test_mismatch_of_lif_time_constants():
    chip = big_chip(model="LIF", alpha=0.9, readout="count", theta=10**5)
    rep = apply_noise(chip, ["mismatch.leak=0.1"], seed=0)["realised"]["mismatch"]["fc1"]["leak_tau"]
    assert abs(rep["std"] - 0.1) < 0.02      # 256 neurons, rounding of a to 12 bits
    if_chip = big_chip()
    rep = apply_noise(if_chip, ["mismatch.leak=0.1"], seed=0)["realised"]["mismatch"]["fc1"]["leak_tau"]
    assert rep["n"] == 0 and "IF" in rep["note"]


# ----------------------------------------------------------------- quantization
@pytest.mark.parametrize("bits", [2, 3, 4, 6])
def test_quantizer_level_count_and_error_bound(bits):
    rng = np.random.default_rng(0)
    net = fc_chain([128, 64], T=2)
    w = rng.integers(-127, 128, size=(64, 128))
    chip = Chip(net, bundle(net, [w], biases=[rng.integers(-50, 50, 64)], thresholds=[300]))
    rep = apply_noise(chip, [f"bits={bits}"], seed=0)["realised"]["bits"]["fc1"]
    levels = (1 << (bits - 1)) - 1
    q = 127 / levels
    gain = rep["gain"]
    stored = chip.registers.weights.astype(np.int64)
    assert np.all(stored % gain == 0)
    level = stored // gain
    assert np.abs(level).max() <= levels
    assert rep["levels_used"] == len(np.unique(level)) <= 2 * levels + 1
    # error bound: |level * q - w| <= q / 2 (in the original LSBs), crossbar rows in chip order
    original = w.T.reshape(-1)
    assert np.abs(level * q - original).max() <= q / 2 + 1e-9
    assert rep["max_abs_error_lsb"] <= rep["error_bound_lsb"]
    # threshold rescaled by gain / q, deterministic
    assert chip.registers.theta[0] == round(300 * gain / q)
    chip2 = Chip(net, bundle(net, [w], biases=[np.zeros(64)], thresholds=[300]))
    apply_noise(chip2, [f"bits={bits}"], seed=99)
    assert np.array_equal(chip2.registers.weights, chip.registers.weights)
    assert chip.registers.weight_step[0] == gain and chip.registers.weight_max[0] == levels * gain


@pytest.mark.parametrize("bits", [3, 4])
def test_minmax_quantizer_grid_offset_and_error_bound(bits):
    """bits.quantizer=minmax: 2^b levels min + k (max - min) / (2^b - 1), the offset kept to 1/G of a level."""
    rng = np.random.default_rng(1)
    net = fc_chain([128, 64], T=2)
    w = rng.integers(-90, 128, size=(64, 128))                  # asymmetric: min -90, max 127
    chip = Chip(net, bundle(net, [w], biases=[rng.integers(-50, 50, 64)], thresholds=[300]))
    rep = apply_noise(chip, [f"bits={bits}", "bits.quantizer=minmax"], seed=0)["realised"]["bits"]["fc1"]
    lo, hi, top = int(w.min()), int(w.max()), (1 << bits) - 1
    q = (hi - lo) / top
    gain = rep["gain"]
    assert gain == 1 << max(0, int(np.ceil(np.log2(q)))) and rep["step_lsb"] == q
    offset = round(lo * gain / q)
    stored = chip.registers.weights.astype(np.int64)
    k = (stored - offset) // gain
    assert np.all((stored - offset) % gain == 0) and k.min() >= 0 and k.max() <= top
    assert rep["levels_used"] == len(np.unique(k)) <= top + 1
    original = w.T.reshape(-1)                                # crossbar rows in chip order
    assert np.abs(lo + k * q - original).max() <= q / 2 + 1e-9
    assert np.array_equal(k, np.round((original - lo) / q))
    assert chip.registers.theta[0] == round(300 * gain / q)
    assert chip.registers.weight_step[0] == gain
    assert chip.registers.weight_max[0] == max(abs(offset), abs(offset + top * gain))
    # the symmetric quantizer is the default and differs
    sym = Chip(net, bundle(net, [w], biases=[np.zeros(64)], thresholds=[300]))
    apply_noise(sym, [f"bits={bits}"], seed=0)
    assert not np.array_equal(sym.registers.weights, chip.registers.weights)
    with pytest.raises(NoiseSpecError, match="expected symmetric or minmax"):
        parse_noise(["bits.quantizer=paper"])


# ----------------------------------------------------------------- thermal
def thermal_increments(sample_ids, s=0.1, batch_split=None):
    chip = big_chip(n_in=1, n_out=4096, w=100, T=6)
    apply_noise(chip, [f"thermal={s}"], seed=5)
    x = np.ones((len(sample_ids), 1), np.int32)
    res = chip.run(x, record=("membrane",), sample_ids=np.asarray(sample_ids))
    u = res.membrane.astype(np.int64)
    return np.diff(np.concatenate([np.zeros_like(u[:, :1]), u], axis=1), axis=1)   # I' per tick


def test_thermal_mean_and_std_per_tick():
    # I = 100, s = 0.1 -> I' = 100 + round(10 xi): per tick over 4096 neurons,
    # mean 100 +- 0.6 (4 standard errors), std 10 +- 0.5 (5 %)
    inc = thermal_increments([0, 1])
    for b in range(2):
        for t in range(6):
            assert abs(inc[b, t].mean() - 100) < 0.6
            assert abs(inc[b, t].std() - 10) < 0.5


def test_thermal_scope_fresh_per_tick_and_sample_fixed_per_sample_id():
    inc = thermal_increments([0, 1, 0])
    assert not np.array_equal(inc[0, 0], inc[0, 1])          # different tick
    assert not np.array_equal(inc[0, 0], inc[1, 0])          # different sample
    assert np.array_equal(inc[0], inc[2])                    # same sample id: same draws
    corr = np.corrcoef(inc[0, 0], inc[0, 1])[0, 1]
    assert abs(corr) < 0.06                                   # 4096 pairs: 4 sigma of 1/64


# ----------------------------------------------------------------- silence
def test_silence_mask_is_exact_fixed_and_never_spikes():
    net = fc_chain([4, 200, 3], T=5)
    chip = Chip(net, bundle(net, [np.full((200, 4), 20), np.full((3, 200), 1)]))
    rep = apply_noise(chip, ["silence=0.25"], seed=2)["realised"]["silence"]
    assert rep["fc1"]["silenced"] == 50 and "fc2" not in rep      # output layer is never silenced
    mask = chip.registers.enabled[chip.layer_slice("fc1")]
    res = chip.run(np.ones((3, 4), np.int32), record=("spikes", "membrane"), sample_ids=np.array([0, 1, 2]))
    sl = chip.layer_slice("fc1")
    assert res.spikes[:, :, sl][:, :, mask == 0].sum() == 0
    assert np.all(res.membrane[:, :, sl][:, :, mask == 0] == 0)
    assert res.spikes[:, :, sl][:, :, mask == 1].sum() > 0
    chip2 = Chip(net, bundle(net, [np.full((200, 4), 20), np.full((3, 200), 1)]))
    apply_noise(chip2, ["silence=0.25"], seed=2)
    assert np.array_equal(chip2.registers.enabled, chip.registers.enabled)


def test_silence_by_channel_kills_whole_feature_maps():
    """silence.unit=channel: round(p C) channels of a conv layer dead at every position; fc neuron by neuron."""
    from chipsim.config import load_net
    from chipsim.models import resolve_net
    from chipsim.core.weights import load_weights

    net = load_net(resolve_net("fashion"))
    chip = Chip(net, load_weights(net.weights))
    rep = apply_noise(chip, ["silence=0.25", "silence.unit=channel"], seed=4)["realised"]["silence"]
    for layer in chip.layers[:-1]:
        mask = chip.registers.enabled[chip.layer_slice(layer.name)].astype(bool)
        c = layer.out_shape[0]
        if layer.n_out > c:
            per_pos = mask.reshape(-1, c)                      # chip order (y, x, c)
            assert np.all(per_pos == per_pos[0]), layer.name   # the same channels at every position
            assert (~per_pos[0]).sum() == round(0.25 * c) == rep[layer.name]["silenced_channels"]
        else:
            assert (~mask).sum() == round(0.25 * layer.n_out)
    neuron = Chip(net, load_weights(net.weights))
    apply_noise(neuron, ["silence=0.25"], seed=4)
    conv = chip.layers[0]
    m = neuron.registers.enabled[neuron.layer_slice(conv.name)].reshape(-1, conv.out_shape[0])
    assert not np.all(m == m[0])                               # the default silences positions one by one
    with pytest.raises(NoiseSpecError, match="expected silence.scope=chip or silence.unit=neuron"):
        parse_noise(["silence=0.2", "silence.scope=tick", "silence.unit=channel"])


# ----------------------------------------------------------------- whole runs
def run(noise, batch_size=64, samples=120):
    return run_inference(RunOptions(noise=tuple(noise), batch_size=batch_size, samples=samples, seed=11))


def test_noise_free_runs_are_unchanged_bit_for_bit():
    plain, ideal = run([]), run(["preset=ideal"])
    assert np.array_equal(plain.predictions, ideal.predictions)
    assert np.array_equal(plain.counters, ideal.counters)


def test_thermal_results_independent_of_batch_size_and_threads():
    noise = ["thermal=0.1", "mismatch=0.1", "silence=0.2", "silence.scope=tick"]
    a = run(noise, batch_size=64)
    b = run(noise, batch_size=1)
    assert np.array_equal(a.predictions, b.predictions)
    assert np.array_equal(a.counters_per_sample, b.counters_per_sample)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        c = run(noise, batch_size=64)
    finally:
        numba.set_num_threads(threads)
    assert np.array_equal(a.counters_per_sample, c.counters_per_sample)
    assert not np.array_equal(a.counters_per_sample, run([]).counters_per_sample)


def test_summary_records_what_was_realised(tmp_path):
    out = run_inference(RunOptions(noise=("mismatch=0.2", "bits=4", "silence=0.1"), samples=20, out=tmp_path / "r"))
    noise = out.summary["noise"]
    assert noise["requested"]["bits"] == 4 and noise["seed"] == 0
    assert set(noise["realised"]) == {"bits", "mismatch", "silence"}
    assert noise["realised"]["silence"]["fc1"]["silenced"] == 26       # round(0.1 * 256 fc1 neurons)
    import h5py, json
    with h5py.File(tmp_path / "r" / "run.h5") as f:
        assert json.loads(f.attrs["noise"])["requested"]["mismatch_weights"] == 0.2
