"""Image data sets for feeding the simulated chip from the host.

One entry point, :func:`load_dataset`, turns a *spec* into a :class:`Dataset`
of ``uint8`` images shaped ``(N, C, H, W)`` plus ``int64`` labels.  A spec is

* ``"digits"`` -- the 8x8 handwritten digits embedded in this package
  (``data/digits.npz``, pixel values 0..16, one channel);
* a CIFAR-10 python-batches folder (``data_batch_1`` .. ``data_batch_5``,
  ``test_batch``, ``batches.meta``) or a CIFAR-100 python folder (``train``,
  ``test``, ``meta``; the *fine* labels are used);
* an image folder ``ROOT/<split>/<class>/*.jpg|*.jpeg|*.png``;
* a ``.tar``, ``.tar.gz`` or ``.tar.xz`` archive holding such an image folder
  (at the top of the archive or inside one top-level folder).  The archive is
  read in a single streaming pass and nothing is unpacked to disk;
* an MNIST-style IDX folder (Fashion-MNIST): ``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``, each optionally ``.gz`` (test = ``t10k``); or
  ``"fashion-mnist"``, the folder Debian's ``dataset-fashion-mnist`` installs
  (``/usr/share/datasets/fashion-mnist``);
* a Tiny ImageNet folder: ``train/<wnid>/images/*.JPEG``, ``val/images/*.JPEG``
  with ``val/val_annotations.txt`` (file, wnid, box), optional ``wnids.txt``;
  the labelled ``val`` split is served as ``test`` (Tiny ImageNet's own test
  images have no labels).

A folder that holds exactly one subfolder in one of these layouts (e.g. the
unpacked ``cifar10-jpeg/``) is accepted too.  To load a folder that is
literally called ``digits``, pass ``./digits``.

Ordering is deterministic and independent of file-system or archive order:

* digits: the order of a fixed permutation (see below);
* CIFAR batches: the order of the batch files (``data_batch_1`` first);
* image folders, archives and Tiny ImageNet: class index (classes sorted by
  folder name or wnid), then file name;
* IDX files: the order in the file.

With ``limit`` the samples are first put in a *stratified interleave* of that
order -- the first sample of every class (in class order), then the second
sample of every class, and so on -- and the first ``limit`` samples of it are
returned, in that interleaved order.  Small subsets are therefore
class-balanced, ``limit`` means the same thing for every source, and
``load_dataset(s, limit=k).subset(j) == load_dataset(s, limit=j)`` for j <= k.
Only the images that are kept are decoded.

Embedded digits: ``data/digits.npz`` was made once, at development time, with
``sklearn.datasets.load_digits()`` (scikit-learn, BSD-3-Clause licence; the
data are the UCI "Optical Recognition of Handwritten Digits" test set,
1,797 images).  The float images (integers 0..16) were stored as ``images``,
uint8 of shape (1797, 1, 8, 8), and the targets as ``labels``, int64, with
``numpy.savez_compressed``.  scikit-learn is not needed at run time.  The
train/test split is ``np.random.default_rng(20221004).permutation(1797)``:
its first 1437 indices are "train", the last 360 are "test".

CIFAR python batches are pickles.  They are read with a restricted unpickler
that only rebuilds plain containers and numpy arrays, so a foreign file can
not run code while being loaded.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import numbers
import os
import pickle
import re
import tarfile
import zlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

import numpy as np

__all__ = [
    "SPLITS",
    "Dataset",
    "DatasetError",
    "describe_dataset",
    "load_dataset",
]

#: The split names every source understands.
SPLITS: tuple[str, ...] = ("train", "test")

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz")
#: Data shipped inside the package, by name (see data/make_cifar10_subset.py).
BUNDLED = {
    "cifar10-test-subset": (Path(__file__).resolve().parent / "data" / "cifar10-test-subset.tar",
                            "bundled CIFAR-10 test subset: 1,000 of 10,000 JPEG test images "
                            "(100 per class); pass --data PATH for the full test set"),
}

_EXPECTED = (
    "expected 'digits', 'cifar10-test-subset', 'fashion-mnist', a CIFAR python-batches folder, "
    "an MNIST/Fashion-MNIST IDX folder, a Tiny ImageNet folder, an image folder "
    "ROOT/<split>/<class>/*.jpg or a .tar/.tar.gz/.tar.xz of one"
)

#: Data sets installed by system packages, by name: the folders searched, in order.
INSTALLED = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}
_INSTALL_HINT = {
    "fashion-mnist": "install Debian's package dataset-fashion-mnist (apt-get install dataset-fashion-mnist) "
                     "or pass --data FOLDER holding the four IDX files",
}

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
#: IDX file stems per split (MNIST naming)
_IDX_STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

_DIGITS_FILE = Path(__file__).resolve().parent / "data" / "digits.npz"
_DIGITS_SEED = 20221004
_DIGITS_N = 1797
_DIGITS_TRAIN = 1437

_CIFAR_SIDE = 32
_CIFAR_ROW = 3 * _CIFAR_SIDE * _CIFAR_SIDE


class DatasetError(ValueError):
    """A data set spec or file could not be used.

    The message always starts with the offending path (or spec) and says what
    was expected instead.
    """


@dataclass(frozen=True, eq=False)
class Dataset:
    """One split of a data set, fully in memory.

    The arrays are read-only views; copy them to modify.
    """

    name: str  #: e.g. "digits", "cifar10", or the image folder's name
    split: str  #: "train" or "test"
    images: np.ndarray  #: uint8, shape (N, C, H, W)
    labels: np.ndarray  #: int64, shape (N,), indices into ``classes``
    classes: tuple[str, ...]  #: class names, index = label
    source: str  #: absolute path it was read from, or "embedded"
    pixel_max: int  #: largest possible pixel value: 16 for digits, 255 for images
    note: str = ""  #: caveat shown to users, e.g. that this is only a subset

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        labels = np.asarray(self.labels)
        where = f"{self.source} ({self.name}/{self.split})"
        if images.dtype != np.uint8 or images.ndim != 4:
            raise DatasetError(
                f"{where}: images must be uint8 (N, C, H, W), got {images.dtype} {images.shape}"
            )
        if labels.dtype != np.int64 or labels.ndim != 1:
            raise DatasetError(
                f"{where}: labels must be int64 (N,), got {labels.dtype} {labels.shape}"
            )
        if len(images) != len(labels):
            raise DatasetError(
                f"{where}: {len(images)} images but {len(labels)} labels; expected equal counts"
            )
        classes = tuple(str(c) for c in self.classes)
        if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            raise DatasetError(
                f"{where}: labels must lie in 0..{len(classes) - 1} "
                f"(one per class), got {labels.min()}..{labels.max()}"
            )
        if self.split not in SPLITS:
            raise DatasetError(f"{where}: split must be one of {SPLITS}, got {self.split!r}")
        if int(self.pixel_max) <= 0:
            raise DatasetError(f"{where}: pixel_max must be positive, got {self.pixel_max}")
        images = images.view()
        images.flags.writeable = False
        labels = labels.view()
        labels.flags.writeable = False
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "pixel_max", int(self.pixel_max))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"shape={tuple(self.images.shape[1:])}, classes={len(self.classes)}, "
            f"source={self.source!r})"
        )

    def subset(self, n: int) -> Dataset:
        """The first ``n`` samples (0 <= n <= len(self)), as a new Dataset."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise DatasetError(
                f"{self.source}: subset size must be a non-negative integer, got {n!r}"
            )
        if n > len(self):
            raise DatasetError(
                f"{self.source}: cannot take a subset of {n} samples from "
                f"{self.name}/{self.split}, which has only {len(self)}; expected n <= {len(self)}"
            )
        n = int(n)
        return Dataset(
            name=self.name,
            split=self.split,
            images=self.images[:n],
            labels=self.labels[:n],
            classes=self.classes,
            source=self.source,
            pixel_max=self.pixel_max,
        )


