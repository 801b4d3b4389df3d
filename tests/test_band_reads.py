"""Per-row-band read counts of the crossbar reads (`tile_reads_busiest`, `tile_activations`) against a
plain numpy reference: every read kernel, every band layout, every conv order, binary and multi-bit input.

A row band (a crossbar row tile and the column tiles beside it) is read for an output position when at
least one of its rows is active; the reference counts each band's reads window by window from the dense
input and takes the busiest. The kernels count them three ways (per input position and group by strided
box sums when kernel offsets own whole bands, per window position when offsets share a band, per row
otherwise) and in three conv orders (scatter, run-major, gather), so every combination is checked.
Chip-level nets (all encoders, delay, pooling) are checked against tests/reference_chip.py in
tests/test_reference.py; the input-scope thermal read (forward.thermal_input_read) is checked here.
"""
import math

import numpy as np
import pytest

from chipsim.config import parse_net
from chipsim.core.chip import Chip
from chipsim.core.kernels import layout as K
from chipsim.core.kernels.crossbar import (ORDER_GATHER, ORDER_RUN_MAJOR, ORDER_SCATTER, conv_read,
                                           conv_read_order, fc_read, multibit_conv_read, multibit_fc_read)
from chipsim.core.weights import LayerWeights, WeightBundle, expected_shape
from chipsim.noise import apply_noise


pytestmark = pytest.mark.usefixtures("one_numba_thread")     # tests/conftest.py


