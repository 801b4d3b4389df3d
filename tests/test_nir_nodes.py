"""NIR import, node by node: each supported node alone maps to the chip integers and settings derived by
hand; unsupported nodes and bad graphs fail with errors that name the node."""
from __future__ import annotations

import numpy as np
import pytest

from nir_helpers import chain_graph, if_node, lif_node, nir, reference_if

from chipsim.core.chip import Chip
from chipsim.config import parse_net
from chipsim.interchange.nir_chain import NIRImportError
from chipsim.interchange.nir_import import ImportOptions, graph_to_net

DT = 1e-4


def imported(nodes, in_shape, type_check=True, **opts):
    return graph_to_net(chain_graph(nodes, in_shape, type_check=type_check), "g.nir", ImportOptions(**opts))


def test_affine_and_if_map_to_their_own_integers():
    w = np.array([[1.0, 2.0, 0.0], [3.0, -1.0, 1.0]])
    imp = imported([("fc", nir.Affine(weight=w, bias=np.array([0.0, 1.0]))), ("lif", if_node(2, thr=2.0))], [3])
    lw = imp.bundle.layers["fc"]
    np.testing.assert_array_equal(lw.weight, w.astype(int))
    np.testing.assert_array_equal(lw.bias, [0, 1])
    assert (lw.scale, lw.threshold) == (1.0, 3)         # v > 2 <=> U >= 3 for whole-LSB membranes
    assert imp.mapping["neuron"] == {"model": "IF", "threshold": 2.0, "reset": "zero"}
    assert imp.layers["fc"]["quantization"] == "exact grid"


def test_linear_has_zero_bias():
    imp = imported([("fc", nir.Linear(weight=np.array([[2.0, 4.0]]))), ("n", if_node(1))], [2])
    np.testing.assert_array_equal(imp.bundle.layers["fc"].bias, [0])
    np.testing.assert_array_equal(imp.bundle.layers["fc"].weight, [[1, 2]])   # coarsest exact grid: LSB 2
    assert imp.bundle.layers["fc"].scale == 2.0 and imp.bundle.layers["fc"].threshold == 2   # 2 / 2 -> 1 + 1


def test_if_gain_and_per_neuron_thresholds_fold_into_rows():
    node = nir.IF(r=np.array([2.0, 1.0]), v_threshold=np.array([1.0, 2.0]), v_reset=np.zeros(2))
    imp = imported([("fc", nir.Linear(weight=np.array([[1.0], [1.0]]))), ("n", node)], [1])
    # neuron 0: gain 2, threshold 1 -> row x 2 x (1 / 1); neuron 1: gain 1, threshold 2 -> row x 1 x (1 / 2)
    lw = imp.bundle.layers["fc"]
    np.testing.assert_array_equal(lw.weight[:, 0], [4, 1])        # coarsest exact grid of [2, 0.5]: LSB 0.5
    assert (lw.scale, lw.threshold) == (0.5, 3)                    # v > 1 <=> U > 2 <=> U >= 3


def test_if_chain_is_spike_exact_against_nir_semantics():
    rng = np.random.default_rng(3)
    w1, w2 = rng.integers(-3, 4, (6, 5)).astype(float), rng.integers(-3, 4, (3, 6)).astype(float)
    b1 = rng.integers(-1, 2, 6).astype(float)
    imp = imported([("fc1", nir.Affine(weight=w1, bias=b1)), ("n1", if_node(6, thr=2.0)),
                    ("fc2", nir.Linear(weight=w2)), ("n2", if_node(3, thr=1.0))], [5], encoder="rate", time_steps=20)
    net = parse_net(imp.mapping, "<imported>")
    chip = Chip(net, imp.bundle)
    x = (rng.random((20, 5)) < 0.5).astype(np.uint8)
    res = chip.run(np.packbits(x[None], axis=2), record=("spikes",))
    ref = reference_if([(w1, b1, 2.0), (w2, np.zeros(3), 1.0)], x)
    np.testing.assert_array_equal(res.spikes[0][:, chip.layer_slice("fc1")], ref[0])
    np.testing.assert_array_equal(res.spikes[0][:, chip.layer_slice("fc2")], ref[1])
    assert ref[1].sum() > 0


def test_lif_leak_from_dt_and_tau():
    imp = imported([("fc", nir.Linear(weight=np.array([[1.0]]))), ("n", lif_node(1, tau=4 * DT))], [1], dt=DT)
    assert imp.mapping["neuron"]["model"] == "LIF"
    assert imp.mapping["neuron"]["alpha"] == pytest.approx(0.75)          # 1 - dt / tau
    assert imp.bundle.layers["fc"].weight[0, 0] * imp.bundle.layers["fc"].scale == pytest.approx(1.0)  # r dt/tau
    assert any("forward Euler" in note for note in imp.approximations)


