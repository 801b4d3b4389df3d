"""Network and chip configuration: YAML -> frozen dataclasses, validated.

Every error names the file, the key path and what was expected::

    vgg11.yaml: layers[3].stride: expected an integer >= 1, got 'two'

Unknown keys are rejected (a typo must not silently become a default).
The resolved configuration is written into every output file (`to_dict`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from chipsim.architect.costs import CostConfig  # noqa: F401  (defined beside the cost model, part of ChipConfig)


class ConfigError(ValueError):
    """A configuration file (or mapping) is invalid; the message names file and key path."""


_REQUIRED = object()

NEURON_MODELS = ("IF", "LIF")
RESET_MODES = ("subtract", "zero")
ENCODERS = ("rate", "if", "direct", "events")
EVENT_POLARITIES = ("split", "merged")
EVENT_BINNINGS = ("time", "count")
EVENT_VALUES = ("spike", "count")
READOUTS = ("count", "potential")
LAYER_TYPES = ("conv", "fc", "pool", "flatten")
POOL_KINDS = ("avg", "or")
UPDATE_MODES = ("sign", "exact")
PULSE_SCALES = ("none", "positions")
MULTIBIT_INPUTS = ("count", "scale")
DECAY_RESTARTS = ("never", "epoch")


class _Reader:
    """Walks a YAML mapping, checking types and rejecting unknown keys."""

    def __init__(self, source: str, data: Any, path: str = ""):
        self.source = source
        self.path = path
        if not isinstance(data, dict):
            self.fail(path or "<top level>", "a mapping", data)
        self.data = data
        self.seen: set[str] = set()

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key_path: str, expected: str, got: Any) -> None:
        raise ConfigError(f"{self.source}: {key_path}: expected {expected}, got {got!r}")

    def get(self, key: str, check: Callable[[Any], bool], expected: str, default: Any = _REQUIRED) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                raise ConfigError(f"{self.source}: {self.key_path(key)}: missing; expected {expected}")
            return default
        value = self.data[key]
        if not check(value):
            self.fail(self.key_path(key), expected, value)
        return value

    def integer(self, key: str, lo: int | None = None, hi: int | None = None, default: Any = _REQUIRED) -> int:
        expected = "an integer" + _range_text(lo, hi)
        return self.get(key, lambda v: _is_int(v) and _in_range(v, lo, hi), expected, default)

    def number(self, key: str, lo: float | None = None, hi: float | None = None, default: Any = _REQUIRED) -> float:
        expected = "a number" + _range_text(lo, hi)
        value = self.get(key, lambda v: _is_number(v) and _in_range(v, lo, hi), expected, default)
        return float(value)

    def choice(self, key: str, options: tuple[str, ...], default: Any = _REQUIRED) -> str:
        expected = "one of " + ", ".join(repr(o) for o in options)
        return self.get(key, lambda v: v in options, expected, default)

    def boolean(self, key: str, default: Any = _REQUIRED) -> bool:
        return self.get(key, lambda v: isinstance(v, bool), "true or false", default)

    def string(self, key: str, default: Any = _REQUIRED) -> str:
        return self.get(key, lambda v: isinstance(v, str) and v != "", "a non-empty string", default)

    def child(self, key: str, required: bool = False) -> "_Reader":
        self.seen.add(key)
        if key not in self.data:
            if required:
                raise ConfigError(f"{self.source}: {self.key_path(key)}: missing; expected a mapping")
            return _Reader(self.source, {}, self.key_path(key))
        return _Reader(self.source, self.data[key], self.key_path(key))

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.seen, key=str)
        if unknown:
            known = ", ".join(sorted(self.seen)) or "(none)"
            raise ConfigError(
                f"{self.source}: {self.key_path(str(unknown[0]))}: unknown key; expected one of {known}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _in_range(v: float, lo: float | None, hi: float | None) -> bool:
    return (lo is None or v >= lo) and (hi is None or v <= hi)


def _range_text(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f" in [{lo}, {hi}]"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class NeuronConfig:
    """Neuron model shared by all spiking layers (paper Eq. 1-3)."""

    model: str = "IF"            #: IF (no leak) or LIF (truncating multiplicative leak)
    alpha: float = 1.0           #: LIF leak factor per tick, in (0, 1]; IF forces 1
    threshold: float = 1.0       #: firing threshold in real units (the weights file fixes its integer value)
    reset: str = "subtract"      #: subtract theta after a spike (paper Eq. 1) or reset to zero (paper code)


@dataclass(frozen=True)
class EventsConfig:
    """The `events` encoder: address events -> T ticks of input (chipsim/hostlink/events/binning.py)."""

    sensor: tuple[int, int]              #: (width, height) of the event camera
    polarity: str = "split"              #: split: 2 input channels (0 = OFF, 1 = ON); merged: 1
    window_ms: tuple[float, float] | None = None   #: (start after the first event, length); None: whole recording
    binning: str = "time"                #: time: equal durations per tick; count: equal event counts
    bin_value: str = "spike"             #: spike: a bin with events is one spike; count: its events, up to cap
    cap: int = 1                         #: bin_value count: largest count sent per tick, the chip's full-scale
                                         #: multi-bit input (read as MACs, like the direct encoder's)


@dataclass(frozen=True)
class EncoderConfig:
    """How the host turns a sample into input for the first layer."""

    kind: str = "direct"         #: rate (seeded Bernoulli), if (integrate-and-fire), direct (multi-bit current),
                                 #: events (address events binned into ticks)
    input_bits: int = 8          #: width of one input value sent by the host for `direct`
    max_rate: float = 1.0        #: spike probability per tick of a full-scale pixel (rate encoder)
    events: EventsConfig | None = None   #: kind events only


@dataclass(frozen=True)
class LayerConfig:
    """One layer with its inferred shapes (C, H, W); fc layers have H = W = 1."""

    name: str
    type: str                    #: conv, fc, pool, flatten
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    pool: str = "avg"            #: pool layers: avg (fixed-weight IF neurons) or or (spike OR / max)
    source_shape: tuple[int, int, int] | None = None  #: fc: the (C, H, W) map its flat input comes from

    @property
    def input_map(self) -> tuple[int, int, int]:
        """Shape of the feature map this layer reads (before any flatten)."""
        return self.source_shape or self.in_shape

    @property
    def weighted(self) -> bool:
        return self.type in ("conv", "fc")

    @property
    def fan_in(self) -> int:
        if self.type == "conv":
            return self.in_shape[0] * self.kernel * self.kernel
        if self.type == "fc":
            return int(math.prod(self.in_shape))
        if self.type == "pool":
            return self.kernel * self.kernel
        return 1

    @property
    def n_out(self) -> int:
        return int(math.prod(self.out_shape))


#: largest chip.adc_range: every tile's converted partial sum, row bands x range, must fit the int32 current
ADC_RANGE_MAX = 1 << 20


@dataclass(frozen=True)
class ChipConfig:
    """Register widths, crossbar geometry, timing and costs of the chip."""

    weight_bits: int = 8               #: signed symmetric weights in [-(2^(b-1)-1), 2^(b-1)-1]
    membrane_bits: int = 24            #: signed membrane register; saturates (counted)
    counter_bits: int = 16             #: unsigned spike accumulator; saturates (counted)
    bias_bits: int = 16                #: signed bias register
    leak_bits: int = 12                #: F of the leak multiplier a = round(alpha * 2^F)
    tile_rows: int = 256
    tile_cols: int = 256
    clock_mhz: float = 100.0
    delay: bool = False                #: True: layer l sees layer l-1's spikes of tick t-1 (Eq. 2 as written)
    #: column ADCs: bits per conversion of each tile's column partial sums (0: none, the ideal digital sum)
    adc_bits: int = 0
    #: column ADCs: full scale +-adc_range of one partial sum, in weight LSBs at full-scale input (a spike;
    #: a multi-bit layer's DAC drives 2^input_bits - 1 as a spike's amplitude); with adc_bits
    adc_range: int = 0
    #: column ADCs: a layer's own full scale instead of adc_range, {layer name: weight LSBs at full-scale
    #: input} (an output layer's partial sums run larger than the hidden layers')
    adc_layer_ranges: dict = field(default_factory=dict)
    costs: CostConfig = field(default_factory=CostConfig)

    def adc_range_of(self, layer: str) -> int:
        """The column ADCs' full scale of `layer`, in weight LSBs at full-scale input."""
        return self.adc_layer_ranges.get(layer, self.adc_range)

    @property
    def weight_max(self) -> int:
        return (1 << (self.weight_bits - 1)) - 1

    @property
    def membrane_max(self) -> int:
        return (1 << (self.membrane_bits - 1)) - 1

    @property
    def membrane_min(self) -> int:
        return -(1 << (self.membrane_bits - 1))

    @property
    def counter_max(self) -> int:
        return (1 << self.counter_bits) - 1

    @property
    def bias_max(self) -> int:
        return (1 << (self.bias_bits - 1)) - 1


