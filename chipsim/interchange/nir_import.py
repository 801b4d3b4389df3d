"""NIR graph -> chipsim net YAML + HDF5 weights (`chipsim import-nir GRAPH.nir --out DIR`).

Mappable chain (see nir_chain): Input, then per chip layer a weighted node (Affine,
Linear, Conv2d) followed by its neurons (IF, LIF, CubaLIF with tau_syn = dt, or an
integrator I as the non-spiking readout), with SumPool2d / AvgPool2d and Flatten
between layers, then Output.

Time: NIR neurons are continuous-time; the chip ticks. With `dt` (seconds per tick;
snntorch and nirtorch write graphs for dt = 1e-4) a LIF's leak is alpha = 1 - dt / tau
and its input gain r dt / tau (forward Euler, as snntorch and norse read NIR); IF and I
integrate r x I per tick. Per-neuron gains and thresholds are folded into each neuron's
weights and bias (spikes are unchanged when a neuron's input and threshold scale alike),
so a layer keeps one threshold register value. Every approximation made is written
into the YAML's header comments and the weights file's provenance.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from .grid import quantize_layer
from .nir_chain import NIRImportError, chain, input_shape, nir_module, read_graph

DEFAULT_DT = 1e-4            #: seconds per tick assumed by snntorch's and nirtorch's NIR export
META_NET = "chipsim_net"     #: graph metadata key chipsim's export writes the net's settings under
META_SCALE = "chipsim_scale"  #: node metadata key of a layer's LSB as chipsim exported it
NEURONS = ("IF", "LIF", "CubaLIF", "I")
WEIGHTED = ("Affine", "Linear", "Conv2d")
POOLS = ("SumPool2d", "AvgPool2d")


@dataclass
class ImportOptions:
    dt: float = DEFAULT_DT               #: seconds per chip tick
    time_steps: int | None = None        #: None: the graph's chipsim metadata, else 32
    encoder: str | None = None           #: rate, if, direct; None: metadata, else direct
    input_bits: int | None = None        #: direct encoder; None: metadata, else 8
    input_scale: float = 1.0             #: the graph's input value for one chip input level (pixel or spike)
    weight_bits: int | None = None       #: None: metadata, else 8
    data: str | None = None              #: dataset of the net; None: metadata, else digits
    name: str | None = None              #: net name; None: metadata, else the file's stem


@dataclass
class Imported:
    mapping: dict                        #: the net YAML's mapping
    bundle: object                       #: WeightBundle
    layers: dict                         #: per chip layer: NIR nodes, scale, how, errors
    approximations: list[str] = field(default_factory=list)


def _arr(x) -> np.ndarray:
    return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, np.float64)


def _meta(node_or_graph, key):
    meta = getattr(node_or_graph, "metadata", None) or {}
    value = meta.get(key)
    return value.decode() if isinstance(value, bytes) else value


class _Source:
    """Error messages that name the file and the node."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, name: str, node, what: str):
        raise NIRImportError(f"{self.source}: node {name!r} ({type(node).__name__}): {what}")


def _per_neuron(src: _Source, name: str, node, attr: str, shape: tuple[int, ...]) -> np.ndarray:
    """A neuron parameter as one float per neuron, flat in (C, H, W) order."""
    x = _arr(getattr(node, attr))
    if len(shape) == 3 and x.shape == (shape[0],) and shape[1:] != (1, 1):
        x = x.reshape(shape[0], 1, 1)           # one value per channel
    try:
        return np.broadcast_to(x.reshape(shape) if x.size == np.prod(shape) else x, shape).reshape(-1).copy()
    except ValueError:
        src.fail(name, node, f"{attr} has shape {x.shape}; expected the layer's output shape {shape}, "
                             "one value per channel, or a scalar")