def test_lif_with_infinite_tau_is_snntorch_if():
    node = nir.LIF(tau=np.full(1, np.inf), r=np.full(1, np.inf), v_leak=np.zeros(1), v_threshold=np.ones(1),
                   v_reset=np.zeros(1))
    imp = imported([("fc", nir.Linear(weight=np.array([[1.0]]))), ("n", node)], [1])
    assert imp.mapping["neuron"]["model"] == "IF"
    assert any("tau = inf" in note for note in imp.approximations)


def test_cubalif_with_instant_synapse():
    n = 2
    node = nir.CubaLIF(tau_syn=np.full(n, DT), tau_mem=np.full(n, 10 * DT), r=np.full(n, 10.0), v_leak=np.zeros(n),
                       v_threshold=np.ones(n), w_in=np.full(n, 1.0))
    imp = imported([("fc", nir.Linear(weight=np.eye(n))), ("n", node)], [n], dt=DT)
    assert imp.mapping["neuron"]["alpha"] == pytest.approx(0.9)
    lw = imp.bundle.layers["fc"]
    np.testing.assert_allclose(lw.weight * lw.scale, np.eye(n))           # w_in dt/tau_syn x r dt/tau_mem = 1


def test_integrator_is_the_potential_readout():
    imp = imported([("fc", nir.Linear(weight=np.array([[1.0, 2.0]]))), ("n", nir.I(r=np.ones(1)))], [2])
    assert imp.mapping["readout"] == "potential"


def test_conv2d_and_same_padding():
    w = np.arange(2 * 1 * 3 * 3, dtype=float).reshape(2, 1, 3, 3) - 8
    conv = nir.Conv2d(input_shape=(4, 4), weight=w, stride=1, padding="same", dilation=1, groups=1, bias=np.zeros(2))
    imp = imported([("c", conv), ("n", if_node((2, 4, 4))), ("f", nir.Flatten(input_type={"input": np.array([2, 4, 4])}, start_dim=0)),
                    ("fc", nir.Linear(weight=np.ones((3, 32)))), ("m", if_node(3))], [1, 4, 4])
    assert imp.mapping["layers"][0] == {"name": "c", "type": "conv", "out": 2, "kernel": 3, "stride": 1, "padding": 1}
    np.testing.assert_array_equal(imp.bundle.layers["c"].weight, w.astype(int))
    assert imp.mapping["layers"][1] == {"name": "f", "type": "flatten"}


