"""The chip against a dense numpy reference (tests/reference_chip.py), bit for bit.

Random small nets (conv / pool / flatten / fc, IF / LIF, both resets, delay,
both readouts, tiny tiles, narrow registers) with random integer weights and
inputs: every counter the reference derives, the per-tick spikes and membrane,
the final counters and the predictions must agree exactly.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chipsim.core.chip import Chip
from chipsim.config import parse_net
from chipsim.core.kernels.layout import COUNTER_NAMES
from chipsim.core.weights import LayerWeights, WeightBundle, expected_shape

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the reference lives beside this file
from reference_chip import COUNTERS, run_reference  # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


pytestmark = pytest.mark.usefixtures("one_numba_thread")     # tests/conftest.py


# --------------------------------------------------------------------------- building blocks


def make_bundle(net, rng: np.random.Generator, in_max: int, density: float,
                theta_factor: float, sparse_weights: bool, excitatory: bool) -> WeightBundle:
    """Random integer weights within weight_bits, biases within bias_bits, thresholds
    scaled to the typical input current so that layers neither stay silent nor always fire.
    `excitatory` skews the weights positive (more spikes deep in the net)."""
    chip = net.chip
    wmax, bmax = chip.weight_max, chip.bias_max
    layers = {}
    scale_in = in_max
    for layer in net.layers:
        if not layer.weighted:
            scale_in = 1
            continue
        shape = expected_shape(layer)
        w = rng.integers(-(wmax // 3) if excitatory else -wmax, wmax + 1, size=shape)
        if sparse_weights:
            w[rng.random(shape) < 0.5] = 0
        typical = wmax * math.sqrt(max(1.0, layer.fan_in * max(density, 0.05))) * scale_in
        bias_lim = min(bmax, int(typical))
        b = rng.integers(-bias_lim, bias_lim + 1, size=shape[0])
        theta = int(np.clip(round(typical * theta_factor), 1, chip.membrane_max))
        layers[layer.name] = LayerWeights(w.astype(np.int32), b.astype(np.int64), theta, 1.0)
        scale_in = 1
    return WeightBundle(layers)


@st.composite
def layer_stacks(draw, input_shape, max_layers=3, pool_first=True, conv_first=False):
    """A list of YAML layer mappings (1..max_layers neuron layers, flatten inserted where needed).
    pool_first=False keeps pooling out of the first layer (a pool fed by the direct encoder is
    tested on its own, test_direct_input_into_pool_first_layer)."""
    n = draw(st.sampled_from([n for n in (2, 3, 1) if n <= max_layers]))
    _, h, w = input_shape
    flat = False
    out = []
    for i in range(n):
        last = i == n - 1
        options = []
        if not flat:
            options += ["conv", "conv"]
            if not last and (i > 0 or (pool_first and not conv_first)) and any(h % k == 0 and w % k == 0 for k in (1, 2, 3)):
                options.append("pool")
        if not (conv_first and i == 0):
            options.append("fc")
        kind = draw(st.sampled_from(options))
        if kind == "conv":
            pad = draw(st.integers(0, 1))
            k = draw(st.integers(1, min(3, h + 2 * pad, w + 2 * pad)))
            stride = draw(st.integers(1, 2))
            oc = draw(st.integers(1, 5))
            out.append({"type": "conv", "out": oc, "kernel": k, "stride": stride, "padding": pad})
            h, w = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        elif kind == "pool":
            ks = [k for k in (1, 2, 3) if h % k == 0 and w % k == 0]
            k = draw(st.sampled_from(ks[::-1]))       # the largest window first
            out.append({"type": "pool", "kernel": k, "kind": draw(st.sampled_from(["avg", "or"]))})
            h, w = h // k, w // k
        else:
            if not flat and ((h, w) != (1, 1) or draw(st.booleans())):
                out.append({"type": "flatten"})
            flat = True
            oc = draw(st.integers(1, 8))
            out.append({"type": "fc", "out": oc})
            h, w = 1, 1
    return out


@st.composite
def cases(draw, encoder=None, small_registers=None, conv_first=False):
    """(net, bundle, chip inputs, reference inputs)."""
    c = draw(st.integers(1, 3))
    h = draw(st.sampled_from([4, 6, 2, 3, 5, 1]))
    w = draw(st.sampled_from([4, 3, 6, 2, 5, 1]))
    kind = encoder or draw(st.sampled_from(["direct", "rate", "if"]))
    layers = draw(layer_stacks((c, h, w), pool_first=kind != "direct", conv_first=conv_first))
    input_bits = draw(st.integers(1, 8))
    T = draw(st.sampled_from([4, 6, 1, 2, 3, 5]))
    model = draw(st.sampled_from(["IF", "LIF"]))
    neuron = {"model": model, "reset": draw(st.sampled_from(["subtract", "zero"]))}
    if model == "LIF":
        neuron["alpha"] = draw(st.sampled_from([0.05, 0.3, 0.5, 0.77, 0.9, 0.97]))
    small = draw(st.booleans()) if small_registers is None else small_registers
    chip = {
        # <= 8 bits: int8 cells; 9..16: int16 cells; |w| > 4095 (>= 14 bits): int32 accumulator
        "weight_bits": draw(st.sampled_from([8, 12, 4, 14, 6, 10, 5])),
        "membrane_bits": draw(st.integers(8, 12)) if small else draw(st.sampled_from([16, 24, 31])),
        "counter_bits": draw(st.integers(1, 3)) if small else 16,
        "bias_bits": draw(st.integers(2, 16)),
        "leak_bits": draw(st.integers(1, 12)),
        "tile_rows": draw(st.integers(1, 8)),
        "tile_cols": draw(st.integers(2, 5)),
        "delay": draw(st.booleans()),
    }
    cfg = {
        "name": "hyp",
        "input_shape": [c, h, w],
        "time_steps": T,
        "encoder": {"kind": kind, "input_bits": input_bits},
        "neuron": neuron,
        "layers": layers,
        "readout": draw(st.sampled_from(["count", "potential"])),
        "chip": chip,
    }
    net = parse_net(cfg, "hypothesis")
    seed = draw(st.integers(0, 2**32 - 1))
    density = draw(st.sampled_from([0.5, 0.9, 1.0, 0.15, 0.0]))
    theta_factor = draw(st.sampled_from([0.3, 0.05, 1.0, 3.0]))
    sparse_weights = draw(st.booleans())
    excitatory = draw(st.booleans())
    batch = draw(st.sampled_from([2, 1, 3]))
    rng = np.random.default_rng(seed)
    n_in = c * h * w
    if kind == "direct":
        in_max = (1 << input_bits) - 1
        values = rng.integers(0, in_max + 1, size=(batch, n_in))
        values[rng.random((batch, n_in)) >= density] = 0
        chip_in = values.astype(np.int32)
        ref_in = values
    else:
        in_max = 1
        spikes = (rng.random((batch, T, n_in)) < density).astype(np.uint8)
        chip_in = np.packbits(spikes, axis=2)
        ref_in = spikes
    bundle = make_bundle(net, rng, in_max, density, theta_factor, sparse_weights, excitatory)
    return net, bundle, chip_in, ref_in


# --------------------------------------------------------------------------- comparison


def assert_same(net, chip: Chip, res, ref) -> None:
    """Bit-exact comparison with messages that say where the chip and the reference part."""
    names = ref.layer_names
    B, T = ref.spikes.shape[:2]
    derived = [COUNTER_NAMES.index(name) for name in COUNTERS]
    got = res.counters[..., derived]
    if not np.array_equal(got, ref.counters):
        b, t, li, ci = np.argwhere(got != ref.counters)[0]
        raise AssertionError(
            f"counter {COUNTERS[ci]!r} of layer {names[li]!r} at sample {b}, tick {t}: chip {got[b, t, li, ci]}, "
            f"reference {ref.counters[b, t, li, ci]}\nnet: {net.layers}\nchip cfg: {net.chip}\nneuron: {net.neuron}")
    others = [i for i in range(len(COUNTER_NAMES)) if i not in derived]
    assert not res.counters[..., others].any(), "learning / silencing counters must stay 0 in plain inference"
    offs = np.concatenate([[0], np.cumsum(ref.layer_sizes)])
    for what, chip_arr, ref_arr in (("spikes", res.spikes, ref.spikes), ("membrane", res.membrane, ref.membrane)):
        if not np.array_equal(chip_arr.astype(np.int64), ref_arr.astype(np.int64)):
            b, t, j = np.argwhere(chip_arr.astype(np.int64) != ref_arr)[0]
            li = int(np.searchsorted(offs, j, side="right") - 1)
            raise AssertionError(
                f"{what} of layer {names[li]!r} neuron {j - offs[li]} (chip order) at sample {b}, tick {t}: "
                f"chip {chip_arr[b, t, j]}, reference {ref_arr[b, t, j]}\nnet: {net.layers}\n"
                f"chip cfg: {net.chip}\nneuron: {net.neuron}\nreadout: {net.readout}")
    np.testing.assert_array_equal(res.counts, ref.counts, err_msg="final output spike counters")
    np.testing.assert_array_equal(res.potentials, ref.potentials, err_msg="final output membrane")
    np.testing.assert_array_equal(res.membrane[:, -1], ref.U, err_msg="final membrane, all layers")
    # final spike counters of every layer: the recorded spikes summed, saturating at counter_max
    chip_c = np.minimum(res.spikes.astype(np.int64).sum(axis=1), net.chip.counter_max)
    np.testing.assert_array_equal(chip_c, ref.C, err_msg="final spike counters, all layers")
    np.testing.assert_array_equal(res.predictions, ref.predictions, err_msg="predictions")
    assert res.counts.shape == (B, net.classes)


def check_case(net, bundle, chip_in, ref_in):
    chip = Chip(net, bundle)
    res = chip.run(chip_in, record=("spikes", "membrane"))
    ref = run_reference(net, bundle, ref_in)
    assert_same(net, chip, res, ref)
    return res, ref


# --------------------------------------------------------------------------- property tests


@SETTINGS
@given(cases())
def test_random_nets_match_reference(case):
    check_case(*case)


@SETTINGS
@given(cases(encoder="direct"))
def test_random_nets_direct_input_match_reference(case):
    check_case(*case)


@SETTINGS
@given(cases(encoder="rate", small_registers=True))
def test_random_nets_saturating_registers_match_reference(case):
    check_case(*case)


@SETTINGS
@given(cases(encoder="if", conv_first=True))
def test_random_conv_stacks_match_reference(case):
    check_case(*case)


# --------------------------------------------------------------------------- hand-made cases


def _net(layers, input_shape, T=3, kind="rate", readout="count", neuron=None, **chip):
    return parse_net({"name": "t", "input_shape": list(input_shape), "time_steps": T,
                      "encoder": {"kind": kind, "input_bits": 8}, "neuron": neuron or {"model": "IF"},
                      "layers": layers, "readout": readout, "chip": chip}, "test")


def test_saturation_is_exercised_by_the_generator():
    """The generator reaches the saturation paths (so the property test does check them)."""
    seen = {"membrane_saturations": 0, "counter_saturations": 0, "tile_activations": 0}

    @settings(max_examples=15, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(cases(encoder="rate", small_registers=True))
    def collect(case):
        net, bundle, _chip_in, ref_in = case
        ref = run_reference(net, bundle, ref_in)
        for name in seen:
            seen[name] += int(ref.counters[..., COUNTERS.index(name)].sum())

    collect()
    assert all(v > 0 for v in seen.values()), seen


@pytest.mark.parametrize("weight_bits,wmax", [(8, 127), (12, 2047), (13, 4095), (16, 32767)])
def test_large_fan_in_flushes_narrow_accumulator_exactly(weight_bits, wmax):
    """2000 spiking inputs into full-scale weights: a narrow accumulator must be flushed in time;
    the current equals the int64 sum exactly."""
    n_in, T = 2000, 3
    net = _net([{"name": "fc", "type": "fc", "out": 4}], (n_in, 1, 1), T=T, weight_bits=weight_bits,
               membrane_bits=31)
    rng = np.random.default_rng(7)
    w = np.empty((4, n_in), np.int32)
    w[0] = wmax
    w[1] = -wmax
    w[2] = rng.integers(-wmax, wmax + 1, n_in)
    w[3] = np.where(np.arange(n_in) % 3 == 0, wmax, -1)
    bias = np.array([5, -5, 0, 1], np.int64)
    theta = net.chip.membrane_max                      # nothing fires: U is the plain integral
    bundle = WeightBundle({"fc": LayerWeights(w, bias, theta, 1.0)})
    spikes = np.ones((2, T, n_in), np.uint8)
    spikes[1, 1, ::2] = 0                               # a second sample with a gap
    chip = Chip(net, bundle)
    res = chip.run(np.packbits(spikes, axis=2), record=("membrane",))
    for b in range(2):
        expected = np.cumsum([bias + w.astype(np.int64) @ spikes[b, t].astype(np.int64) for t in range(T)], axis=0)
        np.testing.assert_array_equal(res.membrane[b].astype(np.int64), expected)
    assert int(res.membrane[0, 0, 0]) == 2000 * wmax + 5
    _res, _ref = check_case(net, bundle, np.packbits(spikes, axis=2), spikes)


def test_large_fan_in_conv_flush_inside_one_input_position():
    """A conv input position with more active channels than the int16 flush limit (258 rows)."""
    c = 300
    net = _net([{"name": "conv", "type": "conv", "out": 3, "kernel": 3, "padding": 1}], (c, 3, 3), T=2,
               weight_bits=8, tile_rows=64, tile_cols=2)
    w = np.full((3, c, 3, 3), 127, np.int32)
    w[1] = -127
    w[2, ::2] = -127
    bundle = WeightBundle({"conv": LayerWeights(w, np.zeros(3, np.int64), net.chip.membrane_max, 1.0)})
    spikes = np.ones((1, 2, c * 9), np.uint8)
    res, _ref = check_case(net, bundle, np.packbits(spikes, axis=2), spikes)
    # centre output position sees all 9 * 300 inputs: 2700 * 127 after tick 0
    centre = (1 * 3 + 1) * 3
    assert int(res.membrane[0, 0, centre]) == 2700 * 127


@pytest.mark.parametrize("kind", ["rate", "direct"])
def test_fc_after_flatten_of_multichannel_map_uses_chw_weight_order(kind):
    """fc weights index their input in (C, H, W) order; the chip's activations are (y, x, c).
    Input 2 x 1 x 2 flattened into an fc: an input in channel 1 at x = 0 (chip index 1,
    teacher index 2) must read weight column 2."""
    net = _net([{"type": "flatten"}, {"name": "fc", "type": "fc", "out": 1}], (2, 1, 2), T=1,
               kind=kind, membrane_bits=16)
    w = np.array([[1, 2, 3, 4]], np.int32)               # teacher columns (c0x0, c0x1, c1x0, c1x1)
    bundle = WeightBundle({"fc": LayerWeights(w, np.zeros(1, np.int64), 1000, 1.0)})
    chip = Chip(net, bundle)
    if kind == "direct":
        value = 5
        res = chip.run(np.array([[0, value, 0, 0]], np.int32), record=("membrane",))
    else:
        value = 1
        spikes = np.zeros((1, 1, 4), np.uint8)
        spikes[0, 0, 1] = 1                              # chip order (y, x, c): index 1 = (x0, c1)
        res = chip.run(np.packbits(spikes, axis=2), record=("membrane",))
    assert int(res.membrane[0, 0, 0]) == 3 * value, \
        "fc input (c=1, y=0, x=0) must use weight column 2 of the (out, C*H*W) weight matrix"


def test_fc_after_conv_and_flatten_matches_reference():
    net = _net([{"name": "conv", "type": "conv", "out": 3, "kernel": 1},
                {"type": "flatten"}, {"name": "fc", "type": "fc", "out": 2}], (1, 2, 2), T=2)
    w1 = np.array([1, 2, 3], np.int32).reshape(3, 1, 1, 1)
    w2 = np.arange(1, 25, dtype=np.int32).reshape(2, 12)
    bundle = WeightBundle({"conv": LayerWeights(w1, np.zeros(3, np.int64), 1, 1.0),
                           "fc": LayerWeights(w2, np.zeros(2, np.int64), 10000, 1.0)})
    spikes = np.zeros((1, 2, 4), np.uint8)
    spikes[0, :, 2] = 1
    check_case(net, bundle, np.packbits(spikes, axis=2), spikes)


def test_or_pool_is_memoryless():
    """OR pooling spikes whenever any input of its window spiked this tick, whatever it did before:
    a single input spiking every tick must make the pool neuron spike every tick."""
    net = _net([{"name": "pool", "type": "pool", "kernel": 2, "kind": "or"}, {"type": "flatten"},
                {"name": "fc", "type": "fc", "out": 1}], (1, 2, 2), T=4)
    bundle = WeightBundle({"fc": LayerWeights(np.ones((1, 1), np.int32), np.zeros(1, np.int64), 1, 1.0)})
    spikes = np.zeros((1, 4, 4), np.uint8)
    spikes[0, :, 0] = 1
    chip = Chip(net, bundle)
    res = chip.run(np.packbits(spikes, axis=2), record=("spikes",))
    pool = chip.layer_slice("pool")
    assert res.spikes[0, :, pool].ravel().tolist() == [1, 1, 1, 1]


def test_direct_input_into_pool_first_layer():
    """A pooling first layer fed by the direct encoder: either the chip refuses the net, or the
    pool integrates the multi-bit window sums like any fixed-weight-1 neuron."""
    net = _net([{"name": "pool", "type": "pool", "kernel": 2, "kind": "avg"}, {"type": "flatten"},
                {"name": "fc", "type": "fc", "out": 3}], (2, 4, 4), T=3, kind="direct")
    rng = np.random.default_rng(3)
    w = rng.integers(-5, 6, size=(3, 8)).astype(np.int32)
    bundle = WeightBundle({"fc": LayerWeights(w, np.zeros(3, np.int64), 7, 1.0)})
    values = rng.integers(0, 4, size=(2, 32))
    try:
        chip = Chip(net, bundle)
    except ValueError:
        return                                                  # refusing the net is fine
    res = chip.run(values.astype(np.int32), record=("spikes", "membrane"))
    ref = run_reference(net, bundle, values)
    np.testing.assert_array_equal(res.membrane.astype(np.int64), ref.membrane,
                                  err_msg="pool first layer with direct input: membrane differs from window sums")
    np.testing.assert_array_equal(res.spikes, ref.spikes)


@pytest.mark.parametrize("readout", ["count", "potential"])
def test_readout_tie_breaks(readout):
    """Equal counts: the higher membrane wins; equal counts and membranes: the lower index."""
    net = _net([{"name": "fc", "type": "fc", "out": 4}], (1, 1, 1), T=2, readout=readout)
    w = np.array([[2], [3], [3], [1]], np.int32)
    bias = np.array([0, 0, 0, 1], np.int64)
    bundle = WeightBundle({"fc": LayerWeights(w, bias, 2, 1.0)})
    spikes = np.ones((1, 2, 1), np.uint8)
    res, ref = check_case(net, bundle, np.packbits(spikes, axis=2), spikes)
    # count: every neuron spikes twice; neurons 1 and 2 tie on the highest membrane (4): index 1 wins.
    # potential: U = 4, 6, 6, 4: neurons 1 and 2 tie, index 1 wins.
    assert int(res.predictions[0]) == 1


@pytest.mark.parametrize("in_c,tile_rows", [(4, 2), (8, 4), (2, 4), (3, 6), (3, 2), (5, 5),
                                             (16, 8), (32, 8), (16, 64), (12, 8), (16, 1000)])
@pytest.mark.parametrize("density", [0.15, 0.6])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_read_orders_and_tile_activations_every_band_layout(in_c, tile_rows, density, stride):
    """A binary conv read sums gathered per output position (few events per input position) or one
    kernel offset at a time (>= 8 per position: in_c >= 16 at density 0.6). Tile activations are counted
    per window position when kernel offsets own whole row bands (in_c a multiple of tile_rows) or share
    them (tile_rows a multiple of in_c), per row otherwise. Currents, spikes and every counter must match
    the reference in each combination, including one-band crossbars (tile_rows 1000)."""
    net = _net([{"name": "conv", "type": "conv", "out": 3, "kernel": 3, "padding": 1, "stride": stride}],
               (in_c, 5, 4), T=3, tile_rows=tile_rows, tile_cols=2)
    rng = np.random.default_rng(in_c * 100 + tile_rows)
    bundle = make_bundle(net, rng, 1, density, 1.0, False, False)
    spikes = (rng.random((2, 3, in_c * 20)) < density).astype(np.uint8)
    res, _ref = check_case(net, bundle, np.packbits(spikes, axis=2), spikes)
    assert res.counters[..., COUNTER_NAMES.index("tile_activations")].sum() > 0


@pytest.mark.parametrize("stride,pad", [(1, 1), (2, 1), (1, 0)])
@pytest.mark.parametrize("limit", [3, 255])
@pytest.mark.parametrize("one_band", [False, True])
def test_conv_read_orders_equal_dense_sum(stride, pad, limit, one_band):
    """conv_read sums in one of three orders: scatter (fewer events than input positions, one row band),
    gather, or run-major, whose runs span a whole kernel row when that row's weights fit `block_bytes`,
    else one kernel offset (the chip-level nets above are small enough to always take the whole row).
    Called directly with both spans at every density, the current and every counter must equal a dense
    integer sum of the window."""
    from chipsim.core.kernels.crossbar import ORDER_GATHER, ORDER_RUN_MAJOR, ORDER_SCATTER, conv_read, conv_read_order
    from chipsim.core.kernels.layout import C_IN_EVENTS, C_SYN_AC, C_TILE_ACT, N_COUNTERS
    in_c, in_h, in_w, out_c, k = 16, 6, 5, 24, 3
    tile_rows, row_bands = (1000, 1) if one_band else (in_c, k * k)   # one band, or one per kernel offset
    out_h = (in_h + 2 * pad - k) // stride + 1
    out_w = (in_w + 2 * pad - k) // stride + 1
    rng = np.random.default_rng(7 + stride + 10 * pad)
    W = rng.integers(-127, 128, size=k * k * in_c * out_c).astype(np.int8)
    bias = rng.integers(-500, 500, size=out_c).astype(np.int32)
    Wm = W.reshape(k, k, in_c, out_c).astype(np.int64)
    # >= 8 events per input position: run-major (at 2.7 only with the kernel-row span); 1.6: gather;
    # 0.5 (< 1): scatter when one band
    orders = set()
    for density in (0.7, 0.17, 0.1, 0.03):
        x = rng.random((in_h, in_w, in_c)) < density
        events = np.flatnonzero(x.reshape(-1)).astype(np.int32)
        xp = np.zeros((in_h + 2 * pad, in_w + 2 * pad, in_c), np.int64)
        xp[pad:pad + in_h, pad:pad + in_w] = x
        dense = np.empty((out_h, out_w, out_c), np.int64)
        windows = []
        for oy in range(out_h):
            for ox in range(out_w):
                win = xp[oy * stride:oy * stride + k, ox * stride:ox * stride + k]
                dense[oy, ox] = bias + np.einsum("yxc,yxco->o", win, Wm)
                windows.append(win)
        results = []
        for block_bytes in (0, 1 << 30):         # span 1 (one offset per run), span k (a kernel row)
            orders.add(conv_read_order(len(events), in_h, in_w, 1 if block_bytes == 0 else k, not one_band,
                                       row_bands))
            cur = np.zeros(out_h * out_w * out_c, np.int32)
            acc = np.zeros(out_h * out_w * out_c, np.int16)
            counters = np.zeros(N_COUNTERS, np.int64)
            conv_read(cur, acc, W, 0, bias, 0, in_c, in_h, in_w, out_c, out_h, out_w, k, stride, pad, events,
                      len(events), limit, tile_rows, row_bands, 2, counters, block_bytes)
            total = cur.astype(np.int64) + acc
            assert np.array_equal(total.reshape(out_h, out_w, out_c), dense), (density, block_bytes)
            results.append(counters)
        assert np.array_equal(results[0], results[1])
        assert results[0][C_IN_EVENTS] == len(events)
        assert results[0][C_SYN_AC] == sum(int(w.sum()) for w in windows) * out_c
        # tile activations (two column tiles): one band: positions whose window has an event; a band
        # per kernel offset: the window's input positions that have an event
        if one_band:
            bands = sum(int(w.any()) for w in windows)
        else:
            bands = sum(int(w.any(axis=2).sum()) for w in windows)
        assert results[0][C_TILE_ACT] == bands * 2
    assert orders == ({ORDER_SCATTER} if one_band else set()) | {ORDER_GATHER, ORDER_RUN_MAJOR}
