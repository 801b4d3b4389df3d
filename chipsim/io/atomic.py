"""Atomic file writes: write to a temporary file beside the target, then rename.

An interrupted run never leaves a half-written file under the final name.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator


def file_mode() -> int:
    """Permissions open() would give a new file under the process umask (mkstemp's temporary files
    are 0600, which would hide finished results from the user's group)."""
    try:        # Linux: read the umask without changing it (os.umask would, for every thread, briefly)
        with open("/proc/self/status") as f:
            mask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def temp_beside(path: Path) -> Path:
    """A new empty temporary file in `path`'s folder (created if needed), named after it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def commit(tmp: Path, path: Path) -> None:
    """Flush the finished temporary file to disk, give it the usual permissions, rename it to `path`."""
    try:        # some file systems (vfat, exFAT, some FUSE or CIFS mounts) refuse these: keep the result
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
    except OSError:
        pass
    os.replace(tmp, path)


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temporary files a killed writer left in `folder` (`.NAME.*.tmp`, see temp_beside).

    Called when a run (re)starts in its folder, which it owns: no other writer is active there."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        if tmp.is_file():
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass
    return removed


class WriteError(OSError):
    """A result could not be written (disk full, read-only, gone); the file under its final name is untouched."""

    def __str__(self) -> str:       # the message alone, without OSError's "[Errno N]" prefix
        return self.strerror or super().__str__()


def _write_error(path: Path, exc: OSError) -> WriteError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return WriteError(exc.errno, f"{path}: cannot write ({reason}); the previous {path.name}, if any, is "
                                 f"unchanged; expected a writable folder with free space")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it over `path` on success.

    Any OSError while the file is made, written or renamed becomes a WriteError naming `path`."""
    path = Path(path)
    try:
        tmp_path = temp_beside(path)
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        try:
            yield tmp_path
            commit(tmp_path, path)
        except WriteError:
            raise
        except OSError as exc:
            raise _write_error(path, exc) from None
    finally:
        try:
            if tmp_path.exists():
                tmp_path.unlink()
        except OSError:
            pass


def write_json(path: str | Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
