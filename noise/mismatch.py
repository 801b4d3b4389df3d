"""mismatch=s: frozen device mismatch, drawn once per chip (seed), as on DYNAP-SE.

Every parameter p becomes round(p * (1 + s * xi)), xi ~ N(0, 1), an
independent draw per crossbar cell (a conv cell is one device, shared by all
positions), per bias register, per neuron threshold, per LIF time constant
(tau' = tau * (1 + s * xi), alpha' = exp(-1 / tau')), then re-quantized to
its integer register with saturation (counted). Zero weights stay zero (the
multiplicative model of Buechel et al. 2021 and the LTL code). Write noise
(the same perturbation of every on-chip update) is handed to the learning
circuit as a spread and a key.
"""
from __future__ import annotations

import numpy as np

from .base import NoiseModel, weighted_layers
from .seeding import generator, key64
from .spec import NoiseSpec


def _perturb(values: np.ndarray, s: float, rng: np.random.Generator, lo: int, hi: int):
    drawn = values * (1.0 + s * rng.standard_normal(values.shape))
    rounded = np.round(drawn)
    sat = int(((rounded < lo) | (rounded > hi)).sum())
    return np.clip(rounded, lo, hi).astype(np.int64), sat


def _realised(before: np.ndarray, after: np.ndarray) -> dict:
    nz = before != 0
    if not nz.any():
        return {"n": 0}
    rel = after[nz] / before[nz] - 1.0
    return {"n": int(nz.sum()), "mean": float(rel.mean()), "std": float(rel.std())}


class Mismatch(NoiseModel):
    kind = "mismatch"
    scope = "frozen"

    def active(self, spec: NoiseSpec) -> bool:
        return any(v > 0 for v in (spec.mismatch_weights, spec.mismatch_bias, spec.mismatch_threshold,
                                   spec.mismatch_leak, spec.mismatch_write))

    def apply(self, chip, spec: NoiseSpec, seed: int) -> dict:
        r = chip.registers
        cfg = chip.chip
        weights = r.weights.astype(np.int64)
        full = 1 << cfg.leak_bits
        report = {}
        for li, layer in weighted_layers(chip):
            rep = {}
            if spec.mismatch_weights > 0:
                ws = chip.weight_slice(layer.name)
                before = weights[ws].copy()
                wmax = int(r.weight_max[li])
                weights[ws], sat = _perturb(before, spec.mismatch_weights,
                                            generator(seed, self.kind, li, "weights"), -wmax, wmax)
                rep["weights"] = {**_realised(before, weights[ws]), "saturations": sat}
            if spec.mismatch_bias > 0:
                bs = chip.bias_slice(layer.name)
                before = r.bias[bs].astype(np.int64)
                after, sat = _perturb(before, spec.mismatch_bias, generator(seed, self.kind, li, "bias"),
                                      -cfg.bias_max, cfg.bias_max)
                r.bias[bs] = after
                rep["bias"] = {**_realised(before, after), "saturations": sat}
            ns = chip.layer_slice(layer.name)
            if spec.mismatch_threshold > 0:
                before = r.theta[ns].astype(np.int64)
                after, sat = _perturb(before, spec.mismatch_threshold,
                                      generator(seed, self.kind, li, "threshold"), 1, cfg.membrane_max)
                r.theta[ns] = after
                rep["threshold"] = {**_realised(before, after), "saturations": sat}
            if spec.mismatch_leak > 0:
                a = r.leak[ns].astype(np.float64)
                leaky = a < full
                if leaky.any():
                    tau = -1.0 / np.log(a[leaky] / full)
                    xi = generator(seed, self.kind, li, "leak").standard_normal(tau.shape)
                    tau_new = np.maximum(tau * (1.0 + spec.mismatch_leak * xi), 1e-3)
                    after = np.clip(np.round(np.exp(-1.0 / tau_new) * full), 0, full - 1)
                    new = r.leak[ns].copy()
                    new[leaky] = after
                    r.leak[ns] = new
                    rep["leak_tau"] = {**_realised(tau, -1.0 / np.log(np.maximum(after, 1) / full)),
                                       "saturations": int((after == full - 1).sum() + (after == 0).sum())}
                else:
                    rep["leak_tau"] = {"n": 0, "note": "not applicable: IF neurons have no leak"}
            report[layer.name] = rep
        dtype = np.int8 if np.abs(weights).max(initial=0) <= 127 else np.int16
        r.weights = weights.astype(dtype)
        chip.write_noise = (spec.mismatch_write,
                            np.array([key64(seed, self.kind, li, "write") for li in range(len(chip.layers))],
                                     np.uint64))
        if spec.mismatch_write > 0:
            report["write_noise"] = {"spread": spec.mismatch_write}
        return report
