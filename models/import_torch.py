"""Import a PyTorch teacher checkpoint (state dict) and turn it into integer chip weights.

    chipsim import-torch teacher.pt --net vgg11 --out vgg11.h5 --data ../shared/data/cifar10-jpeg.tar.xz

A *compatible* state dict holds, for every weighted layer of the net YAML in
order, a conv weight (out, in, k, k) or linear weight (out, in) of the
layer's shape, optionally its bias, and optionally one BatchNorm (weight,
bias, running_mean, running_var) after every weighted layer but the last.
Two key layouts are understood:

* chipsim's own (`chipsim.models.torch.Teacher.state_dict()`, as written by
  `chipsim pretrain` to OUT.pretrain/teacher.pt): ``weighted.<layer>.weight``,
  ``norms.<layer>.running_mean``, ...;
* any other naming (e.g. the LTL paper's ``conv1.weight``, ``bn1.weight``):
  weights are matched to the net's weighted layers in state-dict order, each
  checked against the expected shape, and BatchNorm groups (keys ending in
  ``running_mean``) to the layers they follow, by order and channel count.

Wrappers are unwrapped: a dict under ``state_dict``, ``model``, ``net`` or
``teacher``, and ``module.`` prefixes (DataParallel). BatchNorm's eps is not
stored in a state dict: give it with ``--bn-eps`` (PyTorch default 1e-5; the
LTL paper's teacher uses 1e-4). The teacher must be a ReLU network on inputs
x = pixel / pixel_max without mean/std normalisation (as the chip's direct
encoder); a teacher trained on normalised inputs or with clipped ReLUs
converts, but less well.

Conversion is threshold balancing (models/convert.py) on training images;
for offline LTL from an imported teacher use ``chipsim pretrain --teacher
STATE_DICT --method offline-ltl``.
"""
from __future__ import annotations

import time
from pathlib import Path


from chipsim.config import NetConfig
from chipsim.weights import stored_teacher

from .pretrain import (PretrainError, _torch, finish, folded_teacher, load_split, resolve_net,
                       teacher_accuracy, y_norms)


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
    from chipsim.weights import expected_shape

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


def import_torch(path: str | Path, net_spec: str, out: str | Path, data: str | None = None,
                 calib_samples: int = 2000, eval_samples: int | None = None, percentile: float | None = None,
                 bn_eps: float | None = None, threads: int = 1, progress: bool = True, log=print) -> dict:
    """State dict -> folded float teacher -> threshold balancing -> chip weights (HDF5), measured."""
    torch = _torch()
    from chipsim.hostlink.datasets import describe_dataset

    from .convert import convert
    from .torch import folded_params

    torch.set_num_threads(threads)
    net = resolve_net(net_spec)
    model = teacher_from_state_dict(net, path, bn_eps=bn_eps)
    params, teacher_storage = stored_teacher(folded_params(model))
    model = folded_teacher(net, params)
    data_spec = data or net.data
    from chipsim.hostlink.datasets import DatasetError, load_dataset

    try:
        load_dataset(data_spec, "train", limit=1)
        calib_split = "train"
    except DatasetError:
        calib_split = "test"          # e.g. the bundled CIFAR-10 test subset: no training split
    calib = load_split(net, data_spec, calib_split, calib_samples)
    test = load_split(net, data_spec, "test", eval_samples)
    pct = percentile if percentile is not None else net.learning.target_percentile
    t0 = time.perf_counter()
    t_acc = teacher_accuracy(model, test)
    log(f"teacher ANN accuracy {t_acc * 100:.2f}% on {len(test)} test samples")
    norms = y_norms(net, params, calib, pct)
    bundle = convert(net, params, calib.images, calib.pixel_max, pct,
                     {"calibration": f"{len(calib)} {calib_split} images", "imported": str(path)})
    attrs = {"teacher_accuracy": t_acc, "teacher_storage": teacher_storage, "method": "convert", "teacher_source": str(path),
             "calibration_data": describe_dataset(calib), "y_norm": norms,
             "import_seconds": round(time.perf_counter() - t0, 1)}
    return finish(net, bundle, params, test, data_spec, attrs, Path(out), progress, log)