def describe_dataset(ds: Dataset) -> dict[str, Any]:
    """JSON-able provenance of ``ds`` (no caching; hashes the arrays each call)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(ds.images).tobytes())
    digest.update(np.ascontiguousarray(ds.labels).tobytes())
    return {
        "name": ds.name,
        "split": ds.split,
        "n": len(ds),
        "source": ds.source,
        "shape": [int(s) for s in ds.images.shape],
        "dtype": str(ds.images.dtype),
        "pixel_max": ds.pixel_max,
        "n_classes": len(ds.classes),
        "class_counts": np.bincount(ds.labels, minlength=len(ds.classes)).tolist(),
        "sha256": digest.hexdigest(),
    }


def _read_image_file(path: Path) -> tuple[str, bytes]:
    """(name, bytes) of one image file, for _stack_images."""
    try:
        return str(path), path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc}); expected an image file") from exc


def load_dataset(
    spec: str | os.PathLike[str], split: str = "test", limit: int | None = None
) -> Dataset:
    """Load one split of a data set.

    Args:
        spec: ``"digits"`` or a path to a CIFAR python-batches folder, an image
            folder or a tar archive of one (see the module docstring).
        split: ``"train"`` or ``"test"``.
        limit: keep at most this many samples, chosen by the stratified
            interleave described in the module docstring; None keeps all.

    Raises:
        DatasetError: the spec, split, limit or any file is unusable; the
            message names the path and what was expected.
    """
    spec_str = os.fspath(spec)
    if split not in SPLITS:
        raise DatasetError(f"{spec_str}: unknown split {split!r}; expected one of {SPLITS}")
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1
    ):
        raise DatasetError(f"{spec_str}: limit must be a positive integer or None, got {limit!r}")
    if spec_str == "digits":
        return _load_digits(split, limit)
    if spec_str in BUNDLED:
        bundled_path, note = BUNDLED[spec_str]
        return dataclasses.replace(load_dataset(bundled_path, split, limit), name=spec_str, note=note)
    if spec_str in INSTALLED:
        for folder in INSTALLED[spec_str]:
            if folder.is_dir():
                return dataclasses.replace(load_dataset(folder, split, limit), name=spec_str)
        shown = ", ".join(str(f) for f in INSTALLED[spec_str])
        raise DatasetError(f"{spec_str}: not installed (looked in {shown}); {_INSTALL_HINT[spec_str]}")

    path = Path(spec_str).expanduser()
    if not path.exists():
        raise DatasetError(f"{path}: not found; {_EXPECTED}")
    path = path.resolve()
    if path.is_file():
        if _is_archive(path):
            return _load_archive(path, split, limit)
        raise DatasetError(f"{path}: not a tar archive; {_EXPECTED}")
    if not path.is_dir():
        raise DatasetError(f"{path}: neither a folder nor a file; {_EXPECTED}")

    kind, root = _resolve_folder(path)
    if kind in ("cifar10", "cifar100"):
        return _load_cifar(kind, root, split, limit)
    if kind == "idx":
        return _load_idx(root, split, limit)
    if kind == "tiny-imagenet":
        return _load_tiny_imagenet(root, split, limit)
    return _load_image_folder(root, split, limit)


# --------------------------------------------------------------------------
# ordering



def load_for_net(spec, split: str, limit: int | None, input_shape, net_name: str, encoder=None):
    """`load_dataset`, and a DatasetError unless the images have the net's input shape. With an `events`
    encoder config (or event data) the event readers take over (chipsim/hostlink/events/)."""
    from chipsim.hostlink.events.dataset import is_event_spec, load_events

    events_net = encoder is not None and encoder.kind == "events"
    if is_event_spec(spec):
        if not events_net:
            kind = encoder.kind if encoder is not None else "a frame encoder"
            raise DatasetError(f"{spec}: event-camera recordings, but net '{net_name}' has encoder.kind {kind}; "
                               f"expected a net with encoder.kind: events (e.g. --net digits-dvs)")
        return load_events(spec, split, limit, sensor=encoder.events.sensor)
    if events_net:
        raise DatasetError(f"{spec}: not event-camera data, but net '{net_name}' has encoder.kind events; expected "
                           f"'digits-dvs', an N-MNIST-style folder ROOT/<Train|Test>/<class>/*.bin, AEDAT or "
                           f".npy/.npz recordings")
    data = load_dataset(spec, split, limit=limit)
    shape = tuple(data.images.shape[1:])
    if shape != tuple(input_shape):
        raise DatasetError(f"{spec}: images have shape {shape}, expected {tuple(input_shape)} "
                           f"(input_shape of net '{net_name}')")
    return data

def _interleaved_order(labels: np.ndarray) -> np.ndarray:
    """Permutation: 1st sample of each class, then 2nd of each class, ...

    Classes are visited in label order; within a class, samples keep their
    order in ``labels``.
    """
    labels = np.asarray(labels)
    by_class = np.argsort(labels, kind="stable")
    sorted_labels = labels[by_class]
    first_of_class = np.searchsorted(sorted_labels, sorted_labels, side="left")
    rank = np.empty(len(labels), dtype=np.int64)
    rank[by_class] = np.arange(len(labels)) - first_of_class
    return np.lexsort((labels, rank))  # rank first, then class


def _selection(labels: np.ndarray, limit: int | None) -> np.ndarray:
    """Indices (into the base order) of the samples to return, in order."""
    if limit is None:
        return np.arange(len(labels))
    return _interleaved_order(labels)[: int(limit)]


# --------------------------------------------------------------------------
# embedded digits


def _load_digits(split: str, limit: int | None) -> Dataset:
    try:
        with np.load(_DIGITS_FILE, allow_pickle=False) as npz:
            images = np.asarray(npz["images"])
            labels = np.asarray(npz["labels"])
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(
            f"{_DIGITS_FILE}: cannot read the embedded digits ({exc}); expected an .npz "
            "with 'images' uint8 (1797, 1, 8, 8) and 'labels' int64 -- reinstall chipsim"
        ) from exc
    if images.shape != (_DIGITS_N, 1, 8, 8) or labels.shape != (_DIGITS_N,):
        raise DatasetError(
            f"{_DIGITS_FILE}: embedded digits have shapes {images.shape} / {labels.shape}; "
            f"expected ({_DIGITS_N}, 1, 8, 8) / ({_DIGITS_N},)"
        )
    perm = np.random.default_rng(_DIGITS_SEED).permutation(_DIGITS_N)
    idx = perm[:_DIGITS_TRAIN] if split == "train" else perm[_DIGITS_TRAIN:]
    idx = idx[_selection(labels[idx], limit)]
    return Dataset(
        name="digits",
        split=split,
        images=np.ascontiguousarray(images[idx], dtype=np.uint8),
        labels=labels[idx].astype(np.int64),
        classes=tuple(str(d) for d in range(10)),
        source="embedded",
        pixel_max=16,
    )


# --------------------------------------------------------------------------
# folder layouts


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _is_image_name(name: str) -> bool:
    return not _is_hidden(name) and name.lower().endswith(_IMAGE_SUFFIXES)


def _is_archive(path: Path) -> bool:
    if path.name.lower().endswith(_ARCHIVE_SUFFIXES):
        return True
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError, lzma.LZMAError, zlib.error):
        return False


def _folder_kind(root: Path) -> str | None:
    """'cifar10', 'cifar100', 'idx', 'tiny-imagenet', 'images' or None for an unknown layout."""
    if any(_idx_file(root, stem) is not None for stems in _IDX_STEMS.values() for stem in stems):
        return "idx"
    if (root / "val" / "val_annotations.txt").is_file() or (
        (root / "wnids.txt").is_file() and (root / "train").is_dir()
    ):
        return "tiny-imagenet"
    if (
        (root / "batches.meta").is_file()
        or (root / "test_batch").is_file()
        or any(_cifar10_batch_number(p.name) is not None for p in root.iterdir())
    ):
        return "cifar10"
    if (root / "meta").is_file() and any((root / s).is_file() for s in SPLITS):
        return "cifar100"
    if any((root / s).is_dir() for s in SPLITS):
        return "images"
    return None


def _resolve_folder(path: Path) -> tuple[str, Path]:
    """Layout of ``path``, looking one level down if it wraps a single folder."""
    try:
        kind = _folder_kind(path)
        if kind is not None:
            return kind, path
        subdirs = [p for p in path.iterdir() if p.is_dir() and not _is_hidden(p.name)]
        if len(subdirs) == 1:
            kind = _folder_kind(subdirs[0])
            if kind is not None:
                return kind, subdirs[0]
    except OSError as exc:
        raise DatasetError(f"{path}: cannot list folder ({exc}); {_EXPECTED}") from exc
    raise DatasetError(f"{path}: unknown folder layout; {_EXPECTED}")


# --------------------------------------------------------------------------
# CIFAR python batches


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that can only rebuild builtin containers and numpy arrays."""

    _ALLOWED = {
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module[len("numpy.core.") :]
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _ArrayUnpickler(f, encoding="bytes").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError,
            AttributeError, IndexError, KeyError) as exc:
        raise DatasetError(
            f"{path}: cannot read CIFAR batch ({exc}); expected a CIFAR python pickle"
        ) from exc
    if not isinstance(obj, dict):
        raise DatasetError(
            f"{path}: CIFAR batch holds a {type(obj).__name__}; expected a dict"
        )
    return obj


