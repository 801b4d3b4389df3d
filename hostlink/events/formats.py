"""Decoders of event-camera files: bytes -> (x, y, t, p) arrays of one recording.

Each reader returns a :class:`Recording` (x, y uint16; t int64 microseconds;
p uint8 0 = OFF, 1 = ON) and counts what the format lets it skip or repair
(`warnings`); anything else that is wrong raises :class:`EventFileError`
naming the file and the record.  The decoders are vectorised numpy, so one
core reads well over 10 M events/s (benchmarks/event_reading.py).

Formats (facts from each format's documentation and the reference readers):

* **N-MNIST / N-Caltech101 `.bin`** (Orchard et al. 2015): 5-byte records,
  byte 0 = x, byte 1 = y, byte 2 bit 7 = polarity, bits 6..0 of byte 2 and
  bytes 3, 4 = a 23-bit big-endian timestamp in us.  A record with y = 240 is
  a timestamp-overflow marker: every later timestamp gains 2^13 us (the
  increment the dataset's own Matlab/Python readers use).  Markers are counted
  (`timestamp_wraps`), not returned as events.
* **AEDAT 2.0** (jAER): ASCII header lines starting with ``#`` (the first is
  ``#!AER-DAT2.0``), then 8-byte big-endian records: uint32 address, uint32
  timestamp (us).  Addresses of the 128 x 128 DVS128 (CIFAR10-DVS): bit 0 =
  polarity, bits 1..7 = y, bits 8..14 = x -- the reading tonic's
  ``read_dvs_128`` gives CIFAR10-DVS.  A timestamp that drops by more than
  2^31 is a 32-bit wrap (counted, 2^32 added); any other drop is an error.
* **AEDAT 3.1** (libcaer; DVS128 Gesture): header lines ``#!AER-DAT3.1`` ..
  ``#!END-HEADER``, then packets: a 28-byte little-endian header (int16
  eventType, int16 eventSource, int32 eventSize, eventTSOffset,
  eventTSOverflow, eventCapacity, eventNumber, eventValid) and eventCapacity
  x eventSize bytes.  Polarity packets (type 1, 8-byte events): uint32 data
  (bit 0 valid, bit 1 polarity, bits 2..16 y, bits 17..31 x), int32
  timestamp; the full timestamp is eventTSOverflow << 31 | timestamp.  Other
  packet types (special, frame, IMU events) are skipped and counted; so are
  events whose valid bit is 0.
* **AEDAT4** (iniVation DV): flatbuffers packets, LZ4/zstd compressed.
  Decoded by the `aedat` package (optional extra ``[events]``); the first
  event stream of the file is read.
* **`.npy` / `.npz`**: a structured array with fields x, y, t, p (as tonic
  writes its events), or an .npz holding that array (key ``events``, or its
  only array) or four arrays named x, y, t, p.

Why our own decoders for the first three: tonic 1.7 reads them too, but its
AEDAT 3.1 reader ignores packet types, validity bits and the timestamp
overflow, its ``read_dvs_128``/``read_dvs_ibm`` fail on its own header
function's three return values, and none of them reports the record of a
malformed file.  Each decoder here is a few vectorised numpy lines;
tests/test_event_readers.py cross-checks them against tonic's on the same
files when tonic is installed.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chipsim.hostlink.datasets import DatasetError

#: file suffixes of event recordings, lower case
EVENT_SUFFIXES = (".bin", ".aedat", ".aedat4", ".npy", ".npz")
NMNIST_OVERFLOW_Y = 240
NMNIST_OVERFLOW_US = 1 << 13


class EventFileError(DatasetError):
    """An event file is malformed; the message names the file and the record."""


@dataclass
class Recording:
    """One recording's events, in file order (timestamps non-decreasing)."""

    x: np.ndarray        #: uint16 column
    y: np.ndarray        #: uint16 row
    t: np.ndarray        #: int64 microseconds
    p: np.ndarray        #: uint8 polarity, 0 = OFF, 1 = ON
    warnings: dict[str, int] = field(default_factory=dict)   #: counted repairs/skips, by kind

    def __len__(self) -> int:
        return int(self.t.shape[0])


def _recording(x, y, t, p, warnings=None) -> Recording:
    return Recording(np.asarray(x, np.uint16), np.asarray(y, np.uint16), np.asarray(t, np.int64),
                     np.asarray(p, np.uint8), dict(warnings or {}))


