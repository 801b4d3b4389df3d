"""silence=p: neurons that never spike.

scope `chip` (default, Buechel et al.): a frozen mask per layer, exactly
round(p * n) neurons chosen by a seeded permutation; their membrane is held at
0 and they never spike. scope `tick` (the LTL code): every spike is dropped
with probability p, drawn fresh per (sample, tick, neuron) in the kernels.
The output layer is never silenced: it is the readout, not a hidden unit.
"""
from __future__ import annotations

import numpy as np

from chipsim.kernels import layout as K

from .base import NoiseModel
from .seeding import generator, key64
from .spec import NoiseSpec


class Silence(NoiseModel):
    kind = "silence"
    scope = "frozen"

    def active(self, spec: NoiseSpec) -> bool:
        return spec.silence > 0

    def is_frozen(self, spec: NoiseSpec) -> bool:
        return spec.silence_scope == "chip"

    def apply(self, chip, spec: NoiseSpec, seed: int) -> dict:
        r = chip.registers
        report = {}
        for li, layer in enumerate(chip.layers[:-1]):
            if spec.silence_scope == "tick":
                r.noise_rate[li, K.NZ_SILENCE] = spec.silence
                r.noise_key[li, K.NZ_SILENCE] = key64(seed, self.kind, li, "tick")
                report[layer.name] = {"scope": "tick", "p": spec.silence}
                continue
            n = layer.n_out
            k = int(round(spec.silence * n))
            chosen = generator(seed, self.kind, li, "mask").permutation(n)[:k]
            mask = np.ones(n, np.uint8)
            mask[chosen] = 0
            ns = chip.layer_slice(layer.name)
            r.enabled[ns] = r.enabled[ns] & mask
            report[layer.name] = {"scope": "chip", "silenced": int(n - r.enabled[ns].sum()), "neurons": n}
        return report