def _field(batch: dict, key: str, path: Path) -> Any:
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    found = ", ".join(sorted(repr(k) for k in batch)) or "nothing"
    raise DatasetError(f"{path}: no {key!r} entry in CIFAR batch (found {found})")


def _cifar10_batch_number(name: str) -> int | None:
    m = re.fullmatch(r"data_batch_(\d+)", name)
    return int(m.group(1)) if m else None


def _load_cifar(kind: str, root: Path, split: str, limit: int | None) -> Dataset:
    if kind == "cifar10":
        label_key, meta_file, names_key, n_classes = "labels", "batches.meta", "label_names", 10
        if split == "test":
            files = [root / "test_batch"]
        else:
            numbered = [(_cifar10_batch_number(p.name), p) for p in root.iterdir()]
            files = [p for n, p in sorted((n, p) for n, p in numbered if n is not None)]
        layout = "data_batch_1..5, test_batch, batches.meta"
    else:
        label_key, meta_file, names_key, n_classes = "fine_labels", "meta", "fine_label_names", 100
        files = [root / split]
        layout = "train, test, meta"
    files = [p for p in files if p.is_file()]
    if not files:
        raise DatasetError(
            f"{root}: no {split!r} batch in this {kind} folder; expected {layout}"
        )

    if (root / meta_file).is_file():
        meta_path = root / meta_file
        names = _field(_unpickle(meta_path), names_key, meta_path)
        try:
            classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
        except (TypeError, UnicodeDecodeError) as exc:
            raise DatasetError(
                f"{meta_path}: bad {names_key!r} ({exc}); expected a list of class names"
            ) from exc
    else:
        classes = tuple(str(i) for i in range(n_classes))

    images, labels = [], []
    for path in files:
        batch = _unpickle(path)
        data = np.asarray(_field(batch, "data", path))
        lab = np.asarray(_field(batch, label_key, path))
        if data.ndim != 2 or data.shape[1] != _CIFAR_ROW or lab.shape != (data.shape[0],):
            raise DatasetError(
                f"{path}: 'data' {data.shape} / {label_key!r} {lab.shape}; expected "
                f"(N, {_CIFAR_ROW}) uint8 rows and N labels"
            )
        if data.dtype != np.uint8:
            if not np.issubdtype(data.dtype, np.integer) or (
                data.size and (data.min() < 0 or data.max() > 255)
            ):
                raise DatasetError(f"{path}: 'data' is {data.dtype}; expected uint8 pixels")
            data = data.astype(np.uint8)
        if not np.issubdtype(lab.dtype, np.integer) or (
            lab.size and (lab.min() < 0 or lab.max() >= len(classes))
        ):
            raise DatasetError(
                f"{path}: {label_key!r} must be integers in 0..{len(classes) - 1}"
            )
        images.append(data.reshape(-1, 3, _CIFAR_SIDE, _CIFAR_SIDE))
        labels.append(lab.astype(np.int64))
    all_labels = np.concatenate(labels)
    if len(all_labels) == 0:
        raise DatasetError(f"{root}: split {split!r} is empty; expected {layout} with samples")
    keep = _selection(all_labels, limit)
    return Dataset(
        name=kind,
        split=split,
        images=np.ascontiguousarray(np.concatenate(images)[keep]),
        labels=all_labels[keep],
        classes=classes,
        source=str(root),
        pixel_max=255,
    )