def check_recording(rec: Recording, where: str, sensor: tuple[int, int] | None, first_record: int = 0) -> None:
    """Raise EventFileError for an empty recording, a timestamp that goes backwards or an address outside
    the sensor (width, height); records are numbered from `first_record`."""
    n = len(rec)
    if n == 0:
        raise EventFileError(f"{where}: empty recording (no events); expected at least one event")
    if n > 1:
        back = np.flatnonzero(rec.t[1:] < rec.t[:-1])
        if back.size:
            i = int(back[0]) + 1
            raise EventFileError(f"{where}: record {first_record + i}: timestamp {int(rec.t[i])} us goes backwards "
                                 f"(previous {int(rec.t[i - 1])} us); expected non-decreasing timestamps")
    if sensor is not None:
        w, h = sensor
        bad = np.flatnonzero((rec.x >= w) | (rec.y >= h))
        if bad.size:
            i = int(bad[0])
            raise EventFileError(f"{where}: record {first_record + i}: address (x={int(rec.x[i])}, "
                                 f"y={int(rec.y[i])}) outside the {w} x {h} sensor; expected x < {w}, y < {h}")


# --------------------------------------------------------------------------- N-MNIST


def read_nmnist(data: bytes, where: str) -> Recording:
    """Decode N-MNIST 40-bit records (see the module docstring); overflow markers are counted."""
    raw = np.frombuffer(data, np.uint8)
    n, rest = divmod(raw.size, 5)
    if rest:
        raise EventFileError(f"{where}: record {n}: truncated ({rest} of 5 bytes; file size {raw.size}); "
                             f"expected N-MNIST 5-byte records")
    r = raw.reshape(n, 5)
    y = r[:, 1]
    marker = y == NMNIST_OVERFLOW_Y
    t = ((r[:, 2].astype(np.int64) & 0x7F) << 16) | (r[:, 3].astype(np.int64) << 8) | r[:, 4]
    wraps = int(np.count_nonzero(marker))
    if wraps:
        t = t + NMNIST_OVERFLOW_US * np.cumsum(marker)
        keep = ~marker
        return _recording(r[keep, 0], y[keep], t[keep], r[keep, 2] >> 7, {"timestamp_wraps": wraps})
    return _recording(r[:, 0], y, t, r[:, 2] >> 7)


def write_nmnist(x, y, t, p) -> bytes:
    """Encode events as N-MNIST records (t must be < 2^23 us; no overflow markers are written)."""
    t = np.asarray(t, np.int64)
    if t.size and (t.min() < 0 or t.max() >= 1 << 23):
        raise ValueError("N-MNIST timestamps must lie in [0, 2^23) us")
    out = np.empty((t.size, 5), np.uint8)
    out[:, 0] = x
    out[:, 1] = y
    out[:, 2] = (np.asarray(p, np.uint8) << 7) | (t >> 16).astype(np.uint8)
    out[:, 3] = (t >> 8) & 0xFF
    out[:, 4] = t & 0xFF
    return out.tobytes()


# --------------------------------------------------------------------------- AEDAT 2.0 / 3.1


def _header_end(data: bytes, where: str) -> tuple[str, int]:
    """(version line, offset of the first data byte) of an AEDAT file's '#' header."""
    if not data.startswith(b"#!AER-DAT"):
        raise EventFileError(f"{where}: no '#!AER-DAT' version line at the start; expected an AEDAT 2.0, "
                             f"3.1 or 4 file")
    first = data.split(b"\n", 1)[0].strip().decode("ascii", "replace")
    pos = 0
    if first.startswith("#!AER-DAT3"):
        end = data.find(b"#!END-HEADER")
        if end < 0:
            raise EventFileError(f"{where}: no '#!END-HEADER' line; expected an AEDAT 3.1 header")
        nl = data.find(b"\n", end)
        return first, len(data) if nl < 0 else nl + 1
    while pos < len(data) and data[pos:pos + 1] == b"#":
        nl = data.find(b"\n", pos)
        pos = len(data) if nl < 0 else nl + 1
    return first, pos


def read_aedat(data: bytes, where: str) -> Recording:
    """AEDAT 2.0 or 3.1, by the version line."""
    version, start = _header_end(data, where)
    if version.startswith("#!AER-DAT2"):
        return _read_aedat2(data, start, where)
    if version.startswith("#!AER-DAT3"):
        return _read_aedat31(data, start, where)
    raise EventFileError(f"{where}: version line {version!r}; expected #!AER-DAT2.0 or #!AER-DAT3.1 "
                         f"(AEDAT4 files end in .aedat4)")


