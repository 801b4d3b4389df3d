"""Threshold-balancing conversion: leak compensation of LIF layers (numpy only)."""
import numpy as np

from chipsim.core.chip import Chip
from chipsim.models.convert import convert
from chipsim.models.teacher import forward

from tiny import fc_chain

T = 64


def _setup(model="LIF", alpha=0.9):
    net = fc_chain([20, 60, 3], model=model, alpha=alpha, T=T, readout="count")
    rng = np.random.default_rng(0)
    params = {"fc1": (rng.normal(0, 0.3, (60, 20)).astype(np.float32), rng.normal(0, 0.1, 60).astype(np.float32)),
              "fc2": (rng.normal(0, 0.3, (3, 60)).astype(np.float32), np.zeros(3, np.float32))}
    images = rng.integers(0, 256, (200, 20, 1, 1)).astype(np.uint8)
    return net, params, images


def _rate_error(net, params, images, c):
    bundle = convert(net, params, images, 255, 99.0, leak_compensation=c)
    chip = Chip(net, bundle)
    res = chip.run(images.reshape(len(images), -1).astype(np.int32), record=("spikes",))
    rate = (res.spikes[:, :, chip.layer_slice("fc1")] == 1).mean(axis=1)
    a = forward(net, params, images.astype(np.float32) / 255)[1].reshape(len(images), -1)    # fc1 ReLU
    lam = np.percentile(a[a > 0], 99.0)
    return np.abs(rate - np.clip(a / lam, 0, 1)).mean(), bundle


def test_leak_compensation_brings_lif_rates_to_the_teacher():
    net, params, images = _setup()
    err0, plain = _rate_error(net, params, images, 0.0)
    err1, comp = _rate_error(net, params, images, 1.0)
    # stated tolerance: compensation must remove at least 40 % of the mean rate error of plain conversion
    assert err1 < 0.6 * err0, (err0, err1)
    # the bias moved by (1 - alpha) theta in LSBs (+-1 from rounding), for every spiking LIF layer
    for name in ("fc1", "fc2"):
        lw = comp.layers[name]
        shift = comp.layers[name].bias - plain.layers[name].bias
        assert np.all(np.abs(shift - 0.1 * lw.threshold) <= 1), name


def test_no_compensation_for_if_neurons_or_a_potential_readout():
    net, params, images = _setup(model="IF", alpha=1.0)
    a = convert(net, params, images, 255, 99.0, leak_compensation=1.0)
    b = convert(net, params, images, 255, 99.0, leak_compensation=0.0)
    assert all(np.array_equal(a.layers[n].bias, b.layers[n].bias) for n in a.layers)
    lif = fc_chain([20, 60, 3], model="LIF", alpha=0.9, T=T, readout="potential")
    a = convert(lif, params, images, 255, 99.0, leak_compensation=1.0)
    b = convert(lif, params, images, 255, 99.0, leak_compensation=0.0)
    assert np.array_equal(a.layers["fc2"].bias, b.layers["fc2"].bias)         # the output integrates, no leak
    assert not np.array_equal(a.layers["fc1"].bias, b.layers["fc1"].bias)
