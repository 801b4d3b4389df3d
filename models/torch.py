"""PyTorch modules built from the net YAML: the teacher ANN and the float SNN (optional extra).

    pip install -e .[torch]

The YAML stays the one source of truth: both modules are built from a
`NetConfig`, with the same layer names, shapes and parameter layouts as the
chip and the numpy teacher (`chipsim.models.teacher`): conv (out, in_c, k, k),
fc (out, in) with `in` in (C, H, W) flatten order.

Teacher ANN (`Teacher`)
    conv/fc -> [BatchNorm] -> ReLU for every weighted layer but the last, which
    gives the logits. Pooling as in the numpy teacher (avg -> average, or ->
    max). Optional dropout before every fc layer (training only). With the
    defaults of `TeacherOptions.for_net`, a net with convolutions gets
    BatchNorm and dropout 0.2, as the LTL paper's VGG-11 teacher. For the chip
    and the host, BatchNorm is folded into the weights and biases
    (`folded_params`), which gives exactly the numpy teacher's parameters.

Float SNN (`SpikingNet`)
    The chip's dynamics in real units (weights, biases and membrane in the
    same units as the threshold theta), one tick at a time:

        I[t] = W S_in[t] + b                   (S_in[t-1] with chip.delay)
        U[t] = alpha U[t-1] + I[t] - theta S[t-1]        reset: subtract
        U[t] = (1 - S[t-1]) alpha U[t-1] + I[t]         reset: zero
        S[t] = U[t] >= theta

    The input is the image x = pixel / pixel_max on every tick (`direct`
    encoder), or spikes (`rate`: Bernoulli, `if`: integrate-and-fire; `events`:
    the recordings' binned spike trains when `event_trains` is set, as the chip
    gets them, else integrate-and-fire spikes of their rate images).
    Pooling layers are the chip's fixed neurons (avg: IF with threshold k*k on
    the window's spike sum; or: spike OR). The last layer is either an
    integrator (`readout: potential`, no leak, no reset: the logits are its
    mean input current) or spiking (`readout: count`).
    Spikes have the boxcar surrogate gradient of paper Eq. 8:
    dS/dU = 1/p if |U - theta| < p/2, with p = learning.p * theta.

Noise-aware training (`weight_noise` = s > 0, training mode only): every
forward pass runs through W (1 + s xi), b (1 + s xi') with fresh xi ~ N(0, 1),
as if each batch ran on another chip with frozen device mismatch.

What it does not do: the chip's integer truncation of the leak, saturation
of registers and weight quantization; `export_snn` quantizes at the end.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from chipsim.config import LayerConfig, NetConfig
from chipsim.core.weights import WeightBundle

BN_EPS = 1e-5


# --------------------------------------------------------------------------- teacher ANN


@dataclass(frozen=True)
class TeacherOptions:
    """How the teacher ANN is built around the net's layers (not part of the chip)."""

    batchnorm: bool = False    #: BatchNorm after every weighted layer but the last
    dropout: float = 0.0       #: dropout probability before every fc layer (training only)

    @classmethod
    def for_net(cls, net: NetConfig, batchnorm: bool | None = None, dropout: float | None = None) \
            -> "TeacherOptions":
        """Defaults: BatchNorm and dropout 0.2 for nets with convolutions (the paper's VGG-11), none for MLPs."""
        conv = any(layer.type == "conv" for layer in net.layers)
        return cls(conv if batchnorm is None else batchnorm, (0.2 if conv else 0.0) if dropout is None else dropout)


def _weighted_module(layer: LayerConfig) -> nn.Module:
    if layer.type == "conv":
        return nn.Conv2d(layer.in_shape[0], layer.out_shape[0], layer.kernel, layer.stride, layer.padding)
    return nn.Linear(layer.fan_in, layer.out_shape[0])


