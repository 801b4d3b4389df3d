"""Thermal noise scopes `input` (the LTL code's x' = x (1 + s xi) per input element) and `additive`
(Buechel et al.'s s * theta): exact read semantics, statistics with fixed seeds and stated tolerances,
draw addressing, and independence of batch size and threads."""
import numba
import numpy as np
import pytest

from chipsim.core.chip import Chip
from chipsim.core.kernels import layout as K
from chipsim.noise import NoiseSpecError, apply_noise, parse_noise
from chipsim.workflows.runner import RunOptions, run_inference

from tiny import bundle, fc_chain

GOLDEN, M1, M2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def mix64(z):
    """SplitMix64 finaliser in numpy (an independent copy of kernels/rng.py's)."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
    return z ^ (z >> np.uint64(31))


def xi(key, sample, tick, lanes):
    """The Irwin-Hall N(0, 1) draws of lanes under (key, sample, tick), as the kernels address them."""
    with np.errstate(over="ignore"):
        h = mix64(np.uint64(key) + GOLDEN * np.uint64(sample + 1))
        h = mix64(h + GOLDEN * np.uint64(tick + 1))
        bits = mix64(h + GOLDEN * (np.asarray(lanes, np.uint64) + np.uint64(1)))
    m = np.uint64(0xFFFF)
    total = sum(((bits >> np.uint64(s)) & m).astype(np.float64) for s in (0, 16, 32, 48))
    return (total - 131070.0) * (1.7320508075688772 / 65536.0)


def increments(chip, x, sample_ids):
    """I' per tick and neuron, read off the membrane of non-firing IF neurons."""
    res = chip.run(x, record=("membrane",), sample_ids=np.asarray(sample_ids))
    u = res.membrane.astype(np.int64)
    return np.diff(np.concatenate([np.zeros_like(u[:, :1]), u], axis=1), axis=1), res


# ----------------------------------------------------------------- parser
def test_parser_accepts_the_scopes_and_names_them_on_error():
    assert parse_noise(["thermal=0.1"]).thermal_scope == "current"
    assert parse_noise(["thermal=0.1", "thermal.scope=input"]).thermal_scope == "input"
    assert parse_noise(["thermal.scope=additive", "thermal=0.1"]).thermal_scope == "additive"
    with pytest.raises(NoiseSpecError, match="thermal.scope=pixel: expected current or input or additive"):
        parse_noise(["thermal.scope=pixel"])


# ----------------------------------------------------------------- scope input: exact read
def test_input_scope_read_is_the_fixed_point_formula_bit_for_bit():
    # I_o = b_o + round_half_up(sum_j W_oj round(x_j (1 + s xi_j) 2^8) / 2^8), direct multi-bit input
    rng = np.random.default_rng(3)
    n_in, n_out, T, s = 24, 7, 5, 0.3
    net = fc_chain([n_in, n_out], T=T, readout="potential")
    w = rng.integers(-120, 121, (n_out, n_in))
    b = rng.integers(-50, 51, n_out)
    chip = Chip(net, bundle(net, [w], biases=[b], thresholds=[10**6]))
    apply_noise(chip, ["thermal=0.3", "thermal.scope=input"], seed=4)
    key = int(chip.registers.noise_key[0, K.NZ_THERMAL_IN])
    x = rng.integers(0, 256, (2, n_in)).astype(np.int32)
    x[0, :5] = 0                                           # zero inputs send no event and get no noise
    inc, _ = increments(chip, x, [7, 9])
    for bi, sid in enumerate((7, 9)):
        for t in range(T):
            noisy = np.floor(x[bi] * (1.0 + s * xi(key, sid, t, np.arange(n_in))) * 256 + 0.5).astype(np.int64)
            expect = b + ((w @ np.where(x[bi] != 0, noisy, 0) + 128) >> 8)
            assert np.array_equal(inc[bi, t], expect), (bi, t)