@pytest.mark.parametrize("kind, factor", [("SumPool2d", 4.0), ("AvgPool2d", 1.0)])
def test_pools_map_to_rate_averaging_pools(kind, factor):
    conv = nir.Conv2d(input_shape=(4, 4), weight=np.ones((1, 1, 1, 1)), stride=1, padding=0, dilation=1, groups=1,
                      bias=np.zeros(1))
    pool = getattr(nir, kind)(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    imp = imported([("c", conv), ("n", if_node((1, 4, 4))), ("p", pool), ("f", nir.Flatten(input_type={"input": np.array([1, 2, 2])}, start_dim=0)),
                    ("fc", nir.Linear(weight=np.ones((1, 4)))), ("m", if_node(1, thr=8.0))], [1, 4, 4])
    assert imp.mapping["layers"][1] == {"name": "p", "type": "pool", "kernel": 2, "kind": "avg"}
    fc = imp.bundle.layers["fc"]
    np.testing.assert_allclose(fc.weight * fc.scale, np.full((1, 4), factor))
    assert any(kind in note for note in imp.approximations)


def test_rounded_layers_record_their_error():
    w = np.array([[0.1, 0.3333333, -0.77]])
    imp = imported([("fc", nir.Linear(weight=w)), ("n", if_node(1, thr=0.5))], [3])
    r = imp.layers["fc"]
    assert r["quantization"] == "rounded"
    lw = imp.bundle.layers["fc"]
    assert r["weight_max_rel"] == pytest.approx(np.abs(w - lw.weight * lw.scale).max() / 0.77)
    assert 0 < r["weight_max_rel"] <= 0.5 / 127 + 1e-12


# ----------------------------------------------------------------------------- errors name the node

def _fc(n_out=1, n_in=1):
    return nir.Linear(weight=np.ones((n_out, n_in)))


@pytest.mark.parametrize("nodes, where, what", [
    ([("s", nir.Scale(scale=np.ones(1))), ("n", if_node(1))], "'s' (Scale)", "unsupported node type"),
    ([("fc", _fc()), ("li", nir.LI(tau=np.ones(1), r=np.ones(1), v_leak=np.zeros(1)))], "'li' (LI)",
     "unsupported node type"),
    ([("fc", _fc()), ("fc2", _fc())], "'fc2' (Linear)", "expected a neuron node"),
    ([("n", if_node(1))], "'n' (IF)", "has no weighted node"),
    ([("fc", _fc())], "'fc' (Linear)", "is not followed by neurons"),
    ([("fc", _fc()), ("n", nir.IF(r=np.ones(1), v_threshold=np.ones(1), v_reset=np.ones(1)))], "'n' (IF)", "v_reset"),
    ([("fc", _fc()), ("n", nir.LIF(tau=np.ones(1), r=np.ones(1), v_leak=np.ones(1), v_threshold=np.ones(1)))],
     "'n' (LIF)", "v_leak"),
    ([("fc", _fc()), ("n", lif_node(1, tau=DT / 2))], "'n' (LIF)", "expected dt < tau"),
    ([("fc", _fc()), ("n", nir.CubaLIF(tau_syn=np.full(1, 10 * DT), tau_mem=np.full(1, 10 * DT), r=np.ones(1),
                                        v_leak=np.zeros(1), v_threshold=np.ones(1)))], "'n' (CubaLIF)", "tau_syn"),
    ([("fc", _fc()), ("n", lif_node(1, tau=10 * DT)), ("fc2", _fc()), ("m", lif_node(1, tau=20 * DT))], "'m' (LIF)",
     "one neuron model per net"),
    ([("fc", _fc()), ("i", nir.I(r=np.ones(1))), ("fc2", _fc()), ("m", if_node(1))], "'i' (I)", "expected it last"),
])
def test_bad_chains_name_the_node(nodes, where, what):
    with pytest.raises(NIRImportError, match="g.nir: node " + where.replace("(", r"\(").replace(")", r"\)")) as exc:
        imported(nodes, [1])
    assert what in str(exc.value)


def test_conv_groups_and_overlapping_pools_are_refused():
    conv = nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 3, 3)), stride=1, padding=1, dilation=1, groups=2,
                      bias=np.zeros(2))
    with pytest.raises(NIRImportError, match=r"node 'c' \(Conv2d\): groups and dilation must be 1"):
        imported([("c", conv), ("n", if_node((2, 4, 4)))], [1, 4, 4])
    conv = nir.Conv2d(input_shape=(4, 4), weight=np.ones((1, 1, 1, 1)), stride=1, padding=0, dilation=1, groups=1,
                      bias=np.zeros(1))
    pool = nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([1, 1]), padding=np.array([0, 0]))
    with pytest.raises(NIRImportError, match=r"node 'p' \(AvgPool2d\): .*stride = kernel"):
        imported([("c", conv), ("n", if_node((1, 4, 4))), ("p", pool)], [1, 4, 4], type_check=False)


def _graph(nodes, edges):
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_branches_cycles_and_strays_name_the_node():
    base = lambda: {"input": nir.Input(input_type={"input": np.array([1])}), "fc": _fc(), "n": if_node(1),  # noqa: E731
                    "output": nir.Output(output_type={"output": np.array([1])})}
    branch = base() | {"fc2": _fc()}
    with pytest.raises(NIRImportError, match=r"node 'input' \(Input\) has 2 outgoing edges"):
        graph_to_net(_graph(branch, [("input", "fc"), ("input", "fc2"), ("fc", "n"), ("fc2", "n"), ("n", "output")]),
                     "g.nir", ImportOptions())
    with pytest.raises(NIRImportError, match=r"node 'fc' \(Linear\) has 2 incoming edges"):
        graph_to_net(_graph(base(), [("input", "fc"), ("fc", "n"), ("n", "fc")]), "g.nir", ImportOptions())
    stray = base() | {"x": if_node(1)}
    with pytest.raises(NIRImportError, match=r"node 'x' \(IF\) is not on the chain"):
        graph_to_net(_graph(stray, [("input", "fc"), ("fc", "n"), ("n", "output")]), "g.nir", ImportOptions())


def test_cli_errors_name_the_file_without_traceback(tmp_path):
    from click.testing import CliRunner

    from chipsim.cli.main import main

    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"not hdf5")
    res = CliRunner().invoke(main, ["import-nir", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert f"{bad}: not a readable NIR graph" in res.output
