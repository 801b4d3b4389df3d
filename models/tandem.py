"""Tandem learning (Wu et al., IEEE TNNLS 2021, arXiv 1907.01167): `chipsim pretrain --method tandem`.

An SNN and an ANN share their weights. Layer by layer, for a batch:

    SNN:  S_l[t] = the layer's neurons (the net's IF / LIF, its reset, T ticks) driven by
          I_l[t] = W_l S_{l-1}[t] + b_l;        C_l = sum_t S_l[t]   (the true spike count)
    ANN:  V_l = W_l C_{l-1} + T b_l              (the aggregate membrane potential)
          A_l = clamp(V_l / theta, 0, T)         (the approximate spike count)
    passed on:  C_l  (value)  with dC_l/dV_l := dA_l/dV_l  (the gradient of the ANN)

so the next layer, SNN and ANN alike, receives the SNN's true count, and the
loss of the output layer is backpropagated end to end through the ANN's
approximations (no gradient through time). Pooling layers are the chip's
fixed neurons: avg is IF with threshold k*k (ANN: clamp(avg_pool(C), 0, T)),
or is a spike OR (ANN: max_pool(C), a lower bound of the OR's count).

The paper's choices: the shared weights; the SNN's spike count as the
discrete representation passed between layers; the ANN activation, a ReLU
of the aggregate membrane potential scaled by the threshold and clamped to
[0, T]; IF neurons with reset by subtraction; the analog image fed to the
first layer on every tick (our `direct` encoder); a non-spiking output layer
that integrates its input (our `readout: potential`) with cross-entropy.

Ours:
* the neuron is the net's (a LIF net's SNN leaks; its ANN ignores the leak),
  and with `chip.delay` the ANN ignores the one-tick shift (it loses at most
  the last tick's input);
* the loss: cross-entropy on the scores times y_norm / theta of the output
  layer (as offline LTL: in the teacher's logit units, so the softmax has
  the teacher's temperature), for `readout: potential` the mean input
  current, for `readout: count` the output spike count / T (its gradient
  through the clamped ANN, so a silent correct class learns only through
  the others);
* the start (`--ltl-init`): the threshold-balanced teacher (default), random
  weights, or a chipsim weights file; the paper starts from random weights;
* the optimiser and schedule are offline LTL's (Adam, warm-up then cosine,
  `--ltl-lr`, `--ltl-epochs`, `--ltl-samples`, `--ltl-batch-size`), and
  `--train-mismatch` works as there;
* the file's float teacher (the host's targets for on-chip calibration) is
  the teacher the training started from, as for offline LTL. The coupled
  ANN (the trained SNN's weights read as a ReLU ANN) is no substitute: the
  host's numpy teacher has no upper clamp, and a tandem-trained SNN leans on
  its rates saturating at 1 (fashion, T = 8: chip SNN 89.3 %, the same
  weights as an unclamped ReLU ANN 24.9 %; calibrating towards it under
  mismatch=0.4 went 20.3 -> 21.8 %);
* progressive tandem learning (`--tandem-progressive`; the PTL row of the LTL
  paper's Table 1, Wu et al. 2020) in our simplest form: the training steps
  fall into L + 1 equal phases, phase k with the first k weighted layers
  spiking and the rest a pure ANN of clamped ReLUs (`progressive_layers`);
  the paper's PTL schedules the switches by the validation loss and
  fine-tunes between them.

Training, checkpoints, resume, seeding and export are those of offline LTL
(models/pretrain.py, stage 2); this module gives the forward pass and the loss.
"""
from __future__ import annotations

import numpy as np

from .errors import _torch


def approx_count(v, theta: float, T: int):
    """The ANN's approximate spike count clamp(V / theta, 0, T) of aggregate potentials V (numpy or torch)."""
    if isinstance(v, np.ndarray):
        return np.clip(v / theta, 0.0, float(T))
    return (v / theta).clamp(0.0, float(T))


def straight_through(value, approx):
    """`value` forward, the gradient of `approx` backward: approx + (value - approx), the bracket detached."""
    return approx + (value - approx).detach()


class TandemPass:
    """What one tandem forward pass gives: the scores and, per layer, the SNN's and the ANN's counts."""

    def __init__(self, scores, counts: dict, approx: dict):
        self.scores = scores          #: (B, classes): the SNN's values, the ANN's gradient
        self.counts = counts          #: layer name -> (B, ...) spike count passed on (SNN value, ANN gradient)
        self.approx = approx          #: layer name -> (B, ...) the ANN's approximate count