# --------------------------------------------------------------------------
# image folders and archives


def _decode_image(data: bytes, where: str) -> np.ndarray:
    """(C, H, W) uint8: C=1 for grayscale modes, else RGB."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.mode in ("1", "L", "LA"):
                return np.asarray(im.convert("L"), dtype=np.uint8)[None]
            return np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)
    except Exception as exc:  # PIL raises many types for bad data
        raise DatasetError(
            f"{where}: cannot decode image ({type(exc).__name__}: {exc}); "
            "expected a readable JPEG or PNG"
        ) from exc


def _stack_images(items: Iterable[tuple[str, bytes]]) -> np.ndarray:
    """Decode (where, bytes) pairs into one (N, C, H, W) array of one size."""
    arrays: list[np.ndarray] = []
    first_where = ""
    for where, data in items:
        arr = _decode_image(data, where)
        if not arrays:
            first_where = where
        elif arr.shape[1:] != arrays[0].shape[1:]:
            h, w = arr.shape[1:]
            h0, w0 = arrays[0].shape[1:]
            raise DatasetError(
                f"{where}: image is {w}x{h} but {first_where} is {w0}x{h0}; "
                "expected all images of a data set to have the same size"
            )
        arrays.append(arr)
    if any(a.shape[0] == 3 for a in arrays):  # mixed gray/colour: promote gray
        arrays = [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in arrays]
    return np.ascontiguousarray(np.stack(arrays))


def _ordered_entries(files: dict[str, dict[str, Any]], classes: tuple[str, ...]):
    """[(label, class, file name, payload)] in class index, then file name order."""
    entries = []
    for label, cls in enumerate(classes):
        for name in sorted(files.get(cls, {})):
            entries.append((label, cls, name, files[cls][name]))
    return entries


def _load_image_folder(root: Path, split: str, limit: int | None) -> Dataset:
    split_dir = root / split
    expected = f"expected {root}/{split}/<class>/*.jpg|*.png"
    if not split_dir.is_dir():
        found = [s for s in SPLITS if (root / s).is_dir()]
        raise DatasetError(
            f"{root}: no {split!r} split folder (found {', '.join(found) or 'none'}); {expected}"
        )
    try:
        class_names: set[str] = set()
        for s in SPLITS:
            if (root / s).is_dir():
                class_names.update(
                    p.name for p in (root / s).iterdir() if p.is_dir() and not _is_hidden(p.name)
                )
        classes = tuple(sorted(class_names))
        files: dict[str, dict[str, Path]] = {}
        for cls in classes:
            cls_dir = split_dir / cls
            if cls_dir.is_dir():
                files[cls] = {
                    p.name: p for p in cls_dir.iterdir() if _is_image_name(p.name) and p.is_file()
                }
    except OSError as exc:
        raise DatasetError(f"{split_dir}: cannot list folder ({exc}); {expected}") from exc
    entries = _ordered_entries(files, classes)
    if not entries:
        raise DatasetError(f"{split_dir}: split {split!r} has no images; {expected}")
    return _image_dataset(root.name, split, entries, classes, str(root), limit,
                          lambda entry: _read_image_file(entry[3]))


def _image_dataset(name: str, split: str, entries: list, classes: tuple[str, ...], source: str,
                   limit: int | None, read) -> Dataset:
    """The Dataset of `entries` ((label, class, file name, handle), in _ordered_entries order): the
    class-balanced selection of `limit` of them, each turned into (where, bytes) by `read` and decoded."""
    labels = np.array([e[0] for e in entries], dtype=np.int64)
    keep = _selection(labels, limit)
    images = _stack_images(read(entries[int(i)]) for i in keep)
    return Dataset(name=name, split=split, images=images, labels=labels[keep], classes=classes, source=source,
                   pixel_max=255)


def _archive_stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(_ARCHIVE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _load_archive(path: Path, split: str, limit: int | None) -> Dataset:
    """One streaming pass over the tar; keeps the raw bytes of ``split`` only."""
    expected = f"expected members [ROOT/]{split}/<class>/*.jpg|*.png"
    # per candidate root folder inside the archive ("" = archive top):
    classes_at: dict[tuple[str, ...], set[str]] = {}
    splits_at: dict[tuple[str, ...], set[str]] = {}
    files_at: dict[tuple[str, ...], dict[str, dict[str, bytes]]] = {}
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                parts = tuple(p for p in PurePosixPath(member.name).parts if p not in ("/", ""))
                if member.isdir():
                    # [ROOT/]<split>/<class>/
                    if len(parts) in (2, 3) and parts[-2] in SPLITS and not _is_hidden(parts[-1]):
                        classes_at.setdefault(parts[:-2], set()).add(parts[-1])
                    continue
                if not member.isfile() or len(parts) not in (3, 4):
                    continue
                root, split_name, cls, name = parts[:-3], parts[-3], parts[-2], parts[-1]
                if split_name not in SPLITS or _is_hidden(cls) or not _is_image_name(name):
                    continue
                classes_at.setdefault(root, set()).add(cls)
                splits_at.setdefault(root, set()).add(split_name)
                if split_name == split:
                    stream = tar.extractfile(member)
                    data = stream.read() if stream is not None else b""
                    files_at.setdefault(root, {}).setdefault(cls, {})[name] = data
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise DatasetError(
            f"{path}: cannot read archive ({type(exc).__name__}: {exc}); "
            "expected a readable .tar/.tar.gz/.tar.xz"
        ) from exc

    roots = sorted(splits_at)
    if not roots:
        raise DatasetError(f"{path}: no image folder in archive; {expected}")
    if len(roots) > 1:
        shown = ", ".join("/".join(r) + "/" if r else "(top)" for r in roots)
        raise DatasetError(
            f"{path}: several image folders in archive ({shown}); expected exactly one"
        )
    root = roots[0]
    if split not in splits_at[root]:
        raise DatasetError(
            f"{path}: archive has no {split!r} images (found {', '.join(sorted(splits_at[root]))}); "
            f"{expected}"
        )
    classes = tuple(sorted(classes_at[root]))
    entries = _ordered_entries(files_at[root], classes)
    files_at.clear()
    prefix = "/".join(root + (split,))
    return _image_dataset(root[0] if root else _archive_stem(path), split, entries, classes, str(path), limit,
                          lambda entry: (f"{path}:{prefix}/{entry[1]}/{entry[2]}", entry[3]))


# --------------------------------------------------------------------------
# MNIST-style IDX files (Fashion-MNIST)


def _idx_file(root: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    return None


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An unsigned-byte IDX array: magic 0x0000 08 <ndim>, big-endian int32 sizes, then the data."""
    import gzip

    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read ({exc}); expected an IDX file, optionally gzipped") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != ndim:
        got = raw[:4].hex() if len(raw) >= 4 else f"{len(raw)} bytes"
        raise DatasetError(
            f"{path}: bad IDX header {got}; expected magic 000008{ndim:02x} (unsigned bytes, {ndim} dimensions)"
        )
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DatasetError(f"{path}: truncated IDX header; expected {ndim} dimension sizes")
    shape = tuple(int(v) for v in np.frombuffer(raw, ">u4", ndim, 4))
    size = int(np.prod(shape))
    if len(raw) - head != size:
        raise DatasetError(
            f"{path}: IDX data has {len(raw) - head} bytes; expected {size} for shape {shape}"
        )
    return np.frombuffer(raw, np.uint8, size, head).reshape(shape)


