"""Integer chip weights in HDF5.

Layout (conventional, framework-compatible tensor shapes; the chip maps them
onto crossbars itself)::

    /                      attrs: format, chipsim_version, net, weight_bits, provenance (JSON), accuracies
    /layers/<name>/weight  int8 (int16 when wider)  conv: (out, in_c, k, k); fc: (out, in), `in` in (C, H, W) order
    /layers/<name>/bias    int32  (out,)
        attrs: scale (real value of one LSB), threshold (int, in LSBs), weight_bits (signed cells:
               values in [-(2^(weight_bits-1) - 1), 2^(weight_bits-1) - 1])
    /teacher/<name>/weight float32, or weight_codes int8 + weight_scale float32 (one per output channel)
    /teacher/<name>/bias   float32

Real values: w = weight * scale, b = bias * scale, theta = threshold * scale.

The float teacher (host targets for calibration) is stored at float16
precision, or, for nets over `TEACHER_CODES_ABOVE` parameters (full-width
VGG-11: 10.5 M), as 8-bit codes with one scale per output channel, which
halves the file again; `store_teacher` rounds the parameters to exactly what
the file will hold, so the accuracy recorded for the teacher is the stored one's.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from chipsim import __version__
from chipsim.io.atomic import atomic_path
from chipsim.config import NetConfig

FORMAT = "chipsim-weights-1"
TEACHER_CODES_ABOVE = 2_000_000      #: teacher parameters above which the teacher is stored as 8-bit codes


class WeightsError(ValueError):
    """A weights file does not exist, is malformed, or does not fit the net."""


@dataclass
class LayerWeights:
    weight: np.ndarray     #: integer, conv (out, in_c, k, k) or fc (out, in)
    bias: np.ndarray       #: integer (out,)
    threshold: int         #: firing threshold in LSBs
    scale: float           #: real value of one LSB


@dataclass
class WeightBundle:
    layers: dict[str, LayerWeights]
    attrs: dict = field(default_factory=dict)   #: provenance, accuracies, ...
    teacher: dict = field(default_factory=dict)  #: float teacher ANN {name: (W, b)}, for host targets

    def copy(self) -> "WeightBundle":
        return WeightBundle({k: LayerWeights(v.weight.copy(), v.bias.copy(), v.threshold, v.scale)
                             for k, v in self.layers.items()}, dict(self.attrs),
                            {k: (w.copy(), b.copy()) for k, (w, b) in self.teacher.items()})


def _round_mantissa(x: np.ndarray, bits: int) -> np.ndarray:
    m, e = np.frexp(np.asarray(x, np.float64))
    return np.ldexp(np.round(m * (1 << bits)) / (1 << bits), e)


def teacher_codes(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric 8-bit codes of a teacher weight, one scale per output channel (axis 0).

    The scale keeps 16 mantissa bits, so 127 x scale is exact in float32 and
    coding the decoded weight again gives the same codes and scales."""
    flat = np.asarray(w, np.float32).reshape(len(w), -1)
    peak = np.abs(flat).max(axis=1).astype(np.float64)
    scale = _round_mantissa(peak / 127.0, 16).astype(np.float32)
    scale[scale == 0] = 1.0
    codes = np.clip(np.rint(flat / scale[:, None]), -127, 127).astype(np.int8)
    return codes.reshape(np.shape(w)), scale


