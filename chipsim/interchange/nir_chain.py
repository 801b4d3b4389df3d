"""A NIR graph as the feed-forward chain of nodes a chip can map, or an error that names the node.

The chip runs one chain of layers (input -> weighted layer -> neurons -> ... -> readout):
every node but the input has exactly one predecessor, every node but the output
exactly one successor, and the chain reaches every node. Anything else (branches,
skip connections, recurrence, nested subgraphs) is refused here, before any mapping.
"""
from __future__ import annotations

from pathlib import Path


class NIRImportError(ValueError):
    """A NIR graph the chip cannot map; the message names the file and the node."""


def nir_module():
    """The `nir` package (a plain dependency of chipsim; imported only when NIR is used)."""
    try:
        import nir
    except ImportError as exc:  # pragma: no cover - nir is in install_requires
        raise NIRImportError(f"NIR support needs the `nir` package ({exc}); pip install nir") from None
    return nir


def read_graph(path: str | Path):
    """The NIRGraph in a .nir file."""
    nir = nir_module()
    path = Path(path)
    if not path.is_file():
        raise NIRImportError(f"{path}: no such file; expected a NIR graph (.nir, written by nir.write)")
    try:
        graph = nir.read(path)
    except Exception as exc:  # nir.read raises KeyError, OSError, ValueError ... for foreign files
        raise NIRImportError(f"{path}: not a readable NIR graph ({type(exc).__name__}: {exc})") from None
    check_finite(graph, path)
    return graph


#: parameters where infinity means something (snntorch writes a leak-free neuron as tau = r = inf);
#: the neuron mapping checks them itself
INFINITE_OK = frozenset({"tau", "tau_mem", "tau_syn", "r"})


def check_finite(graph, path) -> None:
    """A NaN parameter anywhere in the graph, or an infinite one outside INFINITE_OK, is refused by name:
    it would round to garbage registers without a word."""
    import numpy as np

    for name, node in getattr(graph, "nodes", {}).items():
        for key, value in vars(node).items():
            if not (isinstance(value, np.ndarray) and value.dtype.kind == "f"):
                continue
            bad = np.isnan(value) if key in INFINITE_OK else ~np.isfinite(value)
            if bad.any():
                what = "NaN" if key in INFINITE_OK else "NaN or infinite"
                raise NIRImportError(f"{path}: node {name!r}: {key} has {int(bad.sum())} {what} value(s) of "
                                     f"{value.size}; expected {'numbers' if key in INFINITE_OK else 'finite numbers'}")


def chain(graph, source: str) -> list[tuple[str, object]]:
    """[(name, node), ...] from the node after the Input to the node before the Output."""
    nir = nir_module()
    nodes = graph.nodes
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NIRImportError(f"{source}: {len(inputs)} Input and {len(outputs)} Output nodes "
                             f"({', '.join(inputs + outputs) or 'none'}); expected exactly one of each")
    succ: dict[str, list[str]] = {k: [] for k in nodes}
    pred: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in graph.edges:
        for end in (a, b):
            if end not in nodes:
                raise NIRImportError(f"{source}: edge ({a!r}, {b!r}): node {end!r} does not exist")
        succ[a].append(b)
        pred[b].append(a)
    order = []
    name = inputs[0]
    if pred[name]:
        raise NIRImportError(f"{source}: node {name!r} (Input) has incoming edges from {pred[name]}")
    seen = {name}
    while name != outputs[0]:
        if len(succ[name]) != 1:
            raise NIRImportError(f"{source}: node {name!r} ({type(nodes[name]).__name__}) has "
                                 f"{len(succ[name])} outgoing edges {succ[name]}; expected a feed-forward chain "
                                 "(one successor per node: no branches or skip connections)")
        name = succ[name][0]
        if name in seen:
            raise NIRImportError(f"{source}: node {name!r} is reached twice (a cycle: recurrent connections "
                                 "are not mappable on this chip)")
        if len(pred[name]) != 1:
            raise NIRImportError(f"{source}: node {name!r} ({type(nodes[name]).__name__}) has "
                                 f"{len(pred[name])} incoming edges {pred[name]}; expected a feed-forward chain "
                                 "(one predecessor per node)")
        seen.add(name)
        if name != outputs[0]:
            order.append((name, nodes[name]))
    if succ[outputs[0]]:
        raise NIRImportError(f"{source}: node {outputs[0]!r} (Output) has outgoing edges to {succ[outputs[0]]}")
    unreached = sorted(set(nodes) - seen)
    if unreached:
        raise NIRImportError(f"{source}: node {unreached[0]!r} ({type(nodes[unreached[0]]).__name__}) is not on "
                             "the chain from the Input to the Output; expected every node on one chain")
    return order


def input_shape(graph, source: str) -> tuple[int, int, int]:
    """The (C, H, W) of the graph's Input node; a vector (N,) becomes (N, 1, 1)."""
    import numpy as np

    nir = nir_module()
    name, node = next((k, n) for k, n in graph.nodes.items() if isinstance(n, nir.Input))
    shape = node.input_type.get("input") if isinstance(node.input_type, dict) else None
    dims = [int(x) for x in np.asarray(shape).reshape(-1)] if shape is not None else []
    if len(dims) == 1:
        dims = [dims[0], 1, 1]
    if len(dims) != 3 or min(dims) < 1:
        raise NIRImportError(f"{source}: node {name!r} (Input): input_type {dims or shape}; expected a shape "
                             "(C, H, W) or (N,) without a batch or time dimension")
    return dims[0], dims[1], dims[2]
