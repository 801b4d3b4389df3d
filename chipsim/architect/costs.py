"""Cycles, latency and energy of a run, priced from its exact counters and the chip's costs.

The kernels count what the chip does (kernels/layout.COUNTER_NAMES); this
module only prices those counts with the chip YAML's `chip.costs` (a
`CostConfig`, or a preset from models/chips/). Nothing here changes a result.

Cycle model, per sample (counters averaged over samples), layer l, tick t
--------------------------------------------------------------------------
    read      R[t,l] = tile_activations   * cycles_tile_read     / min(parallel_tiles, tiles of l)
    neuron    N[t,l] = membrane_updates   * cycles_neuron_update / parallel_neurons
    gate      G[t,l] = gate_evaluations   * cycles_learn_gate    / parallel_neurons
    write     W[t,l] = write time of the layer's learning writes (below), in cycles
    layer     X[t,l] = R + N + G + W
    tick      = sum_l X[t,l]   with `delay: false` (a tick runs its layers one after another)
              = max_l X[t,l]   with `delay: true`  (a layer pipeline: every layer works on the
                                                    previous tick's spikes of the one below)
    sample    = sum_t tick; latency = sample cycles / clock; throughput = 1 / latency
              (samples do not overlap: the chip state is cleared between samples).
A tile does one read at a time (weights are stationary, not replicated), so a
layer of one tile reads its output positions one after another whatever
`parallel_tiles` is. `gate_evaluations` (neurons whose learning gates are
evaluated in a tick) is exact:
updates_ungated / fan_in. Divisions by the parallelism are a fluid approximation
(no rounding up to whole rounds), so costs add linearly over ticks and samples.
Calibration runs store their counters summed over ticks, so with `delay: true`
their pipeline is approximated by max over the layers' totals (a lower bound).

Weight-write latency, two models (both are reported)
----------------------------------------------------
* **Row by row** (NeuroSim V2.1, `ProcessingUnit.cpp::GetWriteUpdateEstimation`,
  `Chip.cpp`): a written crossbar row costs (max SET pulses + max RESET pulses of
  its cells) x `write_pulse_ns`; rows of different arrays are written
  min(`parallel_write_arrays`, tiles of the layer) at a time. SET and RESET are separate phases on RRAM
  and PCM (`write_phases: 2`); an SRAM read-modify-write does both at once
  (`write_phases: 1`). This model is the one in `latency_us_per_sample`.
  The kernels count the written rows and each row's largest SET and RESET
  pulse counts (`write_rows`, `write_set_slots`, `write_reset_slots`,
  `write_rmw_slots`), so the row slots are exact. Counters of an older chipsim
  without them are priced with the former estimate:
      g   = sign-gated neurons per learning tick   = updates_sign_gated / fan_in / learning ticks
      c   = cells per written row                  = clamp(g, 1, out_channels)
      rows = cell_writes / c,  slots per row = min(write_phases, c) * pulses / cell_writes
  (for an fc layer in `sign` mode a written row holds one cell per gated neuron,
  each with one pulse, so c is exact whenever every learning tick has the same
  number of gated neurons; ticks without any gated neuron make the estimate
  high).
* **Fully parallel stochastic update** (aihwkit / RPU, Gokmen & Vlasov 2016): all
  cells of an array are pulsed at once with a pulse train of fixed length
  `update_pulse_train` (aihwkit's `desired_bl`, 31 by default), independent of
  the array size: write time = learning ticks x update_pulse_train x write_pulse_ns.
  Reported as `latency_us_per_sample_parallel_update`.

Energy (picojoules per sample)
------------------------------
Marginal per-event energies, each counter times its price:
    synaptic_ac   synaptic events with binary input   x energy_accumulate_pj
    synaptic_mac  synaptic events with multi-bit input x energy_mac_pj
    weight_reads  synaptic events of weighted layers  x energy_weight_read_pj   (digital SRAM weights)
    column_reads  tile activations x columns per tile x energy_column_read_pj   (analog crossbar ADCs)
    neuron_updates, spikes, learn_gates, weight_writes (pulses), bias_writes, threshold_writes
                  (a bias or threshold register write is priced as a weight write)
Static energy is kept apart: static_power_mw x latency. Published whole-chip
averages per synaptic operation (TrueNorth 26 pJ, ODIN 12.7 pJ) include leakage
at one operating point and must not be entered as marginal prices (see
reference/hw-costs.md, section 1.3).

Defaults (the `digital45` preset) are Horowitz, ISSCC 2014, 45 nm, 0.9 V:
32-bit float add 0.9 pJ (the AC convention), 32-bit float MAC 4.6 pJ, 32-bit
int add 0.1 pJ, 64-bit SRAM access 10 / 20 / 100 pJ for 8 KB / 32 KB / 1 MB.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from chipsim.core.kernels import layout as K


@dataclass(frozen=True)
class CostConfig:
    """Per-operation cycle and energy costs of the chip (`chip.costs` in the net YAML).

    Defaults describe a digital 45 nm chip (models/chips/digital45.yaml), from
    Horowitz, ISSCC 2014; every preset in models/chips/ cites its own sources."""

    # cycles
    cycles_tile_read: int = 8          #: one crossbar tile read for one output position
    cycles_neuron_update: int = 1      #: one membrane update in a neuron block
    cycles_learn_gate: int = 1         #: one neuron's boxcar and sign(error) comparison (learning circuit)
    parallel_tiles: int = 16           #: tiles that read concurrently
    parallel_neurons: int = 256        #: neurons (and learning gates) updated concurrently
    # weight writes (on-chip learning)
    write_pulse_ns: float = 10.0       #: one programming pulse / write cycle (digital: one 100 MHz clock)
    write_phases: int = 1              #: row write phases: 2 = SET and RESET apart (RRAM, PCM), 1 = SRAM RMW
    parallel_write_arrays: int = 16    #: arrays whose rows are written at the same time (NeuroSim)
    update_pulse_train: int = 31       #: pulse slots of one fully parallel update (aihwkit desired_bl)
    # energies in picojoules (marginal, per event)
    energy_accumulate_pj: float = 0.9  #: accumulate (AC), binary input: 32-bit float add
    energy_mac_pj: float = 4.6         #: multiply-accumulate, multi-bit input: 32-bit float mult 3.7 + add 0.9
    energy_weight_read_pj: float = 2.5  #: weight fetch per synaptic event: 64-bit 32 KB SRAM access 20 pJ / 8 weights
    energy_column_read_pj: float = 0.0  #: one column conversion (sense amp / ADC) per tile read; 0 = digital
    energy_neuron_update_pj: float = 7.6  #: 32-bit add 0.1 + read and write of a 24-bit membrane, 8 KB SRAM
    energy_spike_pj: float = 2.5       #: a 16-bit event address written to an 8 KB SRAM queue (10 pJ x 16/64)
    energy_learn_gate_pj: float = 2.0  #: boxcar + error comparators (~0.6) and the 8-bit target read (1.25)
    energy_weight_write_pj: float = 5.0  #: one pulse: read-modify-write of an 8-bit weight (2 x 2.5 pJ)
    static_power_mw: float = 0.0       #: whole-chip static (leakage) power; 0 = marginal costs only
    # host link and spike path (the timing engine, chipsim/architect/timing.py); ASSUMPTIONS unless a preset cites
    link_gbit_s: float = 1.0           #: host link bandwidth, each direction (full duplex); 0 = unlimited
    link_latency_ns: float = 10000.0   #: fixed cost of one batch transfer (driver, DMA setup, protocol)
    link_buffers: int = 2              #: input batches the chip buffers (2 = double buffering, as BatchStream)
    spike_events_per_cycle: float = 16.0  #: spike router bandwidth between layers; 0 = unlimited
    spike_queue_depth: int = 4096      #: events a router FIFO holds (8 KB of 16-bit addresses); 0 = unlimited
    # area (chipsim/architect/area.py), square micrometres; each preset gives its sources
    area_cell_um2: float = 0.346       #: one memory cell of a crossbar (45 nm 6T SRAM bit cell)
    cell_bits: int = 1                 #: weight bits one cell holds (SRAM 1; a multi-level analog cell more)
    adc_columns: int = 1               #: crossbar columns sharing one sense amplifier / ADC
    area_adc_um2: float = 5.0          #: one sense amplifier (digital) or ADC (analog)
    area_driver_um2: float = 1.0       #: one row or column driver of a crossbar
    area_sram_bit_um2: float = 0.346   #: one bit of the chip's digital SRAM (membranes, targets, queues, buffers)
    area_neuron_lane_um2: float = 150.0  #: one neuron-update lane (24-bit adder, leak shift, comparator)
    area_learn_lane_um2: float = 100.0   #: one learning-gate lane (boxcar and error comparators)
    area_host_if_um2: float = 300000.0   #: the host interface (PHY and controller)


@dataclass(frozen=True)
class LayerGeometry:
    """What the cost model needs to know about one chip layer."""

    name: str
    weighted: bool
    fan_in: int          #: crossbar rows (im2col rows for conv); pooling: window size
    n_out: int           #: neurons
    out_c: int           #: crossbar columns (output channels)
    positions: int       #: output positions sharing the crossbar (1 for fc)
    row_bands: int       #: crossbar row tiles
    col_tiles: int       #: crossbar column tiles

    @property
    def cols_per_tile(self) -> float:
        """Average columns in use per column tile."""
        return self.out_c / self.col_tiles if self.col_tiles else 0.0

    @property
    def ann_macs(self) -> int:
        """Dense multiply-accumulates of the same layer in an ANN, one pass."""
        return self.positions * self.out_c * self.fan_in if self.weighted else 0


def _get(obj: Any, key: str):
    return obj[key] if isinstance(obj, dict) else getattr(obj, key)


def geometry(layers: Iterable[Any], tile_rows: int, tile_cols: int) -> tuple[LayerGeometry, ...]:
    """Geometry of the chip layers (flatten dropped) from LayerConfig objects or their dicts."""
    out = []
    for layer in layers:
        kind = _get(layer, "type")
        if kind == "flatten":
            continue
        in_c, _, _ = _get(layer, "in_shape")
        oc, oh, ow = _get(layer, "out_shape")
        k = _get(layer, "kernel")
        weighted = kind in ("conv", "fc")
        if kind == "conv":
            fan_in = in_c * k * k
        elif kind == "fc":
            fan_in = int(np.prod(_get(layer, "in_shape")))
        else:
            fan_in = k * k
        positions = oh * ow if kind == "conv" else 1
        out.append(LayerGeometry(
            name=_get(layer, "name"), weighted=weighted, fan_in=fan_in, n_out=oc * oh * ow, out_c=oc,
            positions=positions, row_bands=math.ceil(fan_in / tile_rows) if weighted else 0,
            col_tiles=math.ceil(oc / tile_cols) if weighted else 0))
    return tuple(out)


# --------------------------------------------------------------------------- pricing

ENERGY_PARTS = ("synaptic_ac", "synaptic_mac", "weight_reads", "column_reads", "neuron_updates", "spikes",
                "learn_gates", "weight_writes", "bias_writes", "threshold_writes")


def row_slots(costs: CostConfig, x: np.ndarray) -> np.ndarray:
    """Exact row-by-row write slots (pulse widths before array parallelism) from the row counters:
    per written row max SET + max RESET pulses (`write_phases` 2), or the larger of the two (1)."""
    if costs.write_phases >= 2:
        return x[..., K.C_ROW_SET] + x[..., K.C_ROW_RESET]
    return x[..., K.C_ROW_RMW]


def _row_write_slots(costs: CostConfig, geo: LayerGeometry, c: np.ndarray) -> float:
    """Row-by-row write slots (pulse widths before array parallelism) from one layer's counts."""
    if c[K.C_WRITE_ROWS] > 0 or c[K.C_PULSES] == 0:     # exact, from the kernels' row counters
        return float(row_slots(costs, c))
    # counters of an older chipsim without row counters: estimated from pulses and cell writes
    pulses = float(c[K.C_PULSES])
    cells = float(c[K.C_CELL_WRITES])
    if cells <= 0:
        return 0.0
    learn_ticks = float(c[K.C_UNGATED]) / (geo.fan_in * geo.n_out)
    gated = float(c[K.C_SIGN]) / geo.fan_in / max(learn_ticks, 1e-300)
    per_row = min(max(gated, 1.0), float(geo.out_c))
    rows = cells / per_row
    phases = 1.0 if costs.write_phases == 1 else min(float(costs.write_phases), per_row)
    return rows * phases * (pulses / cells)


