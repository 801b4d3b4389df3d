"""Pretraining: teacher ANN -> SNN (conversion, offline LTL or tandem) -> integer chip weights (HDF5).

    chipsim pretrain --net fashion --data fashion-mnist --epochs 15 --method offline-ltl --ltl-samples 20000

Stages, each checkpointed atomically after every epoch and, within an epoch,
every ``--checkpoint-minutes`` (default 10: a full-width VGG-11 epoch takes
25-40 minutes on one core, so a kill loses at most that much). ``--resume``
goes on from the last checkpoint: every random draw of an epoch comes from
generators seeded by (seed, stage, epoch), and a mid-epoch checkpoint holds
their states, the batch reached and the running sums, so a resumed run
equals an uninterrupted one. ``--max-minutes`` stops at the first checkpoint
past the budget.

1. **teacher**: the ANN built from the net YAML (`chipsim.models.torch.Teacher`),
   SGD with Nesterov momentum, linear warm-up then cosine learning rate,
   cross-entropy; images augmented by a random crop with zero padding (4 px
   for >= 32 px images, 2 px for smaller) and a horizontal flip. Inputs are
   x = pixel / pixel_max, as the chip's direct encoder and the numpy teacher.
2. **snn** (``--method offline-ltl``): the float SNN (`SpikingNet`) learns
   with offline LTL (paper Eq. 4-8): every hidden layer's spike rate C[T]/T
   against the teacher's normalised activation clamp(a / y_norm, 0, 1) (MSE),
   BPTT through the membrane within the layer, the layer's input detached
   (no gradient between layers), boxcar surrogate of width p = learning.p *
   theta. The output layer learns from the labels: cross-entropy on its mean
   input current (readout: potential) or MSE of its rate against the one-hot
   label rate (readout: count). Adam, cosine learning rate. The SNN starts
   from the threshold-balanced teacher (``--ltl-init convert``, default: a
   fast start), from random weights (``--ltl-init random``, as the paper; the
   boxcar passes no gradient to a neuron that never nears threshold, so a
   small run can stall), or from existing chip weights (``--ltl-init
   FILE.h5``: fine-tune, e.g. in stages with ``--teacher``).
   y_norm is the `learning.target_percentile` of each layer's positive
   teacher activations over (up to 2,000) training images, computed once:
   the same normalisation the host uses for on-chip calibration.
   With ``--train-mismatch S`` the training is noise-aware: every batch runs
   through weights and biases x (1 + S xi), freshly drawn (as another chip
   with frozen device mismatch), which makes the SNN less sensitive to
   ``--noise mismatch=S`` on the chip (an option, not the paper's recipe).
   ``--method convert`` skips this stage: threshold balancing with the same
   percentile (models/convert.py).
   ``--method tandem`` trains the same float SNN with tandem learning
   instead (models/tandem.py: the SNN's spike counts forward, the gradient of
   the coupled ANN's clamped ReLU backward, cross-entropy on the output end to
   end), with the same --ltl-* options, schedule and checkpoints;
   ``--tandem-progressive`` switches the layers from ANN to SNN one at a time
   (progressive tandem learning, in L + 1 equal phases of the training steps).
3. **export**: per-layer symmetric quantization to the chip's weight bits;
   the file carries the float teacher (BatchNorm folded; at float16
   precision, or 8-bit codes per output channel for nets over 2 M parameters:
   chipsim.core.weights.stored_teacher) for host targets,
   and attrs teacher_accuracy (float teacher), snn_accuracy (measured on the
   simulated chip, noise-free), the data provenance (name, source, sha256),
   the training settings and times, and `check`: the chip's accuracy on a
   small named subset, for a quick reload test.

The work folder ``OUT.pretrain/`` holds ``checkpoint.pt`` and ``log.jsonl``
(one JSON record per epoch).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from chipsim import __version__
from chipsim.config import NetConfig, load_net
from chipsim.cli.progress import ProgressBar
from chipsim.core.weights import stored_teacher
from chipsim.hostlink.datasets import Dataset

from .errors import PretrainError, _torch  # noqa: F401  (PretrainError: importable from here as before)
from .state_dict import teacher_from_state_dict

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
CHECK_SAMPLES = 200
FLOAT_EVAL_SAMPLES = 2000
METHODS = ("convert", "offline-ltl", "tandem")
SNN_METHODS = ("offline-ltl", "tandem")   #: methods that train the float SNN (stage 2)


@dataclass
class PretrainOptions:
    net: str
    data: str | None = None               #: training data spec (train split trains, test split measures)
    out: Path | None = None               #: weights file (default ./NET.h5)
    epochs: int = 10                      #: teacher epochs
    method: str = "convert"               #: convert | offline-ltl | tandem (models/tandem.py)
    teacher_only: bool = False
    teacher: Path | None = None           #: start from this teacher state dict instead of training one
    ltl_epochs: int = 1
    ltl_samples: int | None = None        #: training samples per LTL epoch (default: all)
    ltl_init: str = "convert"             #: convert | random | a chipsim weights file (fine-tune it)
    ltl_lr: float = 2e-4
    ltl_batch_size: int = 32
    train_mismatch: float = 0.0           #: noise-aware offline LTL: weight/bias mismatch drawn per batch
    tandem_progressive: bool = False      #: progressive tandem learning (layers switch from ANN to SNN in turn)
    batch_size: int = 128
    lr: float = 0.05
    weight_decay: float = 5e-4
    train_samples: int | None = None      #: use only the first N training samples (class-balanced)
    eval_samples: int | None = None       #: measure accuracies on the first N test samples
    percentile: float | None = None       #: y_norm / lambda percentile (default learning.target_percentile)
    augment: bool | None = None           #: default: on for images of >= 16 px
    batchnorm: bool | None = None
    dropout: float | None = None
    seed: int = 0
    threads: int = 1
    resume: bool = False
    max_minutes: float | None = None      #: stop (checkpointed) at the first checkpoint past this
    checkpoint_minutes: float | None = 10.0   #: also checkpoint within an epoch this often (None: epoch ends only)
    stop_after_batches: int | None = None     #: test hook: checkpoint and stop mid-epoch after this many batches
    progress: bool = True
    log: Callable[[str], None] = field(default=print, repr=False)

    def saved(self) -> dict:
        keep = ("net", "data", "epochs", "method", "teacher", "ltl_epochs", "ltl_samples", "ltl_init", "ltl_lr",
                "ltl_batch_size", "train_mismatch", "batch_size", "lr", "weight_decay", "train_samples", "eval_samples",
                "percentile", "augment", "batchnorm", "dropout", "seed")
        if self.tandem_progressive:       # recorded only when on: files of the other methods stay as they were
            keep = keep + ("tandem_progressive",)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()
                if k in keep}


class Stopped(RuntimeError):
    """Training stopped at --max-minutes; the checkpoint holds everything to resume."""


def _resume_epoch(start: dict | None, rng, bar) -> int:
    """Continue an epoch from a mid-epoch checkpoint: the generators where it left them; returns its batch."""
    if start is None:
        return 0
    torch = _torch()
    rng.bit_generator.state = start["np_rng"]          # the permutation was redrawn from the seed before
    torch.set_rng_state(start["torch_rng"])
    bar.update(start["seen"])
    return start["batch"]


def _mid_point(j: int, rng, seen: int, sums) -> dict:
    """What a mid-epoch checkpoint needs to continue after batch j exactly as an uninterrupted run would."""
    return {"batch": j + 1, "np_rng": rng.bit_generator.state, "torch_rng": _torch().get_rng_state(),
            "seen": seen, "sums": sums}


# --------------------------------------------------------------------------- small helpers


class _Bar:
    """A progress bar on stderr (chipsim.cli.progress), or nothing."""

    def __init__(self, enabled: bool, length: int, label: str):
        self.bar = ProgressBar(length, label) if enabled else None

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _epoch_seed(seed: int, stage: str, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, sum(stage.encode()), len(stage), epoch]).generate_state(1)[0])


def work_dir(out: Path) -> Path:
    return out.parent / (out.name.removesuffix(".h5") + ".pretrain")


def resolve_net(spec: str) -> NetConfig:
    from chipsim.models import resolve_net as _resolve

    try:
        return load_net(_resolve(spec))
    except FileNotFoundError as exc:
        raise PretrainError(str(exc)) from None


def load_split(net: NetConfig, spec: str, split: str, limit: int | None, option: str = "--data"):
    from chipsim.hostlink.datasets import DatasetError, load_for_net

    try:
        data = load_for_net(spec, split, limit, net.input_shape, net.name, net.encoder)
    except DatasetError as exc:
        raise PretrainError(f"{option}: {exc}") from None
    if data.classes and len(data.classes) > net.classes:
        raise PretrainError(f"{option} {spec}: {len(data.classes)} classes, but net '{net.name}' has "
                            f"{net.classes} outputs")
    if net.encoder.kind == "events":
        return event_frames(net, data, option)
    return data


@dataclasses.dataclass(frozen=True, eq=False)
class EventFrames(Dataset):
    """Event recordings seen as the rate images the teacher trains on (frame = spikes per input over the T
    ticks, pixel_max = T * cap), with the recordings themselves for the chip (`events`)."""

    events: object = None


def event_frames(net: NetConfig, data, option: str = "--data") -> "EventFrames":
    from chipsim.hostlink.encoders import EventEncoder

    enc = EventEncoder(net.encoder.events, net.time_steps, net.input_shape)
    if enc.frame_max > 255:
        raise PretrainError(f"{option}: {net.source}: time_steps x cap = {enc.frame_max}; pretraining an events "
                            f"net expects at most 255 (its rate images are 8-bit)")
    return EventFrames(name=data.name, split=data.split, images=enc.frames(data.images), labels=data.labels,
                       classes=data.classes, source=data.source, pixel_max=enc.frame_max, note=data.note,
                       events=data)


def augment_batch(x, rng: np.random.Generator, pad: int, flip: bool):
    """Random crop with zero padding `pad` and random horizontal flip of a (B, C, H, W) float tensor."""
    torch = _torch()
    import torch.nn.functional as F

    B, C, H, W = x.shape
    if pad > 0:
        xp = F.pad(x, (pad, pad, pad, pad))
        oy = torch.as_tensor(rng.integers(0, 2 * pad + 1, B))
        ox = torch.as_tensor(rng.integers(0, 2 * pad + 1, B))
        rows = (oy[:, None] + torch.arange(H))[:, :, None]          # (B, H, 1)
        cols = (ox[:, None] + torch.arange(W))[:, None, :]          # (B, 1, W)
        x = xp[torch.arange(B)[:, None, None], :, rows, cols].permute(0, 3, 1, 2).contiguous()
    if flip:
        mask = torch.as_tensor(rng.random(B) < 0.5)
        x[mask] = x[mask].flip(3)
    return x


def augment_settings(net: NetConfig, enabled: bool | None) -> tuple[int, bool]:
    size = min(net.input_shape[1:])
    on = size >= 16 if enabled is None else enabled
    if not on:
        return 0, False
    return (4 if size >= 32 else 2), True


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to `peak`, then cosine to zero."""
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))


