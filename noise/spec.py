"""`--noise` parsing: KIND=VALUE, KIND.SUB=VALUE and preset=NAME, repeatable, into one NoiseSpec.

    --noise mismatch=0.2                  all mismatch parameters (weights, bias, threshold, leak)
    --noise mismatch.weights=0.2 --noise mismatch.leak=0.1
    --noise bits=4                        post-training weight quantization to 4 bits
    --noise bits.quantizer=minmax         ... on the grid min + k (max - min) / (2^b - 1) (no level at 0)
    --noise thermal=0.05                  per-tick input-current noise, I' ~ N(I, (s |I|)^2)
    --noise thermal.scope=input           ... or on every input element, x' = x (1 + s xi) (the LTL code)
    --noise thermal.scope=additive        ... or additive, I' = I + s theta xi (Buechel et al. 2021)
    --noise silence=0.1                   frozen mask: 10 % of each layer's neurons never spike
    --noise silence.scope=tick            ... or a fresh Bernoulli drop of each spike every tick
    --noise silence.unit=channel          ... or whole conv channels (frozen, chip scope)
    --noise stuck=0.01                    1 % of the synapse cells frozen (at their trained value)
    --noise stuck.value=low               ... stuck at -wmax (or high: +wmax, zero: 0, trained)
    --noise drift=3600                    PCM conductance drift: the chip read an hour after programming
    --noise read=0.02                     read noise: each active cell adds N(0, (0.02 w_full)^2) on every read
    --noise preset=dynapse                measured DYNAP-SE spreads (see PRESETS)

Later items override earlier ones, so `preset=dynapse --noise thermal=0` works.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


class NoiseSpecError(ValueError):
    """A --noise item is malformed; the message lists what is accepted."""


@dataclass(frozen=True)
class NoiseSpec:
    mismatch_weights: float = 0.0     #: relative spread of each crossbar cell (frozen per chip)
    mismatch_bias: float = 0.0        #: relative spread of each bias register
    mismatch_threshold: float = 0.0   #: relative spread of each neuron's threshold
    mismatch_leak: float = 0.0        #: relative spread of each LIF neuron's time constant
    mismatch_write: float = 0.0       #: relative spread of each on-chip weight write (learning)
    bits: int | None = None           #: weight register width after post-training quantization
    bits_quantizer: str = "symmetric"  #: symmetric: step max|W| / (2^(b-1) - 1); minmax: (max - min) / (2^b - 1)
    thermal: float = 0.0              #: relative std of the input current, fresh per tick
    thermal_scope: str = "current"    #: current: per neuron sum; input: per input element; additive: s * theta
    silence: float = 0.0              #: fraction of neurons silenced
    silence_scope: str = "chip"       #: chip: frozen mask; tick: fresh drop of each spike every tick
    silence_unit: str = "neuron"      #: neuron: each (position, channel) alone; channel: whole conv channels (chip)
    stuck: float = 0.0                #: fraction of synapse cells stuck (frozen per chip)
    stuck_value: str = "trained"      #: trained | low | high | zero: where a stuck cell sits
    drift: float = 0.0                #: seconds since programming (PCM drift G0 ((t + t0) / t0)^-nu)
    read: float = 0.0                 #: read noise per active cell and read, relative to the weight full scale

    @property
    def is_ideal(self) -> bool:
        return self == NoiseSpec()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


#: Named presets. Spreads as measured on DYNAP-SE (Buechel et al., Sci. Rep. 2021:
#: ~20 % for weights/currents, ~10 % for time constants and thresholds).
PRESETS: dict[str, NoiseSpec] = {
    "ideal": NoiseSpec(),
    "dynapse": NoiseSpec(mismatch_weights=0.2, mismatch_bias=0.2, mismatch_threshold=0.1, mismatch_leak=0.1,
                         mismatch_write=0.2),
    # the LTL paper's own robustness runs: mismatch 0.2 on weights, biases and the leak
    "ltl2022": NoiseSpec(mismatch_weights=0.2, mismatch_bias=0.2, mismatch_leak=0.2, mismatch_write=0.2),
    # Buechel et al.'s code: weights 20 %, time constants and thresholds around the mean
    "buechel2021": NoiseSpec(mismatch_weights=0.2, mismatch_threshold=0.2, mismatch_leak=0.2),
}

THERMAL_SCOPES = ("current", "input", "additive")
QUANTIZERS = ("symmetric", "minmax")
SILENCE_UNITS = ("neuron", "channel")
STUCK_VALUES = ("trained", "low", "high", "zero")
_MISMATCH_PARTS = ("weights", "bias", "threshold", "leak", "write")
_ACCEPTED = ("mismatch=S, mismatch.{weights,bias,threshold,leak,write}=S (S in [0, 1]), bits=B (B in 2..16), bits.quantizer=symmetric|minmax, "
             "thermal=S (S in [0, 2]), thermal.scope=current|input|additive, silence=P (P in [0, 1)), silence.scope=chip|tick, "
             "silence.unit=neuron|channel, stuck=P (P in [0, 1)), stuck.value=trained|low|high|zero, "
             "drift=SECONDS (in [0, 1e10]), read=S (S in [0, 1]), "
             f"preset={'|'.join(PRESETS)}")


def _number(item: str, text: str, lo: float, hi: float, hi_open: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise NoiseSpecError(f"--noise {item}: expected a number, got {text!r}; accepted: {_ACCEPTED}") from None
    if not (lo <= value <= hi) or (hi_open and value >= hi):
        bound = f"[{lo}, {hi})" if hi_open else f"[{lo}, {hi}]"
        raise NoiseSpecError(f"--noise {item}: expected a value in {bound}, got {value}; accepted: {_ACCEPTED}")
    return value


def parse_noise(items: tuple[str, ...] | list[str]) -> NoiseSpec:
    spec = NoiseSpec()
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise NoiseSpecError(f"--noise {item!r}: expected KIND=VALUE; accepted: {_ACCEPTED}")
        kind, _, part = key.partition(".")
        if kind == "preset" and not part:
            if value not in PRESETS:
                raise NoiseSpecError(f"--noise {item}: unknown preset {value!r}; expected one of {', '.join(PRESETS)}")
            spec = PRESETS[value]
        elif kind == "mismatch" and not part:
            s = _number(item, value, 0.0, 1.0)
            spec = dataclasses.replace(spec, **{f"mismatch_{p}": s for p in _MISMATCH_PARTS})
        elif kind == "mismatch" and part in _MISMATCH_PARTS:
            spec = dataclasses.replace(spec, **{f"mismatch_{part}": _number(item, value, 0.0, 1.0)})
        elif kind == "bits" and not part:
            b = _number(item, value, 2, 16)
            if b != int(b):
                raise NoiseSpecError(f"--noise {item}: expected a whole number of bits, got {value}")
            spec = dataclasses.replace(spec, bits=int(b))
        elif kind == "bits" and part == "quantizer":
            if value not in QUANTIZERS:
                raise NoiseSpecError(f"--noise {item}: expected {' or '.join(QUANTIZERS)}, got {value!r}")
            spec = dataclasses.replace(spec, bits_quantizer=value)
        elif kind == "thermal" and not part:
            spec = dataclasses.replace(spec, thermal=_number(item, value, 0.0, 2.0))
        elif kind == "thermal" and part == "scope":
            if value not in THERMAL_SCOPES:
                raise NoiseSpecError(f"--noise {item}: expected {' or '.join(THERMAL_SCOPES)}, got {value!r}")
            spec = dataclasses.replace(spec, thermal_scope=value)
        elif kind == "silence" and not part:
            spec = dataclasses.replace(spec, silence=_number(item, value, 0.0, 1.0, hi_open=True))
        elif kind == "silence" and part == "scope":
            if value not in ("chip", "tick"):
                raise NoiseSpecError(f"--noise {item}: expected chip or tick, got {value!r}")
            spec = dataclasses.replace(spec, silence_scope=value)
        elif kind == "silence" and part == "unit":
            if value not in SILENCE_UNITS:
                raise NoiseSpecError(f"--noise {item}: expected {' or '.join(SILENCE_UNITS)}, got {value!r}")
            spec = dataclasses.replace(spec, silence_unit=value)
        elif kind == "stuck" and not part:
            spec = dataclasses.replace(spec, stuck=_number(item, value, 0.0, 1.0, hi_open=True))
        elif kind == "stuck" and part == "value":
            if value not in STUCK_VALUES:
                raise NoiseSpecError(f"--noise {item}: expected {' or '.join(STUCK_VALUES)}, got {value!r}")
            spec = dataclasses.replace(spec, stuck_value=value)
        elif kind == "drift" and not part:
            spec = dataclasses.replace(spec, drift=_number(item, value, 0.0, 1e10))
        elif kind == "read" and not part:
            spec = dataclasses.replace(spec, read=_number(item, value, 0.0, 1.0))
        else:
            raise NoiseSpecError(f"--noise {item}: unknown noise {key!r}; accepted: {_ACCEPTED}")
    if spec.silence_unit == "channel" and spec.silence_scope == "tick":
        raise NoiseSpecError("--noise silence.unit=channel: whole channels are silenced on the chip "
                             "(silence.scope=chip); expected silence.scope=chip or silence.unit=neuron")
    return spec
