"""The weights file: integer layers and the stored teacher round-trip exactly; the compact teacher is smaller."""
import numpy as np
import pytest

from chipsim.config import load_net
from chipsim.models import resolve_net
from chipsim.core.weights import (TEACHER_CODES_ABOVE, WeightBundle, load_weights, save_weights, store_teacher,
                             teacher_codes, teacher_decode, teacher_storage_for)


def _teacher(rng, shapes):
    return {f"l{i}": (rng.normal(0, 0.05, s).astype(np.float32), rng.normal(0, 0.1, s[0]).astype(np.float32))
            for i, s in enumerate(shapes)}


def test_teacher_codes_are_idempotent_and_close():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.05, (64, 32, 3, 3)).astype(np.float32)
    w[3] = 0.0                                         # an all-zero channel keeps scale 1 and codes 0
    q, s = teacher_codes(w)
    d = teacher_decode(q, s)
    assert q.dtype == np.int8 and s.shape == (64,) and np.abs(q).max() == 127
    # every weight within half a step of its channel
    step = np.abs(w.reshape(64, -1)).max(axis=1) / 127
    assert np.all(np.abs(d - w).reshape(64, -1) <= 0.5001 * step[:, None] + 1e-12)
    q2, s2 = teacher_codes(d)                         # coding the decoded weight again changes nothing
    assert np.array_equal(q, q2) and np.array_equal(s, s2)
    assert np.array_equal(teacher_decode(q2, s2), d)


@pytest.mark.parametrize("storage", ["float16", "int8-per-channel"])
def test_stored_teacher_reloads_bit_for_bit(tmp_path, storage):
    net = load_net(resolve_net("digits"))
    base = load_weights(net.weights)
    rng = np.random.default_rng(1)
    teacher = store_teacher(_teacher(rng, [(256, 64), (128, 256), (10, 128)]), storage)
    bundle = WeightBundle(base.layers, {**base.attrs, "teacher_storage": storage}, teacher)
    save_weights(tmp_path / "w.h5", bundle, net)
    back = load_weights(tmp_path / "w.h5")
    for name, (w, b) in teacher.items():
        assert np.array_equal(back.teacher[name][0], w) and np.array_equal(back.teacher[name][1], b)
    for name, lw in base.layers.items():
        assert np.array_equal(back.layers[name].weight, lw.weight)


def test_int8_teacher_storage_is_smaller_and_chosen_for_big_nets(tmp_path):
    net = load_net(resolve_net("digits"))
    base = load_weights(net.weights)
    rng = np.random.default_rng(2)
    raw = _teacher(rng, [(256, 64), (128, 256), (10, 128)])
    sizes = {}
    for storage in ("float16", "int8-per-channel"):
        bundle = WeightBundle(base.layers, {"teacher_storage": storage}, store_teacher(raw, storage))
        save_weights(tmp_path / f"{storage}.h5", bundle, net)
        sizes[storage] = (tmp_path / f"{storage}.h5").stat().st_size
    assert sizes["int8-per-channel"] < 0.75 * sizes["float16"]
    assert teacher_storage_for(raw) == "float16"
    big = {"w": (np.zeros((TEACHER_CODES_ABOVE // 100 + 1, 100), np.float32), np.zeros(1, np.float32))}
    assert teacher_storage_for(big) == "int8-per-channel"


def test_weight_files_record_the_bit_width(tmp_path):
    """save_weights records the net's weight bit width on the file and on every layer; the bundled
    files record it too (vgg11.h5, written before per-layer widths, on the file only) and it equals
    their net's chip.weight_bits."""
    import h5py
    net = load_net(resolve_net("digits"))
    save_weights(tmp_path / "w.h5", load_weights(net.weights), net)
    with h5py.File(tmp_path / "w.h5", "r") as f:
        assert f.attrs["weight_bits"] == net.chip.weight_bits
        assert [g.attrs["weight_bits"] for g in f["layers"].values()] == [net.chip.weight_bits] * 3
    for name in ("digits", "fashion", "vgg11", "vgg11-w4"):
        bundled = load_net(resolve_net(name))
        with h5py.File(bundled.weights, "r") as f:
            assert f.attrs["weight_bits"] == bundled.chip.weight_bits, name
            per_layer = {g.attrs.get("weight_bits", f.attrs["weight_bits"]) for g in f["layers"].values()}
            assert per_layer == {bundled.chip.weight_bits}, name
