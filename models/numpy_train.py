"""A small numpy trainer for fully connected teachers (the bundled `digits` net).

Adam on softmax cross-entropy, ReLU hidden layers, seeded He initialisation.
Deliberately minimal: conv teachers are trained with the PyTorch extra.
"""
from __future__ import annotations

import numpy as np

from chipsim.config import NetConfig


def init_params(net: NetConfig, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    params = {}
    for layer in net.weighted_layers:
        if layer.type != "fc":
            raise ValueError(f"numpy_train: layer {layer.name} is {layer.type}; only fc nets are supported")
        fan_in = layer.fan_in
        w = rng.normal(0, np.sqrt(2.0 / fan_in), size=(layer.out_shape[0], fan_in)).astype(np.float32)
        params[layer.name] = (w, np.zeros(layer.out_shape[0], np.float32))
    return params


def train_fc(net: NetConfig, x: np.ndarray, y: np.ndarray, epochs: int = 60, batch: int = 32,
             lr: float = 2e-3, weight_decay: float = 1e-4, seed: int = 0) -> dict:
    """Train and return params {name: (W (out, in), b (out,))}; x is (N, ...) float in [0, 1]."""
    rng = np.random.default_rng(seed + 1)
    params = init_params(net, seed)
    names = [layer.name for layer in net.weighted_layers]
    m = {k: [np.zeros_like(a) for a in v] for k, v in params.items()}
    v2 = {k: [np.zeros_like(a) for a in v] for k, v in params.items()}
    b1, b2, eps = 0.9, 0.999, 1e-8
    x = x.reshape(len(x), -1).astype(np.float32)
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            hs = [x[idx]]
            for name in names[:-1]:
                w, b = params[name]
                hs.append(np.maximum(hs[-1] @ w.T + b, 0))
            w, b = params[names[-1]]
            logits = hs[-1] @ w.T + b
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            p[np.arange(len(idx)), y[idx]] -= 1
            grad = p / len(idx)
            step += 1
            for li in range(len(names) - 1, -1, -1):
                name = names[li]
                w, b = params[name]
                gw = grad.T @ hs[li] + weight_decay * w
                gb = grad.sum(0)
                if li > 0:
                    grad = (grad @ w) * (hs[li] > 0)
                for j, g in enumerate((gw, gb)):
                    m[name][j] = b1 * m[name][j] + (1 - b1) * g
                    v2[name][j] = b2 * v2[name][j] + (1 - b2) * g * g
                    mh = m[name][j] / (1 - b1 ** step)
                    vh = v2[name][j] / (1 - b2 ** step)
                    params[name][j][...] -= lr * mh / (np.sqrt(vh) + eps)
    return params
