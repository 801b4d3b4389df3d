"""snntorch -> NIR (snntorch's own export) -> chipsim, against snntorch's own simulation.

Needs the `[nir]` extra (torch, snntorch, nirtorch): pip install -e '.[nir]'."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the [nir] extra (torch): pip install -e '.[nir]'")
snn = pytest.importorskip("snntorch", reason="needs the [nir] extra (snntorch): pip install -e '.[nir]'")
pytest.importorskip("nirtorch", reason="needs the [nir] extra (nirtorch): pip install -e '.[nir]'")

import nir  # noqa: E402

from chipsim.core.chip import Chip  # noqa: E402
from chipsim.config import load_net  # noqa: E402
from chipsim.interchange.nir_import import ImportOptions, import_nir  # noqa: E402
from chipsim.core.weights import load_weights  # noqa: E402

T = 24


def leaky(shape, beta, thr, **kw):
    return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.full(shape, thr), init_hidden=True,
                     reset_mechanism="zero", **kw)


def export(model, sample, path):
    from snntorch.export_nir import export_to_nir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # beta = 1 divides by zero in snntorch's tau = dt / (1 - beta)
        graph = export_to_nir(model, sample, ignore_dims=[0])
    nir.write(path, graph)


def snntorch_spikes(model, x):
    """Per-layer spikes (T, B, n) of every Leaky in `model` for input x (T, B, ...)."""
    from snntorch import utils as snn_utils

    snn_utils.reset(model)
    leakies = [m for m in model if isinstance(m, snn.Leaky)]
    out = {id(m): [] for m in leakies}
    hooks = [m.register_forward_hook(lambda mod, i, o: out[id(mod)].append(
        (o[0] if isinstance(o, tuple) else o).detach().reshape(x.shape[1], -1).clone())) for m in leakies]
    with torch.no_grad():
        for t in range(len(x)):
            model(x[t])
    for h in hooks:
        h.remove()
    return [torch.stack(out[id(m)]).numpy() for m in leakies]


def chip_spikes(folder, name, x):
    net = load_net(folder / f"{name}.yaml")
    chip = Chip(net, load_weights(folder / f"{name}.h5"))
    xb = x.numpy().transpose(1, 0, *range(2, x.dim())).reshape(x.shape[1], len(x), -1).astype(np.uint8)
    res = chip.run(np.packbits(xb, axis=2), record=("spikes",))
    return chip, res


def test_snntorch_if_model_is_spike_exact(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 16), leaky((16,), 1.0, 3.0),
                                torch.nn.Linear(16, 5), leaky((5,), 1.0, 2.0, output=True))
    with torch.no_grad():                 # integer weights and biases: exactly representable
        for m in model:
            if isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.randint(-3, 4, m.weight.shape).float())
                m.bias.copy_(torch.randint(-1, 2, m.bias.shape).float())
    export(model, torch.zeros(1, 20), tmp_path / "if.nir")
    result = import_nir(tmp_path / "if.nir", tmp_path / "net", ImportOptions(encoder="rate", time_steps=T, name="m"))
    assert all(r["quantization"] == "exact grid" for r in result["layers"].values())
    x = (torch.rand(T, 8, 20) < 0.4).float()
    ref = snntorch_spikes(model, x)
    chip, res = chip_spikes(tmp_path / "net", "m", x)
    for layer, want in zip(chip.layer_names, ref):
        got = res.spikes[:, :, chip.layer_slice(layer)].transpose(1, 0, 2)
        np.testing.assert_array_equal(got, want)
    assert ref[1].sum() > 20                            # the output layer fires: the comparison means something


def test_snntorch_lif_conv_model_agrees_within_quantization(tmp_path):
    """Float weights and a leak: spike counts agree up to the rounding of 8-bit weights and the leak."""
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), leaky((4, 8, 8), 0.9, 1.0),
                                torch.nn.AvgPool2d(2), torch.nn.Flatten(),
                                torch.nn.Linear(64, 6), leaky((6,), 0.9, 1.0, output=True))
    export(model, torch.zeros(1, 1, 8, 8), tmp_path / "lif.nir")
    result = import_nir(tmp_path / "lif.nir", tmp_path / "net", ImportOptions(encoder="rate", time_steps=T, name="m"))
    assert result["layers"]["conv1"]["weight_max_rel"] <= 0.5 / 127 + 1e-9
    x = (torch.rand(T, 16, 1, 8, 8) < 0.5).float()
    ref = snntorch_spikes(model, x)
    chip, res = chip_spikes(tmp_path / "net", "m", x)
    conv = res.spikes[:, :, chip.layer_slice("conv1")]         # chip order (y, x, c) -> (c, y, x)
    conv = conv.reshape(16, T, 8, 8, 4).transpose(0, 1, 4, 2, 3).reshape(16, T, -1).sum(axis=1)
    want = ref[0].sum(axis=0)
    assert want.sum() > 1000
    assert np.mean(conv == want) > 0.95                        # most neurons: the same count
    assert np.abs(conv - want).max() <= 2
