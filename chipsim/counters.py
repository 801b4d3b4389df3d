"""Counter records and the first-order cycle and energy estimate.

The kernels count per (sample, tick, layer) into an int64 table whose columns
are kernels/layout.COUNTER_NAMES; this module only sums and prices them.

Cost model (per sample; parameters from the net YAML's `chip.costs`):
  * read cycles of a layer in a tick = tile_activations * cycles_tile_read / parallel_tiles
  * neuron cycles                   = membrane_updates * cycles_neuron_update / parallel_neurons
  * without delay the layers of a tick run one after another (sum over layers);
    with delay they form a pipeline (the slowest layer sets the tick time).
  * energy = AC * E_ac + MAC * E_mac + membrane updates * E_neuron + spikes * E_spike
             + programming pulses * E_write.
Defaults: Horowitz, ISSCC 2014, 45 nm (0.9 pJ per 32-bit float add = AC,
4.6 pJ per 32-bit float MAC, 0.1 pJ per 32-bit int add). These are marginal
per-event energies, not whole-chip averages with leakage.
"""
from __future__ import annotations

import numpy as np

from .kernels import layout as K


def layer_totals(counters: np.ndarray, layer_names: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """{layer: {counter: total}} from a (..., L, N_COUNTERS) table summed over leading axes."""
    flat = counters.reshape(-1, counters.shape[-2], counters.shape[-1]).sum(axis=0)
    return {name: {cname: int(flat[li, ci]) for ci, cname in enumerate(K.COUNTER_NAMES)}
            for li, name in enumerate(layer_names)}


def cost_estimate(chip, per_tick: np.ndarray, n_samples: int) -> dict:
    """Cycles, latency and energy per sample from counters summed over samples, shape (T, L, N)."""
    costs = chip.chip.costs
    per_sample = per_tick.astype(np.float64) / max(1, n_samples)
    read = per_sample[:, :, K.C_TILE_ACT] * costs.cycles_tile_read / costs.parallel_tiles
    neuron = per_sample[:, :, K.C_MEM_UPDATES] * costs.cycles_neuron_update / costs.parallel_neurons
    layer_cycles = read + neuron                                  # (T, L)
    if chip.chip.delay:
        cycles = float(layer_cycles.max(axis=1).sum())
    else:
        cycles = float(layer_cycles.sum())
    totals = per_sample.sum(axis=0)                               # (L, N)
    energy = {
        "synaptic_ac": float(totals[:, K.C_SYN_AC].sum() * costs.energy_accumulate_pj),
        "synaptic_mac": float(totals[:, K.C_SYN_MAC].sum() * costs.energy_mac_pj),
        "neuron_updates": float(totals[:, K.C_MEM_UPDATES].sum() * costs.energy_neuron_update_pj),
        "spikes": float(totals[:, K.C_SPIKES].sum() * costs.energy_spike_pj),
        "weight_writes": float(totals[:, K.C_PULSES].sum() * costs.energy_weight_write_pj),
    }
    clock_hz = chip.chip.clock_mhz * 1e6
    return {
        "cycles_per_sample": cycles,
        "latency_us_per_sample": cycles / clock_hz * 1e6,
        "throughput_samples_per_s": clock_hz / cycles if cycles > 0 else float("inf"),
        "energy_pj_per_sample": energy,
        "energy_uj_per_sample_total": sum(energy.values()) * 1e-6,
        "model": "first-order: see chipsim/counters.py",
    }


def synops_vs_mac(chip, totals: dict[str, dict[str, int]], n_samples: int) -> dict:
    """Synaptic operations per sample against the dense MACs of the same ANN (one pass)."""
    dense = 0
    for layer in chip.layers:
        if layer.weighted:
            positions = layer.out_shape[1] * layer.out_shape[2]
            dense += positions * layer.out_shape[0] * layer.fan_in
    syn = sum(t["synaptic_events_ac"] + t["synaptic_events_mac"] for t in totals.values()) / max(1, n_samples)
    return {"synops_per_sample": syn, "ann_macs_per_sample": dense,
            "synops_per_mac": syn / dense if dense else float("nan")}
