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

from . import __version__
from .atomic import atomic_path

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


def save_state(path: str | Path, chip, attrs: dict, extra: dict[str, np.ndarray] | None = None) -> None:
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            write_state(f, chip, attrs)
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
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"{path}: attribute 'format': expected {FORMAT!r}, got {f.attrs.get('format')!r}")
        if f.attrs.get("net") != chip.net.name:
            raise ValueError(f"{path}: chip state of net {f.attrs.get('net')!r}, expected {chip.net.name!r}")
        g = f["registers"]
        values = {}
        for field in dataclasses.fields(chip.registers):
            current = getattr(chip.registers, field.name)
            saved = g[field.name][()]
            if saved.shape != current.shape:
                raise ValueError(f"{path}: registers/{field.name}: expected shape {current.shape}, got {saved.shape}")
            values[field.name] = saved
        chip.registers = type(chip.registers)(**values)
        chip.write_noise = (float(g.attrs["write_noise_spread"]), g["write_noise_keys"][()])
        for name, scale in zip(chip.layer_names, g["scales"][()]):
            if np.isfinite(scale):
                chip.scales[name] = float(scale)


def blank_bundle(net):
    """Zero weights of the right shapes: a skeleton to restore a chip state into."""
    from .weights import LayerWeights, WeightBundle, expected_shape

    return WeightBundle({layer.name: LayerWeights(np.zeros(expected_shape(layer), np.int32),
                                                  np.zeros(layer.out_shape[0], np.int64), 1, 1.0)
                         for layer in net.weighted_layers})
