"""Numba kernels of the chip core: no Python objects, no I/O (except the cache check below).

Numba keys a cached function by its own source file only, while our kernels
inline functions and constants from their sibling files. After an edit, or a
`git pull` into an editable install, that changes crossbar.py but not
forward.py, Numba would load forward.run_samples with the old crossbar code
compiled in: stale, silently wrong results. So this package keeps one digest
of every kernel source (and of hostlink/encoders.py, whose kernels use rng.py)
beside the caches, and drops those caches when the digest changes.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

DIGEST_NAME = "chipsim-kernel-sources.sha256"


def kernel_sources() -> list[Path]:
    """The files whose code ends up in the compiled kernels."""
    files = sorted(Path(__file__).parent.glob("*.py"))
    spec = importlib.util.find_spec("chipsim.hostlink")      # its folder, without importing it
    if spec is not None and spec.submodule_search_locations:
        encoders = Path(list(spec.submodule_search_locations)[0]) / "encoders.py"
        if encoders.is_file():
            files.append(encoders)
    return files


def sources_digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def drop_stale_caches(files: list[Path] | None = None, stamp: Path | None = None) -> bool:
    """Delete the Numba caches next to the kernel sources (`files`) when any of them changed since
    the digest in `stamp` was written; returns whether it did. Best effort: a cache folder it cannot
    write is one Numba does not use either."""
    files = kernel_sources() if files is None else files
    stamp = Path(__file__).parent / "__pycache__" / DIGEST_NAME if stamp is None else stamp
    digest = sources_digest(files)
    try:
        if stamp.read_text().strip() == digest:
            return False
    except OSError:
        pass
    for folder in {f.parent / "__pycache__" for f in files}:
        for cached in list(folder.glob("*.nbi")) + list(folder.glob("*.nbc")):
            try:
                cached.unlink()
            except OSError:
                pass
    try:
        stamp.parent.mkdir(exist_ok=True)
        tmp = stamp.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(digest + "\n")
        os.replace(tmp, stamp)
    except OSError:
        pass
    return True


drop_stale_caches()
