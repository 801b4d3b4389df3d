"""Event-camera data sets: folders (or a tar) of recordings -> an :class:`EventDataset` in memory.

Layouts (`--data PATH`):

* **split folders** -- ``ROOT/<split>/<class>/<recording>``, the split folder
  named ``Train``/``Test`` (N-MNIST) or ``train``/``test``, recordings in any
  format of :mod:`chipsim.hostlink.events.formats` (``.bin``, ``.aedat``,
  ``.aedat4``, ``.npy``, ``.npz``); or a ``.tar``/``.tar.gz``/``.tar.xz`` of
  such a folder (the bundled ``digits-dvs``);
* **class folders** (CIFAR10-DVS) -- ``ROOT/<class>/*.aedat``, no split
  folders: per class, in file-name order, the last tenth is ``test`` and the
  rest ``train`` (CIFAR10-DVS ships no split; 9:1 is the customary one);
* **DVS128 Gesture** -- ``ROOT/trials_to_train.txt``, ``trials_to_test.txt``
  (one ``.aedat`` name a line), each ``NAME.aedat`` (AEDAT 3.1) beside a
  ``NAME_labels.csv`` (header, then ``class,startTime_usec,endTime_usec``,
  classes 1..11); every labelled interval is one recording.  Class names come
  from ``gesture_mapping.csv`` (``name,label``) when present.

A folder that holds exactly one subfolder in one of these layouts is accepted
too.  Order: class index (classes sorted by name, gestures by number), then
file name (then interval); ``limit`` keeps the stratified interleave of
:mod:`chipsim.hostlink.datasets`, and only the kept recordings are decoded.
Every recording is checked (formats.check_recording): not empty, timestamps
non-decreasing, addresses inside the sensor.
"""
from __future__ import annotations

import lzma
import os
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from chipsim.hostlink.datasets import DatasetError, SPLITS, _ARCHIVE_SUFFIXES, _is_hidden, _selection
from chipsim.hostlink.events.formats import EVENT_SUFFIXES, EventFileError, Recording, check_recording, read_events

_DATA = Path(__file__).resolve().parent.parent / "data"
#: bundled event data, by name: (file, note)
BUNDLED_EVENTS = {
    "digits-dvs": (_DATA / "digits-dvs.tar.xz",
                   "synthetic N-MNIST-like events of the 8x8 digits (hostlink/data/make_digits_dvs.py), "
                   "not a sensor recording"),
}
_EXPECTED = ("expected an N-MNIST-style folder ROOT/<Train|Test>/<class>/*.bin (or .aedat, .aedat4, .npy, "
             ".npz), a CIFAR10-DVS folder ROOT/<class>/*.aedat, a DVS128 Gesture folder (trials_to_train.txt, "
             "*.aedat, *_labels.csv) or a .tar/.tar.xz of a split folder")
_TEST_FRACTION = 10          # class folders: the last 1/10 of each class is the test split


def _is_event_name(name: str) -> bool:
    return not _is_hidden(name) and name.lower().endswith(EVENT_SUFFIXES)


@dataclass(frozen=True, eq=False)
class EventSet:
    """Recordings concatenated: recording i is events offsets[i]:offsets[i + 1] (file order)."""

    x: np.ndarray            #: uint16
    y: np.ndarray            #: uint16
    t: np.ndarray            #: int64 us
    p: np.ndarray            #: uint8
    offsets: np.ndarray      #: int64 (n + 1,)

    @classmethod
    def concat(cls, recs: list[Recording]) -> "EventSet":
        lens = np.array([len(r) for r in recs], np.int64)
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        def cat(k, dt):
            return np.concatenate([getattr(r, k) for r in recs]) if recs else np.zeros(0, dt)
        return cls(cat("x", np.uint16), cat("y", np.uint16), cat("t", np.int64), cat("p", np.uint8), offsets)

    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def shape(self) -> tuple[int]:
        return (len(self),)

    @property
    def n_events(self) -> int:
        return int(self.offsets[-1] - self.offsets[0])

    def __getitem__(self, ids) -> "EventSet":
        """The recordings `ids` (an int array or a slice), in that order."""
        ids = np.arange(len(self))[ids] if isinstance(ids, slice) else np.asarray(ids, np.int64).reshape(-1)
        starts, ends = self.offsets[ids], self.offsets[ids + 1]
        lens = ends - starts
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        # gather index: for each output event, its position in the source arrays
        idx = np.repeat(starts - offsets[:-1], lens) + np.arange(int(offsets[-1]))
        return EventSet(self.x[idx], self.y[idx], self.t[idx], self.p[idx], offsets)


