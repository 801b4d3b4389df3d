"""NeuroBench metrics of a run (Yik et al., NeuroBench, Nat. Commun. 2025; `neurobench.metrics`), exact.

* synaptic operations, per sample, in weighted layers only (bias and pooling are not synaptic ops):
  - dense:          every (input, weight) pair of every layer at every tick, zero weights included,
                    padding excluded (NeuroBench runs the layer on an all-ones input with all-ones weights);
  - effective MACs: nonzero multi-bit input x nonzero weight pairs (the direct encoder's pixels, or the
                    events encoder's per-tick counts with bin_value count);
  - effective ACs:  nonzero binary input (spike) x nonzero weight pairs.
  chipsim's own `synops` counts every crossbar cell a spike reads, zero weights included: it is
  the hardware's work; NeuroBench's effective ops skip zero weights.
* activation sparsity: 1 - spikes / (neurons x ticks x samples) over the spiking neurons of weighted
  layers (NeuroBench hooks the neuron layers; pooling neurons and a non-spiking readout are not neurons there).
* connection sparsity: zero weights / all weights of weighted layers, as deployed.
* footprint: bytes of the chip's registers at their widths (weights, biases, thresholds, leak multipliers;
  state: membranes, spike counters, spike bits). NeuroBench counts torch parameters and buffers at their
  storage size (4 bytes for float32), so a float model and its chip differ by the width ratio.
Where NeuroBench's own rule differs: it classifies a layer's input as spikes when every value is in
{-1, 0, 1}; chipsim calls the direct encoder's input and event counts multi-bit (MAC) and every spike input binary (AC).
"""
from __future__ import annotations

import numpy as np


def input_activity(chip, inputs: np.ndarray) -> np.ndarray:
    """Per chip input (chip order), the number of (sample, tick) with a nonzero input, for one batch."""
    from chipsim.core.kernels import layout as K

    T = chip.net.time_steps
    if chip.input_mode == K.IN_HELD:
        return (np.asarray(inputs) != 0).sum(axis=0).astype(np.int64) * T
    if chip.input_mode == K.IN_COUNTS:                     # (B, T, n_in) counts per tick
        return (np.asarray(inputs) != 0).sum(axis=(0, 1)).astype(np.int64)
    bits = np.unpackbits(np.asarray(inputs, np.uint8), axis=2)[:, :, :chip.n_inputs]
    return bits.sum(axis=(0, 1)).astype(np.int64)


def _pair_ops(layer, activity: np.ndarray, weight_mask: np.ndarray) -> int:
    """sum over (active input, nonzero weight) pairs of one layer, inputs in chip order."""
    from chipsim.core.chip import crossbar_matrix

    mat = crossbar_matrix(layer, weight_mask.astype(np.int64))          # (fan_in, out_c) 0/1
    if layer.type == "fc":
        return int(activity.astype(np.int64) @ mat.sum(axis=1))
    c, h, w = layer.in_shape
    _, oh, ow = layer.out_shape
    k, s, p = layer.kernel, layer.stride, layer.padding
    a = np.zeros((h + 2 * p, w + 2 * p, c), np.int64)
    a[p:p + h, p:p + w] = activity.reshape(h, w, c)
    nnz = mat.sum(axis=1).reshape(k, k, c)
    total = 0
    for ky in range(k):
        for kx in range(k):
            window = a[ky:ky + s * oh:s, kx:kx + s * ow:s]
            total += int((window.sum(axis=(0, 1)) * nnz[ky, kx]).sum())
    return total


def neurobench_metrics(chip, counter_totals: dict, activity_in: np.ndarray, neuron_counts: np.ndarray,
                       n_samples: int) -> dict:
    """`counter_totals` {layer: {counter: total}}; `activity_in` (n_inputs,) from input_activity summed over
    batches; `neuron_counts` (neurons,) spike counts summed over samples."""
    from chipsim.core.chip import crossbar_matrix  # noqa: F401  (layout shared with _pair_ops)
    from chipsim.core.kernels import layout as K
    from chipsim.interchange.nir_export import layer_weights

    n = max(1, n_samples)
    T = chip.net.time_steps
    direct = chip.input_mode != K.IN_SPIKES     # multi-bit first-layer input: direct pixels or event counts
    dense = macs = acs = 0
    zeros = weights = 0
    activity = activity_in
    spikes = neurons = 0
    for li, layer in enumerate(chip.layers):
        sl = chip.layer_slice(layer.name)
        if layer.weighted:
            w, _ = layer_weights(chip, li)
            ops = _pair_ops(layer, activity, w != 0)
            if li == 0 and direct:
                macs += ops
            else:
                acs += ops
            dense += _pair_ops(layer, np.full(activity.shape, n * T, np.int64), np.ones(w.shape, bool))
            zeros += int((w == 0).sum())
            weights += w.size
            spiking = not (li == len(chip.layers) - 1 and chip.net.readout == "potential")
            if spiking:
                spikes += counter_totals[layer.name]["spikes"]
                neurons += layer.n_out
        activity = np.asarray(neuron_counts[sl], np.int64)
    c = chip.chip
    n_neurons = chip.n_neurons
    leak_regs = n_neurons if chip.net.neuron.model == "LIF" else 0
    param_bits = weights * c.weight_bits + sum(lyr.out_shape[0] for lyr in chip.layers if lyr.weighted) * c.bias_bits \
        + n_neurons * c.membrane_bits + leak_regs * (c.leak_bits + 1)
    state_bits = n_neurons * (c.membrane_bits + c.counter_bits + 1)
    return {
        "synops_dense_per_sample": dense / n,
        "effective_macs_per_sample": macs / n,
        "effective_acs_per_sample": acs / n,
        "activation_sparsity": 1.0 - spikes / max(1, neurons * T * n),
        "connection_sparsity": zeros / max(1, weights),
        "footprint_bytes": (param_bits + state_bits) / 8,
        "footprint_parameter_bytes": param_bits / 8,
        "footprint_state_bytes": state_bits / 8,
        "definitions": "NeuroBench (chipsim/architect/neurobench.py); chipsim's `synops` also counts zero-weight cells",
        "exact": bool(T < (1 << c.counter_bits)),   # per-neuron counts come from saturating counters
    }
