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

from chipsim.core.weights import stored_teacher

from .errors import PretrainError, _torch  # noqa: F401  (PretrainError: importable from here as before)
from .pretrain import finish, folded_teacher, load_split, resolve_net, teacher_accuracy, y_norms
from .state_dict import read_state_dict, teacher_from_state_dict  # noqa: F401  (moved there; importable here)


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
