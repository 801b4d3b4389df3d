"""The common interface of noise models.

A model is *frozen* (drawn once per chip at deployment: it rewrites the chip's
integer registers) or *dynamic* (drawn inside the kernels every tick: it sets
per-layer rates and keys that the kernels read). `apply` returns what was
realised, per layer, for summary.json and run.h5.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

from .spec import NoiseSpec


class NoiseModel(ABC):
    kind: str = ""
    scope: str = "frozen"   #: frozen | dynamic

    @abstractmethod
    def active(self, spec: NoiseSpec) -> bool:
        """Whether the spec asks for this model at all (an inactive model leaves the chip untouched)."""

    def is_frozen(self, spec: NoiseSpec) -> bool:
        """Frozen noise is part of a chip's state (and of a saved calibrated chip)."""
        return self.scope == "frozen"

    @abstractmethod
    def apply(self, chip, spec: NoiseSpec, seed: int) -> dict:
        """Apply to a deployed chip; return the realised values per layer."""


def weighted_layers(chip):
    """(index, layer) of the chip's crossbar layers."""
    return [(li, layer) for li, layer in enumerate(chip.layers) if layer.weighted]
