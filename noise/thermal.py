"""thermal=s: fresh Gaussian noise every tick, drawn inside the kernels, in one of three scopes.

scope `current` (default): on each neuron's summed input current,
    I' = I + round(s |I| xi)                       (kernels/neuron.py: add_thermal)
  noise in the neuron's input stage (its synapse-summing amplifier): it scales
  with the net current, so it vanishes where excitation and inhibition cancel.

scope `input` (the LTL paper's public code): on every input element of every
weighted layer, the image's pixels and each spike, before the synaptic sum,
    x' = x (1 + s xi)      per (sample, tick, input element)
    I' = bias + round(sum_j W_j x'_j)              (kernels/forward.py: thermal_input_read)
  noise on each synapse's drive (the pulse that each input event injects),
  so it grows with the number of active inputs and does not cancel. A
  perturbed spike is a multi-bit input: x' is sent to the crossbar with
  THERMAL_FRAC_BITS fraction bits, and the read is counted as MACs, not ACs.
  The draw belongs to the input element: every neuron it fans out to sees the same x'.
  Pooling layers have no synapses and are not perturbed.

scope `additive` (Buechel et al., Sci. Rep. 2021): an input-independent
current with std s (theta - reset) = s theta (our resets return to 0),
    I' = I + round(s theta_i xi)
  like the membrane's own thermal noise.

xi ~ N(0, 1) is the Irwin-Hall draw of kernels/rng.py (|xi| <= 3.46), from a
counter-based hash of (key(seed, 'thermal', layer, scope), sample index,
tick, neuron or input element), so every draw is independent of batch size,
threads and order. The `current` key is the one chipsim always used.
"""
from __future__ import annotations

import numpy as np

from chipsim.core.kernels import layout as K

from .base import NoiseModel, weighted_layers
from .seeding import key64
from .spec import NoiseSpec, NoiseSpecError

COLUMN = {"current": K.NZ_THERMAL, "input": K.NZ_THERMAL_IN, "additive": K.NZ_THERMAL_ADD}
#: the largest |xi| of the Irwin-Hall draw, 2 sqrt(3)
XI_MAX = 3.4642


class ThermalError(NoiseSpecError):
    """The chip cannot carry this thermal noise exactly (an int32 read could overflow)."""


class Thermal(NoiseModel):
    kind = "thermal"
    scope = "dynamic"

    def active(self, spec: NoiseSpec) -> bool:
        return spec.thermal > 0

    def apply(self, chip, spec: NoiseSpec, seed: int) -> dict:
        r = chip.registers
        col = COLUMN[spec.thermal_scope]
        report = {}
        for li, layer in weighted_layers(chip):
            if spec.thermal_scope == "input":
                check_input_read(chip, li, spec.thermal)
            r.noise_rate[li, col] = spec.thermal
            r.noise_key[li, col] = key64(seed, self.kind, li, spec.thermal_scope)
            report[layer.name] = {"scope": spec.thermal_scope, "relative_std": spec.thermal,
                                  "key": hex(int(r.noise_key[li, col]))}
        return report


def check_input_read(chip, li: int, s: float) -> None:
    """The perturbed current must fit the int32 current register as the clean one does (Chip's deploy
    check): refuse a layer whose worst case, the deploy bound times (1 + XI_MAX s), could wrap."""
    layer = chip.layers[li]
    in_max = chip.input_max if li == 0 else 1
    r = chip.registers
    w = np.abs(r.weights[chip.weight_slice(layer.name)].astype(np.int64)).reshape(layer.fan_in, -1)
    b_max = int(np.abs(r.bias[chip.bias_slice(layer.name)]).max(initial=0))
    bound = int(w.sum(axis=0).max(initial=0)) * in_max * (1.0 + XI_MAX * s) + b_max + 1
    if bound >= 2 ** 31:
        raise ThermalError(f"--noise thermal={s} with thermal.scope=input: layer {layer.name!r}'s worst-case "
                           f"perturbed input current {bound:.3g} could overflow its 32-bit register; "
                           f"expected at most {2 ** 31 - 1} (use a smaller level or fewer weight or input bits)")