def _price(chip, geo: tuple[LayerGeometry, ...], x: np.ndarray, per_tick: bool) -> dict:
    """Price counters `x` of one average sample, shape (ticks, L, C) (ticks = 1 when summed over ticks)."""
    costs = chip.costs
    L = len(geo)
    if x.shape[1] != L:
        raise ValueError(f"counters have {x.shape[1]} layers, the chip has {L}")
    ns_to_cycles = chip.clock_mhz / 1000.0
    fan_in = np.array([g.fan_in for g in geo], np.float64)
    gates = x[:, :, K.C_UNGATED] / fan_in                                  # neurons evaluated
    # a tile does one read (or one row write) at a time: a layer's parallelism is capped by its tiles
    tiles = np.array([max(1, g.row_bands * g.col_tiles) for g in geo], np.float64)
    read = x[:, :, K.C_TILE_ACT] * costs.cycles_tile_read / np.minimum(costs.parallel_tiles, tiles)
    neuron = x[:, :, K.C_MEM_UPDATES] * costs.cycles_neuron_update / costs.parallel_neurons
    gate = gates * costs.cycles_learn_gate / costs.parallel_neurons
    totals = x.sum(axis=0)                                                 # (L, C)
    # write time per layer (per sample): row-by-row (NeuroSim) and fully parallel (RPU)
    row_ns = np.zeros(L)
    par_ns = np.zeros(L)
    for li, g in enumerate(geo):
        if not g.weighted or totals[li, K.C_UNGATED] == 0:
            continue
        row_ns[li] = (_row_write_slots(costs, g, totals[li]) * costs.write_pulse_ns
                      / min(costs.parallel_write_arrays, tiles[li]))
        learn_ticks = totals[li, K.C_UNGATED] / (g.fan_in * g.n_out)
        par_ns[li] = learn_ticks * costs.update_pulse_train * costs.write_pulse_ns
    # a layer's write time per tick: its ticks' own row slots (older counters: in proportion to pulses)
    exact_rows = totals[:, K.C_WRITE_ROWS] > 0
    per_tick_slots = np.where(exact_rows, _share_of(row_slots(costs, x)), _share(x, K.C_PULSES))
    write = per_tick_slots * row_ns * ns_to_cycles
    layer_cycles = read + neuron + gate + write                            # (ticks, L)

    def combine(lc: np.ndarray) -> float:
        return float(lc.max(axis=1).sum()) if chip.delay else float(lc.sum())

    cycles = combine(layer_cycles)
    # the same with the fully parallel update instead of row-by-row writes
    cycles_par = combine(read + neuron + gate + _share(x, K.C_UNGATED) * par_ns * ns_to_cycles)
    clock_hz = chip.clock_mhz * 1e6
    latency_us = cycles / clock_hz * 1e6
    # energy per layer
    energy = {}
    for li, g in enumerate(geo):
        t = totals[li]
        syn = t[K.C_SYN_AC] + t[K.C_SYN_MAC]
        energy[g.name] = {
            "synaptic_ac": t[K.C_SYN_AC] * costs.energy_accumulate_pj,
            "synaptic_mac": t[K.C_SYN_MAC] * costs.energy_mac_pj,
            "weight_reads": syn * costs.energy_weight_read_pj if g.weighted else 0.0,
            "column_reads": t[K.C_TILE_ACT] * g.cols_per_tile * costs.energy_column_read_pj,
            "neuron_updates": t[K.C_MEM_UPDATES] * costs.energy_neuron_update_pj,
            "spikes": t[K.C_SPIKES] * costs.energy_spike_pj,
            "learn_gates": gates[:, li].sum() * costs.energy_learn_gate_pj,
            "weight_writes": t[K.C_PULSES] * costs.energy_weight_write_pj,
            "bias_writes": t[K.C_BIAS_WRITES] * costs.energy_weight_write_pj,
            "threshold_writes": t[K.C_THRESHOLD_WRITES] * costs.energy_weight_write_pj,
        }
        energy[g.name] = {k: float(v) for k, v in energy[g.name].items()}
    parts = {p: sum(e[p] for e in energy.values()) for p in ENERGY_PARTS}
    dynamic = sum(parts.values())
    static = costs.static_power_mw * latency_us * 1e3                     # mW x us = nJ = 1000 pJ
    estimated = row_ns.any() and bool(((totals[:, K.C_WRITE_ROWS] == 0) & (totals[:, K.C_PULSES] > 0)).any())
    notes = ["write latency row by row: rows and per-row maxima estimated from pulses and cell writes "
             "(counters without row counts; see chipsim/architect/costs.py)"] if estimated else []
    if chip.delay and not per_tick:
        notes.append("delay: true with counters summed over ticks: pipeline approximated by the slowest "
                     "layer's total (a lower bound)")
    return {
        "cycles_per_sample": cycles,
        "cycles_breakdown": {"tile_reads": float(read.sum()), "neuron_updates": float(neuron.sum()),
                             "learn_gates": float(gate.sum()), "weight_writes": float(write.sum())},
        "latency_us_per_sample": latency_us,
        "throughput_samples_per_s": clock_hz / cycles if cycles > 0 else float("inf"),
        "write_latency_us_per_sample": {"row_by_row": float(row_ns.sum()) / 1e3,
                                        "parallel_pulse_train": float(par_ns.sum()) / 1e3},
        "latency_us_per_sample_parallel_update": cycles_par / clock_hz * 1e6,
        "energy_pj_per_sample": parts,
        "energy_pj_static_per_sample": static,
        "energy_uj_per_sample_dynamic": dynamic * 1e-6,
        "energy_uj_per_sample_total": (dynamic + static) * 1e-6,
        "layers": {g.name: {"cycles": float(layer_cycles[:, li].sum()), "energy_pj": energy[g.name],
                            "write_us_row_by_row": float(row_ns[li]) / 1e3,
                            "write_us_parallel": float(par_ns[li]) / 1e3}
                   for li, g in enumerate(geo)},
        "pipeline": "layer pipeline (delay: true)" if chip.delay else "layers in sequence (delay: false)",
        "model": "chipsim/architect/costs.py (marginal per-event energies; static power apart)",
        "notes": notes,
    }