class Teacher(nn.Module):
    """The teacher ANN of a net. `forward(x)` gives logits; `activations(x)` every layer's output.

    Input: x = pixel / pixel_max, float (N, C, H, W)."""

    def __init__(self, net: NetConfig, options: TeacherOptions | None = None):
        super().__init__()
        self.net = net
        self.options = options or TeacherOptions.for_net(net)
        self.last = net.weighted_layers[-1].name
        self.weighted = nn.ModuleDict({layer.name: _weighted_module(layer) for layer in net.weighted_layers})
        norms = {}
        if self.options.batchnorm:
            for layer in net.weighted_layers:
                if layer.name != self.last:
                    bn = nn.BatchNorm2d if layer.type == "conv" else nn.BatchNorm1d
                    norms[layer.name] = bn(layer.out_shape[0], eps=BN_EPS)
        self.norms = nn.ModuleDict(norms)

    def activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """One tensor per layer of net.layers, like `models.teacher.forward`: ReLU outputs of hidden
        weighted layers, pooled / flattened maps, logits last (fc outputs are (N, out))."""
        outs = []
        h = x
        for layer in self.net.layers:
            if layer.weighted:
                if layer.type == "fc":
                    h = h.flatten(1)
                    if self.options.dropout > 0:
                        h = F.dropout(h, self.options.dropout, self.training)
                h = self.weighted[layer.name](h)
                if layer.name in self.norms:
                    h = self.norms[layer.name](h)
                if layer.name != self.last:
                    h = F.relu(h)
            elif layer.type == "pool":
                h = F.avg_pool2d(h, layer.kernel) if layer.pool == "avg" else F.max_pool2d(h, layer.kernel)
            else:
                h = h.flatten(1)
            outs.append(h)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activations(x)[-1]


