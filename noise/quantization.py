"""bits=b: deterministic post-training quantization of each layer's weights to b bits.

Per layer, symmetric: step q = max|W| / (2^(b-1) - 1) (in the layer's current
LSBs), level k = round(W / q) in [-(2^(b-1)-1), 2^(b-1)-1]. The register then
holds the b-bit level; the crossbar conducts k * G LSBs with G = 2^f,
f = max(0, ceil(log2 q)), so that the membrane's resolution (q / G <= 1 old
LSB) is never coarser than before and thresholds and biases keep their
precision: theta' = round(theta * G / q), b' = round(b * G / q). On-chip
updates then move whole levels (weight_step = G) and saturate at level
2^(b-1) - 1. Quantization error per weight <= q / 2 old LSBs.

`bits.quantizer=minmax` (a diagnostic: the step the LTL paper's quantized
layers are described with) puts 2^b levels on [min W, max W] instead:
q = (max - min) / (2^b - 1), value = min + k q, k in 0..2^b-1. Zero is a level
only by chance, so the many small weights of a layer all become +-q/2 or
more. The register holds round(min G / q) + k G (the grid's offset kept to
1/G of a level); updates still move whole levels (weight_step = G), and the
chip's saturation stays symmetric at the larger of |lowest| and |highest|
level, so updates may leave the grid's range on its shorter side.
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
        if spec.bits_quantizer == "minmax":
            return self._apply_minmax(chip, spec)
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
            bias_sat = _rescale_registers(chip, li, layer, q, gain)
            r.weight_max[li] = levels_max * gain
            err = np.abs(level * q - w).max(initial=0.0)
            report[layer.name] = {"step_lsb": q, "gain": gain, "levels_used": int(np.unique(level).size),
                                  "levels_available": 2 * levels_max + 1, "max_abs_error_lsb": float(err),
                                  "error_bound_lsb": q / 2, "bias_saturations": bias_sat}
        _store(r, weights)
        return report

    def _apply_minmax(self, chip, spec: NoiseSpec) -> dict:
        r = chip.registers
        top = (1 << spec.bits) - 1                       # levels k = 0..top
        weights = r.weights.astype(np.int32)
        report = {}
        for li, layer in weighted_layers(chip):
            ws = chip.weight_slice(layer.name)
            w = weights[ws].astype(np.float64)
            lo, hi = float(w.min(initial=0)), float(w.max(initial=0))
            if hi == lo:
                continue
            q = (hi - lo) / top
            gain = 1 << max(0, math.ceil(math.log2(q)))
            k = np.clip(np.round((w - lo) / q), 0, top)
            offset = int(round(lo * gain / q))
            weights[ws] = (offset + k * gain).astype(np.int32)
            bias_sat = _rescale_registers(chip, li, layer, q, gain)
            r.weight_max[li] = max(abs(offset), abs(offset + top * gain))
            err = np.abs(lo + k * q - w).max(initial=0.0)
            report[layer.name] = {"quantizer": "minmax", "step_lsb": q, "gain": gain, "offset_levels": offset / gain,
                                  "levels_used": int(np.unique(k).size), "levels_available": top + 1,
                                  "zero_is_a_level": bool(offset % gain == 0), "max_abs_error_lsb": float(err),
                                  "error_bound_lsb": q / 2, "bias_saturations": bias_sat}
        _store(r, weights)
        return report


def _rescale_registers(chip, li: int, layer, q: float, gain: int) -> int:
    """One old LSB becomes gain / q new ones: thresholds, biases and the scale follow; bias saturations."""
    r = chip.registers
    ns = chip.layer_slice(layer.name)
    r.theta[ns] = np.clip(np.round(r.theta[ns] * (gain / q)), 1, chip.chip.membrane_max).astype(np.int32)
    bs = chip.bias_slice(layer.name)
    bias = np.round(r.bias[bs] * (gain / q))
    bias_sat = int((np.abs(bias) > chip.chip.bias_max).sum())
    r.bias[bs] = np.clip(bias, -chip.chip.bias_max, chip.chip.bias_max).astype(np.int32)
    r.weight_step[li] = gain
    chip.scales[layer.name] = chip.scales[layer.name] * q / gain
    return bias_sat


def _store(r, weights: np.ndarray) -> None:
    dtype = np.int8 if np.abs(weights).max(initial=0) <= 127 else np.int16
    r.weights = weights.astype(dtype)