def _share(x: np.ndarray, column: int) -> np.ndarray:
    """Each tick's share of a layer's total of one counter, shape (ticks, L); 0 where the total is 0."""
    return _share_of(x[:, :, column])


def _share_of(u: np.ndarray) -> np.ndarray:
    """Each tick's share of a layer's total of `u` (ticks, L); 0 where the total is 0."""
    tot = u.sum(axis=0)
    return np.divide(u, tot, out=np.zeros_like(u), where=tot > 0)


def inference_cost(chip, geo: tuple[LayerGeometry, ...], per_tick: np.ndarray, n_samples: int) -> dict:
    """Cost per sample from counters (T, L, C) summed over `n_samples` samples."""
    x = per_tick.astype(np.float64) / max(1, n_samples)
    return _price(chip, geo, x, per_tick=True)


def calibration_cost(chip, geo: tuple[LayerGeometry, ...], learn_counters: np.ndarray, n_samples: int) -> dict:
    """Cost per calibration sample from counters (L, C) summed over ticks and `n_samples` training samples."""
    x = learn_counters.astype(np.float64)[None] / max(1, n_samples)
    return _price(chip, geo, x, per_tick=False)


def synops_ratio(costs: CostConfig, geo: tuple[LayerGeometry, ...], totals: np.ndarray, n_samples: int) -> dict:
    """SynOps per sample against the dense MACs of the same ANN (one pass), and their compute energies.

    `totals` (L, C) summed over ticks and samples. SynOps follow sinabs / NeuroBench:
    each input event times its fan-out, in weighted layers; binary inputs are
    accumulates (AC), multi-bit inputs (direct encoder, event counts) MACs. Pooling adds are
    not synaptic operations here (an ANN counts no MACs for them either)."""
    n = max(1, n_samples)
    w = np.array([g.weighted for g in geo])
    ac = float(totals[w, K.C_SYN_AC].sum()) / n
    mac = float(totals[w, K.C_SYN_MAC].sum()) / n
    dense = sum(g.ann_macs for g in geo)
    snn_pj = ac * costs.energy_accumulate_pj + mac * costs.energy_mac_pj
    ann_pj = dense * costs.energy_mac_pj
    return {"synops_per_sample": ac + mac, "synops_ac_per_sample": ac, "synops_mac_per_sample": mac,
            "ann_macs_per_sample": dense, "synops_per_mac": (ac + mac) / dense if dense else float("nan"),
            "compute_energy_pj_snn": snn_pj, "compute_energy_pj_ann": ann_pj,
            "compute_energy_ratio": snn_pj / ann_pj if ann_pj else float("nan")}
