"""One layer's real-valued parameters -> chip integers: exact where the values allow it.

A weighted layer stores integer weights and biases of one LSB `scale` per layer
(chipsim/core/weights.py). Three ways to choose that LSB, tried in order:

1. a `hint` (the scale chipsim itself exported, in the node's metadata), if every
   weight and bias is a whole number of it within the registers;
2. the coarsest exact grid: the smallest m <= weight_max such that every weight
   and bias is a whole number of max|W| / m (integer-weight models map to their own
   integers, so they run exactly);
3. otherwise the symmetric rule of threshold balancing (models/convert.py):
   max|W| becomes weight_max, values rounded to nearest.

NIR neurons fire when v > v_threshold; the chip fires when U >= theta. With U a
whole number of LSBs, v > theta_real  <=>  U >= floor(theta_real / s) + 1, so the
threshold register is that integer (a threshold exactly on the grid fires one LSB above it).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chipsim.models.convert import symmetric_scale, to_lsb

GRID_TOL = 1e-6      #: |x / s - round(x / s)| below this counts as a whole number of LSBs


@dataclass
class Quantized:
    weight: np.ndarray       #: int32
    bias: np.ndarray         #: int64
    threshold: int           #: register value (LSBs)
    scale: float             #: real value of one LSB
    how: str                 #: "hint", "exact grid" or "rounded"
    error: dict              #: relative weight / bias errors, threshold in LSBs


def _whole(x: np.ndarray, s: float) -> bool:
    q = x / s
    return bool(np.all(np.abs(q - np.round(q)) < GRID_TOL))


def _fits(w: np.ndarray, b: np.ndarray, s: float, wmax: int, bmax: int) -> bool:
    sample = w.reshape(-1)[:4096]                    # reject most scales on a small sample first
    if not _whole(sample, s) or not _whole(w, s) or not _whole(b, s):
        return False
    return np.abs(w).max(initial=0) / s <= wmax + 0.5 and np.abs(b).max(initial=0) / s <= bmax + 0.5


def choose_scale(w: np.ndarray, b: np.ndarray, wmax: int, bmax: int, theta: float,
                 hint: float | None = None) -> tuple[float, str]:
    if hint is not None and hint > 0 and _fits(w, b, hint, wmax, bmax):
        return float(hint), "hint"
    peak = float(np.abs(w).max(initial=0.0))
    if peak > 0:
        for m in range(1, wmax + 1):
            s = peak / m
            if _fits(w, b, s, wmax, bmax):
                return s, "exact grid"
    return symmetric_scale(w, wmax, theta), "rounded"


def strict_threshold(theta: float, s: float) -> int:
    """The register value theta_int with  U >= theta_int  <=>  U * s > theta, for integer U."""
    q = theta / s
    near = round(q)
    return int(near + 1 if abs(q - near) < GRID_TOL else np.floor(q) + 1)


def quantize_layer(w: np.ndarray, b: np.ndarray, theta: float, chip, hint: float | None = None) -> Quantized:
    """`theta`: the layer's real threshold (NIR semantics, fire when v > theta)."""
    w = np.asarray(w, np.float64)
    b = np.asarray(b, np.float64)
    wmax, bmax = chip.weight_max, chip.bias_max
    s, how = choose_scale(w, b, wmax, bmax, theta, hint)
    w_int, b_int = to_lsb(w, b, s, wmax, bmax)
    thr = strict_threshold(theta, s)
    peak_w = float(np.abs(w).max(initial=0.0)) or 1.0
    peak_b = float(np.abs(b).max(initial=0.0)) or 1.0
    error = {
        "weight_max_rel": float(np.abs(w - w_int * s).max(initial=0.0)) / peak_w,
        "weight_rms_rel": float(np.sqrt(np.mean((w - w_int * s) ** 2))) / peak_w if w.size else 0.0,
        "bias_max_rel": float(np.abs(b - b_int * s).max(initial=0.0)) / peak_b,
        "threshold_lsb": theta / s,
        "weights_clipped": int(np.sum(np.abs(np.round(w / s)) > wmax)),
        "biases_clipped": int(np.sum(np.abs(np.round(b / s)) > bmax)),
    }
    return Quantized(w_int, b_int, thr, s, how, error)
