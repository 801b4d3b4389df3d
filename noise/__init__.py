"""Hardware non-idealities of DYNAP-SE-like mixed-signal chips (Buechel et al. 2021, as used by LTL).

One module per model, a registry, a parser (`spec.py`) and one seeding scheme
(`seeding.py`, read its docstring for how every draw is derived). Frozen
models rewrite a deployed chip's registers; dynamic ones set per-tick rates
and keys that the kernels draw from.

    from chipsim.noise import apply_noise
    report = apply_noise(chip, ["mismatch=0.2", "thermal=0.05"], seed=0)
"""
from __future__ import annotations

from .base import NoiseModel
from .mismatch import Mismatch
from .quantization import Quantization
from .read import ReadNoise
from .drift import Drift
from .silence import Silence
from .spec import PRESETS, NoiseSpec, NoiseSpecError, parse_noise
from .stuck import Stuck
from .thermal import Thermal

#: Application order: quantize the trained weights, then fabricate (mismatch), then break neurons and
#: cells, then let the programmed cells drift until they are read (read noise is drawn on every read).
REGISTRY: dict[str, NoiseModel] = {m.kind: m for m in (Quantization(), Mismatch(), Silence(), Thermal(), Stuck(),
                                                       Drift(), ReadNoise())}


def apply_noise(chip, items, seed: int, frozen: bool = True) -> dict:
    """Parse `items` (--noise strings or a NoiseSpec), apply every active model, return the report.

    frozen=False applies only dynamic noise: for a restored chip state, whose frozen
    noise (mismatch, quantization, silencing mask) is already in its registers."""
    spec = items if isinstance(items, NoiseSpec) else parse_noise(tuple(items))
    realised = {}
    for kind, model in REGISTRY.items():
        if model.active(spec) and (frozen or not model.is_frozen(spec)):
            realised[kind] = model.apply(chip, spec, seed)
    return {"requested": spec.to_dict(), "seed": seed, "realised": realised,
            **({} if frozen else {"frozen": "taken from the restored chip state"})}


__all__ = ["NoiseModel", "NoiseSpec", "NoiseSpecError", "PRESETS", "REGISTRY", "apply_noise", "parse_noise"]
