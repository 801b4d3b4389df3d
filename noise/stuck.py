"""stuck=p: synapse cells frozen from fabrication, at their low or high bound, at zero or at their trained value.

Each crossbar cell of a weighted layer is stuck independently with
probability p (a seeded Bernoulli draw per cell, frozen per chip). A stuck
cell's weight register is set once (`stuck.value`: low = -wmax, high =
+wmax, zero = 0, trained = left as deployed) and the learning circuit's
writes do nothing to it (kernels/device.py's frozen mask; its pulses are still
counted as requested). A conv cell is one device shared by all positions.
"""
from __future__ import annotations

import numpy as np

from .base import NoiseModel, weighted_layers
from .seeding import generator
from .spec import NoiseSpec


class Stuck(NoiseModel):
    kind = "stuck"
    scope = "frozen"

    def active(self, spec: NoiseSpec) -> bool:
        return spec.stuck > 0

    def apply(self, chip, spec: NoiseSpec, seed: int) -> dict:
        from chipsim.core.synapse import SynapseCells

        r = chip.registers
        weights = r.weights.astype(np.int64)
        frozen = np.zeros(weights.size, np.uint8)
        report = {}
        for li, layer in weighted_layers(chip):
            ws = chip.weight_slice(layer.name)
            n = ws.stop - ws.start
            mask = generator(seed, self.kind, li, "cells").random(n) < spec.stuck
            wmax = int(r.weight_max[li])
            value = {"low": -wmax, "high": wmax, "zero": 0}.get(spec.stuck_value)
            if value is not None:
                part = weights[ws]
                part[mask] = value
                weights[ws] = part
            frozen[ws] = mask
            report[layer.name] = {"cells": n, "stuck": int(mask.sum()), "fraction": float(mask.mean()) if n else 0.0,
                                  "value": spec.stuck_value}
        r.weights = weights.astype(np.int8 if np.abs(weights).max(initial=0) <= 127 else np.int16)
        cells = SynapseCells.of(r.weights)
        cells.frozen[:] = frozen
        chip.synapse_cells = cells
        return report
