"""Read a PyTorch state dict into a chipsim teacher (`teacher_from_state_dict`); that is all it does.

A *compatible* state dict holds, for every weighted layer of the net YAML in
order, a conv weight (out, in, k, k) or linear weight (out, in) of the
layer's shape, optionally its bias, and optionally one BatchNorm (weight,
bias, running_mean, running_var) after every weighted layer but the last.
The key layouts understood, the wrappers unwrapped and the BatchNorm eps are
described in models/import_torch.py. Used by models/import_torch.py
(`chipsim import-torch`) and models/pretrain.py (``--teacher``); PyTorch is
imported only when a function runs.
"""
from __future__ import annotations

from pathlib import Path

from chipsim.config import NetConfig

from .errors import PretrainError, _torch


def read_state_dict(path: str | Path) -> dict:
    """Tensors of a state dict file (safe load: tensors and containers only)."""
    torch = _torch()
    path = Path(path)
    if not path.is_file():
        raise PretrainError(f"{path}: no such file; expected a PyTorch state dict (torch.save(model.state_dict()))")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for bad files
        raise PretrainError(f"{path}: cannot load as a PyTorch state dict ({type(exc).__name__}: {exc})") from None
    for key in ("state_dict", "model", "net", "teacher"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PretrainError(f"{path}: expected a mapping of parameter names to tensors (a state dict)")
    out = {}
    for k, v in obj.items():
        out[k[len("module."):] if k.startswith("module.") else k] = v
    return out


def _by_order(net: NetConfig, sd: dict, source: str, bn_eps: float) -> dict:
    """Folded float parameters from an arbitrary naming, matched by order and shape."""
    from chipsim.core.weights import expected_shape

    keys = list(sd)
    weights = [k for k in keys if k.endswith("weight") and sd[k].dim() in (2, 4)]
    layers = net.weighted_layers
    if len(weights) != len(layers):
        raise PretrainError(f"{source}: {len(weights)} conv/linear weights ({', '.join(weights) or 'none'}), "
                            f"but net '{net.name}' has {len(layers)} weighted layers")
    bn_prefixes = [k[: -len("running_mean")] for k in keys if k.endswith("running_mean")]
    params = {}
    bn_i = 0
    for layer, wkey in zip(layers, weights):
        w = sd[wkey].detach().double()
        shape = expected_shape(layer)
        if tuple(w.shape) != shape:
            raise PretrainError(f"{source}: {wkey}: shape {tuple(w.shape)}, expected {shape} for layer "
                                f"'{layer.name}' of net '{net.name}'")
        bkey = wkey[: -len("weight")] + "bias"
        b = sd[bkey].detach().double() if bkey in sd else w.new_zeros(shape[0])
        if layer is not layers[-1] and bn_i < len(bn_prefixes):
            pre = bn_prefixes[bn_i]
            mean = sd[pre + "running_mean"].double()
            if mean.shape[0] == shape[0]:
                var = sd[pre + "running_var"].double()
                gamma = sd.get(pre + "weight", mean.new_ones(mean.shape)).double()
                beta = sd.get(pre + "bias", mean.new_zeros(mean.shape)).double()
                g = gamma / (var + bn_eps).sqrt()
                w = w * g.reshape(-1, *([1] * (w.dim() - 1)))
                b = (b - mean) * g + beta
                bn_i += 1
        params[layer.name] = (w.float().numpy().copy(), b.float().numpy().copy())
    if bn_i != len(bn_prefixes):
        raise PretrainError(f"{source}: {len(bn_prefixes)} BatchNorm layers, of which {bn_i} fit the net's hidden "
                            f"layers in order; expected one after each weighted layer but the last (or none)")
    return params


def teacher_from_state_dict(net: NetConfig, path: str | Path, options=None, bn_eps: float | None = None):
    """A `Teacher` (eval mode) holding the state dict's parameters, BatchNorm folded in."""
    from .torch import BN_EPS, Teacher, TeacherOptions, load_folded

    sd = read_state_dict(path)
    source = str(path)
    if any(k.startswith("weighted.") for k in sd):
        opts = TeacherOptions(batchnorm=any(k.startswith("norms.") for k in sd),
                              dropout=(options.dropout if options else 0.0))
        model = Teacher(net, opts)
        try:
            model.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            raise PretrainError(f"{source}: does not fit net '{net.name}': {exc}") from None
        if bn_eps is not None:
            for bn in model.norms.values():
                bn.eps = bn_eps
        model.eval()
        return model
    params = _by_order(net, sd, source, BN_EPS if bn_eps is None else bn_eps)
    model = Teacher(net, TeacherOptions(batchnorm=False, dropout=0.0))
    load_folded(model, params)
    model.eval()
    return model
