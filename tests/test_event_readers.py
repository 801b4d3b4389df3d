"""Event-camera readers: fixtures written byte by byte from each format's documented layout, the malformed
cases (truncated, backwards timestamps, addresses outside the sensor, empty recording, empty class folder),
the folder layouts, and a cross-check against tonic's readers when tonic is installed."""
from __future__ import annotations

import io
import struct
import tarfile

import numpy as np
import pytest

from chipsim.hostlink.datasets import DatasetError
from chipsim.hostlink.events.dataset import is_event_spec, load_events
from chipsim.hostlink.events.formats import EventFileError, read_aedat, read_events, read_nmnist, read_numpy

# (x, y, t_us, p) of a small hand-made recording
EVENTS = [(1, 2, 0x012345, 1), (33, 0, 0x012346, 0), (0, 33, 0x0FFFFF, 1), (17, 16, 0x400000, 0)]


def nmnist_bytes(events=EVENTS) -> bytes:
    """N-MNIST: x, y, p << 7 | t[22:16], t[15:8], t[7:0]."""
    return b"".join(bytes([x, y, (p << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF]) for x, y, t, p in events)


def aedat2_bytes(events=EVENTS) -> bytes:
    """AEDAT 2.0: '#' header lines, then big-endian uint32 address (x << 8 | y << 1 | p), uint32 t."""
    head = b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n# Data format is int32 address\r\n"
    return head + b"".join(struct.pack(">II", (x << 8) | (y << 1) | p, t) for x, y, t, p in events)


def aedat31_bytes(events=EVENTS, overflow=0, extra=True) -> bytes:
    """AEDAT 3.1: header, then packets of a 28-byte little-endian header and 8-byte polarity events
    (data = x << 17 | y << 2 | p << 1 | valid, int32 timestamp)."""
    head = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#Start-Time: 2017\r\n#!END-HEADER\r\n"
    out = [head]
    if extra:                                   # a special-event packet (type 0), skipped
        out.append(struct.pack("<hhiiiiii", 0, 1, 8, 4, 0, 1, 1, 1) + struct.pack("<Ii", 0x1, 5))
    body = b"".join(struct.pack("<Ii", (x << 17) | (y << 2) | (p << 1) | 1, t) for x, y, t, p in events)
    n = len(events)
    out.append(struct.pack("<hhiiiiii", 1, 1, 8, 4, overflow, n, n, n) + body)
    if extra:                                   # an invalid polarity event (valid bit 0), skipped
        out.append(struct.pack("<hhiiiiii", 1, 1, 8, 4, overflow, 1, 1, 0)
                   + struct.pack("<Ii", (5 << 17) | (5 << 2), 0x500000))
    return b"".join(out)


def as_tuples(rec):
    return list(zip(rec.x.tolist(), rec.y.tolist(), rec.t.tolist(), rec.p.tolist()))


def test_nmnist_fixture():
    rec = read_nmnist(nmnist_bytes(), "f.bin")
    assert as_tuples(rec) == EVENTS
    assert rec.warnings == {}


def test_nmnist_overflow_marker_counted():
    raw = nmnist_bytes(EVENTS[:2]) + bytes([0, 240, 0, 0, 0]) + nmnist_bytes(EVENTS[2:3])
    rec = read_nmnist(raw, "f.bin")
    assert as_tuples(rec) == EVENTS[:2] + [(0, 33, 0x0FFFFF + 8192, 1)]
    assert rec.warnings == {"timestamp_wraps": 1}


def test_aedat2_fixture():
    rec = read_aedat(aedat2_bytes(), "f.aedat")
    assert as_tuples(rec) == EVENTS


def test_aedat2_32bit_wrap_counted():
    ev = [(1, 1, 0xFFFFFFF0, 1), (2, 2, 0x10, 0)]
    rec = read_aedat(aedat2_bytes(ev), "f.aedat")
    assert rec.t.tolist() == [0xFFFFFFF0, (1 << 32) + 0x10]
    assert rec.warnings == {"timestamp_wraps": 1}


def test_aedat31_fixture_skips_other_packets_and_invalid_events():
    rec = read_aedat(aedat31_bytes(), "f.aedat")
    assert as_tuples(rec) == EVENTS
    assert rec.warnings == {"skipped_packets": 1, "invalid_events": 1}


def test_aedat31_timestamp_overflow():
    rec = read_aedat(aedat31_bytes(overflow=3, extra=False), "f.aedat")
    assert rec.t.tolist() == [(3 << 31) | t for _, _, t, _ in EVENTS]


def tonic_dtype():
    return np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])


def test_numpy_structured_npy_and_npz():
    arr = np.array([(x, y, t, bool(p)) for x, y, t, p in EVENTS], tonic_dtype())
    for save in ("npy", "npz", "npz-fields"):
        buf = io.BytesIO()
        if save == "npy":
            np.save(buf, arr)
        elif save == "npz":
            np.savez(buf, events=arr)
        else:
            np.savez(buf, **{k: arr[k] for k in "xytp"})
        rec = read_numpy(buf.getvalue(), f"f.{save}", "." + save[:3])
        assert as_tuples(rec) == EVENTS, save