def test_input_scope_counts_its_reads_as_macs():
    n_in, n_out, T = 16, 5, 3
    net = fc_chain([n_in, n_out, 2], T=T, readout="potential", encoder="rate")
    chip = Chip(net, bundle(net, [np.full((n_out, n_in), 3), np.full((2, n_out), 1)], thresholds=[10**6, 10**6]))
    apply_noise(chip, ["thermal=0.1", "thermal.scope=input"], seed=0)
    spikes = np.full((1, T, n_in // 8), 255, np.uint8)      # every input spikes every tick
    res = chip.run(spikes, sample_ids=np.array([0]))
    c = res.counters[0, :, 0]                              # (tick, counter) of fc1
    assert np.all(c[:, K.C_SYN_MAC] == n_in * n_out) and np.all(c[:, K.C_SYN_AC] == 0)


# ----------------------------------------------------------------- scope input: statistics
def spike_chip(n=4096, T=6, s=0.1, scope="input", seed=5):
    """n rate-coded inputs, one per neuron (diagonal weights 100), non-firing IF neurons."""
    net = fc_chain([n, n], T=T, readout="potential", encoder="rate", weight_bits=8)
    chip = Chip(net, bundle(net, [np.diag(np.full(n, 100))], thresholds=[10**6]))
    apply_noise(chip, [f"thermal={s}", f"thermal.scope={scope}"], seed=seed)
    return chip


def all_spikes(batch, n=4096, T=6):
    return np.full((batch, T, n // 8), 255, np.uint8)


def test_input_scope_spike_statistics_per_element_and_tick():
    # a spike becomes 1 + 0.1 xi; times weight 100: I = 100 + 10 xi (+ rounding of 1/256 LSB).
    # Per tick over 4096 elements: mean 100 +- 0.6 (4 standard errors), std 10 +- 0.5 (5 %).
    inc, _ = increments(spike_chip(), all_spikes(2), [0, 1])
    for b in range(2):
        for t in range(6):
            assert abs(inc[b, t].mean() - 100) < 0.6
            assert abs(inc[b, t].std() - 10) < 0.5


def test_input_scope_draws_fresh_per_tick_sample_and_element_and_fixed_per_sample_id():
    inc, _ = increments(spike_chip(), all_spikes(3), [0, 1, 0])
    assert not np.array_equal(inc[0, 0], inc[0, 1])          # another tick
    assert not np.array_equal(inc[0, 0], inc[1, 0])          # another sample
    assert np.array_equal(inc[0], inc[2])                    # the same sample id: the same draws
    alone, _ = increments(spike_chip(), all_spikes(1), [1])  # and whatever the batch
    assert np.array_equal(alone[0], inc[1])
    d = inc[0, 0] - 100                                      # elements: neighbours uncorrelated
    assert abs(np.corrcoef(d[:-1], d[1:])[0, 1]) < 0.063     # 4 sigma of 1/64
    assert abs(np.corrcoef(inc[0, 0], inc[0, 1])[0, 1]) < 0.063


def test_input_scope_noise_does_not_cancel_where_the_current_does():
    # inputs +w and -w: the summed current is 0, so scope current adds nothing; scope input adds
    # s w sqrt(2) (std 0.2 * 100 * 1.414 = 28.3, within 5 % over 1024 samples x 4 ticks). The draw
    # belongs to the input element, so every neuron it fans out to sees the same x'.
    net = fc_chain([2, 3], T=4, readout="potential", encoder="rate")
    w = np.tile([[100, -100]], (3, 1))
    x = np.full((1024, 4, 1), 0b11000000, np.uint8)
    for scope, lo, hi in (("current", 0.0, 0.0), ("input", 26.9, 29.7)):
        chip = Chip(net, bundle(net, [w], thresholds=[10**6]))
        apply_noise(chip, ["thermal=0.2", f"thermal.scope={scope}"], seed=1)
        inc, _ = increments(chip, x, np.arange(1024))
        assert lo <= inc[:, :, 0].std() <= hi, scope
        assert np.array_equal(inc[:, :, 0], inc[:, :, 2])          # shared by the fan-out


# ----------------------------------------------------------------- scope additive
def test_additive_scope_std_is_sigma_times_threshold():
    # theta 1000, s 0.05: I' = 100 + round(50 xi) whatever the input; mean 100 +- 3.2, std 50 +- 2.5
    n = 4096
    net = fc_chain([1, n], T=4, readout="potential")
    chip = Chip(net, bundle(net, [np.full((n, 1), 100)], thresholds=[1000]))
    apply_noise(chip, ["thermal=0.05", "thermal.scope=additive"], seed=2)
    inc, _ = increments(chip, np.ones((1, 1), np.int32), [0])
    for t in range(2):                          # U <= 2 (100 + 3.46 * 50) < theta: no spike has reset it
        assert abs(inc[0, t].mean() - 100) < 3.2
        assert abs(inc[0, t].std() - 50) < 2.5


# ----------------------------------------------------------------- whole runs
def run(noise, batch_size=64, samples=96):
    return run_inference(RunOptions(noise=tuple(noise), batch_size=batch_size, samples=samples, seed=11))


@pytest.mark.parametrize("scope", ["input", "additive"])
def test_scopes_independent_of_batch_size_and_threads(scope):
    noise = ["thermal=0.2", f"thermal.scope={scope}", "mismatch=0.1"]
    a = run(noise, batch_size=64)
    b = run(noise, batch_size=5)
    assert np.array_equal(a.predictions, b.predictions)
    assert np.array_equal(a.counters_per_sample, b.counters_per_sample)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        c = run(noise, batch_size=64)
    finally:
        numba.set_num_threads(threads)
    assert np.array_equal(a.counters_per_sample, c.counters_per_sample)
    others = run(["thermal=0.2", "mismatch=0.1"])         # the current scope is another model
    assert not np.array_equal(a.counters_per_sample, others.counters_per_sample)


def test_input_scope_refuses_a_read_that_could_overflow():
    # clean worst case 4096 * 2000 * 255 = 2.09e9 fits int32 (deploys); times 1 + 3.46 * 0.1 it does not
    net = fc_chain([4096, 4], T=2, weight_bits=16, input_bits=8)
    chip = Chip(net, bundle(net, [np.full((4, 4096), 2000)]))
    with pytest.raises(NoiseSpecError, match="layer 'fc1'.s worst-case perturbed input current .* could overflow"):
        apply_noise(chip, ["thermal=0.1", "thermal.scope=input"], seed=0)
    apply_noise(chip, ["thermal=0.1"], seed=0)             # scope current: the chip's existing rule
