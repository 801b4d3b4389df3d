"""The Python API: deploy a net on the simulated chip, evaluate it, add noise, calibrate, save, sweep.

    import chipsim
    chip = chipsim.deploy("digits", noise=["mismatch=0.4"], seed=0)
    before = chip.evaluate()
    chip.calibrate(epochs=1)
    after = chip.evaluate()
    print(before.accuracy, after.accuracy, after.counters.sel(layer="fc2", counter="spikes"))

Every call goes through the same code as the command line (chipsim/workflows/runner.py,
chipsim/workflows/calibrate.py, chipsim/workflows/sweep.py): `chipsim run` is `deploy(...).evaluate(...)`,
`--calibrate-epochs N` is `.calibrate(N)`, and results are bit-identical.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from chipsim.config import NetConfig
from chipsim.architect.labelled import Counters

__all__ = ["load_net", "deploy", "DeployedChip", "Result", "Calibration", "sweep"]


def _net_path(net: str | Path | NetConfig) -> str:
    if isinstance(net, NetConfig):
        if not Path(net.source).is_file():
            raise ValueError(f"net {net.name!r}: built from a mapping ({net.source}); expected a net loaded from a "
                             "YAML file (chipsim.load_net(path)) so runs can name it")
        return net.source
    from chipsim.models import resolve_net

    return str(resolve_net(net))


def load_net(spec: str | Path) -> NetConfig:
    """A validated net: a bundled name (`chipsim nets`: "digits", "vgg11", ...) or a YAML path.

    Raises chipsim.config.ConfigError (bad YAML, naming file and key) or FileNotFoundError."""
    from chipsim.config import load_net as _load
    from chipsim.models import resolve_net

    return _load(resolve_net(spec))


@dataclass
class Result:
    """What one evaluation measured. Counters are exact integers, summed over the samples."""

    accuracy: float
    predictions: np.ndarray             #: (samples,) class index
    labels: np.ndarray                  #: (samples,)
    counters: Counters                  #: dims (layer, counter): totals over samples and ticks
    counters_per_tick: Counters         #: dims (tick, layer, counter), summed over samples
    summary: dict                       #: the run's summary.json content (cost, synops, NeuroBench metrics ...)
    traces: dict = field(default_factory=dict)   #: with `record`: {"spikes"|"membrane": {layer: (N, T, neurons)}}

    def __repr__(self) -> str:
        return f"Result(accuracy={self.accuracy:.4f}, samples={len(self.labels)})"


@dataclass
class Calibration:
    """What one on-chip calibration did (the summary.json of `chipsim run --calibrate-epochs`)."""

    accuracy_before: float
    accuracy_after: float
    accuracy_per_epoch: list
    learning: Counters                  #: dims (layer, counter): the learning layers' gated updates, pulses, ...
    summary: dict
    out: Path                           #: folder with calibrated.h5, run.h5, summary.json

    def __repr__(self) -> str:
        return f"Calibration(accuracy_before={self.accuracy_before:.4f}, accuracy_after={self.accuracy_after:.4f})"


class DeployedChip:
    """A net deployed on the simulated chip, with its frozen noise. Made by `chipsim.deploy`."""

    def __init__(self, net_path: str, weights: str | None, noise: tuple[str, ...], seed: int, keep: Path | None):
        from chipsim.workflows.runner import deploy as _deploy, resolve_net_option, resolve_weights

        self.net_path = net_path
        self.weights = weights
        self.noise = noise
        self.seed = seed
        self._keep = keep                   # a temporary folder (chip preset net.yaml), removed with the object
        self.net: NetConfig = resolve_net_option(net_path)
        bundle, source = resolve_weights(self.net, weights, seed)
        self.chip, self.noise_report = _deploy(self.net, bundle, source, noise, seed)
        self.calibrated: Path | None = None   #: the chip state of the last calibration, if any

    def __repr__(self) -> str:
        return f"DeployedChip(net={self.net.name!r}, noise={list(self.noise)}, seed={self.seed})"

    @property
    def layer_names(self) -> tuple[str, ...]:
        return self.chip.layer_names

    def evaluate(self, data: str | None = None, samples: int | None = None, record: Iterable[str] = (),
                 split: str = "test", batch_size: int = 64, out: str | Path | None = None) -> Result:
        """Run inference on a dataset split with the chip as it is now (calibrated or not).

        `data`: a dataset spec (default: the net's); `samples`: the first N (class-balanced);
        `record`: "spikes" and/or "membrane" traces, returned per layer in `Result.traces`;
        `out`: also write summary.json and run.h5 there, as `chipsim run --out` does."""
        from chipsim.workflows.runner import RunOptions, run_inference

        record = tuple(record)
        opts = RunOptions(net=self.net_path, data=data, split=split, samples=samples, batch_size=batch_size,
                          seed=self.seed, record=record, out=Path(out) if out else None)
        traces: dict = {}
        if record:
            traces = self._traces(opts)
        outcome = run_inference(opts, deployed=(self.chip, self.noise_report))
        names = self.chip.layer_names
        return Result(outcome.summary["accuracy"], outcome.predictions, outcome.labels,
                      Counters.from_table(outcome.counters.sum(axis=0), names),
                      Counters.from_table(outcome.counters, names, ("tick",)), outcome.summary, traces)

    def _traces(self, opts) -> dict:
        """Traces per layer, recorded by running the same batches again with recording on (same results)."""
        from chipsim.hostlink.encoders import make_encoder
        from chipsim.workflows.runner import encoder_key, load_inputs

        net = self.net
        data = load_inputs(net, opts.data or net.data, opts.split, opts.samples)
        enc = make_encoder(net, data.pixel_max, encoder_key(opts.seed))
        ids = np.arange(len(data))
        res = self.chip.run(enc.encode(data.images[ids], ids), opts.record, ids)
        out = {}
        for kind, arr in (("spikes", res.spikes), ("membrane", res.membrane)):
            if arr is not None:
                out[kind] = {name: arr[:, :, self.chip.layer_slice(name)] for name in self.chip.layer_names}
        return out

    def calibrate(self, epochs: int = 1, data: str | None = None, calib_samples: int | None = None,
                  learn: Mapping[str, object] | None = None, samples: int | None = None, batch_size: int = 64,
                  out: str | Path | None = None, synapse: str | None = None) -> Calibration:
        """On-chip online LTL from the deployed chip: `epochs` over the training split (`calib_samples` of it),
        with `learn` overriding the net's learning section ({"pulse": 2, "mode": "exact"}, ...). Afterwards
        this chip holds the calibrated registers. `out`: keep the run folder there (default: a temporary one).
        `synapse`: the learning cells' device, as `--synapse` (a models/synapses preset name or a YAML file)."""
        from chipsim.workflows.calibrate import CalibOptions, run_calibration
        from chipsim.core.chipstate import restore_state

        if self.calibrated is not None:
            raise ValueError("calibrate(): this chip is calibrated already; calibrate() starts from the deployed "
                             "chip, so deploy again (or ask for more epochs in one call)")
        folder = Path(out) if out else Path(tempfile.mkdtemp(prefix="chipsim-calibration-"))
        items = tuple(f"{k}={v}" for k, v in (learn or {}).items())
        opts = CalibOptions(net=self.net_path, weights=self.weights, data=data, samples=samples,
                            batch_size=batch_size, seed=self.seed, noise=self.noise, out=folder, epochs=epochs,
                            calib_samples=calib_samples, learn=items, synapse=synapse)
        summary = run_calibration(opts)
        restore_state(self.chip, folder / "calibrated.h5")
        self.calibrated = folder / "calibrated.h5"
        names = tuple(summary["learning_layers"])
        table = {n: {k: v for k, v in c.items() if isinstance(v, int)} for n, c in summary["learning_layers"].items()}
        keys = tuple(next(iter(table.values()), {}).keys())
        values = np.array([[table[n][k] for k in keys] for n in names], np.int64).reshape(len(names), len(keys))
        return Calibration(summary["accuracy_before"], summary["accuracy_after"], summary["accuracy_per_epoch"],
                           Counters(values, ("layer", "counter"), {"layer": names, "counter": keys}), summary, folder)

    def save(self, path: str | Path) -> Path:
        """Write the chip's registers (noise and calibration included) as a chip state, atomically.
        `chipsim.deploy(net, weights=path)` or `chipsim run --weights path` restores this chip exactly."""
        from chipsim.core.chipstate import save_state

        path = Path(path)
        save_state(path, self.chip, {"noise": self.noise_report, "seed": self.seed, "net_file": self.net_path})
        return path

    def export_nir(self, path: str | Path, dt: float = 1e-4) -> Path:
        """Write the chip (as it is now) as a NIR graph in real units; see chipsim/interchange/nir_export.py."""
        from chipsim.interchange.nir_export import export_nir

        return export_nir(self.chip, path, dt)


def deploy(net: str | Path | NetConfig, weights: str | Path | None = None, noise: Iterable[str] = (),
           seed: int = 0, chip: str | Path | None = None) -> DeployedChip:
    """Deploy `net` (bundled name, YAML path or `load_net` result) on the simulated chip.

    `weights`: an HDF5 weights file, a saved chip state (`DeployedChip.save`, calibrated.h5), "random",
    or None for the net's bundled weights. `noise`: items as for `chipsim run --noise`, e.g.
    ["mismatch=0.2", "thermal=0.05"], drawn from `seed`. `chip`: a chip preset (models/chips: digital45,
    rram256, dynapse, or a YAML file) whose geometry and costs replace the net's (results unchanged,
    prices differ). Raises chipsim.workflows.runner.RunError for bad input, naming what was wrong."""
    from chipsim.config import ConfigError, net_mapping_with_chip

    path = _net_path(net)
    keep = None
    if chip is not None:
        import yaml

        from chipsim.io.atomic import atomic_path
        from chipsim.workflows.runner import RunError

        try:
            mapping = net_mapping_with_chip(path, chip)
        except (ConfigError, FileNotFoundError) as exc:
            raise RunError(f"chip={chip!r}: {exc}") from None
        keep = Path(tempfile.mkdtemp(prefix="chipsim-chip-"))
        with atomic_path(keep / "net.yaml") as tmp:
            tmp.write_text(yaml.safe_dump(mapping, sort_keys=False))
        path = str(keep / "net.yaml")
    return DeployedChip(path, None if weights is None else str(weights), tuple(noise), int(seed), keep)


def sweep(nets: Iterable[str] = ("digits",), noise: Mapping[str, Iterable] | None = None, out: str | Path = "",
          seeds: int = 3, calibrate_epochs: int | None = None, samples: int | None = None,
          calib_samples: int | None = None, workers: int | None = None, chip: str | None = None, **options):
    """A noise grid (net x noise level x seed) on Dask, as `chipsim sweep`; returns chipsim.workflows.sweep.SweepResult
    (rows, failures, sweep.csv and sweep.png paths). `noise`: {"mismatch": [0, 0.1, 0.2]}; further
    `options` are chipsim.workflows.sweep.SweepOptions fields (base_noise, learn, weights, data, scheduler, ...)."""
    from chipsim.workflows.sweep import SweepOptions, run_sweep

    if not out:
        raise ValueError("sweep(): out: expected a folder for sweep.csv and the cells")
    axes = tuple((kind, tuple(str(v) for v in levels)) for kind, levels in (noise or {"mismatch": [0, 0.2]}).items())
    for key in ("base_noise", "learn"):
        if key in options:
            options[key] = tuple(options[key])
    opts = SweepOptions(nets=tuple(nets), axes=axes, out=Path(out), seeds=seeds, calibrate_epochs=calibrate_epochs,
                        samples=samples, calib_samples=calib_samples, workers=workers, chip=chip, **options)
    return run_sweep(opts, echo=lambda line: None)
