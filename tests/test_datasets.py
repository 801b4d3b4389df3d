"""Tests for chipsim.hostlink.datasets (fixtures are built in tmp_path)."""

from __future__ import annotations

import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chipsim.hostlink.datasets import (
    Dataset,
    DatasetError,
    describe_dataset,
    load_dataset,
)

REAL_ARCHIVE = Path(__file__).resolve().parents[1].parent / "shared/data/cifar10-jpeg.tar.xz"


# --------------------------------------------------------------------------
# helpers


def _pixel(label: int, index: int, size: tuple[int, int] = (6, 5), channels: int = 3) -> np.ndarray:
    """A distinctive (H, W, C) or (H, W) image for sample `index` of class `label`."""
    h, w = size
    base = (label * 40 + index * 7) % 200
    arr = (base + np.arange(h * w * channels).reshape(h, w, channels)) % 256
    arr = arr.astype(np.uint8)
    return arr[:, :, 0] if channels == 1 else arr


# test split: class -> file names in the order they are written (not sorted)
TEST_FILES = {"cat": ["b.png", "a.png", "c.png"], "dog": ["z.png", "y.png"], "emu": ["4.png", "2.png", "3.png", "1.png"]}
TRAIN_FILES = {"cat": ["x.png"], "fox": ["f.png"]}


def _make_image_folder(root: Path, channels: int = 3) -> Path:
    for split, files in (("test", TEST_FILES), ("train", TRAIN_FILES)):
        classes = sorted(set(TEST_FILES) | set(TRAIN_FILES))
        for cls, names in files.items():
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for name in names:
                rank = sorted(names).index(name)
                Image.fromarray(_pixel(classes.index(cls), rank, channels=channels)).save(
                    root / split / cls / name
                )
    (root / "test" / "cat" / "notes.txt").write_text("not an image")
    return root


