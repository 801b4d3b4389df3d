"""Teacher-ANN layer targets for online LTL, computed on the host (numpy, float).

For a learning layer l and sample n (paper Eq. 9, DESIGN 'Host link'):

    target = clamp(a_l(n) / y_norm_l, 0, 1), quantized to target_bits: round(target * (2^b - 1))

a_l is the teacher's activation after ReLU; y_norm_l is the `target_percentile`
(default 99.9, the percentile the bundled nets were converted with, so that a
target equals the converted SNN's nominal rate) of that layer's positive
activations over the calibration data, computed once, on at most
`NORM_SAMPLES` images evenly spaced through the calibration set (all of them
when there are fewer): a percentile of millions of activations per layer is
settled well before that, and the full 50,000-image CIFAR-10 training split
would need 46 GB of VGG-11 activations and minutes of teacher time for it.
Targets are laid out in the chip's neuron order (y, x, c).

The output layer (count readout) learns from the label as a one-hot rate
(`output_target: label`, the chip analogue of the paper's cross-entropy on
labels), or from the teacher's normalised logits (`output_target: teacher`).

Targets can be kept on disk (`TargetStore`, `--target-cache DIR`): one row per
training image, filled as calibration meets each image, keyed by a hash of
everything a target depends on, so the cells of a noise sweep (whose targets
are noise-independent) compute each image's targets once.

Targets are computed image by image (see `targets`), so they do not depend on
how the images are batched. Per-batch targets run their BLAS calls on one thread: they are computed by the
host-link producer while the chip kernel holds the other core(s), and a
multi-threaded BLAS competing with it for cores ran 4-7x slower (VGG-11,
8 images: 83 ms on one thread, 310-590 ms on two busy cores).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from chipsim.models.teacher import forward


NORM_SAMPLES = 2000     #: calibration images the y_norm percentiles are taken over (at most)


def norm_subset(n: int, limit: int = NORM_SAMPLES) -> np.ndarray:
    """Indices of the images y_norm is computed on: all n, or `limit` evenly spaced ones."""
    if n <= limit:
        return np.arange(n)
    return np.linspace(0, n - 1, limit).round().astype(np.int64)


class TeacherTargets:
    def __init__(self, net, teacher: dict, setup, pixel_max: int, calib_images: np.ndarray):
        if not teacher:
            raise ValueError(f"net '{net.name}': the weights file has no float teacher (/teacher group); "
                             f"online calibration needs the teacher ANN to compute layer targets")
        self.net = net
        self.teacher = teacher
        self.setup = setup
        self.config = setup.config
        self.pixel_max = pixel_max
        self.R = (1 << self.config.target_bits) - 1
        self.layer_index = {layer.name: i for i, layer in enumerate(net.layers)}
        self.output = net.layers[-1].name
        self.y_norm = self._y_norm(calib_images[norm_subset(len(calib_images))])

    def _activations(self, images: np.ndarray) -> list[np.ndarray]:
        return forward(self.net, self.teacher, images.astype(np.float32) / self.pixel_max)

    def _y_norm(self, images: np.ndarray, batch: int = 256) -> dict[str, float]:
        chunks: dict[str, list] = {name: [] for name in self.setup.layers}
        for i in range(0, len(images), batch):
            acts = self._activations(images[i:i + batch])
            for name in self.setup.layers:
                a = acts[self.layer_index[name]]
                chunks[name].append((a if name != self.output else np.maximum(a, 0)).ravel())
        norms = {}
        for name, parts in chunks.items():
            a = np.concatenate(parts)
            positive = a[a > 0]
            norms[name] = float(np.percentile(positive, self.config.target_percentile)) if positive.size else 1.0
        return norms

    def targets(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """(B, n_targets) uint16 rate targets for a batch."""
        out = np.zeros((len(images), self.setup.n_targets), np.uint16)
        if len(images) == 0:
            return out
        with threadpool_limits(limits=1, user_api="blas"):
            # one image at a time: a float32 GEMM's rounding depends on the rows it is blocked with, and
            # a target near a rounding boundary then flipped with the batch's make-up (VGG-11: a few
            # per batch), so a calibration depended on --batch-size; alone, every image's arithmetic is
            # the same in any batch (25 % slower than batched for VGG-11: 8.4 against 6.8 ms per image)
            per_image = [self._activations(images[i:i + 1]) for i in range(len(images))]
        acts = [np.concatenate([a[k] for a in per_image]) for k in range(len(self.net.layers))]
        for name in self.setup.layers:
            sl = self.setup.target_slices[name]
            if name == self.output and self.config.output_target == "label":
                onehot = np.zeros((len(images), sl.stop - sl.start))
                onehot[np.arange(len(images)), labels] = self.config.label_rate
                rate = onehot
            else:
                a = acts[self.layer_index[name]]                    # (B, C, H, W)
                a = a.transpose(0, 2, 3, 1).reshape(len(images), -1)   # chip order (y, x, c)
                rate = np.clip(a / self.y_norm[name], 0.0, 1.0)
            out[:, sl] = np.round(rate * self.R)
        return out

    def cache_key(self, images: np.ndarray, labels: np.ndarray) -> str:
        """A hash of everything the targets depend on: net, teacher, learning target settings, y_norm, data."""
        h = hashlib.sha256()
        # the net without its learning sections: step sizes and schedules do not change a target, and the
        # settings that do (target bits, output target, label rate, layers, y_norm) are hashed below
        net = {k: v for k, v in self.net.to_dict().items() if k not in ("learning", "learning_presets")}
        h.update(json.dumps(net, sort_keys=True, default=str).encode())
        for name in sorted(self.teacher):
            w, b = self.teacher[name]
            h.update(np.ascontiguousarray(w).tobytes())
            h.update(np.ascontiguousarray(b).tobytes())
        c = self.config
        h.update(json.dumps({"y_norm": self.y_norm, "pixel_max": self.pixel_max, "layers": list(self.setup.layers),
                             "target_bits": c.target_bits, "output_target": c.output_target,
                             "label_rate": c.label_rate, "n_targets": self.setup.n_targets,
                             "slices": {k: [v.start, v.stop] for k, v in self.setup.target_slices.items()}},
                            sort_keys=True).encode())
        h.update(np.ascontiguousarray(images).tobytes())
        h.update(np.ascontiguousarray(labels).astype(np.int64).tobytes())
        return h.hexdigest()[:32]


class TargetStore:
    """Targets of one training split on disk, one row per image, computed the first time an image is met.

    Two .npy files per key in `folder` (memory-mapped): KEY.npy, (N, n_targets)
    uint16, and KEY.done.npy, (N,) uint8, set to 1 after the row is written.
    Several processes (a sweep's workers) may share a folder: a row two of them
    compute at once gets the same bytes twice, and the files are created under a
    temporary name and linked into place, so no process truncates another's.
    The rows are the teacher's own output, so a calibration is bit-identical
    with or without the store."""

    def __init__(self, folder: str | Path, teacher: TeacherTargets, images: np.ndarray, labels: np.ndarray):
        self.folder = Path(folder)
        self.teacher = teacher
        self.key = teacher.cache_key(images, labels)
        n, width = len(images), teacher.setup.n_targets
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.rows = self._open(self.folder / f"{self.key}.npy", np.uint16, (n, width))
            self.done = self._open(self.folder / f"{self.key}.done.npy", np.uint8, (n,))
        except OSError as exc:
            raise OSError(f"--target-cache {self.folder}: cannot keep targets there ({exc.strerror or exc}); "
                          f"expected a writable folder with {n * width * 2 / 1e9:.1f} GB free") from None
        self.hits = self.misses = 0

    @staticmethod
    def _open(path: Path, dtype, shape) -> np.ndarray:
        if not path.exists():
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
            os.close(fd)
            try:
                np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape).flush()
                try:
                    os.link(tmp, path)          # fails if another process got there first: use theirs
                except FileExistsError:
                    pass
            finally:
                os.unlink(tmp)
        arr = np.lib.format.open_memmap(path, mode="r+")
        if arr.dtype != dtype or arr.shape != shape:
            raise OSError(0, f"{path.name} holds {arr.dtype} {arr.shape}, expected {np.dtype(dtype)} {shape}")
        return arr

    def targets(self, idx: np.ndarray, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Targets of training images `idx` (their pixels and labels given): stored rows, the rest computed."""
        idx = np.asarray(idx)
        hit = self.done[idx] == 1
        out = np.empty((len(idx), self.teacher.setup.n_targets), np.uint16)
        out[hit] = self.rows[idx[hit]]
        miss = ~hit
        if miss.any():
            fresh = self.teacher.targets(images[miss], labels[miss])
            out[miss] = fresh
            self.rows[idx[miss]] = fresh
            self.done[idx[miss]] = 1          # after the row: a reader never sees a flagged empty row
        self.hits += int(hit.sum())
        self.misses += int(miss.sum())
        return out
