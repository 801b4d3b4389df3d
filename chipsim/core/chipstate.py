"""A deployed chip's registers in HDF5: calibrated weights, checkpoints.

Unlike a weights file (nominal integer weights in conventional layout), a
chip state holds the registers of one particular simulated chip as they are,
with its frozen noise (mismatch, quantization, silencing) baked in. Loading
it with `--weights` restores that chip exactly; only dynamic noise is drawn.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np

from chipsim import __version__
from chipsim.io.atomic import atomic_path

FORMAT = "chipsim-chip-state-1"


def is_chip_state(path: str | Path) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == FORMAT
    except OSError:
        return False


def write_state(f: h5py.File, chip, attrs: dict) -> None:
    f.attrs["format"] = FORMAT
    f.attrs["chipsim_version"] = __version__
    f.attrs["net"] = chip.net.name
    for key, value in attrs.items():
        f.attrs[key] = json.dumps(value, default=str)
    g = f.create_group("registers")
    for field in dataclasses.fields(chip.registers):
        g.create_dataset(field.name, data=getattr(chip.registers, field.name), compression="gzip",
                         compression_opts=4)
    g.attrs["write_noise_spread"] = float(chip.write_noise[0])
    g.create_dataset("write_noise_keys", data=chip.write_noise[1])
    g.create_dataset("scales", data=np.array([chip.scales.get(n, np.nan) for n in chip.layer_names]))


def save_state(path: str | Path, chip, attrs: dict, extra: dict[str, np.ndarray] | None = None,
               cells=None) -> None:
    """`cells`: the chip's SynapseCells (chipsim/core/synapse.py), saved beside the registers."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            write_state(f, chip, attrs)
            if cells is not None:
                cells.save(f)
            for key, value in (extra or {}).items():
                f.create_dataset(key, data=value)


def read_attrs(path: str | Path) -> dict:
    with h5py.File(path, "r") as f:
        out = {}
        for key, value in f.attrs.items():
            try:
                out[key] = json.loads(value) if isinstance(value, str) else value
            except json.JSONDecodeError:
                out[key] = value
        return out


def restore_state(chip, path: str | Path) -> None:
    """Overwrite `chip`'s registers with the saved ones (shapes must match the net)."""
    try:
        _restore_state(chip, path)
    except OSError as exc:          # damaged HDF5 (truncated, bits flipped): h5py's errors name no file
        raise ValueError(f"{path}: unreadable chip state ({str(exc).splitlines()[0] if str(exc) else exc}); "
                         f"expected an HDF5 chip state written by chipsim") from None


def _restore_state(chip, path: str | Path) -> None:
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"{path}: attribute 'format': expected {FORMAT!r}, got {f.attrs.get('format')!r}")
        if f.attrs.get("net") != chip.net.name:
            raise ValueError(f"{path}: chip state of net {f.attrs.get('net')!r}, expected {chip.net.name!r}")
        try:
            g = f["registers"]
            values = {}
            for field in dataclasses.fields(chip.registers):
                current = getattr(chip.registers, field.name)
                saved = g[field.name][()]
                values[field.name] = _checked(path, f"registers/{field.name}", saved, current)
            spread = g.attrs["write_noise_spread"]
            if not (isinstance(spread, (int, float, np.integer, np.floating)) and np.isfinite(spread) and spread >= 0):
                raise ValueError(f"{path}: registers@write_noise_spread: expected a number >= 0, got {spread!r}")
            keys = _checked(path, "registers/write_noise_keys", g["write_noise_keys"][()], chip.write_noise[1])
            scales = g["scales"][()]
            if scales.dtype.kind != "f" or scales.shape != (len(chip.layer_names),):
                raise ValueError(f"{path}: registers/scales: expected {len(chip.layer_names)} floats, got "
                                 f"{scales.dtype} {scales.shape}")
        except KeyError as exc:
            raise ValueError(f"{path}: {exc.args[0] if exc.args else 'a register'}: missing; expected a chip state "
                             f"written by chipsim (registers/...)") from None
        chip.registers = type(chip.registers)(**values)
        chip.write_noise = (float(spread), keys)
        for name, scale in zip(chip.layer_names, scales):
            if np.isfinite(scale):
                chip.scales[name] = float(scale)


def _checked(path, where: str, saved: np.ndarray, current) -> np.ndarray:
    """A saved register array of the shape and kind of the chip's own, with values its dtype holds."""
    current = np.asarray(current)
    if saved.shape != current.shape:
        raise ValueError(f"{path}: {where}: expected shape {current.shape}, got {saved.shape}")
    kinds = "iub" if current.dtype.kind in "iub" else "f"
    if saved.dtype.kind not in kinds:
        raise ValueError(f"{path}: {where}: expected {current.dtype} values, got {saved.dtype}")
    if kinds == "f":
        return saved.astype(current.dtype)
    info = np.iinfo(current.dtype) if current.dtype.kind != "b" else None
    if info is not None and saved.size and (saved.min() < info.min or saved.max() > info.max):
        raise ValueError(f"{path}: {where}: values {saved.min()}..{saved.max()} do not fit {current.dtype}; "
                         f"expected a chip state written by chipsim")
    return saved.astype(current.dtype)


def blank_bundle(net):
    """Zero weights of the right shapes: a skeleton to restore a chip state into."""
    from chipsim.core.weights import LayerWeights, WeightBundle, expected_shape

    return WeightBundle({layer.name: LayerWeights(np.zeros(expected_shape(layer), np.int32),
                                                  np.zeros(layer.out_shape[0], np.int64), 1, 1.0)
                         for layer in net.weighted_layers})