@dataclass(frozen=True, eq=False)
class EventDataset:
    """One split of an event data set. `images` holds the recordings (named so that code written for
    frames, `data.images[ids]`, hands a batch of recordings to the events encoder)."""

    name: str
    split: str
    images: EventSet
    labels: np.ndarray             #: int64 (N,)
    classes: tuple[str, ...]
    source: str
    sensor: tuple[int, int]        #: (width, height) the addresses were checked against
    files: int = 0                 #: files read
    warnings: dict[str, int] = field(default_factory=dict)   #: counted repairs/skips (timestamp wraps, ...)
    note: str = ""
    pixel_max: int = 1             #: frames only; kept for code that prints it

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, n: int) -> "EventDataset":
        ids = np.arange(n)
        return EventDataset(self.name, self.split, self.images[ids], self.labels[:n], self.classes, self.source,
                            self.sensor, self.files, self.warnings, self.note)


# --------------------------------------------------------------------------- detection


def _first_event_file(folder: Path) -> bool:
    try:
        with os.scandir(folder) as it:
            return any(e.is_file() and _is_event_name(e.name) for e in it)
    except OSError:
        return False


def _split_dirs(root: Path) -> dict[str, Path]:
    """{'train': ROOT/Train, 'test': ROOT/Test}, matching the split names case-insensitively."""
    out = {}
    try:
        for p in root.iterdir():
            if p.is_dir() and p.name.lower() in SPLITS:
                out[p.name.lower()] = p
    except OSError:
        pass
    return out


def _class_dirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not _is_hidden(p.name)), key=lambda p: p.name)


def folder_layout(root: Path) -> str | None:
    """'gesture', 'split', 'classes' or None."""
    if (root / "trials_to_train.txt").is_file() or (root / "trials_to_test.txt").is_file():
        return "gesture"
    try:
        splits = _split_dirs(root)
        if splits:
            if any(_first_event_file(c) for s in splits.values() for c in _class_dirs(s)):
                return "split"
            return None
        if any(_first_event_file(c) for c in _class_dirs(root)):
            return "classes"
    except OSError:
        return None
    return None


def _resolve(path: Path) -> tuple[str, Path] | None:
    kind = folder_layout(path)
    if kind is not None:
        return kind, path
    try:
        subs = [p for p in path.iterdir() if p.is_dir() and not _is_hidden(p.name)]
    except OSError:
        return None
    if len(subs) == 1 and folder_layout(subs[0]) is not None:
        return folder_layout(subs[0]), subs[0]
    return None


def _is_event_archive(path: Path) -> bool:
    low = path.name.lower()
    if not low.endswith(_ARCHIVE_SUFFIXES):
        return False
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                if member.isfile():
                    return _is_event_name(PurePosixPath(member.name).name) or member.name.endswith(".json")
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError, zlib.error):
        return False
    return False


def is_event_spec(spec) -> bool:
    """Whether `spec` names event-camera data (a bundled event set, or a path in an event layout)."""
    s = os.fspath(spec)
    if s in BUNDLED_EVENTS:
        return True
    path = Path(s).expanduser()
    try:
        if path.is_dir():
            return _resolve(path) is not None
        if path.is_file():
            return _is_event_archive(path)
    except OSError:
        return False
    return False


# --------------------------------------------------------------------------- loading


def load_events(spec, split: str = "test", limit: int | None = None,
                sensor: tuple[int, int] | None = None) -> EventDataset:
    """One split of an event data set; `sensor` (width, height) bounds the addresses (None: not checked)."""
    s = os.fspath(spec)
    if split not in SPLITS:
        raise DatasetError(f"{s}: unknown split {split!r}; expected one of {SPLITS}")
    if s in BUNDLED_EVENTS:
        path, note = BUNDLED_EVENTS[s]
        if not path.is_file():
            raise DatasetError(f"{path}: bundled event data {s!r} missing; expected the file shipped with "
                               f"chipsim -- reinstall it, or regenerate with hostlink/data/make_digits_dvs.py")
        ds = _load_archive(path, split, limit, sensor)
        return EventDataset(s, ds.split, ds.images, ds.labels, ds.classes, ds.source, ds.sensor, ds.files,
                            ds.warnings, note)
    path = Path(s).expanduser()
    if not path.exists():
        raise DatasetError(f"{path}: not found; {_EXPECTED}")
    path = path.resolve()
    if path.is_file():
        return _load_archive(path, split, limit, sensor)
    found = _resolve(path)
    if found is None:
        raise DatasetError(f"{path}: no event recordings found; {_EXPECTED}")
    kind, root = found
    if kind == "gesture":
        return _load_gesture(root, split, limit, sensor)
    if kind == "classes":
        return _load_class_folders(root, split, limit, sensor)
    return _load_split_folders(root, split, limit, sensor)


