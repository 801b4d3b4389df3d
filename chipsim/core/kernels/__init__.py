"""Numba kernels of the chip core: no Python objects, no I/O (except where their cache lives, below).

Numba keys a cached function by its own source file only, while our kernels
inline functions and constants from their sibling files. After an edit, or a
`git pull` into an editable install, that changes crossbar.py but not
forward.py, Numba would load forward.run_samples with the old crossbar code
compiled in: stale, silently wrong results. So the kernels (and the encoder
kernels of hostlink/encoders.py, which use rng.py) are cached in a folder
named after a digest of all their sources: any change to any of them selects
a fresh folder. A process still running older code keeps writing to its own
folder, so it cannot put old machine code under the new digest either.
Folders of other digests are removed once they are a week old.
"""
from __future__ import annotations

import hashlib
import importlib.util
import shutil
import time
from pathlib import Path

#: cache folders of digests other than the current one are removed after this many seconds unused
STALE_AFTER_S = 7 * 24 * 3600


def kernel_sources() -> list[Path]:
    """The files whose code ends up in the compiled kernels (editor lock and backup files excluded)."""
    files = sorted(p for p in Path(__file__).parent.glob("*.py") if not p.name.startswith((".", "#")))
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


def cache_folder_name(digest: str) -> str:
    return f"chipsim-kernels-{digest[:16]}"


def remove_old_folders(parent: Path, keep: str, now: float | None = None) -> list[Path]:
    """Remove the cache folders of other digests under `parent` not modified for STALE_AFTER_S."""
    now = time.time() if now is None else now
    removed = []
    for folder in parent.glob("chipsim-kernels-*"):
        try:
            if folder.name != keep and now - folder.stat().st_mtime > STALE_AFTER_S:
                shutil.rmtree(folder)
                removed.append(folder)
        except OSError:
            pass
    return removed


def _register_locator(files: list[Path], digest: str) -> type | None:
    """Put a cache locator for `files` first in Numba's list; returns it, or None when this Numba
    has no such extension point (then Numba's own per-file caching applies)."""
    try:
        from numba.core import caching
        base = caching._CacheLocator
        impl = caching.CacheImpl
        impl._locator_classes              # noqa: B018 (the extension point must exist)
    except (ImportError, AttributeError):
        return None
    ours = {str(p.resolve()) for p in files}
    name = cache_folder_name(digest)
    cleaned: set[Path] = set()          # parent folders already rid of old digests in this process

    class KernelSourcesLocator(base):
        """Caches a kernel in a folder named after the digest of all kernel sources: under
        NUMBA_CACHE_DIR when set, else beside the sources, else in the user's cache folder."""

        def __init__(self, py_func, py_file, cache_path):
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = cache_path

        def get_cache_path(self):
            return self._cache_path

        def get_source_stamp(self):
            return digest

        def get_disambiguator(self):
            return str(self._lineno)

        @classmethod
        def from_function(cls, py_func, py_file):
            if str(Path(py_file).resolve()) not in ours:
                return None
            from numba.core.config import CACHE_DIR
            from numba.misc.appdirs import AppDirs
            if CACHE_DIR:
                parents = [Path(CACHE_DIR)]
            else:
                parents = [Path(py_file).parent / "__pycache__",
                           Path(AppDirs(appname="numba", appauthor=False).user_cache_dir)]
            for parent in parents:
                locator = cls(py_func, py_file, str(parent / name))
                try:
                    locator.ensure_cache_path()
                except OSError:
                    continue
                if parent not in cleaned:
                    cleaned.add(parent)
                    remove_old_folders(parent, name)
                return locator
            return None

    impl._locator_classes.insert(0, KernelSourcesLocator)
    for source in files:          # caches from before this scheme, keyed by one file: never read again
        for legacy in source.parent.glob(f"__pycache__/{source.stem}.*.nb[ic]"):
            try:
                legacy.unlink()
            except OSError:
                pass
    return KernelSourcesLocator


try:
    SOURCES = kernel_sources()
    DIGEST = sources_digest(SOURCES)
    LOCATOR = _register_locator(SOURCES, DIGEST)
except OSError:          # an unreadable source: Numba's own per-file caching applies
    SOURCES, DIGEST, LOCATOR = [], "", None