def _read_aedat2(data: bytes, start: int, where: str) -> Recording:
    n, rest = divmod(len(data) - start, 8)
    if rest:
        raise EventFileError(f"{where}: record {n}: truncated ({rest} of 8 bytes after the header); "
                             f"expected AEDAT 2.0 8-byte records")
    ev = np.frombuffer(data, np.dtype([("a", ">u4"), ("t", ">u4")]), n, start)
    a = ev["a"]
    t = ev["t"].astype(np.int64)
    warnings = {}
    if n > 1:
        wrap = (t[1:] - t[:-1]) < -(1 << 31)
        wraps = int(np.count_nonzero(wrap))
        if wraps:
            t[1:] += np.cumsum(wrap) << 32
            warnings["timestamp_wraps"] = wraps
    return _recording((a >> 8) & 0x7F, (a >> 1) & 0x7F, t, a & 1, warnings)


_PACKET = np.dtype([("type", "<i2"), ("source", "<i2"), ("size", "<i4"), ("ts_offset", "<i4"),
                    ("ts_overflow", "<i4"), ("capacity", "<i4"), ("number", "<i4"), ("valid", "<i4")])
_POLARITY = 1


def _read_aedat31(data: bytes, start: int, where: str) -> Recording:
    pos, packet = start, 0
    parts_d, parts_t = [], []
    skipped_packets = invalid = 0
    while pos < len(data):
        if len(data) - pos < _PACKET.itemsize:
            raise EventFileError(f"{where}: packet {packet} (byte {pos}): truncated header "
                                 f"({len(data) - pos} of 28 bytes); expected an AEDAT 3.1 packet header")
        h = np.frombuffer(data, _PACKET, 1, pos)[0]
        size, cap = int(h["size"]), int(h["capacity"])
        body = pos + _PACKET.itemsize
        if size <= 0 or cap < 0 or body + size * cap > len(data):
            raise EventFileError(f"{where}: packet {packet} (byte {pos}): {cap} events of {size} bytes run past "
                                 f"the end of the file ({len(data)} bytes); expected a complete packet")
        if int(h["type"]) == _POLARITY:
            if size != 8:
                raise EventFileError(f"{where}: packet {packet}: polarity events of {size} bytes; expected 8")
            n = int(h["number"])
            ev = np.frombuffer(data, np.dtype([("d", "<u4"), ("t", "<i4")]), min(n, cap), body)
            parts_d.append(ev["d"])
            parts_t.append((np.int64(int(h["ts_overflow"])) << 31) | ev["t"].astype(np.int64))
        else:
            skipped_packets += 1
        pos = body + size * cap
        packet += 1
    d = np.concatenate(parts_d) if parts_d else np.zeros(0, np.uint32)
    t = np.concatenate(parts_t) if parts_t else np.zeros(0, np.int64)
    valid = (d & 1) == 1
    invalid = int(valid.size - np.count_nonzero(valid))
    warnings = {k: v for k, v in (("skipped_packets", skipped_packets), ("invalid_events", invalid)) if v}
    if invalid:
        d, t = d[valid], t[valid]
    return _recording((d >> 17) & 0x7FFF, (d >> 2) & 0x7FFF, t, (d >> 1) & 1, warnings)


def write_aedat2(x, y, t, p) -> bytes:
    """An AEDAT 2.0 file (DVS128 addresses, see the module docstring)."""
    a = (np.asarray(x, np.uint32) << 8) | (np.asarray(y, np.uint32) << 1) | np.asarray(p, np.uint32)
    ev = np.empty(a.size, np.dtype([("a", ">u4"), ("t", ">u4")]))
    ev["a"], ev["t"] = a, np.asarray(t, np.int64) & 0xFFFFFFFF
    return b"#!AER-DAT2.0\r\n# This is a raw AE data file created by chipsim\r\n" + ev.tobytes()


