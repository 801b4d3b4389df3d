"""drift=t: PCM-style conductance drift, the deployed chip read t seconds after programming.

    G(t) = G0 ((t + t0) / t0)^(-nu),   t0 = 20 s (the first read after programming)

with a drift exponent nu per cell (a conv cell is one device), drawn as
aihwkit's PCMLikeNoiseModel fits PCM measurements (Nandakumar et al., ICECS
2019; Joshi et al., Nat. Commun. 2020), as a function of the cell's relative
conductance g = |w| / wmax (clipped at 1e-7):

    mu(g) = clip(-0.0155 ln g + 0.0244, 0.049, 0.1)
    s(g)  = clip(-0.0125 ln g - 0.0059, 0.008, 0.045)
    nu    = |mu + s xi|,  xi ~ N(0, 1) from the seeded stream (seed, 'drift', layer, 'nu')

A signed weight is a differential pair whose two cells drift alike, so the
weight scales by the same factor. The register is re-quantized, w' =
round(w G(t)/G0). aihwkit's accumulated 1/f read noise is not part of this
model. Drift is applied when the
chip is read, not fabricated: it also applies to a restored calibrated chip
state, so the same devices (same seed) drift before and after calibration.
"""
from __future__ import annotations

import numpy as np

from .base import NoiseModel, weighted_layers
from .seeding import generator
from .spec import NoiseSpec

T0_S = 20.0


def drift_exponent(g_rel: np.ndarray, xi: np.ndarray) -> np.ndarray:
    g = np.clip(np.abs(g_rel), 1e-7, None)
    mu = np.clip(-0.0155 * np.log(g) + 0.0244, 0.049, 0.1)
    sig = np.clip(-0.0125 * np.log(g) - 0.0059, 0.008, 0.045)
    return np.abs(mu + sig * xi)


class Drift(NoiseModel):
    kind = "drift"
    scope = "time"

    def active(self, spec: NoiseSpec) -> bool:
        return spec.drift > 0

    def is_frozen(self, spec: NoiseSpec) -> bool:
        return False

    def apply(self, chip, spec: NoiseSpec, seed: int) -> dict:
        r = chip.registers
        weights = r.weights.astype(np.int64)
        report = {"t_s": spec.drift, "t0_s": T0_S}
        for li, layer in weighted_layers(chip):
            ws = chip.weight_slice(layer.name)
            w = weights[ws]
            wmax = float(r.weight_max[li])
            nu = drift_exponent(w / wmax, generator(seed, self.kind, li, "nu").standard_normal(w.shape))
            factor = ((spec.drift + T0_S) / T0_S) ** (-nu)
            after = np.round(w * factor).astype(np.int64)
            weights[ws] = after
            nz = w != 0
            report[layer.name] = {"nu_mean": float(nu.mean()), "nu_std": float(nu.std()),
                                  "factor_mean": float(factor.mean()),
                                  "weight_change_mean": float((after[nz] / w[nz] - 1.0).mean()) if nz.any() else 0.0,
                                  "abs_weight_before": float(np.abs(w).mean()),
                                  "abs_weight_after": float(np.abs(after).mean())}
        r.weights = weights.astype(r.weights.dtype)
        if chip.synapse_cells is not None:          # a drifted cell's state follows its register
            from chipsim.core.kernels.device import FRAC_BITS

            chip.synapse_cells.state[:] = r.weights.astype(np.int32) << FRAC_BITS
        return report
