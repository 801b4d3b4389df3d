"""Learning policy: which layers learn and with which settings, turned into kernel arrays.

The circuit itself is kernels/learning.py; this module only decides (from the
net YAML's `learning:` section) and lays out what the kernels read:

* `lparams` (L, N_LPARAMS) float64 and `lkeys` (L, 2) uint64 per chip layer (a layer's pulse is
  `layer_pulse` or `pulse`, divided by its output positions with `pulse_scale: positions`),
* with `threshold_pulse` > 0, each learning layer's threshold-trim step (LSBs) and window
  (nominal threshold x (1 -+ threshold_range)),
* the per-sample target row: the learning layers' neurons, concatenated in
  chip order (y, x, c), each a `target_bits` integer rate,
* the learning steps' decay (`pulse_decay`): `set_step_factor` scales each layer's pulse, lr and
  threshold step from the values set up here; the host calls it between samples, so the kernels
  never see a schedule,
* `written`, one bit per crossbar cell (cleared per layer and tick) for counting
  distinct writes of shared conv cells.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from chipsim.config import LearningConfig
from chipsim.core.kernels import layout as K


class LearningError(ValueError):
    """The learning section does not fit the net or the chip."""


#: the lparams columns that the pulse decay scales: sign pulse, exact-mode lr, threshold-trim step
_STEPS = [K.L_PULSE, K.L_LR, K.L_TH_STEP]


@dataclass
class LearningSetup:
    config: LearningConfig
    layers: tuple[str, ...]          #: names of the learning layers, in chip order
    lparams: np.ndarray
    lkeys: np.ndarray
    target_slices: dict[str, slice]  #: each learning layer's part of a target row
    n_targets: int
    written: np.ndarray              #: bitmap, one bit per crossbar cell
    synapse: object = None           #: the SynapseModel of the cells (chipsim/core/synapse.py)
    dparams: np.ndarray | None = None  #: (L, N_DPARAMS) device parameters per layer (kernels/device.py)
    dkeys: np.ndarray | None = None    #: (L, 2) uint64: d2d and c2c keys per layer
    base_steps: np.ndarray | None = None  #: (L, 3) the undecayed pulse, lr and threshold step per layer
    step_factor: float = 1.0

    def set_step_factor(self, factor: float) -> None:
        """Scale every layer's learning steps to `factor` x their set-up values (the pulse decay)."""
        if factor != self.step_factor:
            self.lparams[:, _STEPS] = self.base_steps * factor
            self.step_factor = factor


def setup_learning(chip, config: LearningConfig, seed: int, synapse=None) -> LearningSetup:
    """`synapse`: a SynapseModel (default: the linear register write); the chip's per-cell arrays
    (`chip.synapse_cells`: state, writes per cell, frozen mask) are created here if no noise model
    made them yet."""
    from chipsim.noise.seeding import key64

    net = chip.net
    names = config.layers or tuple(layer.name for layer in net.weighted_layers)
    last = chip.layer_names[-1]
    if last in names and net.readout == "potential":
        if config.layers:
            raise LearningError(f"{net.source}: learning.layers: '{last}' is a non-spiking potential readout "
                                f"(readout: potential) and has no spike rate to learn; expected hidden layers")
        names = tuple(n for n in names if n != last)
    L = len(chip.layers)
    lparams = np.zeros((L, K.N_LPARAMS), np.float64)
    lkeys = np.zeros((L, 2), np.uint64)
    slices = {}
    offset = 0
    p_q = int(round(config.p * 65536))
    for li, layer in enumerate(chip.layers):
        if layer.name not in names:
            continue
        row = lparams[li]
        row[K.L_ON] = 1.0
        row[K.L_MODE] = K.MODE_EXACT if config.mode == "exact" else K.MODE_SIGN
        row[K.L_P_Q] = p_q
        positions = layer.out_shape[1] * layer.out_shape[2] if layer.type == "conv" else 1
        row[K.L_PULSE] = config.layer_pulse_of(layer.name, positions)
        row[K.L_LR] = config.layer_lr_of(positions)
        row[K.L_DEAD] = config.dead_zone
        row[K.L_DEAD_SPIKES] = config.dead_zone_spikes
        row[K.L_T_OFF] = offset
        row[K.L_BIAS] = 1.0 if config.bias else 0.0
        multibit = li == 0 and chip.input_mode != K.IN_SPIKES     # direct pixels or per-tick event counts
        row[K.L_X_FULL] = chip.input_max if multibit and config.multibit_input == "scale" else 1
        if config.threshold_pulse > 0.0:
            nominal = int(chip.threshold_nominal[li])
            row[K.L_TH_STEP] = config.threshold_pulse * nominal
            row[K.L_TH_LO] = max(1, math.floor(nominal * (1.0 - config.threshold_range)))
            row[K.L_TH_HI] = min(chip.chip.membrane_max, math.ceil(nominal * (1.0 + config.threshold_range)))
        lkeys[li, 0] = chip.write_noise[1][li]
        lkeys[li, 1] = key64(seed, "learning", li, "rounding")
        slices[layer.name] = slice(offset, offset + layer.n_out)
        offset += layer.n_out
    if offset == 0:
        raise LearningError(f"{net.source}: learning.layers: no layer would learn")
    ordered = tuple(layer.name for layer in chip.layers if layer.name in names)
    from chipsim.core.synapse import SynapseCells, SynapseModel, device_keys, device_params

    synapse = synapse or SynapseModel()
    if chip.synapse_cells is None:
        chip.synapse_cells = SynapseCells.of(chip.registers.weights)
    stuck = bool(chip.synapse_cells.frozen.any())
    dparams = device_params(chip, synapse, lparams[:, K.L_ON] != 0.0, force=stuck)
    from chipsim.core.kernels.device import D_ON

    if dparams[:, D_ON].any():      # the device path reads the state; registers may have moved without it
        chip.synapse_cells.resync(chip)
    return LearningSetup(config, ordered, lparams, lkeys, slices, offset,
                         np.zeros(chip.registers.weights.size // 8 + 2, np.uint8), synapse, dparams,
                         device_keys(seed, L), lparams[:, _STEPS].copy())