def folded_params(model: Teacher) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Float teacher parameters {name: (W, b)} with BatchNorm (eval statistics) folded in.

    y = gamma (W x + b - mean) / sqrt(var + eps) + beta  ==  W' x + b'."""
    params = {}
    with torch.no_grad():
        for name, mod in model.weighted.items():
            w = mod.weight.detach().double()
            b = mod.bias.detach().double() if mod.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
            if name in model.norms:
                bn = model.norms[name]
                g = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
                w = w * g.reshape(-1, *([1] * (w.dim() - 1)))
                b = (b - bn.running_mean.double()) * g + bn.bias.double()
            params[name] = (w.float().numpy().copy(), b.float().numpy().copy())
    return params


def copy_params(weighted, params: dict) -> None:
    """Copy float parameters {name: (W, b)} into the modules of `weighted` (name -> conv/linear)."""
    with torch.no_grad():
        for name, mod in weighted.items():
            w, b = params[name]
            mod.weight.copy_(torch.as_tensor(np.asarray(w, np.float32)).reshape(mod.weight.shape))
            mod.bias.copy_(torch.as_tensor(np.asarray(b, np.float32)))


def load_folded(model: Teacher, params: dict) -> None:
    """Put float parameters {name: (W, b)} into `model`; its BatchNorm layers become the identity."""
    copy_params(model.weighted, params)
    with torch.no_grad():
        for bn in model.norms.values():
            bn.reset_parameters()
            bn.running_var.fill_(1.0 - bn.eps)      # sqrt(var + eps) = 1: exactly the identity


# --------------------------------------------------------------------------- float SNN


class BoxcarSpike(torch.autograd.Function):
    """S = (v >= 0); dS/dv = 1/p on |v| < p/2 (paper Eq. 8), v = U - theta."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, p: float) -> torch.Tensor:
        ctx.save_for_backward(v)
        ctx.p = p
        return (v >= 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (v,) = ctx.saved_tensors
        return grad * ((v.abs() < ctx.p / 2).to(grad.dtype) / ctx.p), None


@dataclass
class LayerRun:
    """One layer's output over a time window."""

    spikes: torch.Tensor | None     #: (T, B, ...) spike trains (None for a potential readout)
    currents: torch.Tensor | None   #: (T, B, ...) input currents of weighted layers


class SpikingNet(nn.Module):
    """The float SNN of a net (see the module docstring). Parameters are real-valued, conventional layouts."""

    def __init__(self, net: NetConfig):
        super().__init__()
        self.net = net
        self.theta = float(net.neuron.threshold)
        self.alpha = float(net.neuron.alpha) if net.neuron.model == "LIF" else 1.0
        self.reset = net.neuron.reset
        self.delay = net.chip.delay
        #: events encoder: the batch's (T, B, C, H, W) spike trains (pretrain.event_trains), which `encode`
        #: returns instead of encoding x (x stays the rate image, for the shapes and the teacher)
        self.event_trains: torch.Tensor | None = None
        self.T = net.time_steps
        self.p = float(net.learning.p) * self.theta
        self.last = net.weighted_layers[-1].name
        self.weighted = nn.ModuleDict({layer.name: _weighted_module(layer) for layer in net.weighted_layers})
        #: noise-aware training: relative spread of weight and bias mismatch drawn per forward pass
        self.weight_noise = 0.0
        self._draws: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # ---------------------------------------------------------------- pieces
    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(T, B, C, H, W) input of the first layer; x = pixel / pixel_max in [0, 1]."""
        enc = self.net.encoder
        T = self.T
        if enc.kind == "events" and self.event_trains is not None:
            if tuple(self.event_trains.shape) != (T, *x.shape):
                raise ValueError(f"event_trains: shape {tuple(self.event_trains.shape)}, expected {(T, *x.shape)}")
            out = self.event_trains
        elif enc.kind == "direct":
            out = x.unsqueeze(0).expand(T, *x.shape)
        elif enc.kind == "rate":
            prob = (x * enc.max_rate).clamp(0, 1).unsqueeze(0).expand(T, *x.shape)
            out = torch.bernoulli(prob, generator=generator)
        else:   # if: v += x each tick, spike and subtract 1 when v >= 1
            v = torch.zeros_like(x)
            spikes = []
            for _ in range(T):
                v = v + x
                s = (v >= 1.0).to(x.dtype)
                v = v - s
                spikes.append(s)
            out = torch.stack(spikes)
        if self.delay:
            out = torch.cat([torch.zeros_like(out[:1]), out[:-1]])
        return out

    def currents(self, layer: LayerConfig, inputs: torch.Tensor) -> torch.Tensor:
        """(T, B, ...) input currents of a weighted layer for (T, B, ...) inputs (one batched call)."""
        T, B = inputs.shape[:2]
        flat = inputs.reshape(T * B, *inputs.shape[2:])
        if layer.type == "fc":
            flat = flat.flatten(1)
        out = self.apply_layer(layer, flat)
        return out.reshape(T, B, *out.shape[1:])

    def apply_layer(self, layer: LayerConfig, h: torch.Tensor) -> torch.Tensor:
        """W h + b of a weighted layer; in training with `weight_noise` = s, through a mismatched copy
        W (1 + s xi), b (1 + s xi'), xi drawn once per forward pass (one simulated chip per batch)."""
        mod = self.weighted[layer.name]
        if not (self.training and self.weight_noise > 0):
            return mod(h)
        key = layer.name
        if key not in self._draws:
            self._draws[key] = (torch.randn_like(mod.weight), torch.randn_like(mod.bias))
        ew, eb = self._draws[key]
        w = mod.weight * (1 + self.weight_noise * ew)
        b = mod.bias * (1 + self.weight_noise * eb)
        if layer.type == "conv":
            return F.conv2d(h, w, b, layer.stride, layer.padding)
        return F.linear(h, w, b)

    def neurons(self, cur: torch.Tensor, theta: float | None = None, alpha: float | None = None,
                reset: str | None = None) -> torch.Tensor:
        """Spike trains (T, B, ...) of neurons driven by currents (T, B, ...); BPTT through the membrane."""
        theta = self.theta if theta is None else theta
        alpha = self.alpha if alpha is None else alpha
        reset = self.reset if reset is None else reset
        u = torch.zeros_like(cur[0])
        s = torch.zeros_like(cur[0])
        out = []
        for t in range(cur.shape[0]):
            if reset == "subtract":
                u = alpha * u - theta * s + cur[t]
            else:
                u = (1.0 - s) * (alpha * u) + cur[t]
            s = BoxcarSpike.apply(u - theta, self.p)
            out.append(s)
        return torch.stack(out)

    def run_layer(self, layer: LayerConfig, inputs: torch.Tensor) -> LayerRun:
        """One layer over the window; `inputs` (T, B, ...) are the layer below's spikes (or the input)."""
        last = layer.name == self.last
        if layer.weighted:
            cur = self.currents(layer, inputs)
            if last and self.net.readout == "potential":
                return LayerRun(None, cur)
            spikes = self.neurons(cur)
        elif layer.type == "pool":
            T, B = inputs.shape[:2]
            flat = inputs.reshape(T * B, *inputs.shape[2:])
            k = layer.kernel
            if layer.pool == "avg":     # IF neurons, weight 1 per input spike, threshold k*k
                cur = F.avg_pool2d(flat, k) * (k * k)
                cur = cur.reshape(T, B, *cur.shape[1:])
                spikes = self.neurons(cur, theta=float(k * k), alpha=1.0, reset="subtract")
            else:                       # memoryless OR of the window's spikes
                out = F.max_pool2d(flat, k)
                spikes = out.reshape(T, B, *out.shape[1:])
            cur = None
        else:                           # flatten
            spikes = inputs.flatten(2)
            cur = None
        return LayerRun(spikes, cur)

    def _static_first(self, layer: LayerConfig, x: torch.Tensor) -> LayerRun:
        """The first layer under the direct encoder: its input current is the same on every tick."""
        mod = self.weighted[layer.name]
        cur1 = self.apply_layer(layer, x.flatten(1) if layer.type == "fc" else x)
        cur = cur1.unsqueeze(0).expand(self.T, *cur1.shape)
        if self.delay:      # tick 0 sees no input yet, only the bias
            bias = mod.bias.reshape(1, -1, *([1] * (cur1.dim() - 2))).expand_as(cur1)
            cur = torch.cat([bias.unsqueeze(0), cur[1:]])
        return LayerRun(self.neurons(cur), cur)

    def readout_logits(self, run: LayerRun) -> torch.Tensor:
        """(B, classes) scores: the mean input current (potential) or the spike rate (count)."""
        if self.net.readout == "potential":
            return run.currents.mean(0)
        return run.spikes.mean(0)

    def forward(self, x: torch.Tensor, detach_between_layers: bool = True,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, LayerRun]]:
        """Scores (B, classes) and every layer's run. With `detach_between_layers` each layer's input
        is detached: gradients stay inside a layer (layer-local learning)."""
        h = self.encode(x, generator)
        runs = {}
        self._draws = {}          # a fresh mismatch draw per pass (noise-aware training only)
        for i, layer in enumerate(self.net.layers):
            if detach_between_layers:
                h = h.detach()
            if i == 0 and layer.weighted and self.net.encoder.kind == "direct" and layer.name != self.last:
                run = self._static_first(layer, x)      # same input every tick: one call, not T
            else:
                run = self.run_layer(layer, h)
            runs[layer.name] = run
            h = run.spikes
            if self.delay and h is not None and layer.type != "flatten":   # the next layer sees tick t-1
                h = torch.cat([torch.zeros_like(h[:1]), h[:-1]])
        return self.readout_logits(runs[self.last]), runs

    def rates(self, run: LayerRun) -> torch.Tensor:
        """Spike rate C[T] / T of a layer, (B, ...)."""
        return run.spikes.mean(0)


def snn_params(model: SpikingNet) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {name: (mod.weight.detach().float().numpy().copy(), mod.bias.detach().float().numpy().copy())
            for name, mod in model.weighted.items()}


def load_snn_params(model: SpikingNet, params: dict) -> None:
    copy_params(model.weighted, params)


def balanced_params(net: NetConfig, params: dict, lambdas: dict[str, float], leak_compensation: float = 1.0) -> dict:
    """Threshold balancing in real units, as the chip conversion (models/convert.py, before
    quantization), leak compensation included: the float SNN's starting point."""
    from .convert import balanced

    return {k: (w.astype(np.float32), b.astype(np.float32))
            for k, (w, b) in balanced(net, params, lambdas, leak_compensation).items()}


def export_snn(net: NetConfig, params: dict, pixel_max: int, provenance: dict | None = None) -> WeightBundle:
    """Float SNN parameters (real units, threshold = net.neuron.threshold) -> integer chip weights,
    quantized as a conversion is (models/convert.quantize)."""
    from .convert import quantize

    attrs = {"provenance": json.dumps({"method": "offline-ltl", **(provenance or {})})}
    return WeightBundle(quantize(net, params, pixel_max), attrs)


def bundle_to_snn_params(net: NetConfig, bundle: WeightBundle, pixel_max: int) -> dict:
    """Integer chip weights back to real-unit float SNN parameters (threshold = net.neuron.threshold).

    Real units are rescaled so each layer's integer threshold maps to theta exactly."""
    theta = net.neuron.threshold
    out = {}
    for i, layer in enumerate(net.weighted_layers):
        lw = bundle.layers[layer.name]
        s = theta / lw.threshold
        w = lw.weight.astype(np.float64) * s
        if i == 0 and net.encoder.kind == "direct":
            w = w * pixel_max
        out[layer.name] = (w.astype(np.float32), (lw.bias.astype(np.float64) * s).astype(np.float32))
    return out


def n_params(net: NetConfig) -> int:
    return int(sum(layer.fan_in * layer.out_shape[0] + layer.out_shape[0] for layer in net.weighted_layers))


def macs_per_tick(net: NetConfig) -> int:
    """Multiply-accumulates of one dense forward pass (one tick of the SNN, one ANN inference)."""
    return int(sum(layer.fan_in * layer.n_out for layer in net.weighted_layers))


def set_seed(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


__all__ = ["TeacherOptions", "Teacher", "folded_params", "load_folded", "BoxcarSpike", "SpikingNet",
           "snn_params", "load_snn_params", "balanced_params", "export_snn", "bundle_to_snn_params",
           "n_params", "macs_per_tick", "set_seed"]
