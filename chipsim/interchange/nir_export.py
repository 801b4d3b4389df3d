"""A deployed or calibrated chip -> NIR graph in real units (`chipsim export-nir`).

Each chip layer becomes a weighted node (Affine, Conv2d; weights and biases x the
layer's LSB scale) and its neurons (IF, LIF with tau = dt / (1 - alpha) and
r = tau / dt, or an integrator I for the `potential` readout); pooling layers
become AvgPool2d, flatten layers Flatten. Registers are read as they are on the
chip (mismatch, calibration and threshold trims included), per neuron.

Conventions written into the graph's metadata (`chipsim_net`, `input_units`):
* the chip fires when U >= theta, NIR when v > v_threshold: v_threshold is
  (theta - 1/2) LSB, which gives the same spikes for a whole-LSB membrane and
  leaves half an LSB of margin against float rounding in other simulators;
* NIR resets to v_reset; a chip with `reset: subtract` exports v_reset = 0 and
  says `reset: subtract` in the metadata (chipsim's import honours it);
* inputs are in the chip's input units: integer levels (pixel values) per tick for
  the direct encoder, spikes for rate and if.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .nir_chain import nir_module
from .nir_import import DEFAULT_DT, META_NET, META_SCALE


def layer_weights(chip, li: int) -> tuple[np.ndarray, np.ndarray]:
    """A weighted layer's integer weights (conventional layout, see chipsim/core/weights.py) and biases,
    read back from the chip's crossbar registers (the inverse of chip.crossbar_matrix)."""
    from chipsim.core.chip import chip_order_permutation

    layer = chip.layers[li]
    r = chip.registers
    oc = layer.out_shape[0]
    mat = np.asarray(r.weights[chip.weight_slice(layer.name)], np.int64).reshape(layer.fan_in, oc)
    bias = np.asarray(r.bias[chip.bias_slice(layer.name)], np.int64)
    if layer.type == "conv":
        k, in_c = layer.kernel, layer.in_shape[0]
        return mat.reshape(k, k, in_c, oc).transpose(3, 2, 0, 1), bias
    weight = np.empty((oc, layer.fan_in), np.int64)
    weight[:, chip_order_permutation(layer.input_map)] = mat.T
    return weight, bias


def _neuron_node(nir, chip, li: int, scale: float, dt: float, last: bool):
    layer = chip.layers[li]
    sl = chip.layer_slice(layer.name)
    shape = (layer.out_shape[0],) if layer.type == "fc" else layer.out_shape
    if last and chip.net.readout == "potential":
        return nir.I(r=np.ones(shape))
    # chip order is (y, x, c) for conv maps: NIR's per-neuron arrays are (C, H, W)
    def per_neuron(values):
        v = np.asarray(values, np.float64)
        if layer.type == "conv":
            c, h, w = layer.out_shape
            return v.reshape(h, w, c).transpose(2, 0, 1)
        return v.reshape(shape)
    theta = per_neuron(chip.registers.theta[sl]) - 0.5
    alpha = per_neuron(chip.registers.leak[sl]) / float(1 << chip.chip.leak_bits)
    v_thr = theta * scale
    if np.all(alpha == 1.0):
        return nir.IF(r=np.ones(shape), v_threshold=v_thr, v_reset=np.zeros(shape))
    if np.any(alpha >= 1.0) or np.any(alpha <= 0.0):
        raise ValueError(f"layer {layer.name}: leak factors must all be in (0, 1) or all 1 to export as LIF or IF")
    tau = dt / (1.0 - alpha)
    return nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros(shape), v_threshold=v_thr, v_reset=np.zeros(shape))


def chip_to_graph(chip, dt: float = DEFAULT_DT):
    """The NIRGraph of a deployed chip (`chipsim.core.chip.Chip`), in real units."""
    nir = nir_module()
    net = chip.net
    nodes = {"input": nir.Input(input_type={"input": np.array(net.input_shape)})}
    order = ["input"]
    layers = [layer for layer in net.layers]
    chip_index = {name: i for i, name in enumerate(chip.layer_names)}
    for pos, layer in enumerate(layers):
        last = pos == len(layers) - 1
        if layer.type == "flatten":
            nodes[layer.name] = nir.Flatten(input_type={"input": np.array(layer.in_shape)}, start_dim=0, end_dim=-1)
            order.append(layer.name)
            continue
        li = chip_index[layer.name]
        if layer.type == "pool":
            nodes[layer.name] = nir.AvgPool2d(kernel_size=np.array([layer.kernel] * 2),
                                              stride=np.array([layer.kernel] * 2), padding=np.array([0, 0]))
            order.append(layer.name)
            continue
        scale = float(chip.scales[layer.name])
        w_int, b_int = layer_weights(chip, li)
        meta = {META_SCALE: scale, "chipsim_layer": layer.name}
        if layer.type == "conv":
            node = nir.Conv2d(input_shape=tuple(layer.in_shape[1:]), weight=w_int * scale, stride=layer.stride,
                              padding=layer.padding, dilation=1, groups=1, bias=b_int * scale, metadata=meta)
        else:
            node = nir.Affine(weight=w_int * scale, bias=b_int * scale, metadata=meta)
        nodes[layer.name] = node
        nodes[f"{layer.name}.neurons"] = _neuron_node(nir, chip, li, scale, dt, last)
        order += [layer.name, f"{layer.name}.neurons"]
    out_shape = layers[-1].out_shape[0] if layers[-1].type == "fc" else layers[-1].out_shape
    nodes["output"] = nir.Output(output_type={"output": np.array(np.atleast_1d(out_shape))})
    order.append("output")
    settings = {"name": net.name, "time_steps": net.time_steps, "reset": net.neuron.reset,
                "encoder": {"kind": net.encoder.kind, "input_bits": net.encoder.input_bits,
                            "max_rate": net.encoder.max_rate},
                "chip": {k: v for k, v in net.to_dict()["chip"].items()}, "data": net.data,
                "learning": {**net.to_dict()["learning"], "layers": list(net.learning.layers)}}
    from chipsim import __version__

    units = ("integer input levels per tick (pixel values, 0..2^input_bits - 1)" if net.encoder.kind == "direct"
             else "spikes (0 or 1) per tick")
    metadata = {META_NET: json.dumps(settings), "chipsim_version": __version__, "input_units": units, "dt": dt,
                "threshold_convention": "v_threshold = (theta - 0.5) LSB: the chip fires at U >= theta"}
    graph = nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])), metadata=metadata)
    return graph


def export_nir(chip, path: str | Path, dt: float = DEFAULT_DT) -> Path:
    """Write `chip` (a chipsim.core.chip.Chip or a chipsim.deploy result) as a NIR graph file (atomically)."""
    from chipsim.io.atomic import atomic_path

    from chipsim.core.chip import Chip

    chip = chip if isinstance(chip, Chip) else chip.chip      # a DeployedChip holds its Chip

    nir = nir_module()
    graph = chip_to_graph(chip, dt)
    path = Path(path)
    with atomic_path(path) as tmp:
        nir.write(tmp, graph)
    return path