def _decode(entries, keep, sensor, read) -> tuple[list[Recording], dict[str, int]]:
    """Decode and check the kept entries (label, class, name, handle); `read(entry)` -> (where, bytes, path)."""
    recs, warnings = [], {}
    for i in keep:
        where, data, path = read(entries[int(i)])
        rec = read_events(entries[int(i)][2], data, where, path)
        check_recording(rec, where, sensor)
        for k, v in rec.warnings.items():
            warnings[k] = warnings.get(k, 0) + v
        recs.append(rec)
    return recs, warnings


def _dataset(name, split, entries, classes, source, limit, sensor, read) -> EventDataset:
    labels = np.array([e[0] for e in entries], np.int64)
    keep = _selection(labels, limit)
    recs, warnings = _decode(entries, keep, sensor, read)
    events = EventSet.concat(recs)
    return EventDataset(name, split, events, labels[keep], classes, source, _sensor_of(events, sensor),
                        len(keep), warnings)


def _sensor_of(events: EventSet, sensor) -> tuple[int, int]:
    if sensor is not None:
        return tuple(sensor)
    if events.n_events == 0:
        return (1, 1)
    return (int(events.x.max()) + 1, int(events.y.max()) + 1)


def _read_file(entry) -> tuple[str, bytes | None, Path]:
    path = entry[3]
    if path.name.lower().endswith(".aedat4"):
        return str(path), None, path
    try:
        return str(path), path.read_bytes(), path
    except OSError as exc:
        raise EventFileError(f"{path}: cannot read ({exc.strerror or exc}); expected a readable event file") from None


def _class_files(folder: Path, cls_dir: Path, what: str) -> dict[str, Path]:
    try:
        files = {p.name: p for p in cls_dir.iterdir() if _is_event_name(p.name) and p.is_file()}
    except OSError as exc:
        raise DatasetError(f"{cls_dir}: cannot list folder ({exc.strerror or exc}); {_EXPECTED}") from None
    if not files:
        raise DatasetError(f"{cls_dir}: class folder {cls_dir.name!r} has no event files; expected {what} "
                           f"({', '.join('*' + s for s in EVENT_SUFFIXES)})")
    return files


def _load_split_folders(root: Path, split: str, limit, sensor) -> EventDataset:
    splits = _split_dirs(root)
    if split not in splits:
        raise DatasetError(f"{root}: no {split!r} split folder (found {', '.join(sorted(splits)) or 'none'}); "
                           f"expected {root}/{split.capitalize()}/<class>/*.bin")
    classes = tuple(sorted({c.name for s in splits.values() for c in _class_dirs(s)}))
    entries = []
    for label, cls in enumerate(classes):
        cls_dir = splits[split] / cls
        if not cls_dir.is_dir():
            continue
        files = _class_files(root, cls_dir, f"recordings in {splits[split].name}/{cls}/")
        entries += [(label, cls, name, files[name]) for name in sorted(files)]
    if not entries:
        raise DatasetError(f"{splits[split]}: split {split!r} has no recordings; {_EXPECTED}")
    return _dataset(root.name, split, entries, classes, str(root), limit, sensor, _read_file)


def _load_class_folders(root: Path, split: str, limit, sensor) -> EventDataset:
    classes = tuple(c.name for c in _class_dirs(root))
    entries = []
    for label, cls in enumerate(classes):
        files = _class_files(root, root / cls, f"recordings in {cls}/")
        names = sorted(files)
        n_test = len(names) // _TEST_FRACTION
        chosen = names[len(names) - n_test:] if split == "test" else names[:len(names) - n_test]
        entries += [(label, cls, name, files[name]) for name in chosen]
    if not entries:
        raise DatasetError(f"{root}: split {split!r} is empty (the last 1/{_TEST_FRACTION} of each class is the "
                           f"test split; every class needs >= {_TEST_FRACTION} recordings for one)")
    return _dataset(root.name, split, entries, classes, str(root), limit, sensor, _read_file)