def _load_idx(root: Path, split: str, limit: int | None) -> Dataset:
    img_stem, lab_stem = _IDX_STEMS[split]
    img_path, lab_path = _idx_file(root, img_stem), _idx_file(root, lab_stem)
    if img_path is None or lab_path is None:
        missing = [s for s, p in ((img_stem, img_path), (lab_stem, lab_path)) if p is None]
        raise DatasetError(
            f"{root}: no {' or '.join(missing)}[.gz] for split {split!r}; expected the four IDX files "
            f"{', '.join(s for stems in _IDX_STEMS.values() for s in stems)} (optionally .gz)"
        )
    images = _read_idx(img_path, 3)
    labels = _read_idx(lab_path, 1).astype(np.int64)
    if len(images) != len(labels):
        raise DatasetError(
            f"{root}: {img_path.name} holds {len(images)} images but {lab_path.name} {len(labels)} labels; "
            "expected equal counts"
        )
    if len(labels) == 0:
        raise DatasetError(f"{img_path}: no images; expected a non-empty IDX file")
    n_classes = max(10, int(labels.max()) + 1)
    # Fashion-MNIST and MNIST share the format; the folder's name tells them apart
    fashion = "fashion" in str(root).lower() and n_classes == 10
    classes = FASHION_CLASSES if fashion else tuple(str(i) for i in range(n_classes))
    keep = _selection(labels, limit)
    return Dataset(
        name=root.name,
        split=split,
        images=np.ascontiguousarray(images[keep][:, None]),
        labels=labels[keep],
        classes=classes,
        source=str(root),
        pixel_max=255,
    )