def to_float(images: np.ndarray, pixel_max: int):
    torch = _torch()
    return torch.as_tensor(np.asarray(images, np.float32) / pixel_max)


def teacher_accuracy(model, data, batch: int = 500) -> float:
    torch = _torch()
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(data), batch):
            x = to_float(data.images[i:i + batch], data.pixel_max)
            correct += int((model(x).argmax(1).numpy() == data.labels[i:i + batch]).sum())
    return correct / max(1, len(data))


def folded_teacher(net: NetConfig, params: dict):
    """A BatchNorm-free torch Teacher (eval mode) holding folded float parameters."""
    from .torch import Teacher, TeacherOptions, load_folded

    model = Teacher(net, TeacherOptions())
    load_folded(model, params)
    return model.eval()


def eval_subset(data, n: int):
    """A seeded random subset of n samples (near class balance), for the slow dense float-SNN evaluation."""
    if n >= len(data):
        return data
    idx = np.sort(np.random.default_rng(0).permutation(len(data))[:n])
    return dataclasses.replace(data, images=data.images[idx], labels=data.labels[idx])


def snn_float_accuracy(snn, data, batch: int = 100) -> float:
    torch = _torch()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(data), batch):
            logits, _ = snn(to_float(data.images[i:i + batch], data.pixel_max))
            correct += int((logits.argmax(1).numpy() == data.labels[i:i + batch]).sum())
    return correct / max(1, len(data))


