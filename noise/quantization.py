"""bits=b: deterministic post-training quantization of each layer's weights to b bits.

Per layer, symmetric: step q = max|W| / (2^(b-1) - 1) (in the layer's current
LSBs), level k = round(W / q) in [-(2^(b-1)-1), 2^(b-1)-1]. The register then
holds the b-bit level; the crossbar conducts k * G LSBs with G = 2^f,
f = max(0, ceil(log2 q)), so that the membrane's resolution (q / G <= 1 old
LSB) is never coarser than before and thresholds and biases keep their
precision: theta' = round(theta * G / q), b' = round(b * G / q). On-chip
updates then move whole levels (weight_step = G) and saturate at level
2^(b-1) - 1. Quantization error per weight <= q / 2 old LSBs.
"""
from __future__ import annotations

import math

import numpy as np

from .base import NoiseModel, weighted_layers
from .spec import NoiseSpec


class Quantization(NoiseModel):
    kind = "bits"
    scope = "frozen"

    def active(self, spec: NoiseSpec) -> bool:
        return spec.bits is not None

    def apply(self, chip, spec: NoiseSpec, seed: int) -> dict:
        r = chip.registers
        levels_max = (1 << (spec.bits - 1)) - 1
        weights = r.weights.astype(np.int32)
        report = {}
        for li, layer in weighted_layers(chip):
            ws = chip.weight_slice(layer.name)
            w = weights[ws].copy()
            wmax = int(np.abs(w).max(initial=0))
            if wmax <= levels_max:   # already within b bits: nothing to do
                report[layer.name] = {"step_lsb": 1.0, "gain": 1, "levels_used": int(np.unique(w).size),
                                      "levels_available": 2 * levels_max + 1, "max_abs_error_lsb": 0.0}
                continue
            q = wmax / levels_max
            gain = 1 << max(0, math.ceil(math.log2(q)))
            level = np.clip(np.round(w / q), -levels_max, levels_max).astype(np.int32)
            weights[ws] = level * gain
            ns = chip.layer_slice(layer.name)
            r.theta[ns] = np.clip(np.round(r.theta[ns] * (gain / q)), 1, chip.chip.membrane_max).astype(np.int32)
            bs = chip.bias_slice(layer.name)
            bias = np.round(r.bias[bs] * (gain / q))
            bias_sat = int((np.abs(bias) > chip.chip.bias_max).sum())
            r.bias[bs] = np.clip(bias, -chip.chip.bias_max, chip.chip.bias_max).astype(np.int32)
            r.weight_step[li] = gain
            r.weight_max[li] = levels_max * gain
            chip.scales[layer.name] = chip.scales[layer.name] * q / gain
            err = np.abs(level * q - w).max(initial=0.0)
            report[layer.name] = {"step_lsb": q, "gain": gain, "levels_used": int(np.unique(level).size),
                                  "levels_available": 2 * levels_max + 1, "max_abs_error_lsb": float(err),
                                  "error_bound_lsb": q / 2, "bias_saturations": bias_sat}
        dtype = np.int8 if np.abs(weights).max(initial=0) <= 127 else np.int16
        r.weights = weights.astype(dtype)
        return report
