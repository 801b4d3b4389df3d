"""Synapse device presets (`--synapse NAME|FILE`, models/synapses/*.yaml) turned into kernel arrays.

The pulse response itself is kernels/device.py; this module reads a preset,
validates it (errors name the file and key), and lays out what the kernels
read: `dparams` (L, N_DPARAMS) float64, `dkeys` (L, 2) uint64 (device-to-
device and cycle-to-cycle keys per layer, noise/seeding.py), and the per-cell
arrays of `SynapseCells` (fixed-point state, writes per cell, frozen mask).

Units. Bounds are in device units with the register bound wmax at w = 1, as
aihwkit's weights are in [-1, 1]. The step of a pulse is one register level
(the learning rule's `pulse` sets how many fire). aihwkit's cycle-to-cycle
spread `dw_min_std` is relative to its own `dw_min`; with `dw_min` given, the
preset keeps aihwkit's absolute spread, so the kernel's relative spread is
c2c = dw_min_std * dw_min * wmax / wstep (per layer); without it,
`dw_min_std` is taken relative to the chip's step.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from chipsim.config import ConfigError, _Reader
from chipsim.core.kernels import device as D

from chipsim.models import MODELS_DIR

SYNAPSES_DIR = MODELS_DIR / "synapses"
MODELS = {"linear": D.DEV_LINEAR, "softbounds": D.DEV_SOFTBOUNDS, "linearstep": D.DEV_LINEARSTEP,
          "expstep": D.DEV_EXPSTEP, "powstep": D.DEV_POWSTEP}
FAIL_MODES = {"current": D.FAIL_CURRENT, "low": D.FAIL_LOW, "high": D.FAIL_HIGH}
#: keys that only some models read: a preset giving one to another model is refused
MODEL_KEYS = {
    "gamma_up": ("linearstep", "expstep"), "gamma_down": ("linearstep", "expstep"),
    "gamma_up_dtod": ("linearstep",), "gamma_down_dtod": ("linearstep",),
    "A_up": ("expstep",), "A_down": ("expstep",), "a": ("expstep",), "b": ("expstep",),
    "pow_gamma": ("powstep",), "pow_gamma_dtod": ("powstep",), "pow_up_down": ("powstep",),
    "pow_up_down_dtod": ("powstep",),
}


@dataclass(frozen=True)
class SynapseModel:
    name: str = "linear"
    model: str = "linear"
    sources: tuple[str, ...] = ()
    note: str = ""
    w_max: float = 1.0
    w_min: float = -1.0
    w_max_dtod: float = 0.0
    w_min_dtod: float = 0.0
    dw_min: float | None = None       #: aihwkit's step (device units); only converts dw_min_std
    dw_min_dtod: float = 0.0
    dw_min_std: float = 0.0
    up_down: float = 0.0
    up_down_dtod: float = 0.0
    gamma_up: float = 0.0
    gamma_down: float = 0.0
    gamma_up_dtod: float = 0.0
    gamma_down_dtod: float = 0.0
    A_up: float = 0.0
    A_down: float = 0.0
    a: float = 0.0
    b: float = 0.0
    pow_gamma: float = 1.0
    pow_gamma_dtod: float = 0.0
    pow_up_down: float = 0.0
    pow_up_down_dtod: float = 0.0
    endurance: int = 0                #: writes a cell takes (0: unlimited); the next one fails it
    fail_at: str = "current"          #: current | low | high
    source_file: str = field(default="<default>", compare=False)

    @property
    def is_ideal(self) -> bool:
        """The plain register write of today: linear, no variation, no endurance limit."""
        ideal = SynapseModel()
        return all(getattr(self, k) == getattr(ideal, k) for k in ("model", "w_max", "w_min", "w_max_dtod",
                                                                   "w_min_dtod", "dw_min_dtod", "dw_min_std",
                                                                   "up_down", "up_down_dtod", "endurance"))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sources"] = list(self.sources)
        return d


def preset_names() -> list[str]:
    return sorted(p.stem for p in SYNAPSES_DIR.glob("*.yaml"))


def resolve_synapse(spec: str | None) -> SynapseModel:
    """A preset name (models/synapses/NAME.yaml) or a YAML file; None is the linear default."""
    if spec is None:
        return SynapseModel()
    path = Path(spec)
    if not (spec.endswith((".yaml", ".yml")) or path.is_file()):
        path = SYNAPSES_DIR / f"{spec}.yaml"
        if not path.is_file():
            raise ConfigError(f"--synapse {spec}: no such preset or file; expected a YAML file or one of "
                              f"{', '.join(preset_names())}")
    elif not path.is_file():
        raise ConfigError(f"--synapse {spec}: no such file; expected a YAML file or one of {', '.join(preset_names())}")
    return load_synapse(path)


def load_synapse(path: str | Path) -> SynapseModel:
    import yaml

    source = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{source}: unreadable synapse preset ({type(exc).__name__}: {exc}); expected YAML") from None
    return parse_synapse(source, data)


def parse_synapse(source: str, data) -> SynapseModel:
    r = _Reader(source, data)
    model = r.choice("model", tuple(MODELS))
    for key, models in MODEL_KEYS.items():
        if key in r.data and model not in models:
            raise ConfigError(f"{source}: {key}: applies to model {' or '.join(models)}, not {model!r}; "
                              f"expected it removed or model: {models[0]}")
    sources = r.get("sources", lambda v: isinstance(v, list) and all(isinstance(s, str) and s for s in v),
                    "a list of citations (strings)", [])
    values = dict(
        name=r.string("name", Path(source).stem), model=model, sources=tuple(sources), note=r.string("note", ""),
        w_max=r.number("w_max", 0.0, 10.0, 1.0), w_min=r.number("w_min", -10.0, 0.0, -1.0),
        w_max_dtod=r.number("w_max_dtod", 0.0, 1.0, 0.0), w_min_dtod=r.number("w_min_dtod", 0.0, 1.0, 0.0),
        dw_min=r.number("dw_min", 0.0, 1.0) if "dw_min" in r.data else None,
        dw_min_dtod=r.number("dw_min_dtod", 0.0, 1.0, 0.0), dw_min_std=r.number("dw_min_std", 0.0, 100.0, 0.0),
        up_down=r.number("up_down", -1.0, 1.0, 0.0), up_down_dtod=r.number("up_down_dtod", 0.0, 1.0, 0.0),
        gamma_up=r.number("gamma_up", -100.0, 100.0, 0.0), gamma_down=r.number("gamma_down", -100.0, 100.0, 0.0),
        gamma_up_dtod=r.number("gamma_up_dtod", 0.0, 10.0, 0.0),
        gamma_down_dtod=r.number("gamma_down_dtod", 0.0, 10.0, 0.0),
        A_up=r.number("A_up", -1000.0, 1000.0, 0.0), A_down=r.number("A_down", -1000.0, 1000.0, 0.0),
        a=r.number("a", -100.0, 100.0, 0.0), b=r.number("b", -100.0, 100.0, 0.0),
        pow_gamma=r.number("pow_gamma", 0.0, 100.0, 1.0), pow_gamma_dtod=r.number("pow_gamma_dtod", 0.0, 1.0, 0.0),
        pow_up_down=r.number("pow_up_down", -1.0, 1.0, 0.0),
        pow_up_down_dtod=r.number("pow_up_down_dtod", 0.0, 1.0, 0.0),
        endurance=r.integer("endurance", 0, 2**62, 0), fail_at=r.choice("fail_at", tuple(FAIL_MODES), "current"),
    )
    r.finish()
    if values["w_max"] <= 0.0 or values["w_min"] >= 0.0:
        bad = "w_max" if values["w_max"] <= 0.0 else "w_min"
        raise ConfigError(f"{source}: {bad}: expected w_min < 0 < w_max (a signed cell, e.g. a differential pair), "
                          f"got w_min {values['w_min']}, w_max {values['w_max']}")
    return SynapseModel(**values, source_file=source)


def device_params(chip, model: SynapseModel, learning_layers: np.ndarray, force: bool = False) -> np.ndarray:
    """(L, N_DPARAMS) float64: the model's parameters for each learning layer (D_ON set where the
    device path runs: a non-ideal model, or `force`, e.g. for stuck cells)."""
    L = len(chip.layers)
    dp = np.zeros((L, D.N_DPARAMS), np.float64)
    on = force or not model.is_ideal
    for li in range(L):
        if not learning_layers[li]:
            continue
        row = dp[li]
        row[D.D_ON] = 1.0 if on else 0.0
        row[D.D_MODEL] = MODELS[model.model]
        row[D.D_W_MAX], row[D.D_W_MIN] = model.w_max, model.w_min
        row[D.D_W_MAX_DTOD], row[D.D_W_MIN_DTOD] = model.w_max_dtod, model.w_min_dtod
        row[D.D_DW_DTOD] = model.dw_min_dtod
        row[D.D_UP_DOWN], row[D.D_UP_DOWN_DTOD] = model.up_down, model.up_down_dtod
        wmax = float(chip.registers.weight_max[li])
        wstep = float(chip.registers.weight_step[li])
        row[D.D_C2C] = model.dw_min_std * (model.dw_min * wmax / wstep if model.dw_min else 1.0)
        row[D.D_GAMMA_UP], row[D.D_GAMMA_DOWN] = model.gamma_up, model.gamma_down
        row[D.D_GAMMA_UP_DTOD], row[D.D_GAMMA_DOWN_DTOD] = model.gamma_up_dtod, model.gamma_down_dtod
        row[D.D_A_UP], row[D.D_A_DOWN], row[D.D_ES_A], row[D.D_ES_B] = model.A_up, model.A_down, model.a, model.b
        row[D.D_POW_GAMMA], row[D.D_POW_GAMMA_DTOD] = model.pow_gamma, model.pow_gamma_dtod
        row[D.D_POW_UP_DOWN], row[D.D_POW_UP_DOWN_DTOD] = model.pow_up_down, model.pow_up_down_dtod
        row[D.D_ENDURANCE] = float(model.endurance)
        row[D.D_FAIL] = FAIL_MODES[model.fail_at]
        row[D.D_ANY_FROZEN] = 1.0 if (force or model.endurance > 0) else 0.0
    return dp


def device_keys(seed: int, n_layers: int) -> np.ndarray:
    from chipsim.noise.seeding import key64

    return np.array([[key64(seed, "synapse", li, "d2d"), key64(seed, "synapse", li, "c2c")]
                     for li in range(n_layers)], np.uint64).reshape(n_layers, 2)


@dataclass
class SynapseCells:
    """Per-cell arrays beside the weight register, one entry per crossbar cell of the chip."""

    state: np.ndarray       #: int32, the cell's conductance in LSBs with D.FRAC_BITS fraction bits
    writes: np.ndarray      #: uint32, ticks in which the cell was written (over a run and its resumes)
    frozen: np.ndarray      #: uint8, 1: stuck (--noise stuck) or failed (endurance); writes do nothing

    def resync(self, chip) -> int:
        """Put the state of every cell whose weight register does not read it back (a cell the plain
        register write or a noise model changed since) at its register value; returns how many."""
        r = chip.registers
        fixed = 0
        for li, layer in enumerate(chip.layers):
            if not layer.weighted:
                continue
            ws = chip.weight_slice(layer.name)
            wstep, wmax = int(r.weight_step[li]), int(r.weight_max[li])
            unit = wstep << D.FRAC_BITS
            g = self.state[ws].astype(np.int64)
            reads = np.clip(((g + (unit >> 1)) // unit) * wstep, -wmax, wmax)
            w = r.weights[ws].astype(np.int64)
            stale = reads != w
            if stale.any():
                part = self.state[ws]
                part[stale] = (w[stale] << D.FRAC_BITS).astype(np.int32)
                self.state[ws] = part
                fixed += int(stale.sum())
        return fixed

    @classmethod
    def of(cls, weights: np.ndarray) -> "SynapseCells":
        return cls(weights.astype(np.int32) << D.FRAC_BITS, np.zeros(weights.size, np.uint32),
                   np.zeros(weights.size, np.uint8))

    def save(self, f) -> None:
        g = f.create_group("synapse_cells")
        for name in ("state", "writes", "frozen"):
            g.create_dataset(name, data=getattr(self, name), compression="gzip", compression_opts=1)

    @classmethod
    def load(cls, f, n_cells: int) -> "SynapseCells | None":
        if "synapse_cells" not in f:
            return None
        g = f["synapse_cells"]
        arrays = {}
        for name, dtype in (("state", np.int32), ("writes", np.uint32), ("frozen", np.uint8)):
            a = g[name][()]
            if a.shape != (n_cells,) or a.dtype != dtype:
                raise ValueError(f"{f.filename}: synapse_cells/{name}: expected {n_cells} {np.dtype(dtype)} values, "
                                 f"got {a.dtype} {a.shape}")
            arrays[name] = a
        return cls(**arrays)


def writes_summary(writes: np.ndarray, chip, layers) -> dict:
    """Distribution of writes per cell over the learning layers' cells: mean, p99, max, histogram."""
    out = {}
    for name in layers:
        w = writes[chip.weight_slice(name)]
        out[name] = _distribution(w)
    allw = np.concatenate([writes[chip.weight_slice(n)] for n in layers]) if layers else np.zeros(0, np.uint32)
    return {"all": _distribution(allw), "layers": out}


def _distribution(w: np.ndarray) -> dict:
    if w.size == 0:
        return {"cells": 0}
    top = int(w.max())
    edges = np.unique(np.concatenate([[0], np.geomspace(1, max(top, 1) + 1, 24).astype(np.int64)]))
    hist, _ = np.histogram(w, bins=np.append(edges, edges[-1] + 1) if edges.size == 1 else edges)
    return {"cells": int(w.size), "mean": float(w.mean()), "p99": float(np.percentile(w, 99)), "max": top,
            "written_fraction": float((w > 0).mean()), "hist_edges": edges.tolist(), "hist_counts": hist.tolist()}


def restore_cells(chip, path) -> None:
    """Load the synapse cells (state, writes, frozen mask) saved beside a chip state, if it has them."""
    import h5py

    with h5py.File(path, "r") as f:
        cells = SynapseCells.load(f, chip.registers.weights.size)
    if cells is not None:
        chip.synapse_cells = cells
