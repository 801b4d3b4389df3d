"""The 32-bit-lane neuron update (kernels/neuron.py integrate_narrow) against the 64-bit one.

The host picks the narrow loop only when it can prove no value leaves int32
(Chip.narrow_datapath); where it does, both loops must agree bit for bit on
membranes, spikes, counts and every counter, including saturations, leaks of
negative membranes, zero reset, silenced neurons and dynamic noise."""
import numpy as np
import pytest

from chipsim.core.chip import Chip
from chipsim.noise import apply_noise

from tiny import bundle, fc_chain


def run_both(chip, x, monkeypatch):
    narrow = chip.run(x, record=("spikes", "membrane"))
    monkeypatch.setattr(Chip, "narrow_datapath", lambda self, *args: False)
    wide = chip.run(x, record=("spikes", "membrane"))
    monkeypatch.undo()
    return narrow, wide


@pytest.mark.parametrize("model,reset,membrane_bits,counter_bits,noise", [
    ("LIF", "subtract", 12, 3, ()),                       # membrane and counter saturate
    ("LIF", "zero", 16, 16, ()),
    ("IF", "subtract", 24, 16, ("thermal=0.3",)),
    ("LIF", "subtract", 24, 4, ("silence=0.3", "silence.scope=tick")),
    ("LIF", "subtract", 24, 16, ("silence=0.4",)),
])
def test_narrow_update_equals_wide(model, reset, membrane_bits, counter_bits, noise, monkeypatch):
    rng = np.random.default_rng(4)
    net = fc_chain([40, 30, 20, 6], model=model, alpha=0.8 if model == "LIF" else 1.0, reset=reset, T=12, membrane_bits=membrane_bits,
                   counter_bits=counter_bits)
    weights = [rng.integers(-127, 128, (30, 40)), rng.integers(-127, 128, (20, 30)),
               rng.integers(-127, 128, (6, 20))]
    chip = Chip(net, bundle(net, weights, biases=[rng.integers(-50, 50, 30), rng.integers(-50, 50, 20),
                                                  rng.integers(-50, 50, 6)], thresholds=[300, 150, 100]))
    if noise:
        apply_noise(chip, list(noise), seed=1)
    assert chip.narrow_datapath()
    x = rng.integers(0, 256, (5, 40)).astype(np.int32)
    narrow, wide = run_both(chip, x, monkeypatch)
    assert np.array_equal(narrow.membrane, wide.membrane)
    assert np.array_equal(narrow.spikes, wide.spikes)
    assert np.array_equal(narrow.counters, wide.counters)
    assert np.array_equal(narrow.counts, wide.counts)
    assert narrow.spikes.any() and (narrow.membrane < 0).any(), "the case must fire and go negative"


def test_narrow_datapath_decision():
    net = fc_chain([4, 3], T=2)
    chip = Chip(net, bundle(net, [np.ones((3, 4))]))
    assert chip.narrow_datapath()
    chip.registers.theta[:] = 2**31 - 2**20           # threshold + current could leave int32
    assert not chip.narrow_datapath()
    wide_leak = fc_chain([4, 3], T=2, leak_bits=16)    # leak products need more than 32 bits
    assert not Chip(wide_leak, bundle(wide_leak, [np.ones((3, 4))])).narrow_datapath()
    big = fc_chain([4, 3], T=2, membrane_bits=31)      # |U| up to 2^30 plus the current
    chip = Chip(big, bundle(big, [np.full((3, 4), 127)]))
    chip.registers.theta[:] = 2**30
    assert not chip.narrow_datapath()