def teacher_decode(codes: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (codes.reshape(len(codes), -1).astype(np.float32) * scale[:, None]).reshape(codes.shape)


def teacher_storage_for(params: dict) -> str:
    """How a teacher with these parameters is stored: 'float16' or 'int8-per-channel'."""
    n = sum(int(np.size(w)) + int(np.size(b)) for w, b in params.values())
    return "int8-per-channel" if n > TEACHER_CODES_ABOVE else "float16"


def store_teacher(params: dict, storage: str) -> dict:
    """The teacher parameters exactly as a weights file with this storage holds them (float32)."""
    if storage == "int8-per-channel":
        return {k: (teacher_decode(*teacher_codes(w)), np.asarray(b, np.float32)) for k, (w, b) in params.items()}
    return {k: tuple(np.asarray(a, np.float32).astype(np.float16).astype(np.float32) for a in v)
            for k, v in params.items()}


def stored_teacher(params: dict) -> tuple[dict, str]:
    """(the parameters as the file will hold them, the storage chosen for their size)."""
    storage = teacher_storage_for(params)
    return store_teacher(params, storage), storage


def expected_shape(layer) -> tuple[int, ...]:
    if layer.type == "conv":
        return (layer.out_shape[0], layer.in_shape[0], layer.kernel, layer.kernel)
    return (layer.out_shape[0], layer.fan_in)


def check_bundle(net: NetConfig, bundle: WeightBundle, source: str) -> None:
    """Raise WeightsError unless every weighted layer of `net` has weights of the right shape and range."""
    wmax = net.chip.weight_max
    bmax = net.chip.bias_max
    for layer in net.weighted_layers:
        if layer.name not in bundle.layers:
            raise WeightsError(f"{source}: layers/{layer.name}: missing; expected weights for every "
                               f"weighted layer of net '{net.name}'")
        lw = bundle.layers[layer.name]
        shape = expected_shape(layer)
        if lw.weight.shape != shape:
            raise WeightsError(f"{source}: layers/{layer.name}/weight: expected shape {shape}, got {lw.weight.shape}")
        if lw.bias.shape != (shape[0],):
            raise WeightsError(f"{source}: layers/{layer.name}/bias: expected shape ({shape[0]},), got {lw.bias.shape}")
        if lw.weight.size and np.abs(lw.weight).max() > wmax:
            raise WeightsError(f"{source}: layers/{layer.name}/weight: expected values in [-{wmax}, {wmax}] "
                               f"(chip.weight_bits={net.chip.weight_bits}), got max |w| = {np.abs(lw.weight).max()}")
        if lw.bias.size and np.abs(lw.bias).max() > bmax:
            raise WeightsError(f"{source}: layers/{layer.name}/bias: expected values in [-{bmax}, {bmax}] "
                               f"(chip.bias_bits={net.chip.bias_bits}), got max |b| = {np.abs(lw.bias).max()}")
        if not 0 < lw.threshold <= net.chip.membrane_max:
            raise WeightsError(f"{source}: layers/{layer.name}: threshold: expected an integer in "
                               f"[1, {net.chip.membrane_max}], got {lw.threshold}")


def save_weights(path: str | Path, bundle: WeightBundle, net: NetConfig) -> None:
    """Write a bundle for `net` atomically (compressed integer datasets); every layer records the
    net's weight bit width."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for key, value in bundle.attrs.items():
                f.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
            f.attrs["format"] = FORMAT
            f.attrs["chipsim_version"] = __version__
            f.attrs["net"] = net.name
            f.attrs["weight_bits"] = net.chip.weight_bits
            group = f.create_group("layers")
            for name, lw in bundle.layers.items():
                g = group.create_group(name)
                narrow = np.abs(lw.weight).max(initial=0) <= 127       # int8 compresses a quarter smaller
                g.create_dataset("weight", data=lw.weight.astype(np.int8 if narrow else np.int16),
                                 compression="gzip", compression_opts=9)
                g.create_dataset("bias", data=lw.bias.astype(np.int32), compression="gzip", compression_opts=9)
                g.attrs["threshold"] = int(lw.threshold)
                g.attrs["scale"] = float(lw.scale)
                g.attrs["weight_bits"] = net.chip.weight_bits
                g.attrs["units"] = "LSB; real value = integer * scale"
            if bundle.teacher:
                tg = f.create_group("teacher")
                tg.attrs["about"] = "float teacher ANN (ReLU hidden layers), input = pixel / pixel_max"
                codes = bundle.attrs.get("teacher_storage") == "int8-per-channel"
                for name, (w, b) in bundle.teacher.items():
                    g = tg.create_group(name)
                    if codes:
                        q, scale = teacher_codes(w)
                        g.create_dataset("weight_codes", data=q, compression="gzip", compression_opts=9)
                        g.create_dataset("weight_scale", data=scale)
                    else:
                        g.create_dataset("weight", data=np.asarray(w, np.float32), compression="gzip",
                                         compression_opts=9)
                    g.create_dataset("bias", data=np.asarray(b, np.float32), compression="gzip", compression_opts=9)


def _teacher_weight(g) -> np.ndarray:
    if "weight_codes" in g:
        return teacher_decode(g["weight_codes"][()], g["weight_scale"][()])
    return g["weight"][()]


def load_weights(path: str | Path) -> WeightBundle:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file; expected an HDF5 file written by chipsim")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise WeightsError(f"{path}: attribute 'format': expected {FORMAT!r}, got {f.attrs.get('format')!r}")
            layers = {}
            for name, g in f["layers"].items():
                layers[name] = LayerWeights(_int_array(path, f"layers/{name}/weight", g["weight"][()], np.int32),
                                            _int_array(path, f"layers/{name}/bias", g["bias"][()], np.int64),
                                            _attr_number(path, f"layers/{name}@threshold", g.attrs["threshold"], int),
                                            _attr_number(path, f"layers/{name}@scale", g.attrs["scale"], float))
            teacher = {name: (_teacher_weight(g), g["bias"][()]) for name, g in f["teacher"].items()} \
                if "teacher" in f else {}
            attrs = {}
            for key, value in f.attrs.items():
                if isinstance(value, str) and value[:1] in "{[":
                    try:
                        value = json.loads(value)
                    except json.JSONDecodeError:
                        pass
                attrs[key] = value.item() if isinstance(value, np.generic) else value
    except (OSError, KeyError, TypeError, AttributeError) as exc:
        raise WeightsError(f"{path}: not a readable chipsim weights file: {exc}; expected an HDF5 file written "
                           f"by chipsim") from None
    _check_declared_width(path, attrs, layers)
    return WeightBundle(layers, attrs, teacher)


def _check_declared_width(path, attrs: dict, layers: dict) -> None:
    """The file's /@weight_bits, when present, is a register width (2..16) its weights fit: a file whose
    own width is corrupt is refused, whatever net it is used with."""
    if "weight_bits" not in attrs:
        return
    bits = attrs["weight_bits"]
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 16:
        raise WeightsError(f"{path}: /@weight_bits: expected the register width the file was written for, an "
                           f"integer in [2, 16], got {bits!r}")
    wmax = (1 << (int(bits) - 1)) - 1
    for name, lw in layers.items():
        if lw.weight.size and np.abs(lw.weight).max() > wmax:
            raise WeightsError(f"{path}: layers/{name}/weight: values up to {np.abs(lw.weight).max()} exceed the "
                               f"file's own /@weight_bits = {bits} (at most {wmax}); expected a consistent file")


def _int_array(path, where: str, value, dtype) -> np.ndarray:
    """An integer dataset as `dtype`: floats (even whole ones), text and values beyond `dtype` are refused."""
    value = np.asarray(value)
    if value.dtype.kind not in "iu":
        raise WeightsError(f"{path}: {where}: expected integers (register levels), got {value.dtype}")
    info = np.iinfo(dtype)
    if value.size and (value.min() < info.min or value.max() > info.max):
        raise WeightsError(f"{path}: {where}: values {value.min()}..{value.max()} beyond {np.dtype(dtype)}; "
                           f"expected register levels of the net's widths")
    return value.astype(dtype)


def _attr_number(path, where: str, value, kind):
    """A positive finite scalar attribute (threshold: an integer, scale: a number)."""
    v = value.item() if isinstance(value, np.generic) else value
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and v > 0
    if ok and kind is int:
        ok = float(v).is_integer()
    if not ok:
        raise WeightsError(f"{path}: {where}: expected a positive finite {'integer' if kind is int else 'number'}, "
                           f"got {value!r}")
    return kind(v)


def random_weights(net: NetConfig, seed: int, rate_target: float = 0.1) -> WeightBundle:
    """Seeded random integer weights (for benchmarks and smoke tests, not for accuracy).

    Thresholds are set so a layer receiving inputs at `rate_target` fires at
    roughly that rate too: theta ~ std of the input current.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    wmax = net.chip.weight_max
    layers = {}
    for layer in net.weighted_layers:
        shape = expected_shape(layer)
        w = np.clip(np.round(rng.normal(0, wmax / 3, size=shape)), -wmax, wmax).astype(np.int32)
        fan_in = layer.fan_in
        active = max(1.0, rate_target * fan_in)
        theta = int(max(1, round(np.sqrt(active) * wmax / 3 * 1.0)))
        layers[layer.name] = LayerWeights(w, np.zeros(shape[0], np.int64), theta, 1.0 / theta)
    return WeightBundle(layers, {"provenance": json.dumps({"kind": "random", "seed": seed})})