def progressive_layers(net, progress: float) -> int:
    """Progressive tandem learning: how many weighted layers (from the input) run as SNN at `progress`
    (0..1, the fraction of training done). With L switchable layers (all weighted layers; a potential
    readout's is exact in both and not counted), training runs in L + 1 equal phases: phase k has the
    first k layers spiking, the last phase the whole SNN."""
    L = len(net.weighted_layers) - (1 if net.readout == "potential" else 0)
    return min(L, int(progress * (L + 1)))


def tandem_forward(snn, x, generator=None, snn_layers: int | None = None) -> TandemPass:
    """One tandem pass of a `SpikingNet` over x = pixel / pixel_max (B, C, H, W); see the module docstring.

    `snn_layers` = k (progressive tandem learning): only the first k weighted layers (and the pooling
    between them) spike; from the next weighted layer on the pass is the ANN alone (its approximate
    counts passed on, gradients exact). None: every layer spikes."""
    torch = _torch()
    import torch.nn.functional as F

    net = snn.net
    T = snn.T
    snn._draws = {}                   # one mismatch draw per pass (noise-aware training), shared by SNN and ANN
    with torch.no_grad():
        spikes = snn.encode(x, generator)
    count_in = spikes.sum(0) if net.encoder.kind != "direct" else x * T   # direct: the image on every tick
    counts, approx = {}, {}
    scores = None
    weighted_seen = 0
    for i, layer in enumerate(net.layers):
        last = layer.name == snn.last
        if layer.weighted:
            weighted_seen += 1
        spiking = snn_layers is None or weighted_seen <= snn_layers
        if layer.weighted:
            run = None
            if spiking:
                with torch.no_grad():
                    if i == 0 and net.encoder.kind == "direct" and not last:
                        run = snn._static_first(layer, x)
                    else:
                        run = snn.run_layer(layer, spikes)
            c = count_in.flatten(1) if layer.type == "fc" else count_in
            v = snn.apply_layer(layer, c / T) * T                       # W C + T b
            if last and net.readout == "potential":
                scores = straight_through(run.currents.mean(0), v / T) if run is not None else v / T
                counts[layer.name] = approx[layer.name] = scores
                break
            a = approx_count(v, snn.theta, T)
        elif layer.type == "pool":
            run = None
            if spiking:
                with torch.no_grad():
                    run = snn.run_layer(layer, spikes)
            k = layer.kernel
            a = (F.avg_pool2d(count_in, k).clamp(0.0, float(T)) if layer.pool == "avg"
                 else F.max_pool2d(count_in, k))
        else:                                                             # flatten
            if spikes is not None:
                spikes = spikes.flatten(2)
            count_in = count_in.flatten(1)
            counts[layer.name] = approx[layer.name] = count_in
            continue
        approx[layer.name] = a
        if run is not None:
            out_spikes = run.spikes
            c_snn = out_spikes.sum(0)
            count_in = straight_through(c_snn, a.reshape(c_snn.shape))
            spikes = out_spikes
            if snn.delay:           # the next layer sees tick t-1 (as SpikingNet.forward)
                spikes = torch.cat([torch.zeros_like(spikes[:1]), spikes[:-1]])
        else:                       # an ANN layer of progressive tandem learning: its own count goes on
            count_in = a
            spikes = None
        counts[layer.name] = count_in
        if last:
            scores = count_in.flatten(1) / T
    return TandemPass(scores, counts, approx)


def tandem_losses(net, snn, teacher, x, y, norms: dict[str, float], snn_layers: int | None = None) -> dict:
    """The tandem loss of one batch, {output layer: cross-entropy}; `teacher` is unused (the signature of
    `pretrain.ltl_losses`, so both fit one training loop); `snn_layers` as in `tandem_forward`."""
    import torch.nn.functional as F

    del teacher
    run = tandem_forward(snn, x, snn_layers=snn_layers)
    return {snn.last: F.cross_entropy(run.scores * (norms[snn.last] / snn.theta), y)}


__all__ = ["approx_count", "straight_through", "TandemPass", "progressive_layers", "tandem_forward",
           "tandem_losses"]