def test_numpy_plain_array_rejected():
    buf = io.BytesIO()
    np.save(buf, np.zeros((3, 4)))
    with pytest.raises(EventFileError, match=r"f\.npy: a plain float64 array; expected a structured array"):
        read_numpy(buf.getvalue(), "f.npy", ".npy")


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize("name,data,match", [
    ("a.bin", nmnist_bytes() + b"\x01\x02", r"a\.bin: record 4: truncated \(2 of 5 bytes"),
    ("a.aedat", aedat2_bytes() + b"\x00\x01\x02", r"a\.aedat: record 4: truncated \(3 of 8 bytes"),
    ("a.aedat", aedat31_bytes(extra=False)[:-4], r"a\.aedat: packet 0 \(byte \d+\): 4 events of 8 bytes run past"),
    ("a.aedat", aedat31_bytes(extra=False) + b"\x01\x00\x01", r"a\.aedat: packet 1 .*truncated header"),
])
def test_truncated_records(name, data, match):
    with pytest.raises(EventFileError, match=match):
        read_events(name, data, name)


def write_split_folder(root, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


GOOD = {"Train/0/a.bin": nmnist_bytes(), "Train/1/b.bin": nmnist_bytes(EVENTS[:2]),
        "Test/0/c.bin": nmnist_bytes(), "Test/1/d.bin": nmnist_bytes(EVENTS[1:])}


@pytest.mark.parametrize("bad,match", [
    (nmnist_bytes([(1, 1, 500, 1), (2, 2, 400, 0)]),
     r"Test/1/d\.bin: record 1: timestamp 400 us goes backwards \(previous 500 us\)"),
    (nmnist_bytes([(1, 1, 5, 1), (34, 2, 6, 0)]),
     r"Test/1/d\.bin: record 1: address \(x=34, y=2\) outside the 34 x 34 sensor"),
    (b"", r"Test/1/d\.bin: empty recording \(no events\)"),
    (nmnist_bytes() + b"\x07", r"Test/1/d\.bin: record 4: truncated"),
])
def test_malformed_recording_in_folder(tmp_path, bad, match):
    write_split_folder(tmp_path, {**GOOD, "Test/1/d.bin": bad})
    with pytest.raises(DatasetError, match=match):
        load_events(tmp_path, "test", sensor=(34, 34))
    load_events(tmp_path, "train", sensor=(34, 34))      # the other split is fine


def test_class_folder_without_files(tmp_path):
    write_split_folder(tmp_path, GOOD)
    (tmp_path / "Test" / "2").mkdir()
    with pytest.raises(DatasetError, match=r"Test/2: class folder '2' has no event files"):
        load_events(tmp_path, "test", sensor=(34, 34))


def test_backwards_in_aedat2_is_an_error_not_a_wrap():
    with pytest.raises(EventFileError, match=r"record 1: timestamp 10 us goes backwards"):
        from chipsim.hostlink.events.formats import check_recording
        check_recording(read_aedat(aedat2_bytes([(1, 1, 20, 1), (1, 1, 10, 1)]), "a.aedat"), "a.aedat", (128, 128))


# --------------------------------------------------------------------------- layouts


def test_split_folder_layout_and_limit(tmp_path):
    write_split_folder(tmp_path, GOOD)
    assert is_event_spec(tmp_path) and not is_event_spec(tmp_path / "Train" / "0")
    ds = load_events(tmp_path, "train", sensor=(34, 34))
    assert ds.classes == ("0", "1") and ds.labels.tolist() == [0, 1] and ds.files == 2
    assert ds.images.offsets.tolist() == [0, 4, 6]
    assert as_tuples(read_nmnist(nmnist_bytes(), "")) == list(zip(*(ds.images[[0]].__dict__[k].tolist()
                                                                     for k in "xytp")))
    one = load_events(tmp_path, "test", limit=1, sensor=(34, 34))
    assert one.labels.tolist() == [0] and len(one.images) == 1


def test_tar_archive_layout(tmp_path):
    path = tmp_path / "ev.tar.xz"
    with tarfile.open(path, "w:xz") as tar:
        for rel, data in GOOD.items():
            info = tarfile.TarInfo("root/" + rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    ds = load_events(path, "test", sensor=(34, 34))
    assert ds.labels.tolist() == [0, 1] and ds.images.offsets.tolist() == [0, 4, 7]


def test_cifar10dvs_class_folders_split_nine_to_one(tmp_path):
    for c in ("airplane", "cat"):
        for i in range(10):
            write_split_folder(tmp_path, {f"{c}/cifar10_{c}_{i}.aedat": aedat2_bytes([(i, 1, 10 * i, 1)])})
    test = load_events(tmp_path, "test", sensor=(128, 128))
    train = load_events(tmp_path, "train", sensor=(128, 128))
    assert test.labels.tolist() == [0, 1] and test.images.x.tolist() == [9, 9]
    assert len(train) == 18 and train.classes == ("airplane", "cat")


def test_dvs_gesture_layout(tmp_path):
    ev = [(10, 20, 1000 + 100 * k, k % 2) for k in range(40)]      # t = 1000..4900
    (tmp_path / "user01_led.aedat").write_bytes(aedat31_bytes(ev, extra=False))
    (tmp_path / "user01_led_labels.csv").write_text("class,startTime_usec,endTime_usec\n3,1000,2000\n1,3000,4000\n")
    (tmp_path / "trials_to_train.txt").write_text("user01_led.aedat\n")
    (tmp_path / "trials_to_test.txt").write_text("user01_led.aedat\n")
    ds = load_events(tmp_path, "train", sensor=(128, 128))
    assert ds.labels.tolist() == [0, 2]                    # class 1, then class 3 (class order)
    assert ds.images.offsets.tolist() == [0, 10, 20]
    assert ds.images.t[:10].tolist() == list(range(3000, 4000, 100))
    (tmp_path / "user01_led_labels.csv").write_text("class,startTime_usec,endTime_usec\n3,9000,9100\n")
    with pytest.raises(DatasetError, match=r"user01_led_labels\.csv:2: empty recording"):
        load_events(tmp_path, "train", sensor=(128, 128))


def test_bundled_digits_dvs():
    ds = load_events("digits-dvs", "test", limit=20, sensor=(34, 34))
    assert len(ds) == 20 and sorted(set(ds.labels.tolist())) == list(range(10))
    assert ds.images.n_events > 20 * 100 and "synthetic" in ds.note


# --------------------------------------------------------------------------- tonic cross-check


def test_cross_check_against_tonic(tmp_path):
    tio = pytest.importorskip("tonic.io", reason="tonic not installed (pip install 'chipsim[events]')")
    rng = np.random.default_rng(5)
    n = 500
    ev = list(zip(rng.integers(0, 34, n).tolist(), rng.integers(0, 34, n).tolist(),
                  np.sort(rng.integers(0, 1 << 23, n)).tolist(), rng.integers(0, 2, n).tolist()))
    f = tmp_path / "a.bin"
    f.write_bytes(nmnist_bytes(ev))
    theirs = tio.read_mnist_file(str(f), dtype=tonic_dtype())
    ours = read_events("a.bin", f.read_bytes(), str(f))
    for k in "xytp":
        assert np.array_equal(getattr(ours, k).astype(np.int64), theirs[k].astype(np.int64)), k
    # AEDAT 2.0 and 3.1: tonic's address decoding of DVS128 (CIFAR10-DVS) and DVS128 Gesture files
    for name, data, decode in (
            ("b.aedat", aedat2_bytes(ev), lambda a: ((a >> 8) & 0x7F, (a >> 1) & 0x7F, a & 1)),
            ("c.aedat", aedat31_bytes(ev, extra=False), lambda a: ((a >> 17) & 0x1FFF, (a >> 2) & 0x1FFF, (a >> 1) & 1))):
        f = tmp_path / name
        f.write_bytes(data)
        version, start = tio.read_aedat_header_from_file(str(f))[:2]
        raw = tio.get_aer_events_from_file(str(f), version, start)
        x, y, p = decode(raw["address"].astype(np.int64))
        ours = read_events(name, data, str(f))
        assert np.array_equal(ours.x, x) and np.array_equal(ours.y, y) and np.array_equal(ours.p, p), name
        assert np.array_equal(ours.t, raw["timeStamp"].astype(np.int64)), name


def test_aedat4_against_tonic(tmp_path):
    """AEDAT4 is flatbuffers + compression: the fixture is written by iniVation's dv-processing, read by the
    `aedat` decoder (ours) and by tonic.io.read_aedat4."""
    dv = pytest.importorskip("dv_processing", reason="dv-processing not installed (writes the AEDAT4 fixture)")
    pytest.importorskip("aedat", reason="aedat not installed (pip install 'chipsim[events]')")
    tio = pytest.importorskip("tonic.io", reason="tonic not installed")
    path = tmp_path / "a.aedat4"
    config = dv.io.MonoCameraWriter.EventOnlyConfig("DVXplorer_sample", (34, 34))
    writer = dv.io.MonoCameraWriter(str(path), config)
    store = dv.EventStore()
    for x, y, t, p in EVENTS:
        store.push_back(t, x, y, bool(p))
    writer.writeEvents(store)
    del writer
    ours = read_events("a.aedat4", None, str(path), path)
    assert as_tuples(ours) == EVENTS
    theirs = tio.read_aedat4(str(path))
    assert np.array_equal(ours.t, theirs["t"].astype(np.int64)) and np.array_equal(ours.x, theirs["x"])
