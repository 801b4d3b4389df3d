"""Property-based fuzz of the whole command line (issue 22, item 1).

Every command of `chipsim --help` (run, sweep, report, nets, pretrain, import-torch, import-nir, export-nir;
those this checkout registers) is drawn with one or more mutations of a tiny valid invocation:

* flag values: out of range, wrong type, huge (beyond 64 bits), NaN/inf, empty, unicode;
* net YAMLs from the bundled digits.yaml: a key at any depth deleted, retyped or given an extreme value;
  syntax-broken, empty, binary and non-UTF-8 files;
* HDF5 weights, chip states (calibrated.h5 of a tiny calibration) and NIR graphs: truncated, bytes flipped,
  a node deleted, reshaped or retyped, an attribute deleted or given an extreme value, another net's file;
* datasets (--data): archives of random bytes, image folders holding non-images or wrong-sized images,
  empty folders, IDX files with wrong headers; and valid image folders, archives and IDX folders;
* output locations: existing files, paths below a file, very long names, unicode names.
  The suite runs as root, so a read-only folder does not refuse writes here: it is not drawn (failed writes
  are covered by injected OSErrors in tests/test_disk_faults.py).

The oracle (`check`): no traceback (CliRunner's `result.exception` is None or SystemExit, and no
"Traceback" in the output); a non-zero exit prints exactly one `Error:` line, which names the flag, file or
key the case touched and says what was expected. A case the generator knows is invalid must not exit 0 (a
silently accepted bad input); a case it knows is valid must exit 0. An invalid sweep must fail before any
Dask cluster starts.

CHIPSIM_FUZZ=N runs N cases (default 200, derandomized: CI sees the same cases every time);
CHIPSIM_FUZZ_SEED=S draws another fixed set. CHIPSIM_FUZZ_SURVEY=FILE records every failing case as a JSON
line instead of stopping at the first (to survey the failure classes of a long run); CHIPSIM_FUZZ_TRACE=FILE
logs every case with its time and exit code.
"""
from __future__ import annotations

import gzip
import io
import json
import math
import os
import random
import re
import shutil
import struct
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, note, seed, settings
from hypothesis import strategies as st

from chipsim.cli.main import main
from chipsim.models import MODELS_DIR

N_CASES = int(os.environ.get("CHIPSIM_FUZZ", "200"))
FUZZ_SEED = int(os.environ.get("CHIPSIM_FUZZ_SEED", "22"))
COMMANDS = set(main.commands)
SURVEY = open(os.environ["CHIPSIM_FUZZ_SURVEY"], "a") if os.environ.get("CHIPSIM_FUZZ_SURVEY") else None
TRACE = open(os.environ["CHIPSIM_FUZZ_TRACE"], "a") if os.environ.get("CHIPSIM_FUZZ_TRACE") else None
NCORES = os.cpu_count() or 1

# An Error: line says what was expected in one of these words (click's and chipsim's own phrasings).
EXPECTED_RE = re.compile(
    r"expected|expects|must|is not (a valid|in the range|one of)|not a valid|no such|does not exist|missing|"
    r"required|requires|needs|cannot|not found|invalid|unknown|already|exists|only|at least|at most|"
    r"too long|too large|not an? |unsupported|out of range|holds|instead|refused|not supported|exclude", re.I)


@dataclass
class Case:
    argv: list
    files: list = field(default_factory=list)       # (relative path, writer(path)) run in the case's folder
    verdict: str = "any"                            # "invalid" | "valid" | "any"
    names: tuple = ()                               # the Error: line names one of these
    why: list = field(default_factory=list)
    touched: set = field(default_factory=set)      # flags already mutated: one mutation per flag

    def add(self, verdict: str, names, why: str) -> None:
        """Combine one more mutation: invalid wins over any, any over valid."""
        rank = {"valid": 0, "any": 1, "skip": 1.5, "invalid": 2}
        if rank[verdict] > rank[self.verdict]:
            self.verdict = verdict
        self.names = tuple(self.names) + tuple(names)
        self.why.append(why)


# ---------------------------------------------------------------------------------------------- the world
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Valid inputs the mutations start from: a digits YAML, weights, a chip state, a finished run, a NIR graph."""
    w = tmp_path_factory.mktemp("fuzz-world")
    r = CliRunner()
    res = r.invoke(main, ["run", "--calibrate-epochs", "1", "--calib-samples", "16", "--samples", "8",
                          "--no-progress", "--out", str(w / "cal")])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["run", "--samples", "8", "--no-progress", "--out", str(w / "run")])
    assert res.exit_code == 0, res.output
    if "export-nir" in COMMANDS:
        res = r.invoke(main, ["export-nir", "--out", str(w / "digits.nir")])
        assert res.exit_code == 0, res.output
    net = yaml.safe_load((MODELS_DIR / "digits.yaml").read_text())
    net["weights"] = str(MODELS_DIR / "weights" / "digits.h5")
    files = {"digits.h5": MODELS_DIR / "weights" / "digits.h5", "fashion.h5": MODELS_DIR / "weights" / "fashion.h5",
             "calibrated.h5": w / "cal" / "calibrated.h5", "digits.nir": w / "digits.nir"}
    h5_nodes = {k: _h5_index(p) for k, p in files.items() if p.is_file()}
    return {"dir": w, "net": net, "files": files, "h5": h5_nodes, "run": w / "run"}


def _h5_index(path):
    """[(node path, is dataset, shape, dtype kind)], [(object path, attribute name)] of an HDF5 file."""
    nodes, attrs = [], [("/", a) for a in h5py.File(path).attrs]
    with h5py.File(path) as f:
        def visit(name, obj):
            ds = isinstance(obj, h5py.Dataset)
            nodes.append((name, ds, obj.shape if ds else None, obj.dtype.kind if ds else None))
            attrs.extend((name, a) for a in obj.attrs)
        f.visititems(visit)
    return nodes, attrs


# ------------------------------------------------------------------------------------------- flag values
INT_BAD = ["nan", "inf", "-inf", "", " ", "1.5", "1e3", "0x10", "x", "ä", "\u2167", "--", "1 2", "\x00", "true"]
HUGE = [str(2**63), str(2**64), str(2**64 + 1), str(10**30), str(-(2**63) - 1), str(-(10**30))]
FLOAT_BAD = ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "", "x", "1,5", "\u00bd", "0x1p3", "1e999"]


def count_values(valid=("1", "2", "3")):
    """(value, verdict) for a count flag (IntRange(min=1))."""
    parts = [st.sampled_from([(v, "invalid") for v in INT_BAD + ["0", "-1", str(-(2**64))]]),
             st.sampled_from([(v, "any") for v in HUGE[:4]])]
    return st.one_of(*parts, *([st.sampled_from([(v, "valid") for v in valid])] if valid else []))


def seed_values():
    return st.one_of(
        st.sampled_from([(v, "invalid") for v in INT_BAD + ["-1", str(2**64), str(2**64 + 1), str(10**30),
                                                            str(-(2**63))]]),
        st.sampled_from([(v, "valid") for v in ("0", "7", str(2**32), str(2**63), str(2**64 - 1))]),
        st.integers(-(2**80), 2**80).map(lambda n: (str(n), "valid" if 0 <= n < 2**64 else "invalid")))


def float_values(valid=(), bad=(), inf="invalid"):
    return st.one_of(
        st.sampled_from([(v, "invalid") for v in ["nan", "NaN", "-nan", "", "x", "1,5", "\u00bd"] + list(bad)]),
        st.sampled_from([(v, inf) for v in ("inf", "-inf", "Infinity", "1e999")]),
        st.sampled_from([(v, "valid") for v in valid] or [("nan", "invalid")]),
        st.floats(allow_nan=False, allow_infinity=False).map(lambda x: (repr(x), "any")))


def text_values():
    """Garbage for free-text flags: their verdict is decided by the flag's generator."""
    return st.one_of(st.sampled_from(["", " ", "=", "==", "\u00e9\u6f22\u5b57", "a" * 300, "\x00", "-1", "nan",
                                      "--help", "~", "../..", "/", "\ud7ff", "\u202e"]),
                     st.text(min_size=0, max_size=12))


