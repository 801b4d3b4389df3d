"""Run outputs: `summary.json` for scripts and `run.h5` for arrays, both written atomically.

run.h5 layout::

    /predictions (N,) int64, /labels (N,) int64, /sample_ids (N,) int64
    /counters           (T, L, C) int64  summed over samples
    /counters_per_sample (N, L, C) int64  summed over ticks
    /traces/<layer>/spikes    (N, T, neurons) uint8   with --record spikes
    /traces/<layer>/membrane  (N, T, neurons) int32   with --record membrane
    attrs: net config (JSON), seed, chipsim_version, counter_names, layer_names

The HDF5 file is built under a temporary name while the run streams traces
into it and renamed when complete, so an interrupted run leaves no file that
looks finished.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from chipsim import __version__
from chipsim.io.atomic import commit, temp_beside, write_json
from chipsim.core.kernels.layout import COUNTER_NAMES


class RunFileWriter:
    """Streams per-batch arrays into run.h5 (under a temporary name until `close`)."""

    def __init__(self, out_dir: Path, attrs: dict, layer_slices: dict[str, slice], record: tuple[str, ...],
                 time_steps: int):
        self.path = out_dir / "run.h5"
        self.tmp = temp_beside(self.path)
        self.file = h5py.File(self.tmp, "w")
        for key, value in attrs.items():
            self.file.attrs[key] = json.dumps(value, default=str) if isinstance(value, (dict, list, tuple)) else value
        self.file.attrs["chipsim_version"] = __version__
        self.file.attrs["counter_names"] = json.dumps(COUNTER_NAMES)
        self.layer_slices = layer_slices
        self.record = record
        self.T = time_steps
        self.n = 0
        for kind in record:
            dtype = np.uint8 if kind == "spikes" else np.int32
            for name, sl in layer_slices.items():
                width = sl.stop - sl.start
                self.file.create_dataset(f"traces/{name}/{kind}", shape=(0, time_steps, width),
                                         maxshape=(None, time_steps, width), dtype=dtype,
                                         chunks=(1, time_steps, width), compression="gzip", compression_opts=1)

    def append_traces(self, spikes: np.ndarray | None, membrane: np.ndarray | None) -> None:
        b = (spikes if spikes is not None else membrane).shape[0]
        for kind, arr in (("spikes", spikes), ("membrane", membrane)):
            if arr is None:
                continue
            for name, sl in self.layer_slices.items():
                ds = self.file[f"traces/{name}/{kind}"]
                ds.resize(self.n + b, axis=0)
                ds[self.n:self.n + b] = arr[:, :, sl]
        self.n += b

    def close(self, arrays: dict[str, np.ndarray]) -> Path:
        for key, value in arrays.items():
            self.file.create_dataset(key, data=value, compression="gzip", compression_opts=4)
        self.file.close()
        commit(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self.file.close()
        finally:
            if self.tmp.exists():
                self.tmp.unlink()


def write_summary(out_dir: Path, summary: dict) -> Path:
    path = out_dir / "summary.json"
    write_json(path, summary)
    return path
