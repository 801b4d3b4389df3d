"""Float teacher -> integer chip weights: data-based threshold balancing, then quantization.

1. Run the teacher on calibration data; lambda_l = the `percentile` of layer
   l's ReLU activations (robust to outliers, Rueckauer et al. 2017).
2. Rescale so a neuron at activation lambda_l fires at the maximum rate:
   W'_l = W_l * lambda_{l-1} / lambda_l * theta,  b'_l = b_l / lambda_l * theta
   (lambda_0 = 1: inputs are pixel / pixel_max in [0, 1]).
3. Quantize per layer, symmetric: scale s_l = max|W'_l| / (2^(b-1) - 1),
   W = round(W'/s), b = round(b'/s), threshold = round(theta / s). With the
   direct encoder the first layer's input is the integer pixel, so its
   weights absorb 1 / pixel_max.
"""
from __future__ import annotations

import json

import numpy as np

from chipsim.config import NetConfig
from chipsim.weights import LayerWeights, WeightBundle

from .teacher import forward


def activation_scales(net: NetConfig, params: dict, x: np.ndarray, percentile: float,
                      batch: int = 256) -> dict[str, float]:
    """lambda per weighted layer: the percentile of its (ReLU'd) activations over x."""
    acts: dict[str, list] = {layer.name: [] for layer in net.weighted_layers}
    for i in range(0, len(x), batch):
        outs = forward(net, params, x[i:i + batch])
        for layer, out in zip(net.layers, outs):
            if layer.weighted:
                acts[layer.name].append(np.maximum(out, 0).ravel())
    scales = {}
    for name, chunks in acts.items():
        a = np.concatenate(chunks)
        positive = a[a > 0]
        scales[name] = float(np.percentile(positive, percentile)) if positive.size else 1.0
    return scales


def convert(net: NetConfig, params: dict, calib_images: np.ndarray, pixel_max: int,
            percentile: float = 99.9, provenance: dict | None = None) -> WeightBundle:
    x = calib_images.astype(np.float32) / pixel_max
    lambdas = activation_scales(net, params, x, percentile)
    theta = net.neuron.threshold
    wmax = net.chip.weight_max
    bmax = net.chip.bias_max
    layers = {}
    prev = 1.0
    for i, layer in enumerate(net.weighted_layers):
        w, b = params[layer.name]
        lam = lambdas[layer.name]
        w_real = w * (prev / lam * theta)
        b_real = b * (theta / lam)
        if i == 0 and net.encoder.kind == "direct":
            w_real = w_real / pixel_max       # integer pixels drive the first layer
        s = float(np.abs(w_real).max()) / wmax
        w_int = np.clip(np.round(w_real / s), -wmax, wmax).astype(np.int32)
        b_int = np.clip(np.round(b_real / s), -bmax, bmax).astype(np.int64)
        layers[layer.name] = LayerWeights(w_int, b_int, int(max(1, round(theta / s))), s)
        prev = lam
    attrs = {"provenance": json.dumps({"method": "threshold-balancing", "percentile": percentile,
                                       "lambdas": lambdas, **(provenance or {})})}
    return WeightBundle(layers, attrs)