# --------------------------------------------------------------------------
# Tiny ImageNet folder layout


def _load_tiny_imagenet(root: Path, split: str, limit: int | None) -> Dataset:
    expected = (f"expected {root}/train/<wnid>/images/*.JPEG and {root}/val/images/*.JPEG with "
                f"{root}/val/val_annotations.txt")
    try:
        if (root / "wnids.txt").is_file():
            wnids = [w.strip() for w in (root / "wnids.txt").read_text().split() if w.strip()]
        else:
            wnids = [p.name for p in (root / "train").iterdir() if p.is_dir() and not _is_hidden(p.name)] \
                if (root / "train").is_dir() else []
        classes = tuple(sorted(set(wnids)))
        index = {w: i for i, w in enumerate(classes)}
        entries: list[tuple[int, str, Path]] = []
        if split == "train":
            for wnid in classes:
                folder = root / "train" / wnid / "images"
                if folder.is_dir():
                    entries += [(index[wnid], p.name, p) for p in folder.iterdir()
                                if _is_image_name(p.name) and p.is_file()]
        else:
            ann = root / "val" / "val_annotations.txt"
            if not ann.is_file():
                raise DatasetError(f"{root}: no val/val_annotations.txt for the {split!r} split; {expected}")
            for n, line in enumerate(ann.read_text().splitlines(), 1):
                parts = line.split("\t")
                if not line.strip():
                    continue
                if len(parts) < 2 or parts[1] not in index:
                    raise DatasetError(
                        f"{ann}:{n}: expected 'FILE<TAB>WNID...' with a wnid of {len(classes)} classes, got {line!r}"
                    )
                entries.append((index[parts[1]], parts[0], root / "val" / "images" / parts[0]))
    except OSError as exc:
        raise DatasetError(f"{root}: cannot read Tiny ImageNet folder ({exc}); {expected}") from exc
    if not classes:
        raise DatasetError(f"{root}: no classes (wnids.txt or train/<wnid>/); {expected}")
    if not entries:
        raise DatasetError(f"{root}: split {split!r} has no images; {expected}")
    entries.sort(key=lambda e: (e[0], e[1]))
    labels = np.array([e[0] for e in entries], dtype=np.int64)
    keep = _selection(labels, limit)

    images = _stack_images(_read_image_file(entries[int(i)][2]) for i in keep)
    if images.shape[1] == 1:   # Tiny ImageNet is RGB; an all-grey subset still gets 3 channels
        images = np.ascontiguousarray(np.repeat(images, 3, axis=1))
    return Dataset(
        name="tiny-imagenet",
        split=split,
        images=images,
        labels=labels[keep],
        classes=classes,
        source=str(root),
        pixel_max=255,
    )
