"""Chip area per block, from the geometry of the deployed net and the per-unit areas of the chip preset.

Blocks (square micrometres; reported in mm^2):
    crossbar_arrays    tiles x tile_rows x tile_cols x ceil(weight_bits / cell_bits) x area_cell_um2
    adcs_sense_amps    R x ceil(tile_cols / adc_columns) x area_adc_um2
    drivers            (R + W) x (tile_rows + tile_cols) x area_driver_um2
                       R = min(parallel_tiles, tiles): the tiles that read at once share that many sets
                       of read periphery; W = min(parallel_write_arrays, tiles) sets of write drivers
    neuron_blocks      parallel_neurons x area_neuron_lane_um2
                       + neurons x (membrane_bits + counter_bits) x area_sram_bit_um2   (state SRAM)
    learning_circuit   parallel_neurons x area_learn_lane_um2 + learning neurons x 8 target bits x SRAM bit
    spike_buffers_sram (layers - 1) router FIFOs x spike_queue_depth x 16-bit addresses
                       + link_buffers x batch x input bytes per sample (the input buffers), in SRAM bits
    host_interface     area_host_if_um2
A tile is one crossbar array (weights are stationary and not replicated, so the
tiles are the layers' row bands x column tiles). Arrays count whole, unused
cells included. Peripheral overheads beyond those blocks (wiring, control,
SRAM decoders) are not modelled: the total is a lower bound of a die.
The per-unit figures and their sources are the preset's (models/chips/);
the ones without a source are marked there as assumptions.
"""
from __future__ import annotations

import math

BLOCKS = ("crossbar_arrays", "adcs_sense_amps", "drivers", "neuron_blocks", "learning_circuit",
          "spike_buffers_sram", "host_interface")


def area_section(chip, geo, n_neurons: int, learning_neurons: int, batch_size: int,
                 input_bytes_per_sample: int) -> dict:
    """{"blocks_mm2": {...}, "total_mm2": ..., "tiles": ...} for chip config `chip` and layer geometry `geo`."""
    c = chip.costs
    tiles = sum(g.row_bands * g.col_tiles for g in geo if g.weighted)
    cells_per_weight = math.ceil(chip.weight_bits / max(1, c.cell_bits))
    readers = min(c.parallel_tiles, tiles)
    writers = min(c.parallel_write_arrays, tiles)
    um2 = {
        "crossbar_arrays": tiles * chip.tile_rows * chip.tile_cols * cells_per_weight * c.area_cell_um2,
        "adcs_sense_amps": readers * math.ceil(chip.tile_cols / max(1, c.adc_columns)) * c.area_adc_um2,
        "drivers": (readers + writers) * (chip.tile_rows + chip.tile_cols) * c.area_driver_um2,
        "neuron_blocks": c.parallel_neurons * c.area_neuron_lane_um2
        + n_neurons * (chip.membrane_bits + chip.counter_bits) * c.area_sram_bit_um2,
        "learning_circuit": (c.parallel_neurons * c.area_learn_lane_um2 + learning_neurons * 8 * c.area_sram_bit_um2
                             if learning_neurons else 0.0),
        "spike_buffers_sram": (max(0, len(geo) - 1) * c.spike_queue_depth * 16
                               + c.link_buffers * batch_size * input_bytes_per_sample * 8) * c.area_sram_bit_um2,
        "host_interface": c.area_host_if_um2,
    }
    blocks = {k: um2[k] / 1e6 for k in BLOCKS}
    return {"model": "chipsim/architect/area.py (per-unit areas of the chip preset; no wiring or control)",
            "tiles": tiles, "blocks_mm2": blocks, "total_mm2": sum(blocks.values())}
