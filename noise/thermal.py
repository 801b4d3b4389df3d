"""thermal=s: fresh noise on each neuron's input current every tick, I' = I + round(s * |I| * xi).

Drawn inside the kernels (kernels/neuron.py) from a counter-based hash of
(key(seed, 'thermal', layer, 'current'), sample index, tick, neuron), with
xi an Irwin-Hall approximation of N(0, 1) (kernels/rng.py: fast_normal).
"""
from __future__ import annotations

from .base import NoiseModel, weighted_layers
from .seeding import key64
from .spec import NoiseSpec


class Thermal(NoiseModel):
    kind = "thermal"
    scope = "dynamic"

    def active(self, spec: NoiseSpec) -> bool:
        return spec.thermal > 0

    def apply(self, chip, spec: NoiseSpec, seed: int) -> dict:
        r = chip.registers
        report = {}
        for li, layer in weighted_layers(chip):
            r.noise_rate[li, 0] = spec.thermal
            r.noise_key[li, 0] = key64(seed, self.kind, li, "current")
            report[layer.name] = {"relative_std": spec.thermal, "key": hex(int(r.noise_key[li, 0]))}
        return report