def chip_accuracy(net: NetConfig, bundle, data, batch: int = 64, progress: bool = False,
                  label: str = "chip") -> tuple[float, np.ndarray]:
    """Noise-free accuracy of the integer weights on the simulated chip (direct, rate or if encoder)."""
    from chipsim.core.chip import Chip
    from chipsim.hostlink.encoders import make_encoder
    from chipsim.workflows.runner import encoder_key

    chip = Chip(net, bundle, "<pretrain>")
    events = getattr(data, "events", None)
    if net.encoder.kind == "events":        # the chip reads the recordings, not the teacher's rate images
        if events is None or len(events) != len(data):
            raise PretrainError(f"net '{net.name}': chip accuracy of an events net needs its recordings")
        source = events.images
    else:
        source = data.images
    try:
        enc = make_encoder(net, data.pixel_max, encoder_key(0))
    except ValueError as exc:     # the data's pixel depth does not fit the net's encoder
        raise PretrainError(f"--data {getattr(data, 'name', '') or ''}: pixels up to {data.pixel_max} for "
                            f"{net.source}: {exc}") from None
    preds = np.empty(len(data), np.int64)
    bar = _Bar(progress, len(data), label)
    try:
        for i in range(0, len(data), batch):
            ids = np.arange(i, min(len(data), i + batch))
            preds[ids] = chip.run(enc.encode(source[ids], ids), sample_ids=ids).predictions
            bar.update(len(ids))
    finally:
        bar.close()
    return float((preds == data.labels).mean()) if len(data) else float("nan"), preds


