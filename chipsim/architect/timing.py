"""Cycle-level timing engine: every tick of every sample scheduled on the chip's resources, in whole cycles.

It runs after the chip, over the counts the kernels recorded per (sample,
tick, layer) (`TIMING_COUNTERS`), so it never slows the simulation and a
recorded run can be re-priced on another chip configuration without re-running
it (chipsim/workflows/chip_sweep.py, `--chip-param`). The analytic model beside it
is chipsim/architect/costs.py; the host link is chipsim/architect/link.py.

Resources (from the chip YAML's `chip.costs`)
---------------------------------------------
* read drivers: a layer's tile reads, each tile reading one output position at a
  time; P = min(`parallel_tiles`, tiles of the layer) tiles read at once. A tick's
  reads take

      R = max(ceil(N / P), b)   rounds of `cycles_tile_read`,

  N = tile_activations (the reads of all tiles) and b = tile_reads_busiest (the
  reads of the busiest tile: the kernels count each row band's reads, which
  every column tile of the band shares). R is the optimal makespan of the reads:
  *lower bounds*: a round does at most P reads, so at least ceil(N / P) rounds;
  a tile's reads are one after another, so at least b rounds. *Achieved* by
  McNaughton's wrap-around rule: list the tiles' reads tile after tile and deal
  them out to P drivers of R rounds each, driver by driver, round 0 upwards,
  moving to the next driver at round R. P R >= N, so every read gets a slot; a
  tile whose reads wrap gets rounds [r, R) on one driver and [0, b_i - (R - r))
  on the next, and b_i <= b <= R keeps the two apart (b_i - (R - r) <= r), so
  no tile reads twice in a round. Which tiles are busy is decided by the events
  (a row band is read for an output position when one of its rows is active), so
  a layer whose activity sits in a few bands is bound by those tiles.
  Timing counts without the busiest-band column (an older chipsim's
  timing_counts.npz, loaded as -1 there) give R = ceil(N / P): the reads
  assumed spread evenly over the tiles, a lower bound; the timing section says
  so (`read_rounds`).
* neuron blocks: ceil(membrane_updates / `parallel_neurons`) rounds of
  `cycles_neuron_update`.
* learning circuit: gate evaluation, ceil(gated neurons / `parallel_neurons`)
  rounds of `cycles_learn_gate`; then the write ports: a written crossbar row
  occupies one of min(`parallel_write_arrays`, tiles) ports for its pulse slots
  (max SET + max RESET pulses with `write_phases: 2`, the larger of the two with
  1; exact, from the kernels' row counters), each slot ceil(`write_pulse_ns` x
  clock) cycles: ceil(row slots / ports) slots per tick.
* spike path: a router between consecutive layers moving
  `spike_events_per_cycle` events per cycle through a FIFO of
  `spike_queue_depth` events (0 = unlimited, for both).
* host link: chipsim/architect/link.py (batches, double-buffered).

Rules
-----
* Work is issued in whole cycles and whole rounds (every division above rounds up).
* A layer's phases run in order: read -> neuron update -> gates -> writes.
* A resource pool serves one layer at a time (all its units on that layer); a
  later layer waits for the pool (`contention`).
* `delay: false` (a sequence): layer l starts when layer l-1 has finished and
  its spikes have been delivered (waiting for spikes in flight: `dependencies`).
  `delay: true` (a layer pipeline): every layer works on the previous tick's
  spikes, which are already delivered, so the layers of a tick start together
  and meet only on the shared pools.
* Every tick ends with a barrier: the next starts when all of this tick's work
  and deliveries are done. Samples follow one another (the chip state is
  cleared between samples).
* Spike delivery: a layer's spikes leave during its neuron phase; the router
  delivers the last one max(N, ceil(n / B)) cycles after the phase starts (N the
  phase's cycles, n the spikes, B the router bandwidth). A full FIFO stalls its
  producer: the neuron block is held until all but D (the depth) events have
  left, max(0, ceil((n - D) / B) - N) cycles after its phase (`queue_full`).
  The last layer's spikes stay in its counters.

In the uncontended limit (every division exact, no read bound by its busiest tile,
unlimited router and link, one layer at a time) the engine's cycles equal
costs.py's; otherwise they are never below them, as R >= N / P (tests/test_timing.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from chipsim.architect.costs import row_slots
from chipsim.core.kernels import layout as K

#: the counters the engine reads, per (sample, tick, layer)
TIMING_COUNTERS = ("tile_activations", "membrane_updates", "updates_ungated", "spikes", "write_rows",
                   "write_set_slots", "write_reset_slots", "write_rmw_slots", "tile_reads_busiest")
_COLS = [K.COUNTER_NAMES.index(name) for name in TIMING_COUNTERS]
_TILE, _MEM, _UNG, _SPK, _ROWS, _SET, _RESET, _RMW, _BUSIEST = range(len(TIMING_COUNTERS))
#: the columns of an older chipsim's timing counts (before tile_reads_busiest); see timed_run.load_counts
TIMING_COUNTERS_EVEN_SPREAD = TIMING_COUNTERS[:_BUSIEST]
#: the busiest-band column of counts that lack it: the reads are then taken as spread evenly
BUSIEST_UNKNOWN = -1

#: resources, in the order of the trace's tracks
PHASES = ("read", "neuron", "gate", "write")
RESOURCES = ("read_drivers", "neuron_blocks", "learning_gates", "write_ports", "spike_path")
STALLS = ("link", "queue_full", "write_ports", "dependencies", "contention")


def timing_counts(counters: np.ndarray) -> np.ndarray:
    """The engine's columns (..., len(TIMING_COUNTERS)) of a kernel counter table (..., N_COUNTERS)."""
    return counters[..., _COLS]