def write_aedat31(x, y, t, p, packet_events: int = 4096) -> bytes:
    """An AEDAT 3.1 file of polarity packets (all events valid)."""
    t = np.asarray(t, np.int64)
    d = (np.asarray(x, np.uint32) << 17) | (np.asarray(y, np.uint32) << 2) | (np.asarray(p, np.uint32) << 1) | 1
    out = [b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"]
    for s in range(0, t.size, packet_events):
        tt, dd = t[s:s + packet_events], d[s:s + packet_events]
        h = np.zeros(1, _PACKET)
        h["type"], h["source"], h["size"], h["ts_offset"] = _POLARITY, 1, 8, 4
        h["ts_overflow"] = int(tt[0] >> 31)
        h["capacity"] = h["number"] = h["valid"] = tt.size
        if np.any((tt >> 31) != (tt[0] >> 31)):
            raise ValueError("a packet's events must share one timestamp overflow")
        ev = np.empty(tt.size, np.dtype([("d", "<u4"), ("t", "<i4")]))
        ev["d"], ev["t"] = dd, (tt & 0x7FFFFFFF).astype(np.int32)
        out += [h.tobytes(), ev.tobytes()]
    return b"".join(out)


# --------------------------------------------------------------------------- AEDAT4, numpy


def read_aedat4(path: Path, where: str) -> Recording:
    try:
        import aedat
    except ImportError:
        raise EventFileError(f"{where}: reading AEDAT4 needs the optional package 'aedat' "
                             f"(pip install 'chipsim[events]'); expected it installed") from None
    try:
        decoder = aedat.Decoder(str(path))
        streams = [sid for sid, s in decoder.id_to_stream().items() if s["type"] == "events"]
        if not streams:
            raise EventFileError(f"{where}: no event stream; expected an AEDAT4 file with one")
        sid = min(streams)
        packets = [pk["events"] for pk in decoder if pk["stream_id"] == sid and "events" in pk]
    except EventFileError:
        raise
    except Exception as exc:       # the Rust decoder raises plain exceptions for corrupt files
        raise EventFileError(f"{where}: cannot decode AEDAT4 ({type(exc).__name__}: {exc}); "
                             f"expected a readable AEDAT4 file") from None
    if not packets:
        return _recording([], [], [], [])
    ev = np.concatenate(packets)
    return _recording(ev["x"], ev["y"], ev["t"], ev["on"])


def _from_fields(arrays: dict, where: str) -> Recording:
    missing = [k for k in "xytp" if k not in arrays]
    if missing:
        raise EventFileError(f"{where}: no field(s) {', '.join(missing)}; expected structured events with "
                             f"fields x, y, t, p (as tonic writes them)")
    x, y, t, p = (np.asarray(arrays[k]).reshape(-1) for k in "xytp")
    if not (x.size == y.size == t.size == p.size):
        raise EventFileError(f"{where}: fields x, y, t, p have {x.size}, {y.size}, {t.size}, {p.size} entries; "
                             f"expected equal lengths")
    for k, v in zip("xytp", (x, y, t, p)):
        if not (np.issubdtype(v.dtype, np.integer) or v.dtype == np.bool_):
            raise EventFileError(f"{where}: field {k} is {v.dtype}; expected integers")
    neg = np.flatnonzero((x < 0) | (y < 0) | (t < 0)) if x.size else np.zeros(0, np.int64)
    if neg.size:
        raise EventFileError(f"{where}: record {int(neg[0])}: negative x, y or t; expected non-negative values")
    badp = np.flatnonzero((p != 0) & (p != 1)) if p.dtype != np.bool_ else np.zeros(0, np.int64)
    if badp.size:
        raise EventFileError(f"{where}: record {int(badp[0])}: polarity {int(p[badp[0]])}; expected 0 or 1")
    return _recording(x, y, t, p)


def read_numpy(data: bytes, where: str, suffix: str) -> Recording:
    try:
        obj = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise EventFileError(f"{where}: cannot read ({exc}); expected a {suffix} file of structured events "
                             f"x, y, t, p") from None
    if isinstance(obj, np.ndarray):
        if obj.dtype.names is None:
            raise EventFileError(f"{where}: a plain {obj.dtype} array; expected a structured array with "
                                 f"fields x, y, t, p")
        return _from_fields({k: obj[k] for k in obj.dtype.names}, where)
    with obj:
        keys = list(obj.files)
        if all(k in keys for k in "xytp"):
            return _from_fields({k: obj[k] for k in "xytp"}, where)
        key = "events" if "events" in keys else (keys[0] if len(keys) == 1 else None)
        if key is None:
            raise EventFileError(f"{where}: arrays {keys}; expected 'events' (structured x, y, t, p) or "
                                 f"arrays x, y, t, p")
        arr = obj[key]
    if arr.dtype.names is None:
        raise EventFileError(f"{where}: array {key!r} is plain {arr.dtype}; expected fields x, y, t, p")
    return _from_fields({k: arr[k] for k in arr.dtype.names}, where)


def read_events(name: str, data: bytes | None, where: str, path: Path | None = None) -> Recording:
    """Decode one recording by its file name's suffix (`data` = the file's bytes; AEDAT4 reads `path`)."""
    low = name.lower()
    if low.endswith(".aedat4"):
        if path is None:
            raise EventFileError(f"{where}: AEDAT4 inside an archive; expected a file on disk")
        return read_aedat4(path, where)
    if low.endswith(".bin"):
        return read_nmnist(data, where)
    if low.endswith(".aedat"):
        return read_aedat(data, where)
    if low.endswith((".npy", ".npz")):
        return read_numpy(data, where, low[low.rfind("."):])
    raise EventFileError(f"{where}: unknown suffix; expected one of {', '.join(EVENT_SUFFIXES)}")
