"""Numba keys a cached function by its own file; chipsim caches its kernels in a folder named after a
digest of every kernel source, so an edit to one file never leaves another file's kernels stale."""
import os
import time
from pathlib import Path

from chipsim.core import kernels
from chipsim.core.kernels.forward import run_samples
from chipsim.hostlink.encoders import _rate_kernel


def test_the_digest_covers_every_kernel_file_and_the_encoders():
    names = {p.name for p in kernels.SOURCES}
    assert {"crossbar.py", "forward.py", "learning.py", "neuron.py", "rng.py", "layout.py", "encoders.py"} <= names
    assert kernels.DIGEST == kernels.sources_digest(kernels.kernel_sources())


def test_editor_files_are_not_sources():
    folder = Path(kernels.__file__).parent
    lock = folder / ".#crossbar.py"           # an Emacs lock: a dangling symlink
    try:
        os.symlink("nobody@host.1234", lock)
    except OSError:
        return                                 # read-only install: nothing to check
    try:
        assert lock not in kernels.kernel_sources()
    finally:
        lock.unlink()


def test_a_changed_source_changes_the_digest(tmp_path):
    a, b = tmp_path / "forward.py", tmp_path / "crossbar.py"
    a.write_text("x = 1\n")
    b.write_text("y = 2\n")
    before = kernels.sources_digest([a, b])
    b.write_text("y = 3\n")                    # crossbar.py edited, forward.py not
    assert kernels.sources_digest([a, b]) != before
    assert kernels.cache_folder_name(kernels.sources_digest([a, b])) != kernels.cache_folder_name(before)


def test_kernels_are_cached_under_the_digest():
    assert kernels.LOCATOR is not None
    for dispatcher in (run_samples, _rate_kernel):           # a chip kernel and an encoder kernel
        cache = dispatcher._cache
        assert Path(cache._cache_path).name == kernels.cache_folder_name(kernels.DIGEST)
        assert cache._cache_file._source_stamp == kernels.DIGEST


def test_old_digest_folders_are_removed_after_a_week(tmp_path):
    keep = kernels.cache_folder_name("a" * 64)
    for name in (keep, "chipsim-kernels-old", "chipsim-kernels-recent", "unrelated"):
        (tmp_path / name).mkdir()
    week_ago = time.time() - kernels.STALE_AFTER_S - 60
    os.utime(tmp_path / "chipsim-kernels-old", (week_ago, week_ago))
    os.utime(tmp_path / keep, (week_ago, week_ago))
    removed = kernels.remove_old_folders(tmp_path, keep)
    assert removed == [tmp_path / "chipsim-kernels-old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([keep, "chipsim-kernels-recent", "unrelated"])