def _neurons(src: _Source, name: str, node, shape, dt: float, notes: set) -> dict:
    """alpha, gain, theta per neuron and whether the layer spikes, from a neuron node."""
    kind = type(node).__name__
    n = int(np.prod(shape))
    p = {a: _per_neuron(src, name, node, a, shape) for a in ("r", "v_threshold", "v_reset", "tau", "tau_mem",
                                                             "tau_syn", "v_leak", "w_in") if hasattr(node, a)}
    alpha = np.ones(n)
    gain = p["r"].copy()
    if kind in ("LIF", "CubaLIF"):
        tau = p["tau"] if kind == "LIF" else p["tau_mem"]
        if np.any(p["v_leak"] != 0):
            src.fail(name, node, f"v_leak {p['v_leak'][p['v_leak'] != 0][0]:g}; expected 0 (the chip's leak "
                                 "decays toward 0)")
        if np.any(~(tau > 0)):
            src.fail(name, node, "expected time constants > 0")
        inf = np.isinf(tau)
        if np.any(inf & ~np.isinf(p["r"])):
            src.fail(name, node, "tau = inf with a finite r gives no input (r dt / tau = 0); expected r = inf "
                                 "(snntorch's Leaky(beta=1)) or a finite tau")
        with np.errstate(invalid="ignore", divide="ignore"):
            alpha = np.where(inf, 1.0, 1.0 - dt / tau)
            gain = np.where(inf, 1.0, p["r"] * dt / tau)
        if np.any(inf):
            notes.add("tau = inf with r = inf (snntorch's export of Leaky(beta=1)): no leak, input gain 1 "
                      "(the limit of r dt / tau under snntorch's r = tau / dt)")
        if np.any(alpha <= 0):
            src.fail(name, node, f"dt {dt:g} s >= tau {tau[alpha <= 0][0]:g} s gives a leak factor 1 - dt / tau "
                                 "<= 0; expected dt < tau (pass the graph's tick with --dt)")
        if kind == "CubaLIF":
            keep = 1.0 - dt / p["tau_syn"]
            if np.any(np.abs(keep) > 1e-6):
                src.fail(name, node, f"tau_syn {p['tau_syn'][0]:g} s keeps {keep.max():.3g} of the synaptic "
                                     f"current per tick of dt {dt:g} s; the chip has no synaptic current state "
                                     "(representable only when tau_syn = dt)")
            gain = gain * p["w_in"] * dt / p["tau_syn"]
            notes.add("CubaLIF with tau_syn = dt: the synaptic current equals its input within the tick")
    if kind != "I":
        if np.any(p["v_reset"] != 0):
            src.fail(name, node, f"v_reset {p['v_reset'][p['v_reset'] != 0][0]:g}; expected 0 (the chip resets "
                                 "to 0, or subtracts the threshold)")
        if np.any(~(p["v_threshold"] > 0)) or not np.all(np.isfinite(p["v_threshold"])):
            src.fail(name, node, "expected finite thresholds > 0")
    if np.any(~(gain > 0)) or not np.all(np.isfinite(gain)):
        src.fail(name, node, "expected a finite input gain > 0 (r, and dt / tau for leaky neurons)")
    if np.ptp(alpha) > 1e-9:
        src.fail(name, node, f"leak factors 1 - dt / tau from {alpha.min():.6g} to {alpha.max():.6g}; the chip "
                             "has one leak factor for all neurons")
    return {"alpha": float(alpha[0]), "gain": gain, "theta": p.get("v_threshold"), "spiking": kind != "I"}


def _conv_geometry(src: _Source, name: str, node, shape) -> tuple[int, int, int]:
    w = _arr(node.weight)
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        src.fail(name, node, f"weight shape {w.shape}; expected (out, in, k, k), a square kernel")
    k = w.shape[2]
    pair = lambda v: tuple(int(x) for x in np.broadcast_to(np.asarray(v).reshape(-1), (2,)))  # noqa: E731
    if int(getattr(node, "groups", 1)) != 1 or pair(getattr(node, "dilation", 1)) != (1, 1):
        src.fail(name, node, "groups and dilation must be 1 (the chip maps a dense im2col crossbar)")
    stride = pair(node.stride)
    pad = node.padding
    if isinstance(pad, str):
        if pad == "valid":
            pad = 0
        elif stride == (1, 1) and k % 2 == 1:   # 'same' with stride 1 and an odd kernel: (k - 1) / 2 per side
            pad = (k - 1) // 2
        else:
            src.fail(name, node, f"padding 'same' with stride {stride} and kernel {k}; expected stride 1 and an "
                                 "odd kernel (symmetric padding)")
    pad = pair(pad)
    if stride[0] != stride[1] or pad[0] != pad[1]:
        src.fail(name, node, f"stride {stride}, padding {pad}; expected the same in both dimensions")
    if w.shape[1] != shape[0]:
        src.fail(name, node, f"weight has {w.shape[1]} input channels; the input map is {shape}")
    return k, stride[0], pad[0]


