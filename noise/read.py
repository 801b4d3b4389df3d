"""read=s: read noise on every crossbar read, per cell, drawn per column current (kernels/analog.py).

Every active cell j of a tile read adds an independent N(0, (s w_full x_j)^2)
to its column's current, fresh on every read: w_full is the layer's largest
weight register value (its conductance full scale, as aihwkit's read noise is
relative to the weight range) and x_j the cell's input (1 for a spike). The sum
over a tile's active rows is N(0, (s w_full)^2 sum_j x_j^2), drawn once per
(sample, tick, output position, row band, column) from a counter-based hash
under key(seed, 'read', layer): the distribution of per-cell draws at the cost
of one draw per column current. Why per column and not per (sample, tick,
cell): a VGG-11 tick reads ~10^7 cells but ~10^5 column currents, and the
neuron only ever sees the sum.

The noisy current passes the column ADC when the chip has one (chip.adc_bits),
else it is rounded to whole LSBs. Pooling layers have no crossbar.
"""
from __future__ import annotations

import math

import numpy as np

from chipsim.core.kernels import layout as K

from .base import NoiseModel, weighted_layers
from .seeding import key64
from .spec import NoiseSpec, NoiseSpecError


class ReadNoiseError(NoiseSpecError):
    """The chip cannot carry this read noise exactly (the int32 current could overflow)."""


class ReadNoise(NoiseModel):
    kind = "read"
    scope = "dynamic"

    def active(self, spec: NoiseSpec) -> bool:
        return spec.read > 0

    def apply(self, chip, spec: NoiseSpec, seed: int) -> dict:
        r = chip.registers
        report = {}
        for li, layer in weighted_layers(chip):
            sigma = spec.read * float(r.weight_max[li])
            r.noise_rate[li, K.NZ_READ] = sigma
            r.noise_key[li, K.NZ_READ] = key64(seed, self.kind, li, "column")
            w = np.abs(r.weights[chip.weight_slice(layer.name)].astype(np.int64)).reshape(layer.fan_in, -1)
            in_max = chip.input_max if li == 0 else 1
            clean = int(w.sum(axis=0).max(initial=0)) * in_max
            bound = clean + chip.read_bound(li, 0) + int(np.abs(r.bias[chip.bias_slice(layer.name)]).max(initial=0))
            if bound >= 2 ** 31:
                raise ReadNoiseError(f"--noise read={spec.read}: layer {layer.name!r}'s worst-case noisy current "
                                     f"{bound:.3g} could overflow its 32-bit register; expected at most "
                                     f"{2 ** 31 - 1} (use a smaller level)")
            rows = min(chip.chip.tile_rows, layer.fan_in)
            report[layer.name] = {"relative_std": spec.read, "std_lsb_per_cell": sigma,
                                  "std_lsb_full_tile": sigma * math.sqrt(rows),
                                  "drawn_per": "column current (sample, tick, position, row band, column)",
                                  "key": hex(int(r.noise_key[li, K.NZ_READ]))}
        return report


def realised(report: dict, totals: dict[str, dict[str, int]]) -> None:
    """Add what the kernels measured to a run's noise report: per layer, the read-noise draws and their
    realised std in LSBs (from the read_noise_sq counter, 2^-8 LSB^2 units)."""
    layers = report.get("realised", {}).get("read")
    if not layers:
        return
    for name, entry in layers.items():
        t = totals.get(name, {})
        draws = int(t.get("read_noise_draws", 0))
        entry["draws"] = draws
        entry["realised_std_lsb"] = math.sqrt(t.get("read_noise_sq", 0) / 256.0 / draws) if draws else None
