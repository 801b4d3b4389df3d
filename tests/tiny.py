"""Helpers to build tiny nets by hand for exact tests."""
from __future__ import annotations

import numpy as np

from chipsim.core.chip import Chip
from chipsim.config import parse_net
from chipsim.core.weights import LayerWeights, WeightBundle, expected_shape


def fc_chain(sizes, *, model="IF", alpha=1.0, reset="subtract", delay=False, T=8, readout="count",
             membrane_bits=24, counter_bits=16, weight_bits=8, leak_bits=12, input_bits=8, encoder="direct"):
    """A net of fc layers: input of sizes[0] values, then one fc layer per further size."""
    layers = [{"type": "flatten"}] + [{"name": f"fc{i + 1}", "type": "fc", "out": n}
                                      for i, n in enumerate(sizes[1:])]
    data = {
        "name": "tiny", "input_shape": [sizes[0], 1, 1], "time_steps": T,
        "encoder": {"kind": encoder, "input_bits": input_bits},
        "neuron": {"model": model, "alpha": alpha, "reset": reset},
        "layers": layers, "readout": readout,
        "chip": {"membrane_bits": membrane_bits, "counter_bits": counter_bits, "weight_bits": weight_bits,
                 "leak_bits": leak_bits, "delay": delay},
    }
    return parse_net(data, "<tiny>")


def bundle(net, weights, biases=None, thresholds=None):
    """weights: list of (out, in) integer arrays, one per weighted layer."""
    layers = {}
    for i, layer in enumerate(net.weighted_layers):
        w = np.asarray(weights[i], np.int32).reshape(expected_shape(layer))
        b = np.zeros(w.shape[0], np.int64) if biases is None else np.asarray(biases[i], np.int64)
        theta = 10 if thresholds is None else thresholds[i]
        layers[layer.name] = LayerWeights(w, b, theta, 1.0)
    return WeightBundle(layers)


def run_direct(net, weights, x, biases=None, thresholds=None):
    chip = Chip(net, bundle(net, weights, biases, thresholds))
    res = chip.run(np.asarray(x, np.int32).reshape(1, -1), record=("spikes", "membrane"))
    return chip, res