def ceil_div(a: np.ndarray, b) -> np.ndarray:
    """ceil(a / b) for non-negative integer arrays a and integer b >= 1."""
    return -(-np.asarray(a, np.int64) // np.int64(b))


def pulse_cycles(costs, clock_mhz: float) -> int:
    """Cycles of one write pulse slot, rounded up to whole cycles."""
    return max(1, math.ceil(costs.write_pulse_ns * clock_mhz / 1000.0 - 1e-9))


@dataclass
class Stages:
    """Durations in cycles of every phase, shape (S, T, L) each, and what drives them."""

    read: np.ndarray
    neuron: np.ndarray
    gate: np.ndarray
    write: np.ndarray
    transfer: np.ndarray      #: router cycles of the layer's outgoing spikes, ceil(n / B) (0: unlimited or last)
    queue_stall: np.ndarray   #: producer stall on a full FIFO
    write_wait: np.ndarray    #: write cycles beyond a port per row (rows waiting for a port)


def stage_cycles(chip, geo, counts: np.ndarray) -> Stages:
    """Phase durations from timing counts (S, T, L, len(TIMING_COUNTERS)) on chip config `chip`."""
    costs = chip.costs
    x = np.asarray(counts, np.int64)
    L = x.shape[2]
    if L != len(geo):
        raise ValueError(f"timing counts have {L} layers, the chip has {len(geo)}")
    tiles = np.array([max(1, g.row_bands * g.col_tiles) for g in geo], np.int64)
    fan_in = np.array([max(1, g.fan_in) for g in geo], np.int64)
    read_par = np.minimum(costs.parallel_tiles, tiles)
    # optimal makespan of unit reads on P drivers, one read at a time per tile (see the module docstring);
    # BUSIEST_UNKNOWN (-1) leaves the even-spread bound
    read = np.maximum(-(-x[..., _TILE] // read_par), x[..., _BUSIEST]) * costs.cycles_tile_read
    neuron = ceil_div(x[..., _MEM], costs.parallel_neurons) * costs.cycles_neuron_update
    gate = ceil_div(x[..., _UNG] // fan_in, costs.parallel_neurons) * costs.cycles_learn_gate
    slots = _slots(costs, x)
    ports = np.minimum(costs.parallel_write_arrays, tiles)
    pc = pulse_cycles(costs, chip.clock_mhz)
    write = -(-slots // ports) * pc
    rows = x[..., _ROWS]
    per_row = np.where(rows > 0, -(-slots // np.maximum(rows, 1)), 0) * pc
    write_wait = np.maximum(0, write - per_row)
    n = x[..., _SPK].copy()
    n[..., L - 1] = 0                                   # the output layer's spikes stay local
    B = costs.spike_events_per_cycle
    D = costs.spike_queue_depth
    if B > 0:
        transfer = np.ceil(n / B - 1e-9).astype(np.int64)
        qstall = np.maximum(0, np.ceil((n - D) / B - 1e-9).astype(np.int64) - neuron) if D > 0 else 0 * n
    else:
        transfer = 0 * n
        qstall = 0 * n
    return Stages(read, neuron, gate, write, transfer, qstall, write_wait)


def _slots(costs, x: np.ndarray) -> np.ndarray:
    full = np.zeros(x.shape[:-1] + (K.N_COUNTERS,), np.int64)
    full[..., K.C_ROW_SET] = x[..., _SET]
    full[..., K.C_ROW_RESET] = x[..., _RESET]
    full[..., K.C_ROW_RMW] = x[..., _RMW]
    return row_slots(costs, full)


@dataclass
class Schedule:
    """What the engine found, per sample (S,) unless noted."""

    sample_cycles: np.ndarray     #: (S,) cycles of each sample
    tick_cycles: np.ndarray       #: (S, T)
    busy: dict                    #: resource -> (S,) busy cycles
    stalls: dict                  #: cause -> (S,) stall cycles (link filled in by the host link model)
    layer_cycles: np.ndarray      #: (L, 5) total cycles of each layer on each resource (RESOURCES order)
    trace: list                   #: [(resource track, name, start cycle, duration)] of the traced sample


def schedule(chip, geo, counts: np.ndarray, trace_sample: int | None = None,
             layer_names: tuple[str, ...] | None = None) -> Schedule:
    """Schedule every tick of every sample of `counts` (S, T, L, len(TIMING_COUNTERS)) on `chip`."""
    st = stage_cycles(chip, geo, counts)
    S, T, L = st.read.shape
    names = layer_names or tuple(g.name for g in geo)
    pipeline = bool(chip.delay)
    now = np.zeros(S, np.int64)
    tick_cycles = np.zeros((S, T), np.int64)
    dep = np.zeros(S, np.int64)
    cont = np.zeros(S, np.int64)
    trace = []
    tr = trace_sample

    def emit(track, name, start, dur):
        if tr is not None and dur[tr] > 0:
            trace.append((track, name, int(start[tr]), int(dur[tr])))

    for t in range(T):
        start = now.copy()
        free = [start.copy() for _ in PHASES]
        tick_end = start.copy()
        end_prev = start
        deliver_prev = start
        for li in range(L):
            if pipeline:
                ready = start
            else:
                ready = np.maximum(end_prev, deliver_prev)
                dep += np.maximum(0, deliver_prev - end_prev)
            durs = (st.read[:, t, li], st.neuron[:, t, li], st.gate[:, t, li], st.write[:, t, li])
            at = ready
            for k, d in enumerate(durs):
                busy = d > 0
                begin = np.where(busy, np.maximum(at, free[k]), at)
                cont += begin - at
                emit(PHASES[k], f"{names[li]} {PHASES[k]} t{t}", begin, d)
                end = begin + d
                if k == 1:                                   # the neuron phase sends the layer's spikes
                    xfer = st.transfer[:, t, li]
                    deliver = begin + np.maximum(d, xfer)
                    emit(f"spikes {names[li]}", f"{names[li]} spikes t{t}", begin, np.where(xfer > 0, deliver - begin, 0))
                    end = end + st.queue_stall[:, t, li]     # a full FIFO holds the neuron block
                free[k] = np.where(busy, end, free[k])
                at = end
            end_prev = at
            deliver_prev = np.where(st.transfer[:, t, li] > 0, deliver, at) if li < L - 1 else at
            tick_end = np.maximum(tick_end, np.maximum(at, deliver_prev))
        tick_cycles[:, t] = tick_end - start
        now = tick_end
    busy = {"read_drivers": st.read.sum(axis=(1, 2)), "neuron_blocks": st.neuron.sum(axis=(1, 2)),
            "learning_gates": st.gate.sum(axis=(1, 2)), "write_ports": st.write.sum(axis=(1, 2)),
            "spike_path": st.transfer.sum(axis=(1, 2))}
    stalls = {"link": np.zeros(S, np.int64), "queue_full": st.queue_stall.sum(axis=(1, 2)),
              "write_ports": st.write_wait.sum(axis=(1, 2)), "dependencies": dep, "contention": cont}
    layer_cycles = np.stack([st.read.sum(axis=(0, 1)), st.neuron.sum(axis=(0, 1)), st.gate.sum(axis=(0, 1)),
                             st.write.sum(axis=(0, 1)), st.transfer.sum(axis=(0, 1))], axis=1)
    return Schedule(now, tick_cycles, busy, stalls, layer_cycles, trace)


def _stats(x: np.ndarray) -> dict:
    x = np.asarray(x, np.float64).ravel()
    if x.size == 0:
        return {"mean": 0.0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    return {"mean": float(x.mean()), "p50": float(np.percentile(x, 50)), "p99": float(np.percentile(x, 99)),
            "max": float(x.max())}


def timing_section(chip, geo, counts: np.ndarray, link: dict, analytic: dict | None = None,
                   layer_names: tuple[str, ...] | None = None, sched: Schedule | None = None) -> dict:
    """The `timing` section of summary.json: cycles per sample and tick, utilisation, stalls, bounds.

    `link` from hostlink.link_section (its stall cycles are added here); `analytic`: costs.py's estimate."""
    sched = sched or schedule(chip, geo, counts, layer_names=layer_names)
    names = layer_names or tuple(g.name for g in geo)
    S = len(sched.sample_cycles)
    chip_total = float(sched.sample_cycles.sum())
    clock_hz = chip.clock_mhz * 1e6
    busy = {k: float(v.sum()) for k, v in sched.busy.items()}
    util = {k: (v / chip_total if chip_total else 0.0) for k, v in busy.items()}
    wall = max(chip_total, float(link.get("total_cycles", 0.0)))
    util["host_link_down"] = link["busy_cycles_down"] / wall if wall else 0.0
    util["host_link_up"] = link["busy_cycles_up"] / wall if wall else 0.0
    stalls = {k: float(v.sum()) / max(1, S) for k, v in sched.stalls.items()}
    stalls["link"] = link["chip_stall_cycles"] / max(1, S)
    critical = {}
    for li, name in enumerate(names):
        row = sched.layer_cycles[li]
        critical[name] = {"resource": RESOURCES[int(np.argmax(row))] if row.any() else "none",
                          **{r: float(row[k]) / max(1, S) for k, r in enumerate(RESOURCES)}}
    chip_bound = max(busy, key=busy.get) if busy else "none"
    mean_cycles = chip_total / max(1, S)
    even = bool(np.any(np.asarray(counts)[..., _BUSIEST] == BUSIEST_UNKNOWN))
    out = {
        "model": "chipsim/architect/timing.py (whole cycles and rounds, shared resource pools, tick barriers)",
        "pipeline": "layer pipeline (delay: true)" if chip.delay else "layers in sequence (delay: false)",
        "read_rounds": ("ceil(tile_activations / min(parallel_tiles, tiles)): timing counts of an older chipsim "
                        "without tile_reads_busiest, so the reads are ASSUMED spread evenly over the tiles "
                        "(a lower bound); re-run with --timing for the busiest-tile bound" if even else
                        "max(ceil(tile_activations / min(parallel_tiles, tiles)), tile_reads_busiest): "
                        "one read at a time per tile, the busiest tile from the events"),
        "samples": S,
        "cycles_per_sample": _stats(sched.sample_cycles),
        "cycles_per_tick": _stats(sched.tick_cycles),
        "latency_us_per_sample": mean_cycles / clock_hz * 1e6,
        "latency_us_per_sample_with_link": (wall / max(1, S)) / clock_hz * 1e6,
        "utilisation": util,
        "stall_cycles_per_sample": stalls,
        "critical_resource_per_layer": critical,
        "bound": "host link" if link["bound"] == "link" else f"chip ({chip_bound})",
        "chip_bound_resource": chip_bound,
        "host_link": link,
    }
    if analytic is not None:
        a = analytic["cycles_per_sample"]
        out["analytic"] = {"cycles_per_sample": a, "latency_us_per_sample": analytic["latency_us_per_sample"],
                           "engine_over_analytic": mean_cycles / a if a else None}
    return out


def chrome_trace(sched: Schedule, clock_mhz: float, sample_id: int, link_events=()) -> dict:
    """Chrome trace event format (opens in Perfetto / chrome://tracing) of the traced sample:
    one track (tid) per resource, complete events ("ph": "X") with ts and dur in microseconds."""
    us = 1.0 / clock_mhz
    tracks = list(dict.fromkeys([e[0] for e in sched.trace] + [e[0] for e in link_events]))
    order = {name: i for i, name in enumerate(sorted(tracks, key=_track_key))}
    events = [{"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "ts": 0, "dur": 0,
               "args": {"name": f"chip, sample {sample_id}"}}]
    for name, tid in order.items():
        events.append({"ph": "M", "name": "thread_name", "pid": 1, "tid": tid + 1, "ts": 0, "dur": 0,
                       "args": {"name": name}})
    for track, name, start, dur in list(sched.trace) + list(link_events):
        events.append({"ph": "X", "name": name, "cat": track, "pid": 1, "tid": order[track] + 1,
                       "ts": start * us, "dur": dur * us, "args": {"start_cycle": start, "cycles": dur}})
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"clock_mhz": clock_mhz, "sample": sample_id, "engine": "chipsim/architect/timing.py"}}


def _track_key(name: str):
    base = {"host link": 0, "read": 1, "neuron": 2, "gate": 3, "write": 4}
    return (base.get(name, 5), name)