def check_spec(net: NetConfig, data_spec: str) -> str:
    """The data of the reload check: the net's default data where it has a test split, else the training data."""
    from chipsim.hostlink.datasets import DatasetError, load_dataset, load_for_net

    try:
        if net.encoder.kind == "events":
            load_for_net(net.data, "test", 1, net.input_shape, net.name, net.encoder)
            return net.data
        d = load_dataset(net.data, "test", limit=1)
        if tuple(d.images.shape[1:]) == net.input_shape:
            return net.data
    except DatasetError:
        pass
    return data_spec


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, state: dict) -> None:
    torch = _torch()
    from chipsim.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict:
    torch = _torch()
    if not path.is_file():
        raise PretrainError(f"--resume: no checkpoint {path}; expected the work folder of an interrupted "
                            f"`chipsim pretrain` with the same --out")
    return torch.load(path, map_location="cpu", weights_only=False)


# --------------------------------------------------------------------------- stages


def train_teacher_epoch(model, opt, train, epoch: int, opts: PretrainOptions, net: NetConfig, total_epochs: int,
                        bar: _Bar, start: dict | None = None, mid: Callable[[dict], None] | None = None) -> dict:
    """One teacher epoch (from a mid-epoch checkpoint `start` if given); `mid` gets a resume point
    after every batch but the last."""
    torch = _torch()
    import torch.nn.functional as F

    rng = np.random.default_rng(_epoch_seed(opts.seed, "teacher", epoch))
    torch.manual_seed(_epoch_seed(opts.seed, "teacher-dropout", epoch))
    pad, flip = augment_settings(net, opts.augment)
    n = len(train)
    bs = opts.batch_size
    steps = (n + bs - 1) // bs
    total = steps * total_epochs
    warmup = min(steps, max(1, total // 20))
    order = rng.permutation(n)
    model.train()
    loss_sum = correct = seen = 0
    j0 = _resume_epoch(start, rng, bar)
    if start is not None:
        (loss_sum, correct), seen = start["sums"], start["seen"]
    for j in range(j0, steps):
        idx = np.sort(order[j * bs:(j + 1) * bs])
        x = to_float(train.images[idx], train.pixel_max)
        y = torch.as_tensor(train.labels[idx])
        x = augment_batch(x, rng, pad, flip)
        for g in opt.param_groups:
            g["lr"] = lr_at(epoch * steps + j, total, opts.lr, warmup)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += float(loss.detach()) * len(idx)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(idx)
        bar.update(len(idx))
        if mid is not None and j + 1 < steps:
            mid(_mid_point(j, rng, seen, (loss_sum, correct)))
    return {"loss": loss_sum / seen, "train_accuracy": correct / seen, "lr_end": opt.param_groups[0]["lr"]}


def y_norms(net: NetConfig, params: dict, train, percentile: float, n: int = 2000) -> dict[str, float]:
    """lambda / y_norm per weighted layer: the percentile of its positive teacher activations."""
    from .convert import activation_scales

    k = min(n, len(train))
    sel = np.random.default_rng(0).permutation(len(train))[:k]
    return activation_scales(net, params, train.images[np.sort(sel)].astype(np.float32) / train.pixel_max,
                             percentile)


def ltl_losses(net: NetConfig, snn, teacher, x, y, norms: dict[str, float]) -> dict:
    """Layer-local losses of offline LTL for one batch (paper Eq. 4; output layer: labels)."""
    torch = _torch()
    import torch.nn.functional as F

    with torch.no_grad():
        acts = teacher.activations(x)
    logits, runs = snn(x, detach_between_layers=True)
    losses = {}
    for i, layer in enumerate(net.layers):
        if not layer.weighted:
            continue
        if layer.name == snn.last:
            if net.readout == "potential":   # in the teacher's logit units: the SNN's are theta / y_norm smaller
                losses[layer.name] = F.cross_entropy(logits * (norms[layer.name] / snn.theta), y)
            else:
                onehot = F.one_hot(y, net.classes).to(logits.dtype) * net.learning.label_rate
                losses[layer.name] = F.mse_loss(snn.rates(runs[layer.name]).flatten(1), onehot)
            continue
        target = (acts[i] / norms[layer.name]).clamp(0.0, 1.0)
        rate = snn.rates(runs[layer.name])
        losses[layer.name] = F.mse_loss(rate.reshape(target.shape), target)
    return losses


def train_snn_epoch(snn, teacher, opt, train, epoch: int, opts: PretrainOptions, net: NetConfig,
                    norms: dict, bar: _Bar, start: dict | None = None,
                    mid: Callable[[dict], None] | None = None) -> dict:
    """One offline-LTL or tandem epoch (from a mid-epoch checkpoint `start` if given); `mid` as in the
    teacher's."""
    torch = _torch()
    if opts.method == "tandem":
        from .tandem import progressive_layers, tandem_losses as loss_fn
    else:
        loss_fn = ltl_losses
    rng = np.random.default_rng(_epoch_seed(opts.seed, "snn", epoch))
    torch.manual_seed(_epoch_seed(opts.seed, "snn-torch", epoch))
    pad, flip = augment_settings(net, opts.augment)
    n = len(train)
    per_epoch = min(n, opts.ltl_samples or n)
    bs = opts.ltl_batch_size
    steps = (per_epoch + bs - 1) // bs
    total = steps * opts.ltl_epochs
    order = rng.permutation(n)[:per_epoch]
    teacher.eval()
    snn.train()
    snn.weight_noise = opts.train_mismatch
    sums: dict[str, float] = {}
    seen = 0
    j0 = _resume_epoch(start, rng, bar)
    if start is not None:
        sums, seen = dict(start["sums"]), start["seen"]
    for j in range(j0, steps):
        idx = np.sort(order[j * bs:(j + 1) * bs])
        x = augment_batch(to_float(train.images[idx], train.pixel_max), rng, pad, flip)
        y = torch.as_tensor(train.labels[idx])
        for g in opt.param_groups:
            g["lr"] = lr_at(epoch * steps + j, total, opts.ltl_lr, min(steps, max(1, total // 20)))
        kw = {}
        if opts.tandem_progressive:     # the phase follows the step: a resumed run is in the same phase
            kw["snn_layers"] = progressive_layers(net, (epoch * steps + j) / total)
        losses = loss_fn(net, snn, teacher, x, y, norms, **kw)
        opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()     # the graphs of the layers are disjoint: each gets its own loss
        opt.step()
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(idx)
        seen += len(idx)
        bar.update(len(idx))
        if mid is not None and j + 1 < steps:
            mid(_mid_point(j, rng, seen, dict(sums)))
    return {"layer_losses": {k: v / seen for k, v in sums.items()}, "samples": seen}


# --------------------------------------------------------------------------- export


def finish(net: NetConfig, bundle, params: dict, test, data_spec: str, attrs: dict, out: Path,
           progress: bool, log: Callable[[str], None]) -> dict:
    """Measure the chip, attach the float teacher and the provenance, write the weights file."""
    from chipsim.hostlink.datasets import describe_dataset
    from chipsim.core.weights import save_weights

    bundle.teacher = params
    t0 = time.perf_counter()
    snn_acc, _ = chip_accuracy(net, bundle, test, progress=progress, label="chip SNN (test)")
    chip_s = time.perf_counter() - t0
    spec = check_spec(net, data_spec)
    check_data = load_split(net, spec, "test", CHECK_SAMPLES)
    check_acc, _ = chip_accuracy(net, bundle, check_data)
    prov = json.loads(bundle.attrs.get("provenance", "{}"))
    bundle.attrs.update(attrs)
    bundle.attrs.update({
        "provenance": json.dumps(prov),
        "snn_accuracy": snn_acc,
        "accuracy_split": f"{test.name} test ({len(test)})",
        "accuracy_samples": len(test),
        "test_data": describe_dataset(test),
        "check": {"data": spec, "split": "test", "samples": len(check_data), "accuracy": check_acc,
                  "about": "chip accuracy (noise-free, seed 0) on load_dataset(data, 'test', limit=samples)"},
        "scales": {name: lw.scale for name, lw in bundle.layers.items()},
        "thresholds": {name: int(lw.threshold) for name, lw in bundle.layers.items()},
        "chipsim_version": __version__,
        "chip_eval_seconds": round(chip_s, 1),
    })
    save_weights(out, bundle, net)
    log(f"chip SNN accuracy {snn_acc * 100:.2f}% on {len(test)} test samples "
        f"({chip_s:.0f} s); check subset {spec} ({len(check_data)}): {check_acc * 100:.2f}%")
    log(f"wrote {out}")
    return {"teacher_accuracy": attrs.get("teacher_accuracy"), "snn_accuracy": snn_acc,
            "float_snn_accuracy": attrs.get("float_snn_accuracy"), "check_accuracy": check_acc, "out": str(out)}


# --------------------------------------------------------------------------- driver



def _check_out_path(out: Path) -> None:
    """--out (and OUT.pretrain beside it) can be created: no file where a folder must be, no over-long name."""
    try:
        full = out.absolute()
        if any(len(os.fsencode(part)) > 250 for part in full.parts):
            raise PretrainError(f"--out {str(out)[:80]}...: a path component is longer than the file system allows "
                                f"(255 bytes); expected a shorter name")
        parent = full.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise PretrainError(f"--out {out}: {parent} is a file; expected a path whose folders are folders")
        if out.is_dir():
            raise PretrainError(f"--out {out}: is a folder; expected a weights file name (e.g. net.h5)")
    except OSError as exc:
        raise PretrainError(f"--out {str(out)[:200]}: cannot be used ({exc.strerror or exc}); expected a path this "
                            f"system accepts") from None

def pretrain(opts: PretrainOptions) -> dict:
    """Run (or resume) the pretraining pipeline; returns a summary dict."""
    torch = _torch()
    from chipsim.hostlink.datasets import describe_dataset

    from .convert import convert
    from .torch import (SpikingNet, Teacher, TeacherOptions, balanced_params, bundle_to_snn_params, export_snn,
                        folded_params, load_snn_params, snn_params)

    if opts.method not in METHODS:
        raise PretrainError(f"--method: expected one of {', '.join(METHODS)}, got {opts.method!r}")
    if opts.tandem_progressive and opts.method != "tandem":
        raise PretrainError(f"--tandem-progressive: expected --method tandem, got --method {opts.method}")
    if opts.ltl_init not in ("convert", "random") and not Path(opts.ltl_init).is_file():
        raise PretrainError(f"--ltl-init: expected convert, random or a chipsim weights file, got {opts.ltl_init!r}")
    torch.set_num_threads(opts.threads)
    try:
        import numba

        numba.set_num_threads(min(opts.threads, numba.config.NUMBA_NUM_THREADS))
    except (ImportError, ValueError):
        pass
    net = resolve_net(opts.net)
    out = Path(opts.out) if opts.out else Path(f"{net.name}.h5")
    work = work_dir(out)
    _check_out_path(out)
    ckpt_path = work / CHECKPOINT
    log_path = work / LOG
    state: dict | None = None
    if opts.resume:
        state = load_checkpoint(ckpt_path)
        saved = state["options"]
        if saved["net"] != opts.net and resolve_net(saved["net"]).name != net.name:
            raise PretrainError(f"--resume: the checkpoint in {work} is for net {saved['net']!r}, not {opts.net!r}")
        keep = {k: v for k, v in saved.items() if k != "net"}
        keep["teacher"] = Path(keep["teacher"]) if keep.get("teacher") else None
        # the saved settings win, except the stopping rule and the output
        opts = dataclasses.replace(opts, **keep)
    elif ckpt_path.exists():
        raise PretrainError(f"--out {out}: {ckpt_path} holds an earlier run; pass --resume to continue it "
                            f"or remove {work}")
    data_spec = opts.data or net.data
    if data_spec == "cifar10-test-subset":
        raise PretrainError(f"--data: net '{net.name}' defaults to the bundled CIFAR-10 test subset, which has "
                            f"no training split; expected --data PATH (e.g. ../shared/data/cifar10-jpeg.tar.xz)")
    percentile = opts.percentile if opts.percentile is not None else net.learning.target_percentile
    log = opts.log
    t_load = time.perf_counter()
    train = load_split(net, data_spec, "train", opts.train_samples)
    test = load_split(net, data_spec, "test", opts.eval_samples)
    log(f"net {net.name}: {len(net.weighted_layers)} weighted layers; data {data_spec}: {len(train)} train, "
        f"{len(test)} test ({time.perf_counter() - t_load:.0f} s to load)")

    t_opts = TeacherOptions.for_net(net, opts.batchnorm, opts.dropout)
    with torch.random.fork_rng():
        torch.manual_seed(opts.seed)             # seeded initialisation of both nets
        teacher = Teacher(net, t_opts)
        snn = SpikingNet(net)
    t_opt = torch.optim.SGD(teacher.parameters(), lr=opts.lr, momentum=0.9, nesterov=True,
                            weight_decay=opts.weight_decay)
    s_opt = torch.optim.Adam(snn.parameters(), lr=opts.ltl_lr)
    if state is None:
        state = {"format": "chipsim-pretrain-1", "options": {**opts.saved(), "net": opts.net}, "stage": "teacher",
                 "epoch": 0, "history": [], "seconds": {"teacher": 0.0, "snn": 0.0}, "norms": None}
        if opts.teacher is not None:
            try:
                teacher = teacher_from_state_dict(net, opts.teacher, t_opts)
            except PretrainError as exc:
                raise PretrainError(f"--teacher {exc}") from None
            t_opt = torch.optim.SGD(teacher.parameters(), lr=opts.lr)
            state["stage"] = "snn" if opts.method in SNN_METHODS else "export"
            state["teacher_source"] = str(opts.teacher)
    else:
        if state.get("teacher_source"):
            teacher = teacher_from_state_dict(net, Path(state["teacher_source"]), t_opts)
        else:
            teacher.load_state_dict(state["teacher"])
        if state.get("teacher_opt"):
            t_opt.load_state_dict(state["teacher_opt"])
        if state.get("snn"):
            snn.load_state_dict(state["snn"])
            s_opt.load_state_dict(state["snn_opt"])
        log(f"resumed from {ckpt_path}: stage {state['stage']}, epoch {state['epoch']}")
    t_start = time.perf_counter()

    def checkpoint() -> None:
        state["teacher"] = teacher.state_dict()
        state["teacher_opt"] = t_opt.state_dict()
        state["snn"] = snn.state_dict()
        state["snn_opt"] = s_opt.state_dict()
        save_checkpoint(ckpt_path, state)

    def record(entry: dict) -> None:
        state["history"].append(entry)
        work.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def out_of_time() -> bool:
        return opts.max_minutes is not None and time.perf_counter() - t_start > opts.max_minutes * 60

    last_save = [time.perf_counter()]
    batches_run = [0]

    def mid_epoch(stage: str, epoch: int, t0: float, c0: float, before: tuple[float, float]):
        """The epoch's mid-epoch hook: checkpoint every --checkpoint-minutes (a kill then loses at most
        that), and stop there once past --max-minutes."""
        def mid(point: dict) -> None:
            batches_run[0] += 1
            hook = opts.stop_after_batches is not None and batches_run[0] >= opts.stop_after_batches
            due = (opts.checkpoint_minutes is not None
                   and time.perf_counter() - last_save[0] >= opts.checkpoint_minutes * 60)
            if not (hook or due):
                return
            state["partial"] = {**point, "stage": stage, "epoch": epoch,
                                "seconds": before[0] + time.perf_counter() - t0,
                                "cpu_seconds": before[1] + time.process_time() - c0}
            checkpoint()
            state["partial"] = None
            last_save[0] = time.perf_counter()
            if hook or out_of_time():
                raise Stopped(f"stopped in {stage} epoch {epoch + 1} after batch {point['batch']} "
                              f"(checkpointed); continue with --resume")
        return mid

    def resume_point(stage: str, epoch: int) -> dict | None:
        start = state.pop("partial", None)
        return start if start and start["stage"] == stage and start["epoch"] == epoch else None

    # ---- stage 1: teacher
    while state["stage"] == "teacher" and state["epoch"] < opts.epochs:
        e = state["epoch"]
        bar = _Bar(opts.progress, len(train), f"teacher epoch {e + 1}/{opts.epochs}")
        t0, c0 = time.perf_counter(), time.process_time()
        start = resume_point("teacher", e)
        before = (start["seconds"], start["cpu_seconds"]) if start else (0.0, 0.0)
        try:
            stats = train_teacher_epoch(teacher, t_opt, train, e, opts, net, opts.epochs, bar, start,
                                        mid_epoch("teacher", e, t0, c0, before))
        finally:
            bar.close()
        dt, dc = before[0] + time.perf_counter() - t0, before[1] + time.process_time() - c0
        acc = teacher_accuracy(teacher, test)
        state["seconds"]["teacher"] += dt
        state["seconds"]["teacher_cpu"] = state["seconds"].get("teacher_cpu", 0.0) + dc
        state["epoch"] = e + 1
        record({"stage": "teacher", "epoch": e + 1, **stats, "test_accuracy": acc, "seconds": round(dt, 1),
                "cpu_seconds": round(dc, 1)})
        log(f"teacher epoch {e + 1}/{opts.epochs}: loss {stats['loss']:.4f}, "
            f"train {stats['train_accuracy'] * 100:.2f}%,"
            f" test {acc * 100:.2f}%, {dt:.0f} s ({dc:.0f} s CPU)")
        if state["epoch"] >= opts.epochs:
            state["stage"], state["epoch"] = ("export" if opts.teacher_only or opts.method == "convert"
                                              else "snn"), 0
        checkpoint()
        if out_of_time() and state["stage"] == "teacher":
            raise Stopped(f"stopped after teacher epoch {e + 1} (--max-minutes {opts.max_minutes}); "
                          f"continue with --resume")
    if state["stage"] == "teacher":       # resumed with --epochs already reached
        state["stage"], state["epoch"] = ("export" if opts.method == "convert" else "snn"), 0

    teacher.eval()
    params, teacher_storage = stored_teacher(folded_params(teacher))
    t_acc = teacher_accuracy(folded_teacher(net, params), test)     # the teacher the file will carry
    teacher_file = work / "teacher.pt"
    work.mkdir(parents=True, exist_ok=True)
    from chipsim.io.atomic import atomic_path

    with atomic_path(teacher_file) as tmp:
        torch.save(teacher.state_dict(), tmp)
    log(f"teacher ANN accuracy {t_acc * 100:.2f}% on {len(test)} test samples; state dict {teacher_file}")
    if opts.teacher_only:
        return {"teacher_accuracy": t_acc, "teacher_state_dict": str(teacher_file), "out": None}

    if state.get("norms") is None:
        state["norms"] = y_norms(net, params, train, percentile)
    norms = state["norms"]

    # ---- stage 2: offline LTL or tandem learning
    float_acc = None
    stage_label = "tandem" if opts.method == "tandem" else "offline LTL"
    if opts.method in SNN_METHODS:
        if state["stage"] == "snn" and state["epoch"] == 0 and not state.get("snn_initialised"):
            if opts.ltl_init == "convert":
                load_snn_params(snn, balanced_params(net, params, norms))
            elif opts.ltl_init != "random":           # fine-tune existing chip weights
                from chipsim.core.weights import WeightsError, check_bundle, load_weights

                try:
                    start = load_weights(opts.ltl_init)
                    check_bundle(net, start, opts.ltl_init)
                except WeightsError as exc:
                    raise PretrainError(f"--ltl-init: {exc}") from None
                load_snn_params(snn, bundle_to_snn_params(net, start, train.pixel_max))
            state["snn_initialised"] = True
            s_opt = torch.optim.Adam(snn.parameters(), lr=opts.ltl_lr)
            f0 = snn_float_accuracy(snn, eval_subset(test, 1000))
            record({"stage": "snn", "epoch": 0, "float_snn_accuracy_1k": f0})
            log(f"SNN init ({opts.ltl_init}): float SNN accuracy {f0 * 100:.2f}% "
                f"on {min(len(test), 1000)} test samples")
        while state["stage"] == "snn" and state["epoch"] < opts.ltl_epochs:
            e = state["epoch"]
            per_epoch = min(len(train), opts.ltl_samples or len(train))
            bar = _Bar(opts.progress, per_epoch, f"{stage_label} epoch {e + 1}/{opts.ltl_epochs}")
            t0, c0 = time.perf_counter(), time.process_time()
            start = resume_point("snn", e)
            before = (start["seconds"], start["cpu_seconds"]) if start else (0.0, 0.0)
            try:
                stats = train_snn_epoch(snn, teacher, s_opt, train, e, opts, net, norms, bar, start,
                                        mid_epoch("snn", e, t0, c0, before))
            finally:
                bar.close()
            dt, dc = before[0] + time.perf_counter() - t0, before[1] + time.process_time() - c0
            snn.eval()
            f_acc = snn_float_accuracy(snn, eval_subset(test, 1000))
            state["seconds"]["snn"] += dt
            state["seconds"]["snn_cpu"] = state["seconds"].get("snn_cpu", 0.0) + dc
            state["epoch"] = e + 1
            record({"stage": "snn", "epoch": e + 1, **stats, "float_snn_accuracy_1k": f_acc, "seconds": round(dt, 1),
                    "cpu_seconds": round(dc, 1)})
            losses = ", ".join(f"{k} {v:.4f}" for k, v in stats["layer_losses"].items())
            log(f"{stage_label} epoch {e + 1}/{opts.ltl_epochs}: {losses}; float SNN {f_acc * 100:.2f}% (1k test), "
                f"{dt:.0f} s ({dc:.0f} s CPU)")
            if state["epoch"] >= opts.ltl_epochs:
                state["stage"], state["epoch"] = "export", 0
            checkpoint()
            if out_of_time() and state["stage"] == "snn":
                raise Stopped(f"stopped after {stage_label} epoch {e + 1} (--max-minutes {opts.max_minutes}); "
                              f"continue with --resume")
        snn.eval()
        n_float = min(len(test), FLOAT_EVAL_SAMPLES)      # the dense float SNN is slow on CPU: a subset
        float_acc = snn_float_accuracy(snn, eval_subset(test, n_float))
        bundle = export_snn(net, snn_params(snn), train.pixel_max,
                            {"method": opts.method, "init": opts.ltl_init, "percentile": percentile,
                             "y_norm": norms})
    else:
        calib = np.sort(np.random.default_rng(0).permutation(len(train))[:min(2000, len(train))])
        bundle = convert(net, params, train.images[calib], train.pixel_max, percentile,
                         {"calibration": f"{len(calib)} training images"})
    state["stage"] = "export"
    checkpoint()

    argv = " ".join([Path(sys.argv[0]).name] + [shlex.quote(a) for a in sys.argv[1:]]) \
        if sys.argv and "pytest" not in sys.argv[0] else ""
    attrs = {
        "teacher_accuracy": t_acc,
        "teacher_storage": teacher_storage,
        "method": opts.method,
        "pretrain": {**opts.saved(), "percentile": percentile, "teacher_options": dataclasses.asdict(t_opts),
                     "augment": list(augment_settings(net, opts.augment)), "torch": torch.__version__,
                     "threads": opts.threads, "command": argv, "cpu_count": os.cpu_count()},
        "training_seconds": {k: round(v, 1) for k, v in state["seconds"].items()},
        "train_data": describe_dataset(train),
        "history": state["history"],
    }
    if float_acc is not None:
        attrs["float_snn_accuracy"] = float_acc
        attrs["float_snn_accuracy_samples"] = n_float
    if state.get("teacher_source"):
        attrs["teacher_source"] = state["teacher_source"]
    log(f"float SNN accuracy {float_acc * 100:.2f}% ({n_float} test samples)" if float_acc is not None
        else "converted (threshold balancing)")
    summary = finish(net, bundle, params, test, data_spec, attrs, out, opts.progress, log)
    summary["training_seconds"] = attrs["training_seconds"]
    return summary
