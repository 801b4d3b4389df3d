"""Fashion-MNIST (IDX) and Tiny ImageNet loaders, on small fixtures built in tmp_path."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chipsim.hostlink import datasets
from chipsim.hostlink.datasets import FASHION_CLASSES, DatasetError, load_dataset

# --------------------------------------------------------------------------- IDX


def _idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    return header + np.ascontiguousarray(arr, np.uint8).tobytes()


def _write(path: Path, data: bytes, gz: bool) -> None:
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def _make_idx(root: Path, n_train=13, n_test=7, gz_train=True, gz_test=False):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    out = {}
    for split, stem, n, gz in (("train", "train", n_train, gz_train), ("test", "t10k", n_test, gz_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) * 3 % 10).astype(np.uint8)
        _write(root / f"{stem}-images-idx3-ubyte", _idx_bytes(images), gz)
        _write(root / f"{stem}-labels-idx1-ubyte", _idx_bytes(labels), gz)
        out[split] = (images, labels)
    return out


def test_idx_folder_gz_and_plain(tmp_path: Path):
    root = tmp_path / "fashion-mnist"
    arrays = _make_idx(root)
    for split in ("train", "test"):
        ds = load_dataset(root, split)
        images, labels = arrays[split]
        assert ds.images.shape == (len(labels), 1, 28, 28) and ds.images.dtype == np.uint8
        assert np.array_equal(ds.images[:, 0], images)          # file order
        assert np.array_equal(ds.labels, labels.astype(np.int64))
        assert ds.classes == FASHION_CLASSES and ds.pixel_max == 255 and ds.split == split


def test_idx_limit_is_class_balanced(tmp_path: Path):
    root = tmp_path / "fmnist"
    arrays = _make_idx(root, n_train=30)
    ds = load_dataset(root, "train", limit=10)
    assert sorted(ds.labels.tolist()) == list(range(10))
    images, labels = arrays["train"]
    first = [int(np.flatnonzero(labels == c)[0]) for c in ds.labels]
    assert np.array_equal(ds.images[:, 0], images[first])
    assert ds.classes == tuple(str(i) for i in range(10))        # not named "fashion": digit names


def test_idx_wrapper_folder(tmp_path: Path):
    _make_idx(tmp_path / "outer" / "fashion")
    assert len(load_dataset(tmp_path / "outer", "test")) == 7


def test_idx_errors(tmp_path: Path):
    root = tmp_path / "bad"
    _make_idx(root, gz_train=False)
    (root / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte"):
        load_dataset(root, "test")
    (root / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 8)
    with pytest.raises(DatasetError, match="bad IDX header"):
        load_dataset(root, "train")
    img = np.zeros((4, 28, 28), np.uint8)
    (root / "train-images-idx3-ubyte").write_bytes(_idx_bytes(img)[:-5])
    with pytest.raises(DatasetError, match="expected 3136"):
        load_dataset(root, "train")
    (root / "train-images-idx3-ubyte").write_bytes(_idx_bytes(img))
    with pytest.raises(DatasetError, match="4 images but .* 13 labels"):
        load_dataset(root, "train")


def test_named_fashion_mnist(tmp_path: Path, monkeypatch):
    monkeypatch.setitem(datasets.INSTALLED, "fashion-mnist", (tmp_path / "nowhere",))
    with pytest.raises(DatasetError, match="dataset-fashion-mnist"):
        load_dataset("fashion-mnist", "train")
    _make_idx(tmp_path / "fm")
    monkeypatch.setitem(datasets.INSTALLED, "fashion-mnist", (tmp_path / "nowhere", tmp_path / "fm"))
    ds = load_dataset("fashion-mnist", "test")
    assert ds.name == "fashion-mnist" and len(ds) == 7


# --------------------------------------------------------------------------- Tiny ImageNet

WNIDS = ["n02", "n01", "n03"]          # wnids.txt order is not sorted: classes are


def _img(seed: int, size: int = 8, grey: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size) if grey else (size, size, 3), dtype=np.uint8)


def _make_tiny(root: Path) -> dict:
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    seed = 0
    train = {}
    for wnid in WNIDS:
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for k in (1, 0):
            seed += 1
            arr = _img(seed, grey=(wnid == "n03" and k == 0))
            Image.fromarray(arr).save(folder / f"{wnid}_{k}.png")   # PNG: lossless, comparable
            train[(wnid, k)] = arr
    lines = []
    val = {}
    for i, wnid in enumerate(["n03", "n01", "n02", "n01"]):
        seed += 1
        arr = _img(seed)
        name = f"val_{i}.png"
        Image.fromarray(arr).save(root / "val" / "images" / name)
        lines.append(f"{name}\t{wnid}\t0\t0\t7\t7")
        val[name] = (wnid, arr)
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (root / "test" / "images").mkdir(parents=True)       # unlabelled: ignored
    return {"train": train, "val": val}


def test_tiny_imagenet_layout(tmp_path: Path):
    root = tmp_path / "tiny-imagenet-200"
    made = _make_tiny(root)
    classes = tuple(sorted(WNIDS))
    train = load_dataset(root, "train")
    assert train.classes == classes and train.name == "tiny-imagenet"
    assert train.images.shape == (6, 3, 8, 8)
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    # class n01 first, files by name: n01_0, n01_1
    assert np.array_equal(train.images[0], made["train"][("n01", 0)].transpose(2, 0, 1))
    grey = made["train"][("n03", 0)]
    assert np.array_equal(train.images[4], np.repeat(grey[None], 3, axis=0))
    test = load_dataset(root, "test")
    assert test.labels.tolist() == [0, 0, 1, 2]
    names = sorted((classes.index(w), n) for n, (w, _) in made["val"].items())
    for k, (_, name) in enumerate(names):
        assert np.array_equal(test.images[k], made["val"][name][1].transpose(2, 0, 1))
    assert load_dataset(root, "test", limit=3).labels.tolist() == [0, 1, 2]


def test_tiny_imagenet_errors(tmp_path: Path):
    root = tmp_path / "tiny"
    _make_tiny(root)
    ann = root / "val" / "val_annotations.txt"
    ann.write_text("val_0.png\tn99\t0\t0\t1\t1\n")
    with pytest.raises(DatasetError, match="val_annotations.txt:1"):
        load_dataset(root, "test")
    ann.write_text("missing.png\tn01\t0\t0\t1\t1\n")
    with pytest.raises(DatasetError, match="missing.png"):
        load_dataset(root, "test")
