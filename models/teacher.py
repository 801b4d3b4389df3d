"""Float teacher ANN in numpy, built from the same net YAML as the chip.

Hidden layers are ReLU units; the last layer is linear (logits). Pooling is
the float counterpart of the chip's: `avg` -> average, `or` -> max.
Parameters use conventional layouts: conv (out, in_c, k, k), fc (out, in)
with `in` in (C, H, W) flatten order.
"""
from __future__ import annotations

import numpy as np

from chipsim.config import NetConfig


def im2col(x: np.ndarray, k: int, stride: int, pad: int) -> tuple[np.ndarray, int, int]:
    """(N, C, H, W) -> (N, OH, OW, C * k * k) patches in (c, ky, kx) order."""
    n, c, h, w = x.shape
    # a C-contiguous padded copy: the strided patch view below gathers from it in cache order
    # (a transposed input made this gather ~20x slower)
    xp = np.pad(np.ascontiguousarray(x), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - k) // stride + 1
    ow = (w + 2 * pad - k) // stride + 1
    s = xp.strides
    patches = np.lib.stride_tricks.as_strided(
        xp, shape=(n, oh, ow, c, k, k), strides=(s[0], s[2] * stride, s[3] * stride, s[1], s[2], s[3]))
    return patches.reshape(n, oh, ow, c * k * k), oh, ow


def layer_forward(layer, params: dict, x: np.ndarray) -> np.ndarray:
    """Pre-activation output of one layer (float32)."""
    if layer.type == "conv":
        w, b = params[layer.name]
        cols, oh, ow = im2col(x, layer.kernel, layer.stride, layer.padding)
        n = cols.shape[0]
        y = cols.reshape(n * oh * ow, -1) @ np.asarray(w, np.float32).reshape(w.shape[0], -1).T
        y += np.asarray(b, np.float32)
        return np.ascontiguousarray(y.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2))
    if layer.type == "fc":
        w, b = params[layer.name]
        return (x.reshape(x.shape[0], -1) @ np.asarray(w, np.float32).T + np.asarray(b, np.float32))[:, :, None, None]
    if layer.type == "pool":
        n, c, h, w_ = x.shape
        k = layer.kernel
        blocks = x.reshape(n, c, h // k, k, w_ // k, k)
        return blocks.mean(axis=(3, 5)) if layer.pool == "avg" else blocks.max(axis=(3, 5))
    return x.reshape(x.shape[0], -1, 1, 1)  # flatten


def forward(net: NetConfig, params: dict, x: np.ndarray) -> list[np.ndarray]:
    """Activations of every layer for input x (N, C, H, W) in real units.

    Returns one array per layer of net.layers: ReLU outputs for hidden
    weighted layers, pooled/flattened maps for the others, logits last."""
    outs = []
    h = x.astype(np.float32)
    last = len(net.layers) - 1
    for i, layer in enumerate(net.layers):
        h = layer_forward(layer, params, h)
        if layer.weighted and i != last:
            h = np.maximum(h, 0.0)
        outs.append(h)
    return outs


def predict(net: NetConfig, params: dict, x: np.ndarray, batch: int = 256) -> np.ndarray:
    preds = [forward(net, params, x[i:i + batch])[-1].reshape(len(x[i:i + batch]), -1).argmax(1)
             for i in range(0, len(x), batch)]
    return np.concatenate(preds)
