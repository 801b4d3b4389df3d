"""A run's timing outputs: the `timing` and `area` sections of summary.json, timeline.json, timing_counts.npz.

`TimingRecorder` keeps the engine's counts of every sample while the chip runs
(9 int32 columns per (sample, tick, layer), taken from the kernels' counter
table; nothing new is computed in the hot loop). After the run `sections`
schedules them (chipsim/architect/timing.py), runs the host link
(link.py) and the area model (area.py). The counts are saved so that
`chipsim sweep --chip-param` and `reprice` can price other chips without
re-running this one. A timing_counts.npz of an older chipsim, without the
busiest-band column (`tile_reads_busiest`), still loads: that column is set to
BUSIEST_UNKNOWN, the engine then takes the reads as spread evenly over the
tiles (a lower bound), and the timing section's `read_rounds` says so.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from chipsim.architect.area import area_section
from chipsim.architect.costs import inference_cost
from chipsim.architect.link import counter_bytes, link_schedule
from chipsim.architect.timing import (BUSIEST_UNKNOWN, TIMING_COUNTERS, TIMING_COUNTERS_EVEN_SPREAD, chrome_trace,
                                      schedule, timing_counts, timing_section)

COUNTS_FILE = "timing_counts.npz"
TIMELINE_FILE = "timeline.json"


class TimingRecorder:
    """Timing counts of every sample of a run, filled batch by batch."""

    def __init__(self, n_samples: int, time_steps: int, n_layers: int):
        self.counts = np.zeros((n_samples, time_steps, n_layers, len(TIMING_COUNTERS)), np.int32)

    def add(self, ids: np.ndarray, counters: np.ndarray) -> None:
        c = timing_counts(counters)
        if c.size and c.max() > np.iinfo(np.int32).max:
            raise OverflowError("a timing count exceeds 32 bits")
        self.counts[ids] = c


def link_bytes(chip, bytes_in_per_sample: int, bytes_out_per_sample: int, target_bytes_per_sample: int = 0):
    """(down per sample, up per sample, up per batch) bytes of the host link."""
    return (bytes_in_per_sample + target_bytes_per_sample, bytes_out_per_sample, counter_bytes(len(chip.layers)))


def sections(chip_cfg, geo, layer_names, counts: np.ndarray, batch_size: int, link_traffic: tuple[int, int, int],
             n_neurons: int, learning_neurons: int, trace_sample: int | None = None):
    """(timing section, area section, chrome trace or None) of recorded `counts` on chip config `chip_cfg`."""
    sched = schedule(chip_cfg, geo, counts, trace_sample=trace_sample, layer_names=layer_names)
    down, up, up_batch = link_traffic
    link = link_schedule(chip_cfg.costs, chip_cfg.clock_mhz, sched.sample_cycles, batch_size, down, up, up_batch)
    per_tick = counts_as_counters(counts).sum(axis=0)
    analytic = inference_cost(chip_cfg, geo, per_tick, counts.shape[0]) if counts.shape[0] else None
    timing = timing_section(chip_cfg, geo, counts, link, analytic, layer_names, sched)
    area = area_section(chip_cfg, geo, n_neurons, learning_neurons, batch_size, link_traffic[0])
    trace = chrome_trace(sched, chip_cfg.clock_mhz, trace_sample) if trace_sample is not None else None
    return timing, area, trace


def counts_as_counters(counts: np.ndarray) -> np.ndarray:
    """A full counter table (..., N_COUNTERS) holding the timing counts (other columns 0), for costs.py."""
    from chipsim.core.kernels import layout as K

    full = np.zeros(counts.shape[:-1] + (K.N_COUNTERS,), np.int64)
    for i, name in enumerate(TIMING_COUNTERS):
        full[..., K.COUNTER_NAMES.index(name)] = counts[..., i]
    return full


def save_counts(out_dir: Path, counts: np.ndarray, meta: dict) -> Path:
    """timing_counts.npz (atomic): the counts and what re-pricing needs (batch size, link bytes, geometry)."""
    from chipsim.io.atomic import atomic_path

    path = Path(out_dir) / COUNTS_FILE
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, counts=counts, names=np.array(TIMING_COUNTERS), meta=json.dumps(meta))
    return path


def load_counts(path: Path) -> tuple[np.ndarray, dict]:
    """(counts, meta) from a timing_counts.npz; ValueError naming the file when it is not one.

    An older chipsim's file (no tile_reads_busiest column) loads with that column BUSIEST_UNKNOWN and a
    warning: its reads are priced as spread evenly over the tiles (chipsim/architect/timing.py)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            names = tuple(str(n) for n in z["names"])
            counts = z["counts"]
            meta = json.loads(str(z["meta"]))
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a chipsim timing_counts.npz ({exc}); expected one written by "
                         f"`chipsim run --timing`") from None
    if names == TIMING_COUNTERS_EVEN_SPREAD and counts.shape[-1:] == (len(names),):
        import warnings

        warnings.warn(f"{path}: timing counts of an older chipsim without tile_reads_busiest; its tile reads "
                      f"are priced as spread evenly over the tiles (a lower bound); re-run with --timing for "
                      f"the busiest-tile bound", stacklevel=2)
        fill = np.full(counts.shape[:-1] + (1,), BUSIEST_UNKNOWN, counts.dtype)
        return np.concatenate([counts, fill], axis=-1), meta
    if names != TIMING_COUNTERS or counts.shape[-1:] != (len(names),):
        raise ValueError(f"{path}: counts of columns {names} (shape {counts.shape}); expected {TIMING_COUNTERS}")
    return counts, meta


def write_timeline(out_dir: Path, trace: dict) -> Path:
    from chipsim.io.atomic import write_json

    path = Path(out_dir) / TIMELINE_FILE
    write_json(path, trace)
    return path