NOISE_BAD = ["mismatch=nan", "mismatch=inf", "mismatch=-0.1", "mismatch=1.5", "mismatch=", "mismatch", "=0.1",
             "bits=1", "bits=0", "bits=17", "bits=3.5", "bits=nan", f"bits={2**64}", "thermal=nan", "thermal=-1",
             "thermal.scope=bogus", "silence=1.1", "silence.scope=x", "preset=nope", "preset=",
             "foo=1", "mismatch.bogus=0.1", "mismatch=0.1=0.2", "\u00e9=1", "mismatch=0x1", "bits.quantizer=max",
             "mismatch=\u0661"]
NOISE_OK = ["mismatch=0.1", "bits=4", "thermal=0.05", "silence=0.2", "preset=ideal", "mismatch.weights=0.3"]
LEARN_BAD = ["pulse=nan", "pulse=inf", "pulse=-1", "mode=bogus", "warmup=-1", f"warmup={2**64}", "p=nan",
             "dead_zone=nan", "dead_zone=-1", "layers=nope", "nokey=1", "pulse", "=1", "target_bits=0",
             "target_bits=nan", "target_percentile=101", "target_percentile=nan", "lr=inf", "\u00e9=1",
             "layers=[fc9]", "output_target=bogus", "pulse=1e400", "warmup=33"]
LEARN_OK = ["pulse=2", "mode=exact", "warmup=20", "dead_zone=0.1", "layers=[fc3]"]


def noise_values(multiple_ok=True):
    return st.one_of(st.sampled_from([(v, "invalid") for v in NOISE_BAD]),
                     st.sampled_from([(v, "valid") for v in NOISE_OK]),
                     text_values().filter(lambda t: "=" not in t).map(lambda t: (t, "invalid")))


def learn_values():
    return st.one_of(st.sampled_from([(v, "invalid") for v in LEARN_BAD]),
                     st.sampled_from([(v, "valid") for v in LEARN_OK]),
                     text_values().filter(lambda t: "=" not in t).map(lambda t: (t, "invalid")))


def choice_values(options):
    return st.one_of(st.sampled_from([(o, "valid") for o in options]),
                     text_values().filter(lambda t: t not in options).map(lambda t: (t, "invalid")))


# --------------------------------------------------------------------------------------- file mutations
def _write_bytes(data: bytes):
    def w(p: Path):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return w


def _mkdir(p: Path):
    p.mkdir(parents=True, exist_ok=True)


def _copy(src: Path):
    def w(p: Path):
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, p)
    return w


def _set_path(d, path, value):
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


def _key_paths(d, prefix=()):
    """Every key / index path of a YAML tree."""
    out = []
    items = d.items() if isinstance(d, dict) else enumerate(d) if isinstance(d, list) else ()
    for k, v in items:
        out.append(prefix + (k,))
        out.extend(_key_paths(v, prefix + (k,)))
    return out


EXTREMES = [0, -1, 2**31, 2**63, 2**64, 10**30, -(10**30), 1e308, -1e308, float("nan"), float("inf"),
            float("-inf"), "", "x" * 10000, "\u00e9\u6f22", True, None, [], {}, [[]], 0.5, -0.5, "nan"]


@st.composite
def net_yaml(draw, world, name="net.yaml"):
    """(writer, verdict, names, why) of a mutated digits YAML."""
    kind = draw(st.sampled_from(["key", "key", "key", "key", "whole", "valid"]))
    base = json.loads(json.dumps(world["net"]))
    if kind == "valid":
        text = yaml.safe_dump(base)
        return _write_bytes(text.encode()), "valid", (name,), "net: the digits YAML (valid)"
    if kind == "whole":
        variants = [
            (b"", "empty file"), (b"\xff\xfe\x00\x01binary\x80\x81", "binary"),
            (yaml.safe_dump(base).encode("utf-16"), "UTF-16 text"),
            (yaml.safe_dump(base).encode() + b"\n# \xe9\xff latin-1 comment\n", "non-UTF-8 byte in a comment"),
            (b"name: digits\nlayers: [\n", "unclosed bracket"), (b"name: [digits\n  - x: : :\n", "broken syntax"),
            (b"- 1\n- 2\n", "a list at the top"), (b"42\n", "a scalar at the top"), (b"\t\tname: x\n", "tabs"),
            (b"a: &x [*x]\n", "recursive alias"), (b"!!python/object:os.system x\n", "python tag"),
            (b"\x00" * 64, "NUL bytes"), (b"name: digits\nname: other\n" + yaml.safe_dump(base).encode(), "dup keys"),
            (random.Random(draw(st.integers(0, 999))).randbytes(200), "random bytes")]
        data, why = draw(st.sampled_from(variants))
        verdict = "any" if why == "dup keys" else "invalid"
        return _write_bytes(data), verdict, (name,), f"net: {why}"
    paths = _key_paths(base)
    path = draw(st.sampled_from(paths))
    op = draw(st.sampled_from(["delete", "value", "value"]))
    leaf = str(path[-1])
    if op == "delete":
        parent = base
        for k in path[:-1]:
            parent = parent[k]
        del parent[path[-1]]
        why, verdict = f"net: {'.'.join(map(str, path))} deleted", "any"
    else:
        value = draw(st.sampled_from(EXTREMES))
        _set_path(base, path, value)
        why = f"net: {'.'.join(map(str, path))} = {str(value)[:40]!r}"
        certainly_bad = isinstance(value, float) and not math.isfinite(value)
        verdict = "invalid" if certainly_bad and leaf not in ("threshold_range",) else "any"
    text = yaml.safe_dump(base, allow_unicode=True)
    return _write_bytes(text.encode()), verdict, (name, leaf, "digits.h5"), why     # or the weights it names