def _load_archive(path: Path, split: str, limit, sensor) -> EventDataset:
    """A tar of a split folder ([ROOT/]<split>/<class>/<file>), read in one streaming pass."""
    files: dict[tuple, dict[str, dict[str, bytes]]] = {}
    classes_at: dict[tuple, set[str]] = {}
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                parts = tuple(p for p in PurePosixPath(member.name).parts if p not in ("/", ""))
                if not member.isfile() or len(parts) not in (3, 4) or not _is_event_name(parts[-1]):
                    continue
                root, sp, cls, name = parts[:-3], parts[-3].lower(), parts[-2], parts[-1]
                if sp not in SPLITS or _is_hidden(cls):
                    continue
                classes_at.setdefault(root, set()).add(cls)
                if sp == split:
                    stream = tar.extractfile(member)
                    files.setdefault(root, {}).setdefault(cls, {})[name] = stream.read() if stream else b""
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read archive ({type(exc).__name__}: {exc}); expected a readable "
                           f".tar/.tar.gz/.tar.xz of event recordings") from None
    roots = sorted(classes_at)
    if len(roots) != 1:
        raise DatasetError(f"{path}: {'no' if not roots else 'several'} event folder(s) in the archive; expected "
                           f"exactly one [ROOT/]<Train|Test>/<class>/<recording> tree")
    root = roots[0]
    classes = tuple(sorted(classes_at[root]))
    got = files.get(root, {})
    if not got:
        raise DatasetError(f"{path}: no {split!r} recordings in the archive; {_EXPECTED}")
    prefix = "/".join(root)
    entries = [(label, cls, name, got[cls][name]) for label, cls in enumerate(classes) for name in sorted(got.get(cls, {}))]
    return _dataset(root[-1] if root else path.name, split, entries, classes, str(path), limit, sensor,
                    lambda e: (f"{path}:{prefix + '/' if prefix else ''}{split}/{e[1]}/{e[2]}", e[3], None))


def _read_lines(path: Path) -> list[str]:
    try:
        return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc}); expected a text file") from None


def _load_gesture(root: Path, split: str, limit, sensor) -> EventDataset:
    trials = root / f"trials_to_{split}.txt"
    if not trials.is_file():
        raise DatasetError(f"{root}: no trials_to_{split}.txt; expected the DVS128 Gesture split lists")
    names = _read_lines(trials)
    mapping = root / "gesture_mapping.csv"
    n_classes = 11
    class_names = [str(i + 1) for i in range(n_classes)]
    if mapping.is_file():
        for n, line in enumerate(_read_lines(mapping)[1:], 2):
            parts = line.split(",")
            try:
                idx = int(parts[1]) - 1
                class_names[idx] = parts[0].strip()
            except (IndexError, ValueError):
                raise DatasetError(f"{mapping}:{n}: expected 'name,label' with label 1..{n_classes}, "
                                   f"got {line!r}") from None
    # entries: (label, class, file name, (aedat path, start, end, csv row))
    entries = []
    for name in names:
        aedat = root / name
        csv = aedat.with_name(aedat.stem + "_labels.csv")
        if not aedat.is_file():
            raise DatasetError(f"{trials}: lists {name!r}, which is not in {root}; expected the listed .aedat files")
        if not csv.is_file():
            raise DatasetError(f"{aedat}: no {csv.name} beside it; expected class,startTime_usec,endTime_usec rows")
        for n, line in enumerate(_read_lines(csv)[1:], 2):
            try:
                c, t0, t1 = (int(v) for v in line.split(",")[:3])
            except ValueError:
                raise DatasetError(f"{csv}:{n}: expected 'class,startTime_usec,endTime_usec' integers, "
                                   f"got {line!r}") from None
            if not 1 <= c <= n_classes or t1 <= t0:
                raise DatasetError(f"{csv}:{n}: class {c} in 1..{n_classes} and start < end expected, got {line!r}")
            entries.append((c - 1, class_names[c - 1], name, (aedat, t0, t1, n)))
    if not entries:
        raise DatasetError(f"{trials}: no labelled recordings; expected .aedat names with *_labels.csv rows")
    entries.sort(key=lambda e: (e[0], e[2], e[3][1]))
    labels = np.array([e[0] for e in entries], np.int64)
    keep = _selection(labels, limit)
    by_file: dict[Path, list[tuple[int, int]]] = {}      # each file is decoded once, for all its intervals
    for pos, i in enumerate(keep):
        by_file.setdefault(entries[int(i)][3][0], []).append((pos, int(i)))
    recs: list = [None] * len(keep)
    warnings: dict[str, int] = {}
    for aedat, items in by_file.items():
        whole = read_events(aedat.name, _read_file((0, 0, aedat.name, aedat))[1], str(aedat), aedat)
        check_recording(whole, str(aedat), sensor)
        for k, v in whole.warnings.items():
            warnings[k] = warnings.get(k, 0) + v
        for pos, i in items:
            _, _, _, (_, t0, t1, row) = entries[i]
            a, b = np.searchsorted(whole.t, [t0, t1])
            rec = Recording(whole.x[a:b], whole.y[a:b], whole.t[a:b], whole.p[a:b])
            if len(rec) == 0:
                raise EventFileError(f"{aedat.with_name(aedat.stem + '_labels.csv')}:{row}: empty recording (no "
                                     f"events in {t0}..{t1} us of {aedat.name}); expected at least one event")
            recs[pos] = rec
    events = EventSet.concat(recs)
    return EventDataset("dvs-gesture", split, events, labels[keep], tuple(class_names), str(root),
                        _sensor_of(events, sensor), len(by_file), warnings)