def band_reads_conv(active, k, stride, pad, tile_rows):
    """Reads of each row band of a conv layer: active (in_h, in_w, in_c) bool, im2col rows (ky, kx, c)."""
    in_h, in_w, in_c = active.shape
    out_h = (in_h + 2 * pad - k) // stride + 1
    out_w = (in_w + 2 * pad - k) // stride + 1
    xp = np.zeros((in_h + 2 * pad, in_w + 2 * pad, in_c), bool)
    xp[pad:pad + in_h, pad:pad + in_w] = active
    reads = np.zeros(math.ceil(k * k * in_c / tile_rows), np.int64)
    for oy in range(out_h):
        for ox in range(out_w):
            rows = np.flatnonzero(xp[oy * stride:oy * stride + k, ox * stride:ox * stride + k].reshape(-1))
            reads[np.unique(rows // tile_rows)] += 1
    return reads


def channel_skewed(rng, shape, density):
    """Activity that differs by channel (some channel groups far busier than others) and by position."""
    in_h, in_w, in_c = shape
    per_c = density * 2 * rng.random(in_c)
    per_yx = rng.random((in_h, in_w, 1)) < 0.8
    return (rng.random(shape) < per_c) & per_yx


LAYOUTS = [(4, 2), (8, 4), (32, 8), (5, 5), (16, 16),   # in_c a multiple of tile_rows: offsets own whole bands
           (2, 4), (3, 6), (16, 64), (1, 4),            # tile_rows a multiple of in_c: offsets share a band
           (3, 2), (12, 8), (5, 3),                     # neither: bands cut through offsets
           (6, 1000)]                                   # one band


@pytest.mark.parametrize("in_c,tile_rows", LAYOUTS)
@pytest.mark.parametrize("stride,pad,k", [(1, 1, 3), (2, 1, 3), (1, 0, 3), (2, 0, 2), (3, 2, 3)])
def test_conv_read_band_reads_every_layout_and_order(in_c, tile_rows, stride, pad, k):
    in_h, in_w, out_c, col_tiles = 7, 6, 5, 3
    out_h = (in_h + 2 * pad - k) // stride + 1
    out_w = (in_w + 2 * pad - k) // stride + 1
    row_bands = math.ceil(k * k * in_c / tile_rows)
    rng = np.random.default_rng(in_c * 1000 + tile_rows * 10 + stride + 7 * pad + 31 * k)
    W = rng.integers(-20, 21, size=k * k * in_c * out_c).astype(np.int8)
    bias = np.zeros(out_c, np.int32)
    structured = row_bands > 1 and (in_c % tile_rows == 0 or tile_rows % in_c == 0)
    orders = set()
    for density in (0.0, 0.01, 0.05, 0.2, 0.6, 1.0):
        for skewed in (False, True):
            x = channel_skewed(rng, (in_h, in_w, in_c), density) if skewed else rng.random((in_h, in_w, in_c)) < density
            events = np.flatnonzero(x.reshape(-1)).astype(np.int32)
            ref = band_reads_conv(x, k, stride, pad, tile_rows)
            for block_bytes in (0, 1 << 30):        # run-major span 1 or a whole kernel row
                span = 1 if block_bytes == 0 else k
                orders.add(conv_read_order(len(events), in_h, in_w, span, structured, row_bands))
                cur = np.zeros(out_h * out_w * out_c, np.int32)
                acc = np.zeros(out_h * out_w * out_c, np.int16)
                counters = np.zeros(K.N_COUNTERS, np.int64)
                conv_read(cur, acc, W, 0, bias, 0, in_c, in_h, in_w, out_c, out_h, out_w, k, stride, pad, events,
                          len(events), 1000, tile_rows, row_bands, col_tiles, counters, block_bytes)
                what = (density, skewed, block_bytes)
                assert counters[K.C_TILE_ACT] == ref.sum() * col_tiles, what
                assert counters[K.C_TILE_BUSIEST] == ref.max(), what
    # the densities reach every order this layout allows (run-major: >= 8 events per run on average, so
    # in_c x span >= 8 at full density)
    expected = {ORDER_GATHER} | ({ORDER_SCATTER} if row_bands == 1 else set()) \
        | ({ORDER_RUN_MAJOR} if (structured or row_bands == 1) and in_c * k >= 8 else set())
    assert orders == expected


def test_conv_band_reads_skewed_case_has_a_bottleneck_band():
    """The skewed input makes the busiest band read much more than the mean band (so a test that
    counted the mean, or any single band, would fail)."""
    rng = np.random.default_rng(0)
    x = channel_skewed(rng, (7, 6, 8), 0.2)
    ref = band_reads_conv(x, 3, 1, 1, 4)
    assert ref.max() > 1.5 * ref.mean() and ref.argmax() not in (0, len(ref) - 1)


@pytest.mark.parametrize("in_c,tile_rows", [(3, 4), (3, 2), (4, 2), (2, 4), (3, 1000), (8, 8)])
@pytest.mark.parametrize("stride,pad", [(1, 1), (2, 0)])
def test_multibit_conv_read_band_reads(in_c, tile_rows, stride, pad):
    in_h, in_w, out_c, k, col_tiles = 6, 5, 4, 3, 2
    out_h = (in_h + 2 * pad - k) // stride + 1
    out_w = (in_w + 2 * pad - k) // stride + 1
    row_bands = math.ceil(k * k * in_c / tile_rows)
    rng = np.random.default_rng(in_c + 10 * tile_rows + stride)
    W = rng.integers(-20, 21, size=k * k * in_c * out_c).astype(np.int8)
    for density in (0.0, 0.1, 0.5, 1.0):
        values = rng.integers(1, 256, size=(in_h, in_w, in_c)) * channel_skewed(rng, (in_h, in_w, in_c), density)
        events = np.flatnonzero(values.reshape(-1)).astype(np.int32)
        vals = values.reshape(-1)[events].astype(np.int32)
        ref = band_reads_conv(values != 0, k, stride, pad, tile_rows)
        cur = np.zeros(out_h * out_w * out_c, np.int32)
        counters = np.zeros(K.N_COUNTERS, np.int64)
        multibit_conv_read(cur, W, 0, in_c, in_h, in_w, out_c, out_h, out_w, k, stride, pad, events, vals,
                           len(events), tile_rows, row_bands, col_tiles, counters)
        assert counters[K.C_TILE_ACT] == ref.sum() * col_tiles, density
        assert counters[K.C_TILE_BUSIEST] == ref.max(), density


@pytest.mark.parametrize("tile_rows", [1, 3, 8, 1000])
def test_fc_reads_one_output_position(tile_rows):
    """An fc layer has one output position: every band with an active row is read once, so the busiest
    band has one read in a tick with any input (binary and multi-bit)."""
    fan_in, out_c = 40, 6
    row_bands = math.ceil(fan_in / tile_rows)
    rng = np.random.default_rng(tile_rows)
    W = rng.integers(-20, 21, size=fan_in * out_c).astype(np.int8)
    for n in (0, 1, 5, 40):
        events = np.sort(rng.choice(fan_in, n, replace=False)).astype(np.int32)
        ref = np.zeros(row_bands, np.int64)
        ref[np.unique(events // tile_rows)] += 1
        c1 = np.zeros(K.N_COUNTERS, np.int64)
        fc_read(np.zeros(out_c, np.int32), np.zeros(out_c, np.int16), W, 0, np.zeros(out_c, np.int32), 0, fan_in,
                out_c, events, n, 1000, tile_rows, row_bands, 2, c1)
        c2 = np.zeros(K.N_COUNTERS, np.int64)
        multibit_fc_read(np.zeros(out_c, np.int32), W, 0, out_c, events, np.full(n, 3, np.int32), n, tile_rows,
                         row_bands, 2, c2)
        for c in (c1, c2):
            assert c[K.C_TILE_ACT] == ref.sum() * 2 and c[K.C_TILE_BUSIEST] == ref.max(), (n, c)


# ----------------------------------------------------------------- through the chip: thermal-input and analog reads

def conv_net(tile_rows, encoder="rate", **chip):
    return parse_net({"name": "bands", "input_shape": [3, 6, 6], "time_steps": 4,
                      "encoder": {"kind": encoder, "input_bits": 4}, "neuron": {"model": "IF"},
                      "layers": [{"name": "c1", "type": "conv", "out": 8, "kernel": 3, "padding": 1},
                                 {"name": "c2", "type": "conv", "out": 4, "kernel": 3, "stride": 2}],
                      "readout": "count", "chip": {"tile_rows": tile_rows, "tile_cols": 4, **chip}}, "<bands>")


READS = {  # noise, chip settings
    "thermal-input": (["thermal=0.2", "thermal.scope=input"], {}),
    "adc": ([], {"adc_bits": 6, "adc_range": 200}),
    "read-noise": (["read=0.5"], {}),
    "thermal-input+adc": (["thermal=0.2", "thermal.scope=input"], {"adc_bits": 6, "adc_range": 200}),
}


@pytest.mark.parametrize("read", list(READS))
@pytest.mark.parametrize("encoder", ["rate", "direct"])
@pytest.mark.parametrize("tile_rows", [4, 5, 8, 1000])
def test_thermal_input_and_analog_reads_count_band_reads(read, encoder, tile_rows):
    """With `thermal.scope=input` every weighted layer reads through forward.thermal_input_read (the
    multi-bit reads on the perturbed inputs); with column ADCs or read noise through kernels/analog.py.
    Their band reads are those of the layer's input events."""
    noise, chip_settings = READS[read]
    net = conv_net(tile_rows, encoder, **chip_settings)
    rng = np.random.default_rng(tile_rows)
    layers = {}
    for layer in net.weighted_layers:
        w = rng.integers(-3, 8, size=expected_shape(layer)).astype(np.int32)
        layers[layer.name] = LayerWeights(w, np.zeros(w.shape[0], np.int64), 12, 1.0)
    chip = Chip(net, WeightBundle(layers))
    if noise:
        apply_noise(chip, noise, seed=3)
    T = net.time_steps
    if encoder == "rate":
        spikes = rng.random((2, T, 6, 6, 3)) < 0.3
        x = np.packbits(spikes.reshape(2, T, -1), axis=2)
        inputs = [[spikes[b, t] for t in range(T)] for b in range(2)]
    else:
        values = rng.integers(0, 16, size=(2, 6, 6, 3)) * (rng.random((2, 6, 6, 3)) < 0.5)
        x = values.reshape(2, -1).astype(np.int32)
        inputs = [[values[b] != 0] * T for b in range(2)]
    res = chip.run(x, record=("spikes",))
    c1 = chip.layer_slice("c1")
    assert res.spikes[:, :, c1].any(), "c2 must get input"
    for b in range(2):
        for t in range(T):
            below = res.spikes[b, t, c1].reshape(6, 6, 8).astype(bool)
            for li, (active, stride, pad) in enumerate([(inputs[b][t], 1, 1), (below, 2, 0)]):
                ref = band_reads_conv(active, 3, stride, pad, tile_rows)
                c = res.counters[b, t, li]
                assert c[K.C_SYN_MAC] + c[K.C_SYN_AC] > 0 or not active.any()
                assert c[K.C_TILE_BUSIEST] == ref.max(), (b, t, li)
                col_tiles = math.ceil(chip.layers[li].out_shape[0] / 4)
                assert c[K.C_TILE_ACT] == ref.sum() * col_tiles, (b, t, li)