def _h5_mutate(src: Path, op: tuple):
    def w(p: Path):
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, p)
        kind = op[0]
        if kind == "truncate":
            data = p.read_bytes()
            p.write_bytes(data[: int(len(data) * op[1])])
            return
        if kind == "flip":
            data = bytearray(p.read_bytes())
            rng = random.Random(op[1])
            for _ in range(op[2]):
                i = rng.randrange(len(data))
                data[i] ^= 1 << rng.randrange(8)
            p.write_bytes(bytes(data))
            return
        with h5py.File(p, "r+") as f:
            if kind == "del-node":
                del f[op[1]]
            elif kind == "del-attr":
                del f[op[1]].attrs[op[2]]
            elif kind == "attr":
                f[op[1]].attrs[op[2]] = op[3]
            elif kind == "data":
                name, how = op[1], op[2]
                old = f[name][()]
                del f[name]
                arr = np.asarray(old)
                if how == "grow":
                    new = np.concatenate([arr.reshape(-1), arr.reshape(-1)[:1]]) if arr.size else np.zeros(1)
                elif how == "shrink":
                    new = arr.reshape(-1)[:-1] if arr.size else np.zeros(0)
                elif how == "2d":
                    new = arr.reshape(1, -1) if arr.ndim == 1 else arr.reshape(-1)
                elif how == "nan":
                    new = np.full(arr.shape, np.nan)
                elif how == "float":
                    new = arr.astype(np.float64) + 0.5 if arr.dtype.kind in "iuf" else np.zeros(arr.shape)
                elif how == "huge":
                    new = np.full(arr.shape, 2**40, np.int64)
                elif how == "negative":
                    new = np.full(arr.shape, -(2**40), np.int64)
                elif how == "text":
                    new = np.array([b"x"] * max(1, arr.size))
                else:                                   # scalar
                    new = np.int64(3)
                f.create_dataset(name, data=new)
    return w


def _essential(node: str) -> bool:
    """Nodes a chip cannot be built without (weights file layers, chip state registers, NIR graph nodes)."""
    return node.startswith(("layers", "registers", "node"))


@st.composite
def h5_file(draw, world, which: str, name: str, good=("digits.h5", "calibrated.h5"), other_ok=True):
    """(writer, verdict, names, why): the file `which` of the world (digits.h5, calibrated.h5, fashion.h5,
    digits.nir), mutated; the files in `good` are the valid ones where it is used (another net's file never is)."""
    src = world["files"][which]
    nodes, attrs = world["h5"][which]
    op_kind = draw(st.sampled_from(["truncate", "garbage", "flip", "del-node", "data", "data", "valid"]
                                   + (["del-attr", "attr"] if attrs else []) + (["other"] if other_ok else [])))
    names = (name, "--weights")
    if which not in good:               # another net's file, or a file of another kind: whatever is done to it
        inner = draw(h5_file(world, which, name, good=(which,), other_ok=False))
        return inner[0], "invalid", inner[2], f"{inner[3]} (not a file for this net)"
    if op_kind == "valid":
        return _copy(src), "valid", names, f"{which}: unchanged"
    if op_kind == "truncate":
        frac = draw(st.floats(0, 0.98))
        return _h5_mutate(src, ("truncate", frac)), "invalid", names, f"{which}: truncated to {frac:.2f}"
    if op_kind == "garbage":
        data = draw(st.sampled_from([b"", b"\x89HDF\r\n\x1a\n", b"not hdf5\n", bytes(range(256)) * 4]))
        return _write_bytes(data), "invalid", names, f"{which}: garbage {data[:12]!r}"
    if op_kind == "flip":
        s, n = draw(st.integers(0, 10**6)), draw(st.integers(1, 50))
        return _h5_mutate(src, ("flip", s, n)), "any", names, f"{which}: {n} bits flipped (seed {s})"
    if op_kind == "other":
        others = [k for k in world["files"] if k != which and world["files"][k].is_file()]
        other = draw(st.sampled_from(others))
        verdict = "valid" if other in good else "invalid"
        return _copy(world["files"][other]), verdict, names, f"{which}: replaced by {other}"
    if op_kind == "del-node":
        node = draw(st.sampled_from(nodes))[0]
        # a NIR node's declared types are redundant for chipsim (shapes come from the weights)
        verdict = "invalid" if _essential(node) and "metadata" not in node and \
            not node.endswith(("input_type", "output_type")) else "any"
        return _h5_mutate(src, ("del-node", node)), verdict, names + (node.split("/")[-1],), f"{which}: {node} deleted"
    if op_kind == "del-attr":
        obj, attr = draw(st.sampled_from(attrs))
        return _h5_mutate(src, ("del-attr", obj, attr)), "any", names + (attr,), f"{which}: {obj}@{attr} deleted"
    if op_kind == "attr":
        obj, attr = draw(st.sampled_from(attrs))
        value = draw(st.sampled_from([np.nan, np.inf, -1, 0, 2**40, "x", "", b"\xff", np.zeros(3), "fashion",
                                      "chipsim-weights-999"]))
        bad = (isinstance(value, float) and attr in ("scale", "threshold", "weight_bits", "write_noise_spread")) or \
              (attr == "format" and value != "") or (attr in ("threshold", "weight_bits") and value in (-1, 0, 2**40))
        return (_h5_mutate(src, ("attr", obj, attr, value)), "invalid" if bad else "any", names + (attr,),
                f"{which}: {obj}@{attr} = {value!r}")
    datasets = [n for n in nodes if n[1]]
    node = draw(st.sampled_from(datasets))[0]
    how = draw(st.sampled_from(["grow", "shrink", "2d", "nan", "float", "huge", "negative", "text", "scalar"]))
    essential = _essential(node) and "metadata" not in node and not node.endswith(("type", "noise_rate"))
    bad = essential and how in ("grow", "shrink", "nan", "text", "scalar") or \
        (essential and how in ("float", "huge") and node.endswith(("weight", "weights", "bias", "theta")))
    if how == "2d" and essential:
        bad = True
    return (_h5_mutate(src, ("data", node, how)), "invalid" if bad else "any", names + (node.split("/")[-1],),
            f"{which}: {node} -> {how}")