def _expected_test_arrays(channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    classes = sorted(set(TEST_FILES) | set(TRAIN_FILES))
    images, labels = [], []
    for label, cls in enumerate(classes):
        for rank, _ in enumerate(sorted(TEST_FILES.get(cls, []))):
            arr = _pixel(label, rank, channels=channels)
            images.append(arr[None] if channels == 1 else arr.transpose(2, 0, 1))
            labels.append(label)
    return np.stack(images), np.array(labels, dtype=np.int64)


def _tar_folder(folder: Path, dest: Path, mode: str, reverse: bool = False) -> Path:
    members = sorted(p for p in folder.rglob("*"))
    if reverse:
        members = members[::-1]
    with tarfile.open(dest, mode) as tar:
        for p in members:
            tar.add(p, arcname=f"{folder.name}/{p.relative_to(folder).as_posix()}", recursive=False)
    return dest


def _cifar_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _dump(obj: object, path: Path, protocol: int = 2) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


CIFAR10_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


@pytest.fixture
def cifar10_dir(tmp_path: Path) -> Path:
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i, n in ((1, 7), (2, 5)):
        _dump({b"data": _cifar_rows(rng, n), b"labels": [int(x) for x in rng.integers(0, 10, n)],
               b"batch_label": b"training batch"}, root / f"data_batch_{i}")
    _dump({b"data": _cifar_rows(rng, 6), b"labels": [0, 1, 2, 9, 9, 0]}, root / "test_batch")
    _dump({b"label_names": CIFAR10_NAMES, b"num_cases_per_batch": 10000}, root / "batches.meta")
    return root


# --------------------------------------------------------------------------
# embedded digits


def test_digits_splits_shapes_and_determinism():
    train = load_dataset("digits", "train")
    test = load_dataset("digits")  # default split is "test"
    assert (len(train), len(test)) == (1437, 360)
    for ds in (train, test):
        assert ds.images.dtype == np.uint8 and ds.images.shape[1:] == (1, 8, 8)
        assert ds.labels.dtype == np.int64 and ds.labels.shape == (len(ds),)
        assert ds.images.max() <= 16 and ds.pixel_max == 16
        assert ds.classes == tuple("0123456789")
        assert ds.name == "digits" and ds.source == "embedded"
    assert test.split == "test" and train.split == "train"
    counts = np.bincount(train.labels, minlength=10) + np.bincount(test.labels, minlength=10)
    assert counts.tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    again = load_dataset("digits", "test")
    assert np.array_equal(again.images, test.images) and np.array_equal(again.labels, test.labels)
    assert describe_dataset(again)["sha256"] == describe_dataset(test)["sha256"]
    # the split is a fixed permutation (seed 20221004): pin its first labels
    assert test.labels[:12].tolist() == [3, 6, 4, 2, 9, 9, 9, 3, 3, 3, 7, 9]
    assert train.labels[:12].tolist() == [4, 5, 3, 4, 1, 1, 6, 2, 4, 6, 1, 0]


def test_digits_limit_is_balanced_prefix():
    ds = load_dataset("digits", "train", limit=30)
    assert len(ds) == 30 and np.bincount(ds.labels).tolist() == [3] * 10
    assert ds.labels[:10].tolist() == list(range(10))
    small = load_dataset("digits", "train", limit=12)
    assert np.array_equal(ds.subset(12).images, small.images)
    assert np.array_equal(ds.subset(12).labels, small.labels)


# --------------------------------------------------------------------------
# CIFAR python batches


def test_cifar10_batches(cifar10_dir: Path):
    train = load_dataset(cifar10_dir, "train")
    assert train.name == "cifar10" and train.source == str(cifar10_dir)
    assert train.images.shape == (12, 3, 32, 32) and train.images.dtype == np.uint8
    b1 = pickle.loads((cifar10_dir / "data_batch_1").read_bytes())
    b2 = pickle.loads((cifar10_dir / "data_batch_2").read_bytes())
    rows = np.concatenate([b1[b"data"], b2[b"data"]])
    assert np.array_equal(train.images, rows.reshape(12, 3, 32, 32))
    assert train.labels.tolist() == b1[b"labels"] + b2[b"labels"]
    assert train.classes[0] == "airplane" and len(train.classes) == 10

    test = load_dataset(str(cifar10_dir), "test")
    assert test.labels.tolist() == [0, 1, 2, 9, 9, 0] and test.pixel_max == 255
    limited = load_dataset(cifar10_dir, "test", limit=4)
    assert limited.labels.tolist() == [0, 1, 2, 9]  # first of each class, then seconds
    assert np.array_equal(limited.images[3], test.images[3])


def test_cifar_wrapper_folder_is_accepted(cifar10_dir: Path):
    ds = load_dataset(cifar10_dir.parent, "test")  # tmp_path holds exactly that folder
    assert len(ds) == 6 and ds.source == str(cifar10_dir)


def test_cifar100_fine_labels(tmp_path: Path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    rng = np.random.default_rng(1)
    for split, n in (("train", 9), ("test", 4)):
        _dump({b"data": _cifar_rows(rng, n), b"fine_labels": [int(x) for x in rng.integers(0, 100, n)],
               b"coarse_labels": [int(x) for x in rng.integers(0, 20, n)]}, root / split, protocol=4)
    names = [f"class{i:02d}".encode() for i in range(100)]
    _dump({b"fine_label_names": names, b"coarse_label_names": [b"c"] * 20}, root / "meta")
    ds = load_dataset(root, "train")
    raw = pickle.loads((root / "train").read_bytes())
    assert ds.name == "cifar100" and ds.images.shape == (9, 3, 32, 32)
    assert ds.labels.tolist() == raw[b"fine_labels"]
    assert np.array_equal(ds.images.reshape(9, -1), raw[b"data"])
    assert len(ds.classes) == 100 and ds.classes[5] == "class05"
    assert len(load_dataset(root, "test")) == 4


def test_cifar_pickle_cannot_run_code(tmp_path: Path):
    class Evil:
        def __reduce__(self):
            return (print, ("should not run",))

    root = tmp_path / "evil"
    root.mkdir()
    _dump({b"data": Evil(), b"labels": [0]}, root / "test_batch")
    with pytest.raises(DatasetError, match="test_batch"):
        load_dataset(root, "test")


# --------------------------------------------------------------------------
# image folders and archives


def test_image_folder(tmp_path: Path):
    root = _make_image_folder(tmp_path / "pets")
    ds = load_dataset(root, "test")
    images, labels = _expected_test_arrays()
    assert ds.name == "pets" and ds.source == str(root) and ds.pixel_max == 255
    assert ds.classes == ("cat", "dog", "emu", "fox")  # union of both splits, sorted
    assert ds.images.shape == (9, 3, 6, 5) and ds.images.dtype == np.uint8
    assert np.array_equal(ds.labels, labels) and np.array_equal(ds.images, images)
    train = load_dataset(root, "train")
    assert train.classes == ds.classes and train.labels.tolist() == [0, 3]
    # a folder that wraps exactly one image folder
    assert np.array_equal(load_dataset(tmp_path, "test").images, ds.images)


def test_grayscale_folder_gives_one_channel(tmp_path: Path):
    root = _make_image_folder(tmp_path / "gray", channels=1)
    ds = load_dataset(root, "test")
    images, labels = _expected_test_arrays(channels=1)
    assert ds.images.shape == (9, 1, 6, 5)
    assert np.array_equal(ds.images, images) and np.array_equal(ds.labels, labels)


@pytest.mark.parametrize("suffix,mode", [(".tar.gz", "w:gz"), (".tar", "w"), (".tar.xz", "w:xz")])
def test_archive_matches_folder(tmp_path: Path, suffix: str, mode: str):
    folder = _make_image_folder(tmp_path / "pets")
    archive = _tar_folder(folder, tmp_path / f"pets{suffix}", mode, reverse=True)
    for split, limit in (("test", None), ("train", None), ("test", 5)):
        a = load_dataset(folder, split, limit=limit)
        b = load_dataset(archive, split, limit=limit)
        assert b.name == a.name and b.classes == a.classes and b.source == str(archive)
        assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)


def test_archive_without_top_folder(tmp_path: Path):
    folder = _make_image_folder(tmp_path / "pets")
    archive = tmp_path / "flat.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("test", "train"):
            tar.add(folder / split, arcname=split)
    ds = load_dataset(archive, "test")
    assert ds.name == "flat"
    assert np.array_equal(ds.images, load_dataset(folder, "test").images)


def test_limit_is_class_balanced_and_deterministic(tmp_path: Path):
    root = _make_image_folder(tmp_path / "pets")
    full = load_dataset(root, "test")
    six = load_dataset(root, "test", limit=6)
    assert six.labels.tolist() == [0, 1, 2, 0, 1, 2]
    eight = load_dataset(root, "test", limit=8)
    assert eight.labels.tolist() == [0, 1, 2, 0, 1, 2, 0, 2]  # dog has only two
    assert np.array_equal(eight.subset(6).images, six.images)
    # the first sample of each class is the first file by name
    assert np.array_equal(six.images[0], full.images[0])  # cat/a.png
    assert np.array_equal(six.images[2], full.images[5])  # emu/1.png
    again = load_dataset(root, "test", limit=8)
    assert np.array_equal(again.images, eight.images)
    assert len(load_dataset(root, "test", limit=100)) == len(full)


def test_dataset_subset_and_describe(tmp_path: Path):
    ds = load_dataset(_make_image_folder(tmp_path / "pets"), "test")
    sub = ds.subset(4)
    assert isinstance(sub, Dataset) and len(sub) == 4 and sub.classes == ds.classes
    assert np.array_equal(sub.images, ds.images[:4])
    with pytest.raises(DatasetError, match="only 9"):
        ds.subset(10)
    info = describe_dataset(ds)
    assert json.loads(json.dumps(info)) == info
    assert info["n"] == 9 and info["shape"] == [9, 3, 6, 5] and info["n_classes"] == 4
    assert info["split"] == "test" and info["source"] == str(tmp_path / "pets")
    with pytest.raises(ValueError):
        ds.images[0, 0, 0, 0] = 1  # read-only


# --------------------------------------------------------------------------
# errors


def test_missing_path(tmp_path: Path):
    missing = tmp_path / "nope"
    with pytest.raises(DatasetError) as err:
        load_dataset(missing)
    assert str(missing) in str(err.value) and "expected 'digits'" in str(err.value)


def test_empty_folder_and_empty_split(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError) as err:
        load_dataset(empty)
    assert str(empty) in str(err.value) and "image folder" in str(err.value)

    (tmp_path / "ds" / "test" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetError) as err:
        load_dataset(tmp_path / "ds", "test")
    assert str(tmp_path / "ds" / "test") in str(err.value) and "no images" in str(err.value)
    with pytest.raises(DatasetError, match="no 'train' split"):
        load_dataset(tmp_path / "ds", "train")


def test_mixed_image_sizes_name_the_file(tmp_path: Path):
    root = _make_image_folder(tmp_path / "pets")
    odd = root / "test" / "emu" / "9.png"
    Image.fromarray(np.zeros((7, 7, 3), np.uint8)).save(odd)
    with pytest.raises(DatasetError) as err:
        load_dataset(root, "test")
    assert str(odd) in str(err.value) and "same size" in str(err.value)


def test_corrupt_files(tmp_path: Path):
    root = _make_image_folder(tmp_path / "pets")
    bad = root / "test" / "dog" / "0.jpg"
    bad.write_bytes(b"definitely not a jpeg")
    with pytest.raises(DatasetError) as err:
        load_dataset(root, "test")
    assert str(bad) in str(err.value)

    archive = tmp_path / "broken.tar.xz"
    archive.write_bytes(b"\xfd7zXZ\x00 garbage" * 10)
    with pytest.raises(DatasetError) as err:
        load_dataset(archive)
    assert str(archive) in str(err.value)

    other = tmp_path / "readme.txt"
    other.write_text("hello")
    with pytest.raises(DatasetError, match="readme.txt"):
        load_dataset(other)


def test_bad_arguments(tmp_path: Path):
    with pytest.raises(DatasetError, match="unknown split 'val'"):
        load_dataset("digits", "val")
    for limit in (0, -3, 2.5, True):
        with pytest.raises(DatasetError, match="limit"):
            load_dataset("digits", limit=limit)


# --------------------------------------------------------------------------
# the shared CIFAR-10 JPEG archive


def test_real_cifar10_archive_first_images():
    if not REAL_ARCHIVE.is_file():
        pytest.skip(f"CIFAR-10 JPEG archive not found at {REAL_ARCHIVE}")
    ds = load_dataset(REAL_ARCHIVE, "test", limit=20)
    assert ds.images.shape == (20, 3, 32, 32) and ds.images.dtype == np.uint8
    assert np.bincount(ds.labels, minlength=10).tolist() == [2] * 10
    assert len(ds.classes) == 10 and "airplane" in ds.classes and "truck" in ds.classes
    assert ds.images.any() and ds.images.std() > 10
