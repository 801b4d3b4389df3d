"""Counter records: totals per layer, the identities every count must satisfy, and pricing.

The kernels count per (sample, tick, layer) into an int64 table whose columns
are kernels/layout.COUNTER_NAMES. This module sums and checks those counts;
the cycle and energy model that prices them is chipsim/architect/costs.py.

Identities (`identity_violations` checks them on any counter table):
  * an fc layer's synaptic events = its input events x its neurons (fan-out);
  * updates_sign_gated <= updates_boxcar_gated <= updates_ungated;
  * updates_ungated is a whole number of (neurons x fan-in) per learning tick;
  * cell_writes <= pulses, weight saturations <= pulses + bias writes;
  * spikes <= membrane updates, membrane updates = neurons x ticks;
  * tile reads: busiest band x column tiles <= tile_activations <= busiest band x tiles (a tick's reads
    are the bands' reads x column tiles, the busiest at least their mean; sums of per-tick maxima keep
    both).
"""
from __future__ import annotations

import numpy as np

from chipsim.architect.costs import geometry, inference_cost, synops_ratio
from chipsim.core.kernels import layout as K


def layer_totals(counters: np.ndarray, layer_names: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """{layer: {counter: total}} from a (..., L, N_COUNTERS) table summed over leading axes."""
    flat = counters.reshape(-1, counters.shape[-2], counters.shape[-1]).sum(axis=0)
    return {name: {cname: int(flat[li, ci]) for ci, cname in enumerate(K.COUNTER_NAMES)}
            for li, name in enumerate(layer_names)}


def in_current_columns(table: np.ndarray, names) -> np.ndarray:
    """A counter table (..., len(names)) written under `names` (another chipsim version's COUNTER_NAMES)
    with its columns moved to today's COUNTER_NAMES; counters it lacks are 0 (chipsim only ever appends
    counters, so a file without names holds the first columns of today's table)."""
    names = tuple(names) if names is not None else K.COUNTER_NAMES[:table.shape[-1]]
    if names == K.COUNTER_NAMES:
        return table
    if len(names) != table.shape[-1]:
        raise ValueError(f"counter table: {table.shape[-1]} columns but {len(names)} counter names")
    out = np.zeros(table.shape[:-1] + (K.N_COUNTERS,), np.int64)
    for i, name in enumerate(names):
        if name in K.COUNTER_NAMES:
            out[..., K.COUNTER_NAMES.index(name)] = table[..., i]
    return out


def adc_summary(chip, totals: dict[str, dict[str, int]]) -> dict | None:
    """The column ADCs' settings and, per weighted layer, conversions and the fraction clipped at full
    scale (None when the chip has no ADCs: chip.adc_bits 0)."""
    c = chip.chip
    if not c.adc_bits:
        return None
    layers = {}
    for li, layer in enumerate(chip.layers):
        if layer.weighted:
            t = totals[layer.name]
            conv = t["adc_conversions"]
            layers[layer.name] = {"range_lsb": c.adc_range_of(layer.name),
                                  "range_input_units": int(chip.desc[li, K.ADC_RANGE]),
                                  "conversions": conv, "clipped": t["adc_clipped"],
                                  "clipped_fraction": t["adc_clipped"] / conv if conv else 0.0}
    return {"bits": c.adc_bits, "range_lsb": c.adc_range, "step_lsb": c.adc_range / (1 << (c.adc_bits - 1)),
            "layers": layers}


def chip_geometry(chip):
    """Cost-model geometry of a deployed chip's layers."""
    return geometry(chip.layers, chip.chip.tile_rows, chip.chip.tile_cols)


def cost_estimate(chip, per_tick: np.ndarray, n_samples: int) -> dict:
    """Cycles, latency and energy per sample from counters summed over samples, shape (T, L, N)."""
    return inference_cost(chip.chip, chip_geometry(chip), per_tick, n_samples)


def synops_vs_mac(chip, totals: dict[str, dict[str, int]], n_samples: int) -> dict:
    """Synaptic operations per sample against the dense MACs of the same ANN (one pass)."""
    table = np.array([[totals[name][c] for c in K.COUNTER_NAMES] for name in chip.layer_names], np.int64)
    return synops_ratio(chip.chip.costs, chip_geometry(chip), table, n_samples)


def identity_violations(counters: np.ndarray, geo, ticks: int | None = None) -> list[str]:
    """Messages for every identity that counters (..., L, N_COUNTERS) break; empty when all hold.

    `geo` from costs.geometry; `ticks` (samples x time steps) enables the
    membrane-update identity, which needs the number of neuron ticks."""
    c = counters.reshape(-1, counters.shape[-2], counters.shape[-1]).sum(axis=0)
    bad = []
    for li, g in enumerate(geo):
        t = c[li]
        name = g.name
        if g.weighted and g.positions == 1 and t[K.C_SYN_AC] != t[K.C_IN_EVENTS] * g.out_c \
                and t[K.C_SYN_MAC] == 0:
            bad.append(f"{name}: synaptic events {t[K.C_SYN_AC]} != input events {t[K.C_IN_EVENTS]} x fan-out {g.out_c}")
        if not t[K.C_SIGN] <= t[K.C_BOXCAR] <= t[K.C_UNGATED]:
            bad.append(f"{name}: expected sign-gated {t[K.C_SIGN]} <= boxcar-gated {t[K.C_BOXCAR]} "
                       f"<= ungated {t[K.C_UNGATED]}")
        if g.weighted and t[K.C_UNGATED] % (g.n_out * g.fan_in):
            bad.append(f"{name}: ungated updates {t[K.C_UNGATED]} not a multiple of neurons x fan-in")
        if t[K.C_CELL_WRITES] > t[K.C_PULSES]:
            bad.append(f"{name}: cell writes {t[K.C_CELL_WRITES]} > pulses {t[K.C_PULSES]}")
        writes = t[K.C_PULSES] + t[K.C_BIAS_WRITES] + t[K.C_THRESHOLD_WRITES]
        if t[K.C_W_SAT] > writes:
            bad.append(f"{name}: register saturations {t[K.C_W_SAT]} > writes {writes}")
        if t[K.C_SPIKES] > t[K.C_MEM_UPDATES]:
            bad.append(f"{name}: spikes {t[K.C_SPIKES]} > membrane updates {t[K.C_MEM_UPDATES]}")
        busiest = t[K.C_TILE_BUSIEST]
        if g.weighted and not busiest * g.col_tiles <= t[K.C_TILE_ACT] <= busiest * g.col_tiles * g.row_bands:
            bad.append(f"{name}: expected busiest band's reads {busiest} x column tiles {g.col_tiles} <= tile "
                       f"activations {t[K.C_TILE_ACT]} <= that x row bands {g.row_bands}")
        if ticks is not None and t[K.C_MEM_UPDATES] != g.n_out * ticks:
            bad.append(f"{name}: membrane updates {t[K.C_MEM_UPDATES]} != neurons {g.n_out} x ticks {ticks}")
    return bad
