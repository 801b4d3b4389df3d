"""silence=p: neurons that never spike.

scope `chip` (default, Buechel et al.): a frozen mask per layer, exactly
round(p * n) neurons chosen by a seeded permutation; their membrane is held at
0 and they never spike. scope `tick` (the LTL code): every spike is dropped
with probability p, drawn fresh per (sample, tick, neuron) in the kernels.
unit `channel` (chip scope only, a diagnostic): round(p * C) whole channels of
each conv layer (every position of a feature map: one dead kernel circuit
shared by a time-multiplexed channel), neurons of an fc layer one by one.
The output layer is never silenced: it is the readout, not a hidden unit.
"""
from __future__ import annotations

import numpy as np

from chipsim.core.kernels import layout as K

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
            channels = layer.out_shape[0]
            by_channel = spec.silence_unit == "channel" and n > channels
            units = channels if by_channel else n
            k = int(round(spec.silence * units))
            # neuron masks keep the draw they always had; channel masks have their own stream
            chosen = generator(seed, self.kind, li, "channel-mask" if by_channel else "mask").permutation(units)[:k]
            unit_mask = np.ones(units, np.uint8)
            unit_mask[chosen] = 0
            mask = np.tile(unit_mask, n // channels) if by_channel else unit_mask   # chip order (y, x, c)
            ns = chip.layer_slice(layer.name)
            r.enabled[ns] = r.enabled[ns] & mask
            report[layer.name] = {"scope": "chip", "unit": "channel" if by_channel else "neuron",
                                  "silenced": int(n - r.enabled[ns].sum()), "neurons": n,
                                  **({"silenced_channels": k, "channels": channels} if by_channel else {})}
        return report
