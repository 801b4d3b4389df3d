"""Build small NIR graphs in memory for the import tests, and a plain reference simulation of NIR's IF."""
from __future__ import annotations

import numpy as np

nir = __import__("pytest").importorskip("nir", reason="NIR support needs the nir package (pip install -e .)")


def chain_graph(nodes, in_shape, metadata=None, type_check=True):
    """Input -> nodes (a list of (name, node)) -> Output, one edge between neighbours."""
    names = ["input"] + [n for n, _ in nodes] + ["output"]
    last = nodes[-1][1].output_type.get("output") if nodes else None
    out = np.array(in_shape) if last is None else np.asarray(last)
    all_nodes = {"input": nir.Input(input_type={"input": np.array(in_shape)})}
    all_nodes.update(dict(nodes))
    all_nodes["output"] = nir.Output(output_type={"output": out})
    return nir.NIRGraph(nodes=all_nodes, edges=list(zip(names[:-1], names[1:])), metadata=metadata or {},
                         type_check=type_check)


def if_node(n, thr=2.0, r=1.0):
    return nir.IF(r=np.full(n, r), v_threshold=np.full(n, thr), v_reset=np.zeros(n))


def lif_node(n, tau, dt=1e-4, thr=1.0, r=None):
    tau = np.full(n, tau)
    return nir.LIF(tau=tau, r=tau / dt if r is None else np.full(n, r), v_leak=np.zeros(n),
                   v_threshold=np.full(n, thr), v_reset=np.zeros(n))


def reference_if(layers, x):
    """NIR IF chain with reset to 0: v += W s + b; spike when v > thr. x: (T, n_in). Spikes per layer (T, n)."""
    out = []
    s_in = x.astype(np.float64)
    for w, b, thr in layers:
        v = np.zeros(w.shape[0])
        spikes = np.zeros((len(x), w.shape[0]), np.uint8)
        for t in range(len(x)):
            v = v + w @ s_in[t] + b
            spikes[t] = v > thr
            v = np.where(spikes[t] == 1, 0.0, v)
        out.append(spikes)
        s_in = spikes
    return out
