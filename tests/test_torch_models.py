"""chipsim.models.torch: the teacher built from a YAML equals the numpy teacher; the float SNN follows the chip."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the model zoo needs the optional torch extra (pip install -e .[torch])")

from chipsim.core.chip import Chip  # noqa: E402
from chipsim.config import load_net, parse_net  # noqa: E402
from chipsim.models import MODELS_DIR  # noqa: E402
from chipsim.models.teacher import forward  # noqa: E402
from chipsim.models.torch import (SpikingNet, Teacher, TeacherOptions, bundle_to_snn_params,  # noqa: E402
                                  export_snn, folded_params, load_folded, load_snn_params)

torch.set_num_threads(1)


def small_net(pool="avg", **extra):
    data = {
        "name": "small", "input_shape": [2, 8, 8], "time_steps": 8,
        "layers": [{"name": "c1", "type": "conv", "out": 4, "kernel": 3, "padding": 1},
                   {"name": "p1", "type": "pool", "kernel": 2, "kind": pool},
                   {"name": "c2", "type": "conv", "out": 6, "kernel": 3, "stride": 2, "padding": 1},
                   {"type": "flatten"},
                   {"name": "f3", "type": "fc", "out": 7},
                   {"name": "f4", "type": "fc", "out": 3}],
        **extra,
    }
    return parse_net(data, "<small>")


def _randomise_bn(model):
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for bn in model.norms.values():
            n = bn.num_features
            bn.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            bn.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            bn.weight.copy_(torch.rand(n, generator=g) + 0.5)
            bn.bias.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)


@pytest.mark.parametrize("pool", ["avg", "or"])
@pytest.mark.parametrize("batchnorm", [False, True])
def test_teacher_matches_numpy_teacher(pool, batchnorm):
    net = small_net(pool)
    torch.manual_seed(0)
    model = Teacher(net, TeacherOptions(batchnorm=batchnorm, dropout=0.3))
    _randomise_bn(model)
    model.eval()                                   # BN running statistics, no dropout
    x = torch.rand(5, 2, 8, 8)
    with torch.no_grad():
        outs = model.activations(x)
    ref = forward(net, folded_params(model), x.numpy())
    assert len(outs) == len(ref) == len(net.layers)
    for layer, a, b in zip(net.layers, outs, ref):
        np.testing.assert_allclose(a.numpy().reshape(b.shape), b, rtol=1e-5, atol=1e-5, err_msg=layer.name)


def test_vgg11_w4_teacher_matches_numpy_teacher():
    net = load_net(MODELS_DIR / "vgg11-w4.yaml")
    torch.manual_seed(1)
    model = Teacher(net)
    assert model.options == TeacherOptions(batchnorm=True, dropout=0.2)
    assert set(model.norms) == {layer.name for layer in net.weighted_layers[:-1]}
    _randomise_bn(model)
    model.eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        logits = model(x).numpy()
    ref = forward(net, folded_params(model), x.numpy())[-1].reshape(3, -1)
    np.testing.assert_allclose(logits, ref, rtol=1e-4, atol=1e-5)


def test_load_folded_round_trip():
    net = small_net()
    torch.manual_seed(2)
    a = Teacher(net, TeacherOptions(batchnorm=True))
    _randomise_bn(a)
    a.eval()
    params = folded_params(a)
    b = Teacher(net, TeacherOptions(batchnorm=True))
    load_folded(b, params)
    b.eval()
    x = torch.rand(4, 2, 8, 8)
    with torch.no_grad():
        np.testing.assert_allclose(a(x).numpy(), b(x).numpy(), rtol=1e-5, atol=1e-6)


def test_teacher_dropout_only_in_training():
    net = small_net()
    model = Teacher(net, TeacherOptions(dropout=0.5))
    x = torch.rand(4, 2, 8, 8)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))


def _digits_like_net(**neuron):
    data = {"name": "mlp", "input_shape": [1, 4, 4], "time_steps": 12,
            "encoder": {"kind": "direct", "input_bits": 8},
            "neuron": {"model": "IF", "threshold": 1.0, "reset": "subtract", **neuron},
            "layers": [{"type": "flatten"}, {"name": "f1", "type": "fc", "out": 20},
                       {"name": "f2", "type": "fc", "out": 12}, {"name": "f3", "type": "fc", "out": 5}],
            "readout": "potential"}
    return parse_net(data, "<mlp>")


@pytest.mark.parametrize("neuron", [{}, {"reset": "zero"}, {"model": "LIF", "alpha": 0.875}])
def test_float_snn_follows_the_chip(neuron):
    """Integer weights -> float SNN in real units: the hidden spike trains equal the chip's
    (IF exactly; LIF up to the chip's truncation of the leak, here exact as alpha = 7/8)."""
    net = _digits_like_net(**neuron)
    rng = np.random.default_rng(0)
    params = {layer.name: (rng.normal(0, 0.6, (layer.out_shape[0], layer.fan_in)).astype(np.float32),
                           rng.normal(0.05, 0.05, layer.out_shape[0]).astype(np.float32))
              for layer in net.weighted_layers}
    bundle = export_snn(net, params, 255)
    images = rng.integers(0, 256, (6, 1, 4, 4)).astype(np.uint8)
    chip = Chip(net, bundle)
    from chipsim.hostlink.encoders import Encoder

    res = chip.run(Encoder("direct", net.time_steps, 255, 8).encode(images, np.arange(6)), record=("spikes",))
    snn = SpikingNet(net).double()
    load_snn_params(snn, bundle_to_snn_params(net, bundle, 255))
    snn = snn.double()
    with torch.no_grad():
        logits, runs = snn(torch.as_tensor(images / 255.0))
    for layer in net.weighted_layers[:-1]:
        chip_spikes = res.spikes[:, :, chip.layer_slice(layer.name)]        # (B, T, n)
        float_spikes = runs[layer.name].spikes.numpy().transpose(1, 0, 2)
        assert np.mean(chip_spikes == float_spikes) > 0.99, layer.name
    # potential readout: the chip's final membrane = sum of input currents = T * mean current
    scale = 1.0 / bundle.layers["f3"].threshold
    np.testing.assert_allclose(res.potentials * scale, logits.numpy() * net.time_steps, rtol=0.05, atol=0.05)
    assert np.mean(res.predictions == logits.argmax(1).numpy()) >= 5 / 6


def test_boxcar_surrogate_gradient():
    from chipsim.models.torch import BoxcarSpike

    v = torch.tensor([-0.5, -0.1, 0.0, 0.1, 0.5], requires_grad=True)
    s = BoxcarSpike.apply(v, 0.4)
    assert s.tolist() == [0, 0, 1, 1, 0 + 1]
    s.sum().backward()
    assert v.grad.tolist() == pytest.approx([0, 2.5, 2.5, 2.5, 0])


def test_noise_aware_training_draws_one_chip_per_pass():
    net = _digits_like_net()
    torch.manual_seed(0)
    snn = SpikingNet(net)
    x = torch.rand(3, 1, 4, 4)
    snn.eval()
    with torch.no_grad():
        clean = snn(x)[0]
        snn.weight_noise = 0.2
        assert torch.equal(snn(x)[0], clean)            # evaluation: the nominal weights
        snn.train()
        a, b = snn(x)[0], snn(x)[0]
    assert not torch.equal(a, clean) and not torch.equal(a, b)
    snn.weight_noise = 0.0
    with torch.no_grad():
        assert torch.equal(snn(x)[0], clean)