def _pool_kernel(src: _Source, name: str, node, shape) -> int:
    pair = lambda v: tuple(int(x) for x in np.broadcast_to(np.asarray(v).reshape(-1), (2,)))  # noqa: E731
    k, s, p = pair(node.kernel_size), pair(node.stride), pair(node.padding)
    if k[0] != k[1] or s != k or p != (0, 0):
        src.fail(name, node, f"kernel {k}, stride {s}, padding {p}; expected a square kernel with stride = kernel "
                             "and no padding (the chip pools non-overlapping windows)")
    if shape[1] % k[0] or shape[2] % k[0]:
        src.fail(name, node, f"kernel {k[0]} does not divide the {shape[1]}x{shape[2]} map")
    return k[0]


class _Names:
    def __init__(self):
        self.used: set[str] = set()
        self.count: dict[str, int] = {}

    def take(self, node_name: str, kind: str) -> str:
        self.count[kind] = self.count.get(kind, 0) + 1
        name = node_name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", node_name) else f"{kind}{self.count[kind]}"
        while name in self.used:
            name += "_"
        self.used.add(name)
        return name


def graph_to_net(graph, source: str, opts: ImportOptions) -> Imported:
    """Map a NIR graph onto a chipsim net: the YAML mapping, integer weights and what was approximated."""
    from chipsim.config import ConfigError, parse_net
    from chipsim.core.weights import LayerWeights, WeightBundle, WeightsError, check_bundle

    src = _Source(source)
    meta_net = _meta(graph, META_NET)
    meta = json.loads(meta_net) if isinstance(meta_net, str) else {}
    steps = chain(graph, source)
    shape = input_shape(graph, source)
    chip_section = dict(meta.get("chip", {}))
    if opts.weight_bits is not None:
        chip_section["weight_bits"] = opts.weight_bits
    try:
        chip = parse_net({"name": "probe", "input_shape": [1, 1, 1], "time_steps": 1,
                          "layers": [{"type": "fc", "out": 1}], "chip": chip_section}, source).chip
    except ConfigError as exc:
        raise NIRImportError(str(exc)) from None
    enc = dict(meta.get("encoder", {"kind": "direct", "input_bits": 8}))
    if opts.encoder is not None:
        enc["kind"] = opts.encoder
    if opts.input_bits is not None:
        enc["input_bits"] = opts.input_bits
    notes: set[str] = set()
    reset = meta.get("reset", "zero")
    notes.add("reset: subtract, from chipsim's metadata (NIR itself has only reset to v_reset)"
              if reset == "subtract" else "reset: zero (NIR's v_reset = 0)")
    notes.add("NIR fires when v > v_threshold, the chip when U >= theta: each threshold register is "
              "floor(v_threshold / LSB) + 1 (exact whenever the membrane is a whole number of LSBs)")
    if opts.input_scale != 1.0:
        notes.add(f"input: one chip input level (pixel value or spike) is {opts.input_scale:g} in graph units")
    names = _Names()
    layers_yaml: list[dict] = []
    real: list[dict] = []              # per weighted layer: name, W, b, theta, nodes, hint
    pending = None                     # (node name, node, W, b, conv geometry) awaiting its neurons
    carry = opts.input_scale           # factor the next weighted layer's inputs carry (input scale, SumPool k^2)
    alphas: list[tuple[str, object, float]] = []
    readout = "count"
    for i, (name, node) in enumerate(steps):
        kind = type(node).__name__
        last = i == len(steps) - 1
        if kind not in WEIGHTED + NEURONS + POOLS + ("Flatten",):
            src.fail(name, node, f"unsupported node type; the chip maps {', '.join(WEIGHTED + NEURONS + POOLS)}, "
                                 "Flatten, Input and Output")
        if kind in WEIGHTED:
            if pending is not None:
                src.fail(name, node, f"follows weighted node {pending[0]!r} directly; expected a neuron node "
                                     f"({', '.join(NEURONS)}) between two weighted nodes")
            w = _arr(node.weight)
            b = _arr(node.bias) if kind != "Linear" else np.zeros(w.shape[0])
            if kind == "Conv2d":
                geo = _conv_geometry(src, name, node, shape)
            else:
                if w.ndim != 2:
                    src.fail(name, node, f"weight shape {w.shape}; expected (out, in)")
                if shape[1:] != (1, 1) and not (layers_yaml and layers_yaml[-1]["type"] == "flatten"):
                    src.fail(name, node, f"reads a {shape} map; expected a Flatten node before it")
                if w.shape[1] != int(np.prod(shape)):
                    src.fail(name, node, f"weight has {w.shape[1]} inputs; the layer below gives {int(np.prod(shape))}")
                geo = None
            if b.shape != (w.shape[0],):
                src.fail(name, node, f"bias shape {b.shape}; expected ({w.shape[0]},)")
            pending = (name, node, w * carry, b, geo)
            carry = 1.0
            continue
        if kind in NEURONS:
            if pending is None:
                src.fail(name, node, "has no weighted node (Affine, Linear, Conv2d) before it; the chip's neurons "
                                     "integrate a crossbar's output")
            wname, wnode, w, b, geo = pending
            pending = None
            if geo is None:
                out_shape = (w.shape[0],)
            else:
                k, s, p = geo
                out_shape = (w.shape[0], (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1)
            cell = _neurons(src, name, node, out_shape, opts.dt, notes)
            if not cell["spiking"] and not last:
                src.fail(name, node, "an integrator (I) is the chip's non-spiking readout; expected it last")
            if cell["spiking"]:
                alphas.append((name, node, cell["alpha"]))
                theta = cell["theta"]
                theta_ref = float(theta[0])
                factor = cell["gain"] * theta_ref / theta     # the neuron's threshold becomes the layer's
            else:
                readout = "potential"
                theta_ref, factor = 1.0, cell["gain"]
            if geo is not None:
                per_channel = factor.reshape(out_shape[0], -1)
                if np.ptp(per_channel, axis=1).max(initial=0) > 1e-9 * np.abs(per_channel).max():
                    src.fail(name, node, "input gains or thresholds differ within a channel; conv neurons share "
                                         "their weights, so the chip needs them equal per output channel")
                factor = per_channel[:, 0]
            w = w * factor.reshape(-1, *([1] * (w.ndim - 1)))
            b = b * factor
            lname = names.take(wname, "conv" if geo else "fc")
            entry = {"name": lname, "type": "conv" if geo else "fc", "out": int(w.shape[0])}
            if geo:
                entry.update(kernel=geo[0], stride=geo[1], padding=geo[2])
            layers_yaml.append(entry)
            hint = _meta(wnode, META_SCALE)
            real.append({"name": lname, "w": w, "b": b, "theta": theta_ref, "nodes": [wname, name],
                         "hint": float(hint) if hint is not None else None})
            shape = (out_shape[0], 1, 1) if geo is None else out_shape
            continue
        if pending is not None:
            src.fail(name, node, f"follows weighted node {pending[0]!r}; expected a neuron node ({', '.join(NEURONS)})")
        if kind in POOLS:
            if shape[1:] == (1, 1) and layers_yaml and layers_yaml[-1]["type"] in ("fc", "flatten"):
                src.fail(name, node, "pools a flat vector; expected pooling on a (C, H, W) map before any Flatten")
            k = _pool_kernel(src, name, node, shape)
            layers_yaml.append({"name": names.take(name, "pool"), "type": "pool", "kernel": k, "kind": "avg"})
            shape = (shape[0], shape[1] // k, shape[2] // k)
            if kind == "SumPool2d":
                carry *= k * k
            notes.add(f"{kind} {name!r}: the chip pools with rate-averaging IF neurons (threshold k^2), so the next "
                      "layer reads spikes at the pooled rate, not the pooled value"
                      + ("; SumPool's factor k^2 moved into the next layer's weights" if kind == "SumPool2d" else ""))
            continue
        if kind == "Flatten":
            start, end = int(getattr(node, "start_dim", 0)), int(getattr(node, "end_dim", -1))
            if start != 0 or end not in (-1, 2):
                src.fail(name, node, f"start_dim {start}, end_dim {end}; expected a flatten of the whole (C, H, W) "
                                     "map (start_dim 0, end_dim -1)")
            layers_yaml.append({"name": names.take(name, "flatten"), "type": "flatten"})
            shape = (int(np.prod(shape)), 1, 1)
    if pending is not None:
        src.fail(pending[0], pending[1], "is not followed by neurons; expected IF, LIF, CubaLIF or I after the "
                                         "last weighted node")
    if not real or layers_yaml[-1]["type"] not in ("fc", "conv"):
        last_name, last_node = steps[-1] if steps else ("<none>", graph)
        src.fail(last_name, last_node, "the chain must end with a weighted node and its neurons (the readout)")
    values = sorted({a for _, _, a in alphas})
    if values and values[-1] - values[0] > 1e-9:
        bad = next((n, nd) for n, nd, a in alphas if abs(a - alphas[0][2]) > 1e-9)
        src.fail(bad[0], bad[1], f"leak factor {dict((n, a) for n, _, a in alphas)[bad[0]]:.6g} differs from "
                                 f"{alphas[0][0]!r}'s {alphas[0][2]:.6g}; the chip has one neuron model per net")
    alpha = values[0] if values else 1.0
    neuron = {"model": "IF", "threshold": float(real[0]["theta"]), "reset": reset}
    if alpha < 1.0:
        neuron = {"model": "LIF", "alpha": alpha, "threshold": float(real[0]["theta"]), "reset": reset}
        a_int = round(alpha * (1 << chip.leak_bits))
        notes.add(f"dt = {opts.dt:g} s per tick: leak alpha = 1 - dt / tau = {alpha:.6g} (forward Euler), input gain "
                  f"r dt / tau; the chip leaks by round(alpha 2^{chip.leak_bits}) / 2^{chip.leak_bits} = "
                  f"{a_int / (1 << chip.leak_bits):.6g} with truncation toward 0 (error "
                  f"{abs(a_int / (1 << chip.leak_bits) - alpha):.2g} per tick)")
    net_name = file_stem(opts.name, "--name") if opts.name else \
        file_stem(meta["name"], f"{source}: chipsim metadata 'name'") if meta.get("name") else Path(source).stem
    mapping = {"name": str(net_name), "input_shape": list(input_shape(graph, source)),
               "time_steps": int(opts.time_steps or meta.get("time_steps", 32)),
               "encoder": enc, "neuron": neuron, "layers": layers_yaml, "readout": readout,
               "chip": {k: v for k, v in chip_section.items()}, "data": opts.data or meta.get("data", "digits")}
    if meta.get("learning") and meta["learning"].get("enabled"):
        learning = dict(meta["learning"])
        weighted = [e["name"] for e in layers_yaml if e["type"] in ("fc", "conv")]
        if set(learning.get("layers", [])) <= set(weighted) and set(learning.get("layer_pulse", {})) <= set(weighted):
            mapping["learning"] = learning
    try:
        net = parse_net(mapping, source)
    except ConfigError as exc:
        raise NIRImportError(f"{source}: the mapped net is invalid: {exc}") from None
    layers, report = {}, {}
    for r in real:
        q = quantize_layer(r["w"], r["b"], r["theta"], net.chip, r["hint"])
        if q.threshold > net.chip.membrane_max:
            raise NIRImportError(f"{source}: node {r['nodes'][1]!r}: threshold {q.threshold} LSBs exceeds the "
                                 f"{net.chip.membrane_bits}-bit membrane; expected a larger membrane_bits")
        layers[r["name"]] = LayerWeights(q.weight, q.bias, q.threshold, q.scale)
        report[r["name"]] = {"nir_nodes": r["nodes"], "scale": q.scale, "threshold": q.threshold,
                             "quantization": q.how, **q.error}
        if q.how == "rounded":
            notes.add(f"layer {r['name']}: weights rounded to {net.chip.weight_bits}-bit registers "
                      f"(max error {q.error['weight_max_rel']:.2g} of max |W|)")
    bundle = WeightBundle(layers, {"provenance": json.dumps({"method": "nir-import", "source": source,
                                                            "dt": opts.dt, "layers": report,
                                                            "approximations": sorted(notes)})})
    try:
        check_bundle(net, bundle, source)
    except WeightsError as exc:
        raise NIRImportError(str(exc)) from None
    return Imported(mapping, bundle, report, sorted(notes))


def yaml_text(imported: Imported, source: str) -> str:
    """The net YAML with a header saying where it came from and what was approximated."""
    lines = [f"# Imported from the NIR graph {source} by chipsim import-nir.", "# Approximations and conventions:"]
    lines += [f"#  - {note}" for note in imported.approximations]
    lines.append("# Per layer (LSB scale, threshold register, quantization, max weight error relative to max |W|):")
    for name, r in imported.layers.items():
        lines.append(f"#  - {name} <- NIR {' + '.join(r['nir_nodes'])}: scale {r['scale']:.6g}, threshold "
                     f"{r['threshold']}, {r['quantization']}, error {r['weight_max_rel']:.2g}")
    return "\n".join(lines) + "\n" + yaml.safe_dump(imported.mapping, sort_keys=False)


#: the net name becomes OUT/NAME.yaml and OUT/NAME.h5: one plain file name, no folder parts
_STEM = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}")


def file_stem(name, where: str) -> str:
    """`name` if it can name the written files, else a NIRImportError naming `where`."""
    name = str(name)
    if not _STEM.fullmatch(name):
        raise NIRImportError(f"{where}: {name[:60]!r}{'...' if len(name) > 60 else ''} cannot name the written "
                             f"files; expected 1-100 letters, digits or _.+- starting with a letter, digit or _")
    return name


def import_nir(path: str | Path, out_dir: str | Path, opts: ImportOptions | None = None) -> dict:
    """Write OUT/NAME.yaml and OUT/NAME.h5 for the graph in `path`; returns what was written and the report."""
    from chipsim.io.atomic import atomic_path
    from chipsim.config import parse_net
    from chipsim.core.weights import save_weights

    opts = opts or ImportOptions()
    nir_module()
    graph = read_graph(path)
    try:
        imported = graph_to_net(graph, str(path), opts)
    except NIRImportError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:   # a node's arrays malformed
        raise NIRImportError(f"{path}: malformed graph ({type(exc).__name__}: {exc}); expected a NIR graph whose "
                             f"nodes hold numeric arrays of matching shapes") from None
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NIRImportError(f"--out {out_dir}: is a file; expected a folder")
    name = imported.mapping["name"]
    yaml_path, weights_path = out_dir / f"{name}.yaml", out_dir / f"{name}.h5"
    for p in (yaml_path, weights_path):
        if p.exists():
            raise NIRImportError(f"--out {out_dir}: {p.name} exists; expected a folder without it (nothing is "
                                 "overwritten)")
    imported.mapping["weights"] = weights_path.name
    net = parse_net(imported.mapping, str(yaml_path), out_dir)
    save_weights(weights_path, imported.bundle, net)
    with atomic_path(yaml_path) as tmp:
        tmp.write_text(yaml_text(imported, str(path)))
    return {"net": str(yaml_path), "weights": str(weights_path), "layers": imported.layers,
            "approximations": imported.approximations}
