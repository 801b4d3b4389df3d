"""chipsim -> NIR -> chipsim: the bundled digits net comes back with identical integers, predictions and
counters (plain CI: needs only the `nir` package, a dependency of chipsim)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("nir", reason="NIR support needs the nir package (a dependency: pip install -e .)")

from click.testing import CliRunner  # noqa: E402

from chipsim.cli.main import main  # noqa: E402
from chipsim.interchange.nir_export import layer_weights  # noqa: E402
from chipsim.workflows.runner import RunOptions, run_inference  # noqa: E402
from chipsim.core.weights import load_weights  # noqa: E402


@pytest.fixture(scope="module")
def digits_round_trip(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nir")
    runner = CliRunner()
    res = runner.invoke(main, ["export-nir", "--net", "digits", "--out", str(tmp / "digits.nir")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["import-nir", str(tmp / "digits.nir"), "--out", str(tmp / "back")])
    assert res.exit_code == 0, res.output
    return tmp


def test_digits_round_trip_is_identical(digits_round_trip):
    a = run_inference(RunOptions(net="digits"))
    b = run_inference(RunOptions(net=str(digits_round_trip / "back" / "digits.yaml")))
    np.testing.assert_array_equal(a.predictions, b.predictions)
    np.testing.assert_array_equal(a.counters, b.counters)
    assert a.summary["accuracy"] == b.summary["accuracy"] > 0.95


def test_digits_round_trip_keeps_every_register(digits_round_trip):
    from chipsim.models import MODELS_DIR

    orig, back = load_weights(MODELS_DIR / "weights" / "digits.h5"), load_weights(digits_round_trip / "back" / "digits.h5")
    for name, lw in orig.layers.items():
        np.testing.assert_array_equal(back.layers[name].weight, lw.weight)
        np.testing.assert_array_equal(back.layers[name].bias, lw.bias)
        assert back.layers[name].threshold == lw.threshold
        assert back.layers[name].scale == pytest.approx(lw.scale, rel=1e-12)


def test_export_writes_real_units_and_per_neuron_registers(tmp_path):
    import nir

    import chipsim

    chip = chipsim.deploy("digits", noise=["mismatch.threshold=0.2"], seed=1)
    path = chip.export_nir(tmp_path / "noisy.nir")
    g = nir.read(path)
    c = chip.chip
    w_int, b_int = layer_weights(c, c.layer_names.index("fc2"))
    s = c.scales["fc2"]
    np.testing.assert_allclose(g.nodes["fc2"].weight, w_int * s)
    np.testing.assert_allclose(g.nodes["fc2"].bias, b_int * s)
    theta = c.registers.theta[c.layer_slice("fc2")]
    assert np.ptp(theta) > 0                                     # mismatch: thresholds differ per neuron
    np.testing.assert_allclose(g.nodes["fc2.neurons"].v_threshold, (theta - 0.5) * s)
    assert [e for e in g.edges][0] == ("input", "flatten1")


def test_layer_weights_inverts_the_crossbar_mapping():
    from chipsim.core.chip import Chip
    from chipsim.config import parse_net
    from chipsim.core.weights import LayerWeights, WeightBundle

    net = parse_net({"name": "c", "input_shape": [2, 4, 4], "time_steps": 2, "encoder": {"kind": "rate"},
                     "layers": [{"name": "c1", "type": "conv", "out": 3, "kernel": 3, "padding": 1},
                                {"type": "flatten"}, {"name": "f", "type": "fc", "out": 2}]}, "<t>")
    rng = np.random.default_rng(0)
    wc, wf = rng.integers(-9, 10, (3, 2, 3, 3)), rng.integers(-9, 10, (2, 48))
    chip = Chip(net, WeightBundle({"c1": LayerWeights(wc, np.arange(3), 5, 1.0),
                                   "f": LayerWeights(wf, np.arange(2), 5, 1.0)}))
    np.testing.assert_array_equal(layer_weights(chip, 0)[0], wc)
    np.testing.assert_array_equal(layer_weights(chip, 1)[0], wf)
    np.testing.assert_array_equal(layer_weights(chip, 1)[1], [0, 1])