def _png(h, w, mode="L", value=0):
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, (w, h), value).save(buf, format="PNG")
    return buf.getvalue()


def _image_tree(root: Path, files: dict):
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def _idx(images: np.ndarray, labels: np.ndarray, magic_img=0x803, magic_lab=0x801, count_delta=0):
    img = struct.pack(">IIII", magic_img, len(images) + count_delta, *images.shape[1:]) + images.tobytes()
    lab = struct.pack(">II", magic_lab, len(labels) + count_delta) + labels.tobytes()
    return img, lab


@st.composite
def dataset(draw, name="data"):
    """(writer, verdict, names, why) of a --data location for the digits net (1 x 8 x 8 grey images)."""
    good = {f"{s}/c{c}/{i}.png": _png(8, 8, "L", 16 * i) for s in ("train", "test") for c in range(10) for i in range(2)}
    kind = draw(st.sampled_from(["missing", "empty-dir", "random-archive", "random-file", "non-images", "rgb",
                                 "sizes", "idx-magic", "idx-count", "idx-truncated", "cifar-garbage",
                                 "archive-non-images", "valid-folder", "valid-archive", "valid-idx", "one-class"]))
    names = (name, "--data")
    tree = {}
    verdict = "invalid"
    if kind == "missing":
        return (lambda p: None), "invalid", names, "data: no such path"
    if kind == "empty-dir":
        return _mkdir, "invalid", names, "data: empty folder"
    if kind == "random-archive":
        n = draw(st.integers(0, 300))
        return _write_bytes(random.Random(n).randbytes(n)), "invalid", names, f"data: {n} random bytes"
    if kind == "random-file":
        return _write_bytes(b"\x00\x01 not a dataset"), "invalid", names, "data: a plain file"
    if kind == "non-images":
        tree = {**good, "test/c0/0.png": b"this is not a png", "test/c1/x.jpg": b""}
    elif kind == "rgb":
        tree = {k: _png(8, 8, "RGB") for k in good}
    elif kind == "sizes":
        tree = {**good, "test/c0/0.png": _png(9, 8)}        # the first test image: every run reads it
    elif kind == "one-class":
        tree = {k: v for k, v in good.items() if "/c0/" in k}
        verdict = "any"
    elif kind == "valid-folder":
        tree, verdict = good, "valid"
    elif kind.startswith("idx"):
        imgs = np.arange(20 * 64, dtype=np.uint8).reshape(20, 8, 8) % 17
        labs = (np.arange(20) % 10).astype(np.uint8)
        args = {"idx-magic": {"magic_img": 0x1234}, "idx-count": {"count_delta": 5}}.get(kind, {})
        img, lab = _idx(imgs, labs, **args)
        if kind == "idx-truncated":
            img = img[: len(img) // 2]
        tree = {"train-images-idx3-ubyte": img, "train-labels-idx1-ubyte": lab,
                "t10k-images-idx3-ubyte.gz": gzip.compress(img), "t10k-labels-idx1-ubyte": lab}
        verdict = "valid" if kind == "valid-idx" else "invalid"
    elif kind == "cifar-garbage":
        tree = {"test_batch": random.Random(1).randbytes(100), "batches.meta": b"\x80\x04garbage"}
    if kind in ("valid-archive", "archive-non-images"):
        members = good if kind == "valid-archive" else {**good, "test/c0/0.png": b"GIF89a not really"}

        def w(p: Path, members=members):
            p.parent.mkdir(parents=True, exist_ok=True)
            with tarfile.open(p, "w:gz") as tar:
                for rel, data in members.items():
                    info = tarfile.TarInfo(f"set/{rel}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return w, "valid" if kind == "valid-archive" else "invalid", names, f"data: {kind} (.tar.gz)"
    return (lambda p, tree=tree: _image_tree(p, tree)), verdict, names, f"data: {kind}"


@st.composite
def out_location(draw, name="out", file_ok=False):
    """(argument, writer or None, verdict, why) of an output location."""
    kind = draw(st.sampled_from(["new", "unicode", "existing-file", "below-file", "long", "long-path",
                                 "existing-empty-dir", "nul"]))
    if kind == "new":
        return name, None, "valid", f"{name}: new"
    if kind == "unicode":
        return f"{name}-\u00e9\u6f22", None, "valid", f"{name}: unicode name"
    if kind == "existing-file":          # a folder flag refuses it; a file flag may overwrite it (pretrain)
        return name, _write_bytes(b"x"), "any" if file_ok else "invalid", f"{name}: an existing file"
    if kind == "below-file":
        return f"blocker/{name}", (lambda p: _write_bytes(b"x")(p.parent)), "invalid", f"{name}: below a file"
    if kind == "long":
        return "o" * 300, None, "invalid", f"{name}: a 300-character name"
    if kind == "long-path":
        return "/".join(["d" * 200] * 25), None, "invalid", f"{name}: a 5000-character path"
    if kind == "nul":
        return f"{name}\x00x", None, "invalid", f"{name}: a NUL byte"
    return name, _mkdir, ("any" if not file_ok else "invalid"), f"{name}: an existing empty folder"


# ------------------------------------------------------------------------------------------- the commands
def _set_flag(argv, flag, value):
    """argv with flag's value replaced (or the flag added)."""
    if flag in argv:
        i = argv.index(flag)
        return argv[:i + 1] + [value] + argv[i + 2:]
    return argv + [flag, value]


@st.composite
def flag_mutation(draw, case: Case, table: dict):
    flag = draw(st.sampled_from(sorted(table)))
    if flag in case.touched:
        return
    case.touched.add(flag)
    value, verdict = draw(table[flag])
    case.argv = _set_flag(case.argv, flag, value)
    case.add(verdict, (flag,), f"{flag} {value!r} ({verdict})")


def _threads():
    return st.one_of(count_values(valid=[str(i) for i in range(1, NCORES + 1)]),
                     st.sampled_from([(str(NCORES + 1), "invalid"), ("1000", "invalid")]))


@st.composite
def file_mutation(draw, case: Case, world, flag: str, what: str):
    """--net YAML, --weights / chip state / NIR HDF5, --data folder: write the file and point flag at it."""
    if flag in case.touched:
        return
    case.touched.add(flag)
    if what == "yaml":
        writer, verdict, names, why = draw(net_yaml(world))
        rel = "net.yaml"
    elif what == "data":
        writer, verdict, names, why = draw(dataset())
        rel = draw(st.sampled_from(["data", "data.tar.gz", "data.tar"]))
        names = (rel,) + tuple(names)
    else:
        writer, verdict, names, why = draw(h5_file(world, what, "w.h5"))
        rel = "w.h5"
    names = tuple(names) + (flag,)
    case.files.append((rel, writer))
    case.argv = _set_flag(case.argv, flag, rel)
    case.add(verdict, names, f"{flag}: {why}")


@st.composite
def out_mutation(draw, case: Case, flag: str, file_ok=False):
    if flag in case.touched:
        return
    case.touched.add(flag)
    base = {"run": "out", "sweep": "sw", "pretrain": "p.h5", "import-nir": "nirout", "export-nir": "x.nir"}
    arg, writer, verdict, why = draw(out_location(base[case.argv[0]], file_ok))
    if writer is not None:
        case.files.append((arg, writer))
    case.argv = _set_flag(case.argv, flag, arg)
    case.add(verdict, (flag, Path(arg.replace("\x00", "")).name[:40] or arg), f"{flag}: {why}")


def _exists(path: str) -> bool:
    try:
        return Path(path).exists()
    except (OSError, ValueError):         # too long, NUL byte: not a file either
        return False


RUN_FLAGS = {
    "--samples": count_values(valid=("1", "5", "8")), "--batch-size": count_values(valid=("1", "3", "64", "1000")),
    "--seed": seed_values(), "--threads": _threads(), "--split": choice_values(["train", "test"]),
    "--record": st.one_of(st.sampled_from([(v, "valid") for v in ("spikes", "membrane", "spikes,membrane", "")]),
                          text_values().filter(lambda t: t.strip(", ") and not set(t.split(",")) <= {"spikes", "membrane", " ", ""})
                          .map(lambda t: (t, "invalid"))),
    "--noise": noise_values(), "--chip": st.one_of(st.sampled_from([("rram256", "valid"), ("digital45", "valid")]),
                                                   text_values().map(lambda t: (t, "invalid"))),
    "--net": text_values().filter(lambda t: t not in ("digits", "fashion", "vgg11", "vgg11-w4") and not _exists(t)
                                  ).map(lambda t: (t, "invalid")),
    "--weights": st.sampled_from([("nope.h5", "invalid"), ("", "invalid"), (".", "invalid"), ("random", "valid")]),
    "--data": st.sampled_from([("nope", "invalid"), ("", "invalid"), (".", "invalid"), ("digits", "valid"),
                               ("fashion-mnist", "any"), ("\u00e9", "invalid")]),
}
CALIB_FLAGS = {"--calibrate-epochs": count_values(valid=("1",)), "--calib-samples": count_values(valid=("8", "16")),
               "--checkpoint-every": count_values(valid=("4", "16", "1000")), "--learn": learn_values(),
               "--resume": st.sampled_from([("nowhere", "invalid"), ("", "invalid")])}


@st.composite
def run_case(draw, world):
    calib = draw(st.integers(0, 3)) == 0
    case = Case(["run", "--samples", "8", "--no-progress", "--out", "out"], verdict="valid")
    if calib:
        case.argv += ["--calibrate-epochs", "1", "--calib-samples", "16"]
    table = {**RUN_FLAGS, **(CALIB_FLAGS if calib else {})}
    for _ in range(draw(st.integers(1, 2))):
        what = draw(st.sampled_from(["flag", "flag", "flag", "yaml", "weights", "data", "out", "solo"]))
        if what == "flag":
            draw(flag_mutation(case, table))
        elif what == "yaml":
            draw(file_mutation(case, world, "--net", "yaml"))
        elif what == "weights":
            draw(file_mutation(case, world, "--weights", draw(st.sampled_from(["digits.h5", "calibrated.h5", "fashion.h5"]))))
        elif what == "data":       # on a digits net with 8-bit input (image files hold 0..255 pixels)
            if "--net" not in case.argv:
                net8 = json.loads(json.dumps(world["net"]))
                net8["encoder"]["input_bits"] = 8
                case.files.append(("net8.yaml", _write_bytes(yaml.safe_dump(net8).encode())))
                case.argv += ["--net", "net8.yaml"]
            draw(file_mutation(case, world, "--data", "data"))
        elif what == "out":
            draw(out_mutation(case, "--out"))
        else:       # a flag that applies only to calibration, without it: refused, not ignored
            flag, value = draw(st.sampled_from([("--learn", "pulse=2"), ("--calib-samples", "16"),
                                                ("--checkpoint-every", "4"), ("--target-cache", "tc")]))
            if not calib:
                case.argv = _set_flag(case.argv, flag, value)
                case.add("invalid", (flag,), f"{flag} without calibration")
    return case


REPORT_MUTATIONS = ["summary.json:garbage", "summary.json:empty", "summary.json:delete", "summary.json:list",
                    "summary.json:drop-key", "summary.json:nan", "run.h5:truncate", "run.h5:delete", "run.h5:garbage",
                    "none", "missing-dir", "file-not-dir", "chip:bogus", "chip:rram256", "extra-arg", "empty-dir"]


@st.composite
def report_case(draw, world):
    kind = draw(st.sampled_from(REPORT_MUTATIONS))
    run = world["run"]
    summary = json.loads((run / "summary.json").read_text())
    case = Case(["report", "r", "--no-plots"], verdict="invalid", names=("r", "summary.json", "run.h5"))
    files = {"summary.json": (run / "summary.json").read_bytes(), "run.h5": (run / "run.h5").read_bytes()}
    target, _, how = kind.partition(":")
    if kind == "none":
        case.verdict = "valid"
    elif kind == "missing-dir":
        files = None
    elif kind == "file-not-dir":
        files = None
        case.files.append(("r", _write_bytes(b"x")))
    elif kind == "empty-dir":
        files = {}
    elif target == "chip":
        case.argv += ["--chip", how]
        case.verdict = "valid" if how == "rram256" else "invalid"
        case.names += ("--chip",)
    elif kind == "extra-arg":
        case.argv += [draw(text_values()) or "x"]
    elif target == "summary.json":
        if how == "garbage":
            files["summary.json"] = b"{not json"
        elif how == "empty":
            files["summary.json"] = b""
        elif how == "delete":
            del files["summary.json"]
        elif how == "list":
            files["summary.json"] = b"[1, 2]"
        elif how == "drop-key":
            key = draw(st.sampled_from(sorted(summary)))
            summary.pop(key)
            files["summary.json"] = json.dumps(summary).encode()
            case.verdict = "any"
            case.names += (key,)
        elif how == "nan":
            key = draw(st.sampled_from(sorted(summary)))
            summary[key] = float("nan")
            files["summary.json"] = json.dumps(summary).encode()
            case.verdict = "any"
            case.names += (key,)
    elif target == "run.h5":
        if how == "truncate":
            files["run.h5"] = files["run.h5"][: len(files["run.h5"]) // 3]
            case.verdict = "any"             # the report may need only summary.json
        elif how == "delete":
            del files["run.h5"]
            case.verdict = "any"
        else:
            files["run.h5"] = b"garbage"
            case.verdict = "any"
    if files is not None:
        for name, data in files.items():
            case.files.append((f"r/{name}", _write_bytes(data)))
        if not files:
            case.files.append(("r", _mkdir))
    case.why.append(f"report: {kind}")
    return case


SWEEP_FLAGS = {
    "--noise": st.one_of(st.sampled_from([(v, "invalid") for v in
                                          ["mismatch=", "mismatch=0,0", "mismatch=nan", "mismatch=0,nan", "foo=1",
                                           "=", "", "mismatch", "bits=1", "thermal.scope=current", "mismatch=-1",
                                           "mismatch=0,,0.1", "mismatch=\u00e9", "preset=nope"]]),
                         text_values().filter(lambda t: "=" not in t).map(lambda t: (t, "invalid"))),
    "--base-noise": st.sampled_from([(v, "invalid") for v in NOISE_BAD]),
    "--seeds": count_values(valid=()).filter(lambda v: v[1] == "invalid"),
    "--first-seed": st.sampled_from([(v, "invalid") for v in INT_BAD + ["-1", str(2**64), str(10**30)]]),
    "--samples": count_values(valid=()).filter(lambda v: v[1] == "invalid"),
    "--calibrate-epochs": count_values(valid=()).filter(lambda v: v[1] == "invalid"),
    "--calib-samples": count_values(valid=()).filter(lambda v: v[1] == "invalid"),
    "--batch-size": count_values(valid=()).filter(lambda v: v[1] == "invalid"),
    "--workers": count_values(valid=()).filter(lambda v: v[1] == "invalid"),
    "--threads-per-cell": st.one_of(count_values(valid=()).filter(lambda v: v[1] == "invalid"),
                                    st.sampled_from([(str(NCORES + 1), "invalid")])),
    "--checkpoint-every": count_values(valid=()).filter(lambda v: v[1] == "invalid"),
    "--learn": st.sampled_from([(v, "invalid") for v in LEARN_BAD]),
    "--weights": st.sampled_from([("nope.h5", "invalid"), ("", "invalid"), (".", "invalid")]),
    "--data": st.sampled_from([("nope", "invalid"), ("", "invalid"), (".", "invalid"), ("\u00e9", "invalid")]),
    "--chip": text_values().map(lambda t: (t, "invalid")),
    "--net": text_values().filter(lambda t: t not in ("digits", "fashion", "vgg11", "vgg11-w4") and not _exists(t)
                                  ).map(lambda t: (t, "invalid")),
    "--scheduler": st.sampled_from([(v, "invalid") for v in ["", "nonsense", "tcp://", "tcp://127.0.0.1:notaport",
                                                             "\u00e9:1", "tcp://[::1", "tcp://127.0.0.1:99999"]]),
}


@st.composite
def sweep_case(draw, world):
    """An invalid sweep (it must fail before a cluster starts), or, rarely, a valid one-cell sweep."""
    case = Case(["sweep", "--noise", "mismatch=0", "--seeds", "1", "--samples", "8", "--out", "sw", "--workers", "1",
                 "--no-progress"], verdict="valid")
    if draw(st.integers(0, 60)) == 0:
        case.why.append("a valid one-cell sweep")
        return case
    if draw(st.booleans()):
        case.argv += ["--calibrate-epochs", "1", "--calib-samples", "16"]
    what = draw(st.sampled_from(["flag", "flag", "flag", "flag", "yaml", "weights", "data", "out"]))
    if what == "flag":
        draw(flag_mutation(case, SWEEP_FLAGS))
    elif what == "yaml":
        draw(file_mutation(case, world, "--net", "yaml"))
        if case.verdict != "invalid":       # a YAML that may be valid would run a cell: keep it to run
            case.verdict = "skip"
    elif what == "weights":
        draw(file_mutation(case, world, "--weights", draw(st.sampled_from(["digits.h5", "calibrated.h5", "fashion.h5"]))))
        if case.verdict != "invalid":
            case.verdict = "skip"
    elif what == "data":
        draw(file_mutation(case, world, "--data", "data"))
        if case.verdict != "invalid":
            case.verdict = "skip"
    else:
        draw(out_mutation(case, "--out"))
        if case.verdict != "invalid":
            case.verdict = "skip"
    return case


def nets_case():
    return st.one_of(
        st.just(Case(["nets"], verdict="valid", why=["nets"])),
        text_values().filter(lambda t: t not in ("--help", "-h")).map(
            # click names an argument that starts with "-" by its first two characters (an unknown short option)
            lambda t: Case(["nets", t or "x"], verdict="invalid",
                           names=(t or "x", "unexpected extra argument") + ((t[:2],) if t.startswith("-") else ()),
                           why=["nets with an argument"])),
        st.sampled_from(["--net", "--json", "--bogus", "-x"]).map(
            lambda f: Case(["nets", f], verdict="invalid", names=(f,), why=["nets with an option"])))


PRETRAIN_FLAGS = {
    "--epochs": count_values(valid=()).filter(lambda v: v[1] == "invalid"),
    "--method": choice_values(["convert", "offline-ltl"]).filter(lambda v: v[1] == "invalid"),
    "--ltl-epochs": count_values(valid=()).filter(lambda v: v[1] == "invalid"),
    "--ltl-samples": count_values(valid=()).filter(lambda v: v[1] == "invalid"),
    "--ltl-init": st.sampled_from([("nope.h5", "invalid"), ("", "invalid"), ("Convert", "invalid")]),
    "--ltl-lr": float_values(bad=("-1", "0")).filter(lambda v: v[1] == "invalid"),
    "--ltl-batch-size": count_values(valid=()).filter(lambda v: v[1] == "invalid"),
    "--train-mismatch": float_values(bad=("-0.1", "1.5")).filter(lambda v: v[1] == "invalid"),
    "--batch-size": count_values(valid=()).filter(lambda v: v[1] == "invalid"),
    "--lr": float_values(bad=("-1", "0")).filter(lambda v: v[1] == "invalid"),
    "--weight-decay": float_values(bad=("-1",)).filter(lambda v: v[1] == "invalid"),
    "--train-samples": count_values(valid=()).filter(lambda v: v[1] == "invalid"),
    "--eval-samples": count_values(valid=()).filter(lambda v: v[1] == "invalid"),
    "--percentile": float_values(bad=("-1", "0", "100.5", "1000")).filter(lambda v: v[1] == "invalid"),
    "--dropout": float_values(bad=("-0.1", "1", "2")).filter(lambda v: v[1] == "invalid"),
    "--seed": seed_values().filter(lambda v: v[1] == "invalid"),
    "--threads": _threads().filter(lambda v: v[1] == "invalid"),
    "--max-minutes": st.sampled_from([(v, "invalid") for v in ("nan", "", "x", "-1")]),
    "--checkpoint-minutes": float_values(bad=("-1",)).filter(lambda v: v[1] == "invalid"),
    "--teacher": st.sampled_from([("nope.pt", "invalid"), ("", "invalid")]),
    "--net": st.sampled_from([("nope", "invalid"), ("", "invalid")]),
    "--data": st.sampled_from([("nope", "invalid"), ("", "invalid"), ("\u00e9", "invalid")]),
}


@st.composite
def pretrain_case(draw, world):
    """Only invalid pretrain runs (a valid one trains a teacher: tests/test_pretrain.py has those)."""
    case = Case(["pretrain", "--net", "digits", "--epochs", "1", "--train-samples", "16", "--eval-samples", "8",
                 "--out", "p.h5", "--no-progress"], verdict="valid")
    what = draw(st.sampled_from(["flag", "flag", "flag", "flag", "yaml", "ltl-init", "data", "out", "teacher"]))
    if what == "flag":
        draw(flag_mutation(case, PRETRAIN_FLAGS))
    elif what == "yaml":
        draw(file_mutation(case, world, "--net", "yaml"))
    elif what == "ltl-init":
        case.argv += ["--method", "offline-ltl", "--ltl-samples", "8"]
        draw(file_mutation(case, world, "--ltl-init", draw(st.sampled_from(["fashion.h5", "calibrated.h5", "digits.h5"]))))
    elif what == "data":
        draw(file_mutation(case, world, "--data", "data"))
    elif what == "teacher":
        data = draw(st.sampled_from([b"", b"garbage", random.Random(2).randbytes(64), (MODELS_DIR / "weights" / "digits.h5").read_bytes()]))
        case.files.append(("t.pt", _write_bytes(data)))
        case.argv += ["--teacher", "t.pt"]
        case.add("invalid", ("t.pt", "--teacher"), f"--teacher: {data[:10]!r}")
    else:
        draw(out_mutation(case, "--out", file_ok=True))
    if case.verdict != "invalid":
        case.verdict = "skip"
    return case


@st.composite
def import_torch_case(draw, world):
    data = draw(st.sampled_from([b"", b"garbage\n", bytes(range(256)), b"PK\x03\x04" + bytes(60),
                                 (MODELS_DIR / "weights" / "digits.h5").read_bytes()[:5000], "dir", "missing"]))
    case = Case(["import-torch", "sd.pt", "--net", "digits", "--out", "w.h5", "--calib-samples", "16",
                 "--eval-samples", "8", "--no-progress"], verdict="invalid", names=("sd.pt",),
                why=[f"state dict {data if isinstance(data, str) else data[:10]!r}"])
    if data == "dir":
        case.files.append(("sd.pt", _mkdir))
    elif data != "missing":
        case.files.append(("sd.pt", _write_bytes(data)))
    if draw(st.booleans()):
        flag, (value, _) = draw(st.sampled_from([
            ("--calib-samples", ("0", "")), ("--eval-samples", ("-1", "")), ("--percentile", ("nan", "")),
            ("--bn-eps", ("nan", "")), ("--bn-eps", ("-1", "")), ("--threads", ("0", "")), ("--net", ("nope", "")),
            ("--out", ("", ""))]))
        case.argv = _set_flag(case.argv, flag, value)
        case.names += (flag,)
        case.why.append(f"{flag} {value!r}")
    return case


NIR_FLAGS = {
    "--dt": float_values(valid=("1e-4", "0.001"), bad=("0", "-1e-4")),
    "--time-steps": count_values(valid=("1", "16")).map(lambda v: (v[0], "invalid" if v[1] == "any" else v[1])),
    "--encoder": choice_values(["direct", "rate", "if"]),
    "--input-bits": st.one_of(count_values(valid=("5", "8")).map(lambda v: (v[0], "invalid" if v[1] == "any" else v[1])),
                              st.sampled_from([("17", "invalid")])),
    "--input-scale": float_values(valid=("1", "0.0625"), bad=("0", "-1")),
    "--weight-bits": st.one_of(count_values(valid=("4", "8")).map(lambda v: (v[0], "invalid" if v[1] in ("any",) or v[0] == "1" else v[1])),
                               st.sampled_from([("17", "invalid"), ("1", "invalid")])),
    "--data": st.sampled_from([("nope", "invalid"), ("", "invalid"), ("\u00e9", "invalid"), ("digits", "valid")]),
    "--name": st.one_of(st.sampled_from([("", "invalid"), ("a/b", "invalid"), ("..", "invalid"), (".", "invalid"),
                                         ("x" * 300, "invalid"), ("\x00", "invalid"), ("ok-name", "valid"),
                                         ("\u00e9\u6f22", "valid")]),
                        text_values().map(lambda t: (t, "any"))),
}


@st.composite
def import_nir_case(draw, world):
    case = Case(["import-nir", "g.nir", "--out", "nirout"], verdict="valid")
    what = draw(st.sampled_from(["flag", "flag", "flag", "graph", "graph", "out"]))
    if what == "graph":
        writer, verdict, names, why = draw(h5_file(world, "digits.nir", "g.nir", good=("digits.nir",)))
        case.files.append(("g.nir", writer))
        case.add(verdict, ("g.nir",) + tuple(n for n in names if n != "--weights"), why)
    else:
        case.files.append(("g.nir", _copy(world["files"]["digits.nir"])))
        if what == "flag":
            draw(flag_mutation(case, NIR_FLAGS))
        else:
            draw(out_mutation(case, "--out"))
    return case


EXPORT_FLAGS = {"--seed": seed_values(), "--dt": float_values(valid=("1e-4",), bad=("0", "-1")),
                "--noise": noise_values(),
                "--net": text_values().filter(lambda t: t not in ("digits", "fashion", "vgg11", "vgg11-w4")
                                              and not _exists(t)).map(lambda t: (t, "invalid"))}


@st.composite
def export_nir_case(draw, world):
    case = Case(["export-nir", "--out", "x.nir"], verdict="valid")
    what = draw(st.sampled_from(["flag", "flag", "yaml", "weights", "weights", "out"]))
    if what == "flag":
        draw(flag_mutation(case, EXPORT_FLAGS))
    elif what == "yaml":
        draw(file_mutation(case, world, "--net", "yaml"))
    elif what == "weights":
        draw(file_mutation(case, world, "--weights", draw(st.sampled_from(["digits.h5", "calibrated.h5", "fashion.h5"]))))
    else:
        draw(out_mutation(case, "--out", file_ok=True))
    return case


@st.composite
def any_case(draw, world):
    makers = {"run": run_case, "run ": run_case, "sweep": sweep_case, "report": report_case, "pretrain": pretrain_case,
              "import-torch": import_torch_case, "import-nir": import_nir_case, "export-nir": export_nir_case}
    choices = [k for k in makers if k.strip() in COMMANDS] + ["nets"]
    which = draw(st.sampled_from(choices))
    if which == "nets":
        return draw(nets_case())
    case = draw(makers[which](world))
    if draw(st.integers(0, 30)) == 0:        # an unknown option anywhere is named
        case.argv.insert(1, "--no-such-flag")
        case.add("invalid", ("--no-such-flag",), "unknown option")
    return case


# ---------------------------------------------------------------------------------------------- the oracle
class ClusterStarted(Exception):
    """A sweep that is not certainly valid reached the point of starting Dask."""


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


#: without the torch extra (as in CI) these commands can only say that they need it
TORCH_COMMANDS = ("pretrain", "import-torch")


def check(case: Case, result) -> None:
    out = result.output
    exc = result.exception
    assert exc is None or isinstance(exc, SystemExit), \
        f"traceback: {type(exc).__name__}: {exc}\n{''.join(__import__('traceback').format_exception(exc))[-3000:]}"
    assert "Traceback (most recent call last)" not in out, out[-3000:]
    if case.argv and case.argv[0] in TORCH_COMMANDS and not _has_torch() and result.exit_code != 0:
        errors = [line for line in out.splitlines() if line.startswith("Error:")]
        if len(errors) == 1 and "needs PyTorch" in errors[0]:
            assert "expected the torch extra" in errors[0], errors[0]
            return
    if case.verdict == "valid":
        assert result.exit_code == 0, f"a valid input failed:\n{out[-2000:]}"
        return
    if case.verdict == "invalid":
        assert result.exit_code != 0, f"a bad input was accepted (exit 0):\n{out[-2000:]}"
    if result.exit_code == 0:
        return
    errors = [line for line in out.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, f"expected exactly one Error: line, got {len(errors)}:\n{out[-2000:]}"
    line = errors[0]
    names = [(str(n).splitlines() or [""])[0] for n in case.names]     # the line ends where the name breaks
    names = [n for n in names if n.strip()]
    if any("\x00" in str(a) for a in case.argv):
        names.append("NUL byte")
    assert any(n in line for n in names) or any(n.lower() in line.lower() for n in names), \
        f"the error names none of {names}: {line!r}"
    assert EXPECTED_RE.search(line), f"the error does not say what was expected: {line!r}"


def _run_case(case: Case, monkeypatch_client) -> None:
    note(f"case: {' '.join(repr(a) for a in case.argv)}  [{case.verdict}] {'; '.join(case.why)}")
    root = Path(tempfile.mkdtemp(prefix="chipsim-fuzz-"))
    cwd = os.getcwd()
    try:
        os.chdir(root)
        for rel, writer in case.files:
            writer(root / rel)
        monkeypatch_client["valid"] = case.verdict == "valid"
        t0 = time.perf_counter()
        result = CliRunner().invoke(main, case.argv, catch_exceptions=True)
        if TRACE:
            print(f"{time.perf_counter() - t0:6.2f}s exit {result.exit_code} [{case.verdict}] {case.argv!r:.150} "
                  f"{'; '.join(case.why)[:100]}", file=TRACE, flush=True)
        note(f"exit {result.exit_code}; output tail: {result.output[-600:]!r}")
        check(case, result)
    finally:
        os.chdir(cwd)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def guarded_client():
    """chipsim.workflows.sweep._client, refusing to start Dask for a sweep that is not certainly valid."""
    import chipsim.workflows.sweep as sweep_mod

    state = {"valid": False}
    real = sweep_mod._client

    def guarded(opts, n_cells):
        if not state["valid"]:
            raise ClusterStarted("an invalid sweep reached the cluster start instead of failing first")
        return real(opts, n_cells)

    sweep_mod._client = guarded
    yield state
    sweep_mod._client = real


def test_fuzz_cli(world, guarded_client):
    @seed(FUZZ_SEED)
    @settings(max_examples=N_CASES, deadline=None, derandomize=False, database=None, print_blob=True,
              suppress_health_check=list(HealthCheck),
              phases=[Phase.generate] if SURVEY else [Phase.explicit, Phase.generate, Phase.shrink])
    @given(st.data())
    def fuzz(data):
        case = data.draw(any_case(world))
        if case.verdict == "skip":            # it could run a cell or train: only invalid sweeps / pretrains run
            return
        try:
            _run_case(case, guarded_client)
        except AssertionError as exc:
            if SURVEY is None:
                raise
            print(json.dumps({"argv": case.argv, "verdict": case.verdict, "why": case.why,
                              "failure": str(exc)[:1500]}), file=SURVEY, flush=True)

    fuzz()