@dataclass(frozen=True)
class LearningConfig:
    """On-chip online LTL (paper Eq. 8-11, Figure 1(d))."""

    enabled: bool = False
    layers: tuple[str, ...] = ()       #: names of learning layers; empty = all weighted layers
    lr: float = 1.0                    #: `exact` mode: dW [LSB] = lr * (2 / t) * e * x / p
    p: float = 0.667                   #: boxcar width as a fraction of theta (paper code: 0.4 / 0.6)
    warmup: int = 0                    #: ticks without updates at the start of each sample
    pulse: float = 1.0                 #: LSBs per programming pulse (`sign` mode); fractions fire stochastically
    mode: str = "sign"                 #: sign (one pulse per gated pair) or exact (stochastic rounding)
    target_bits: int = 8               #: width of the host's rate targets
    dead_zone: float = 0.0             #: |rate error| at or below this does not update (sign gate)
    target_percentile: float = 99.9    #: y_norm percentile of the teacher's activations
    bias: bool = True                  #: biases learn too (Eq. 10 with x = 1)
    output_target: str = "label"       #: last layer's target: label (one-hot rate) or teacher (normalised logits)
    label_rate: float = 1.0            #: rate target of the labelled output neuron
    #: per-layer pulse (LSBs) replacing `pulse` for the named learning layers
    layer_pulse: dict[str, float] = field(default_factory=dict)
    #: positions: a conv layer's pulse and lr are divided by its output positions (a shared cell gets
    #: one pulse per gated position); none: every layer uses its pulse as it is
    pulse_scale: str = "none"
    #: sign gate in spikes of the counter: no update while |r t - C[t]| <= dead_zone * t + dead_zone_spikes
    dead_zone_spikes: float = 0.0
    #: multi-bit inputs (direct pixels, or event counts with bin_value count): count = a nonzero value is one
    #: active input, like a spike; scale = a sign pulse fires with probability value / full scale
    #: (2^input_bits - 1, or the events encoder's cap), and the bias learns as an input held at full scale
    multibit_input: str = "count"
    #: threshold trim (not in the paper; 0 = thresholds fixed): a gated neuron moves its own threshold by
    #: this fraction of the layer's nominal threshold against sign(error), within nominal x (1 -+ threshold_range)
    threshold_pulse: float = 0.0
    threshold_range: float = 0.5
    #: step decay of every learning step (pulse, layer_pulse, lr, threshold_pulse): after each
    #: `pulse_decay_every` calibration samples the steps are multiplied by `pulse_decay`
    #: (`pulse_decay_every` 0: never, constant steps)
    pulse_decay: float = 1.0
    pulse_decay_every: int = 0
    #: where the schedule's sample count starts again: never (counted across epochs, one anneal over
    #: the run) or epoch (every epoch starts at the full steps: a warm restart per epoch)
    pulse_decay_restart: str = "never"

    def step_factor(self, sample: int) -> float:
        """The factor on every learning step for schedule sample `sample` (0-based; see schedule_sample)."""
        if self.pulse_decay_every == 0 or self.pulse_decay == 1.0:
            return 1.0
        return self.pulse_decay ** (sample // self.pulse_decay_every)

    def schedule_sample(self, epoch: int, index: int, epoch_samples: int) -> int:
        """The schedule's count for the `index`-th calibration sample of epoch `epoch` (both 0-based)."""
        return index if self.pulse_decay_restart == "epoch" else epoch * epoch_samples + index

    def layer_pulse_of(self, name: str, positions: int = 1) -> float:
        """The pulse (sign mode) of learning layer `name` with `positions` output positions."""
        pulse = self.layer_pulse.get(name, self.pulse)
        return pulse / positions if self.pulse_scale == "positions" else pulse

    def layer_lr_of(self, positions: int = 1) -> float:
        """The learning rate (exact mode) of a layer with `positions` output positions."""
        return self.lr / positions if self.pulse_scale == "positions" else self.lr


@dataclass(frozen=True)
class NetConfig:
    name: str
    source: str                        #: file the config came from
    input_shape: tuple[int, int, int]
    time_steps: int
    encoder: EncoderConfig
    neuron: NeuronConfig
    layers: tuple[LayerConfig, ...]
    readout: str
    chip: ChipConfig
    learning: LearningConfig
    data: str                          #: default dataset spec for this net
    weights: str | None                #: default weights file (relative to the YAML), or None
    classes: int
    #: named learning sections, each the `learning:` section with some keys changed (`--learn preset=NAME`)
    learning_presets: tuple[tuple[str, LearningConfig], ...] = ()

    def learning_preset(self, name: str) -> LearningConfig | None:
        return dict(self.learning_presets).get(name)

    @property
    def weighted_layers(self) -> tuple[LayerConfig, ...]:
        return tuple(layer for layer in self.layers if layer.weighted)

    @property
    def chip_layers(self) -> tuple[LayerConfig, ...]:
        """Layers that hold neurons on the chip (flatten is only re-indexing)."""
        return tuple(layer for layer in self.layers if layer.type != "flatten")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["encoder"]["events"] is None:      # frame nets: the dict they always had
            del d["encoder"]["events"]
        return d


# --------------------------------------------------------------------------- parsing


def _parse_neuron(r: _Reader) -> NeuronConfig:
    model = r.choice("model", NEURON_MODELS, "IF")
    if model == "LIF" and "alpha" not in r.data:
        raise ConfigError(f"{r.source}: {r.key_path('alpha')}: missing; expected a number in (0, 1) for LIF "
                          "(the leak factor per tick)")
    alpha = r.number("alpha", 0.0, 1.0, 1.0)
    if model == "LIF" and not 0.0 < alpha < 1.0:
        r.fail(r.key_path("alpha"), "a number in (0, 1) for LIF", alpha)
    if model == "IF" and alpha != 1.0:
        r.fail(r.key_path("alpha"), "1.0 (or omitted) for IF; use model: LIF for a leak", alpha)
    threshold = r.number("threshold", 1e-9, None, 1.0)
    reset = r.choice("reset", RESET_MODES, "subtract")
    r.finish()
    return NeuronConfig(model, alpha, threshold, reset)


def _parse_encoder(r: _Reader) -> EncoderConfig:
    kind = r.choice("kind", ENCODERS, "direct")
    input_bits = r.integer("input_bits", 1, 16, 8)
    max_rate = r.number("max_rate", 0.0, 1.0, 1.0)
    events = _parse_events(r) if kind == "events" else None
    r.finish()
    return EncoderConfig(kind, input_bits, max_rate, events)


def _parse_events(r: _Reader) -> EventsConfig:
    sensor = r.get("sensor", lambda v: isinstance(v, list) and len(v) == 2 and all(_is_int(x) and 0 < x <= 65535
                                                                               for x in v),
                   "a list [width, height] of positive integers (the event camera's pixels)")
    polarity = r.choice("polarity", EVENT_POLARITIES, "split")
    window = r.get("window_ms", lambda v: v is None or (isinstance(v, list) and len(v) == 2
                                                         and all(_is_number(x) for x in v)
                                                         and v[0] >= 0 and v[1] > 0),
                   "null (the whole recording) or [start, length] in ms, start >= 0, length > 0", None)
    binning = r.choice("binning", EVENT_BINNINGS, "time")
    value = r.choice("bin_value", EVENT_VALUES, "spike")
    cap = r.integer("cap", 1, 65535, 1)
    if value == "spike" and cap != 1:
        r.fail(r.key_path("cap"), "1 (or omitted) with bin_value: spike; set bin_value: count for counts", cap)
    return EventsConfig((sensor[0], sensor[1]), polarity, None if window is None else (float(window[0]),
                        float(window[1])), binning, value, cap)


#: integer costs where 0 means unlimited (the others are counts >= 1)
COST_ZERO_UNLIMITED = ("spike_queue_depth",)


def _parse_costs(r: _Reader) -> CostConfig:
    defaults = CostConfig()
    values = {}
    for f in dataclasses.fields(CostConfig):
        default = getattr(defaults, f.name)
        if isinstance(default, int):
            # counts that may be 0 ("unlimited") are those the timing engine reads as such
            values[f.name] = r.integer(f.name, 0 if f.name in COST_ZERO_UNLIMITED else 1, None, default)
        else:
            values[f.name] = r.number(f.name, 0.0, None, default)
    r.finish()
    return CostConfig(**values)


def _parse_chip(r: _Reader, base_dir: Path | None = None) -> ChipConfig:
    if "preset" in r.data:   # chip: {preset: NAME|PATH, ...}: the preset's settings under the section's own
        spec = r.string("preset")
        path = Path(spec)
        if base_dir is not None and not path.is_absolute() and (base_dir / path).is_file():
            spec = str(base_dir / path)
        try:
            preset = load_chip(spec)
        except ConfigError as exc:
            raise ConfigError(f"{r.source}: {r.key_path('preset')}: {exc}") from None
        own = {k: v for k, v in r.data.items() if k != "preset"}
        merged = {**preset.settings, **own}
        if isinstance(own.get("costs"), dict):
            merged["costs"] = {**preset.settings.get("costs", {}), **own["costs"]}
        r = _Reader(r.source, merged, r.path)
    chip = ChipConfig(
        weight_bits=r.integer("weight_bits", 2, 16, 8),
        membrane_bits=r.integer("membrane_bits", 8, 31, 24),
        counter_bits=r.integer("counter_bits", 1, 31, 16),
        bias_bits=r.integer("bias_bits", 2, 31, 16),
        leak_bits=r.integer("leak_bits", 1, 20, 12),
        tile_rows=r.integer("tile_rows", 1, None, 256),
        tile_cols=r.integer("tile_cols", 1, None, 256),
        clock_mhz=r.number("clock_mhz", 1e-6, None, 100.0),
        delay=r.boolean("delay", False),
        adc_bits=r.integer("adc_bits", 0, 16, 0),
        adc_range=r.integer("adc_range", 0, ADC_RANGE_MAX, 0),     # 0: unset
        adc_layer_ranges=_parse_adc_layer_ranges(r),
        costs=_parse_costs(r.child("costs")),
    )
    if chip.adc_bits and not chip.adc_range:
        raise ConfigError(f"{r.source}: {r.key_path('adc_range')}: missing or 0; expected the ADC's full scale in "
                          f"weight LSBs (an integer in [1, {ADC_RANGE_MAX}]) with adc_bits {chip.adc_bits}")
    if chip.adc_layer_ranges and not chip.adc_range:
        raise ConfigError(f"{r.source}: {r.key_path('adc_layer_ranges')}: given without adc_range; expected "
                          f"adc_bits and adc_range (the other layers' full scale) with it")
    if chip.adc_range and "adc_bits" not in r.data:     # adc_bits: 0 says "no ADC" (a sweep's off point)
        raise ConfigError(f"{r.source}: {r.key_path('adc_bits')}: missing; expected the ADC's bits (an integer in "
                          f"[1, 16], or 0 for no ADC) with adc_range {chip.adc_range}, or no adc_range")
    r.finish()
    return chip


def _parse_adc_layer_ranges(r: _Reader) -> dict:
    """chip.adc_layer_ranges: {layer name: full scale}; the names are checked against the net (parse_net)."""
    raw = r.get("adc_layer_ranges", lambda v: isinstance(v, dict), "a mapping {layer name: full scale in weight "
                "LSBs}", {})
    key = r.key_path("adc_layer_ranges")
    for name, value in raw.items():
        if not (_is_int(value) and 1 <= value <= ADC_RANGE_MAX):
            r.fail(f"{key}.{name}", f"an integer in [1, {ADC_RANGE_MAX}]", value)
    return {str(k): int(v) for k, v in raw.items()}


def _parse_learning(r: _Reader, layer_names: tuple[str, ...]) -> LearningConfig:
    layers = r.get("layers", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                   "a list of layer names", [])
    for i, name in enumerate(layers):
        if name not in layer_names:
            r.fail(f"{r.key_path('layers')}[{i}]", "a weighted layer name (" + ", ".join(layer_names) + ")", name)
    cfg = LearningConfig(
        enabled=r.boolean("enabled", True) if r.data else False,
        layers=tuple(layers),
        lr=r.number("lr", 0.0, None, 1.0),
        p=r.number("p", 1e-6, 2.0, 0.667),
        warmup=r.integer("warmup", 0, None, 0),
        pulse=r.number("pulse", 1e-6, None, 1.0),
        mode=r.choice("mode", UPDATE_MODES, "sign"),
        target_bits=r.integer("target_bits", 1, 16, 8),
        dead_zone=r.number("dead_zone", 0.0, 1.0, 0.0),
        target_percentile=r.number("target_percentile", 50.0, 100.0, 99.9),
        bias=r.boolean("bias", True),
        output_target=r.choice("output_target", ("label", "teacher"), "label"),
        label_rate=r.number("label_rate", 0.0, 1.0, 1.0),
        layer_pulse=_parse_layer_pulse(r, layer_names, layers),
        pulse_scale=r.choice("pulse_scale", PULSE_SCALES, "none"),
        dead_zone_spikes=r.number("dead_zone_spikes", 0.0, None, 0.0),
        multibit_input=r.choice("multibit_input", MULTIBIT_INPUTS, "count"),
        threshold_pulse=r.number("threshold_pulse", 0.0, 1.0, 0.0),
        threshold_range=r.number("threshold_range", 1e-6, 1.0, 0.5),
        pulse_decay=r.number("pulse_decay", 1e-6, 1.0, 1.0),
        pulse_decay_every=r.integer("pulse_decay_every", 0, None, 0),
        pulse_decay_restart=r.choice("pulse_decay_restart", DECAY_RESTARTS, "never"),
    )
    if cfg.pulse_decay != 1.0 and cfg.pulse_decay_every == 0:
        r.fail(r.key_path("pulse_decay_every"), "a number of samples >= 1 between decay steps (pulse_decay is "
               f"{cfg.pulse_decay}, which would otherwise never apply)", 0)
    r.finish()
    return cfg


def _parse_layer_pulse(r: _Reader, layer_names: tuple[str, ...], layers: list[str]) -> dict[str, float]:
    """learning.layer_pulse: {LAYER: PULSE}, each a learning layer (one of `layers`, or any weighted layer
    when `layers` is empty) and a pulse > 0."""
    raw = r.get("layer_pulse", lambda v: isinstance(v, dict), "a mapping of layer name to pulse", {})
    learning = tuple(layers) or layer_names
    out = {}
    for name, pulse in raw.items():
        key = f"{r.key_path('layer_pulse')}.{name}"
        if name not in learning:
            r.fail(key, "a learning layer (" + ", ".join(learning) + ")", name)
        if not _is_number(pulse) or pulse < 1e-6:
            r.fail(key, "a number >= 1e-06 (LSBs per pulse)", pulse)
        out[name] = float(pulse)
    return out


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _parse_layers(r: _Reader, input_shape: tuple[int, int, int]) -> tuple[LayerConfig, ...]:
    raw = r.get("layers", lambda v: isinstance(v, list) and len(v) > 0, "a non-empty list of layers")
    layers: list[LayerConfig] = []
    shape = input_shape
    flat = False
    map_shape = input_shape           # the last (C, H, W) feature map: a flatten only re-indexes it
    names: set[str] = set()
    counts: dict[str, int] = {}
    for i, item in enumerate(raw):
        lr = _Reader(r.source, item, f"{r.key_path('layers')}[{i}]")
        kind = lr.choice("type", LAYER_TYPES)
        counts[kind] = counts.get(kind, 0) + 1
        name = lr.string("name", f"{kind}{i + 1}")
        if name in names:
            lr.fail(lr.key_path("name"), "a unique layer name", name)
        names.add(name)
        c, h, w = shape
        if kind == "conv":
            if flat:
                lr.fail(lr.key_path("type"), "fc or flatten after a flatten/fc layer (conv needs a feature map)", kind)
            out = lr.integer("out", 1)
            k = lr.integer("kernel", 1)
            s = lr.integer("stride", 1, None, 1)
            p = lr.integer("padding", 0, None, 0)
            oh, ow = _conv_out(h, k, s, p), _conv_out(w, k, s, p)
            if oh < 1 or ow < 1:
                lr.fail(lr.key_path("kernel"), f"a kernel that fits the {h}x{w} input with padding {p}", k)
            layer = LayerConfig(name, kind, shape, (out, oh, ow), k, s, p)
        elif kind == "pool":
            if flat:
                lr.fail(lr.key_path("type"), "pool before any flatten/fc layer", kind)
            k = lr.integer("kernel", 1)
            pool = lr.choice("kind", POOL_KINDS, "avg")
            if h % k or w % k:
                lr.fail(lr.key_path("kernel"), f"a size dividing the {h}x{w} input (non-overlapping pooling)", k)
            layer = LayerConfig(name, kind, shape, (c, h // k, w // k), k, k, 0, pool)
        elif kind == "flatten":
            flat = True
            layer = LayerConfig(name, kind, shape, (c * h * w, 1, 1))
        else:  # fc
            if not flat and (h, w) != (1, 1):
                lr.fail(lr.key_path("type"), "a flatten layer before the first fc layer", kind)
            flat = True
            out = lr.integer("out", 1)
            layer = LayerConfig(name, kind, shape, (out, 1, 1), source_shape=map_shape)
        lr.finish()
        layers.append(layer)
        shape = layer.out_shape
        if kind != "flatten":
            map_shape = shape
    if not layers[-1].weighted:
        raise ConfigError(f"{r.source}: {r.key_path('layers')}[{len(raw) - 1}]: "
                          f"expected the last layer to be conv or fc (the readout), got {layers[-1].type!r}")
    return tuple(layers)


def parse_net(data: Any, source: str = "<mapping>", base_dir: Path | None = None) -> NetConfig:
    """Build a validated NetConfig from a YAML mapping."""
    r = _Reader(source, data)
    name = r.string("name")
    shape = r.get("input_shape", lambda v: isinstance(v, list) and len(v) == 3 and all(_is_int(x) and x > 0 for x in v),
                  "a list [channels, height, width] of positive integers")
    input_shape = (shape[0], shape[1], shape[2])
    time_steps = r.integer("time_steps", 1, 65535)
    encoder = _parse_encoder(r.child("encoder"))
    neuron = _parse_neuron(r.child("neuron"))
    layers = _parse_layers(r, input_shape)
    readout = r.choice("readout", READOUTS, "count")
    chip = _parse_chip(r.child("chip"), base_dir)
    weighted_names = tuple(layer.name for layer in layers if layer.weighted)
    for name in chip.adc_layer_ranges:
        if name not in weighted_names:
            raise ConfigError(f"{source}: chip.adc_layer_ranges.{name}: unknown layer; expected a conv or fc "
                              f"layer of the net ({', '.join(weighted_names)})")
    learning = _parse_learning(r.child("learning"), weighted_names)
    presets = _parse_learning_presets(r, weighted_names)
    data_spec = r.string("data", "digits")
    weights = r.get("weights", lambda v: v is None or isinstance(v, str), "a weights file path or null", None)
    classes = layers[-1].n_out
    r.finish()
    if time_steps >= (1 << chip.counter_bits):
        pass  # counters saturate and are counted: a legal (if odd) configuration
    if encoder.events is not None:
        _check_event_shape(source, encoder, input_shape)
    if encoder.kind == "direct" and encoder.input_bits > 16:
        raise ConfigError(f"{source}: encoder.input_bits: expected <= 16, got {encoder.input_bits}")
    if weights is not None and base_dir is not None and not Path(weights).is_absolute():
        weights = str((base_dir / weights).resolve())
    return NetConfig(name, source, input_shape, time_steps, encoder, neuron, layers, readout,
                     chip, learning, data_spec, weights, classes, presets)


def _parse_learning_presets(r: _Reader, layer_names: tuple[str, ...]) -> tuple[tuple[str, LearningConfig], ...]:
    """`learning_presets: {NAME: {KEY: VALUE, ...}}`: each the learning section with those keys replaced,
    validated as a whole (errors name learning_presets.NAME.KEY)."""
    raw = r.get("learning_presets", lambda v: isinstance(v, dict), "a mapping of preset names to learning keys", {})
    section = r.data.get("learning") or {}
    presets = []
    for name, keys in raw.items():
        if not isinstance(name, str) or not name.isidentifier():
            r.fail(r.key_path("learning_presets"), "preset names that are identifiers (letters, digits, _)", name)
        if not isinstance(keys, dict):
            r.fail(f"learning_presets.{name}", "a mapping of learning keys to values", keys)
        merged = {**section, **keys}
        presets.append((name, _parse_learning(_Reader(r.source, merged, f"learning_presets.{name}"), layer_names)))
    return tuple(presets)


def _check_event_shape(source: str, encoder: EncoderConfig, input_shape: tuple[int, int, int]) -> None:
    ev = encoder.events
    c, h, w = input_shape
    channels = 2 if ev.polarity == "split" else 1
    if c != channels:
        raise ConfigError(f"{source}: input_shape: expected {channels} channel(s) for encoder.polarity "
                          f"{ev.polarity!r}, got {c}")
    if h > ev.sensor[1] or w > ev.sensor[0]:
        raise ConfigError(f"{source}: input_shape: expected at most the {ev.sensor[0]} x {ev.sensor[1]} sensor "
                          f"(encoder.sensor, width x height; downsampling only), got {w} x {h}")
    if ev.bin_value == "count" and ev.cap > (1 << encoder.input_bits) - 1:
        raise ConfigError(f"{source}: encoder.cap: {ev.cap} does not fit encoder.input_bits {encoder.input_bits}; "
                          f"expected cap <= {(1 << encoder.input_bits) - 1}")


def load_net(path: str | Path) -> NetConfig:
    """Load and validate a network YAML file."""
    path = Path(path)
    return parse_net(read_yaml(path, "a net YAML"), str(path), path.parent)


def read_yaml(path: Path, what: str):
    """The YAML document in `path`; a file that cannot be read, is not UTF-8 text or not YAML is one
    ConfigError naming the file (and the line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); expected {what} "
                          f"(UTF-8 text)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}; expected {what}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML ({where}{problem}); expected {what}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML (nested too deeply); expected {what}") from None


def replace_chip(net: NetConfig, **changes: Any) -> NetConfig:
    """A copy of `net` with chip fields changed (presets compose with dataclasses.replace)."""
    return dataclasses.replace(net, chip=dataclasses.replace(net.chip, **changes))


def chip_from_dict(data: dict) -> ChipConfig:
    """A ChipConfig from `NetConfig.to_dict()['chip']` (older files: missing costs take defaults)."""
    chip_keys = {f.name for f in dataclasses.fields(ChipConfig)}
    cost_keys = {f.name for f in dataclasses.fields(CostConfig)}
    costs = CostConfig(**{k: v for k, v in (data.get("costs") or {}).items() if k in cost_keys})
    return ChipConfig(**{k: v for k, v in data.items() if k in chip_keys and k != "costs"}, costs=costs)


# --------------------------------------------------------------------------- chip presets

#: What a chip preset (models/chips/*.yaml) may set: geometry, clock and costs. Register
#: widths and `delay` stay the net's: they decide results, a preset only re-prices them.
CHIP_PRESET_KEYS = ("tile_rows", "tile_cols", "clock_mhz", "costs")


@dataclass(frozen=True)
class ChipPreset:
    """A named chip: crossbar geometry, clock and per-operation costs, with its sources."""

    name: str
    source: str                        #: the preset file
    about: str
    sources: tuple[str, ...]           #: where its numbers come from
    settings: dict                     #: the chip-section keys it sets (validated)


def bundled_chips() -> list[str]:
    from chipsim.models import MODELS_DIR

    return sorted(p.stem for p in (MODELS_DIR / "chips").glob("*.yaml"))


def chip_preset_path(spec: str | Path) -> Path:
    """Path of a chip preset given a bundled name (models/chips/NAME.yaml) or a file path."""
    from chipsim.models import MODELS_DIR

    path = Path(spec)
    try:
        if path.is_file():
            return path
        name = path.name[:-5] if path.name.endswith(".yaml") else path.name
        bundled = MODELS_DIR / "chips" / f"{name}.yaml"
        if path.parent == Path(".") and bundled.is_file():
            return bundled
    except (OSError, ValueError):       # a name too long for the file system: no such preset either
        pass
    raise ConfigError(f"chip preset {str(spec)!r}: no such file, and not a bundled preset; expected a YAML "
                      f"path or one of: {', '.join(bundled_chips())}")


def load_chip(spec: str | Path) -> ChipPreset:
    """Load and validate a chip preset (a name from models/chips/ or a YAML path)."""
    path = chip_preset_path(spec)
    data = read_yaml(path, "a chip preset YAML")
    r = _Reader(str(path), data)
    name = r.string("name", path.stem)
    about = r.string("about", "")
    sources = r.get("sources", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                    "a list of source strings", [])
    settings = {key: r.get(key, lambda v: True, "") for key in CHIP_PRESET_KEYS if key in r.data}
    r.finish()
    _parse_chip(_Reader(str(path), dict(settings)))      # type and range checks, errors name the preset file
    return ChipPreset(name, str(path.resolve()), about, tuple(sources), settings)


def with_chip_preset(net: NetConfig, spec: str | Path) -> NetConfig:
    """`net` on another chip: the preset's geometry, clock and costs (all of them) replace the net's."""
    preset = load_chip(spec)
    base = {k: v for k, v in dataclasses.asdict(net.chip).items() if k not in CHIP_PRESET_KEYS}
    return dataclasses.replace(net, chip=_parse_chip(_Reader(preset.source, {**base, **preset.settings})))


def net_mapping_with_chip(net_path: str | Path, spec: str | Path) -> dict:
    """The YAML mapping of a net file with its chip section re-pointed at a chip preset.

    The preset's geometry, clock and costs replace the net's (`--chip` overrides
    the net); register widths and `delay` stay. Relative weight paths become
    absolute, so the mapping can be saved anywhere (e.g. as a run's net.yaml)."""
    net_path = Path(net_path)
    preset = load_chip(spec)
    data = read_yaml(net_path, "a net YAML")
    parse_net(data, str(net_path), net_path.parent)                 # validate before rewriting
    chip = {k: v for k, v in (data.get("chip") or {}).items()
            if k not in CHIP_PRESET_KEYS and k != "preset"}
    data["chip"] = {"preset": preset.source, **chip}
    weights = data.get("weights")
    if isinstance(weights, str) and not Path(weights).is_absolute():
        data["weights"] = str((net_path.parent / weights).resolve())
    return data
