"""Numba's cache is keyed by each function's own file; chipsim.kernels drops every kernel cache when
any kernel source changes, so an edit to one file never leaves another file's kernels stale."""
from pathlib import Path

from chipsim import kernels


def _cache_files(folder: Path) -> set[str]:
    return {p.name for p in (folder / "__pycache__").glob("*.nb?")}


def test_a_changed_source_drops_every_cache(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "__pycache__").mkdir(parents=True)
    a, b = pkg / "forward.py", pkg / "crossbar.py"
    a.write_text("x = 1\n")
    b.write_text("y = 2\n")
    stamp = pkg / "__pycache__" / kernels.DIGEST_NAME

    def make_caches():
        for name in ("forward.run-10.py311.nbi", "forward.run-10.py311.1.nbc", "crossbar.read-5.py311.nbi"):
            (pkg / "__pycache__" / name).write_bytes(b"compiled")

    make_caches()
    assert kernels.drop_stale_caches([a, b], stamp) is True        # no digest yet: caches of unknown age
    assert _cache_files(pkg) == set()
    make_caches()                                                  # the kernels compile again
    assert kernels.drop_stale_caches([a, b], stamp) is False       # nothing changed: caches kept
    assert len(_cache_files(pkg)) == 3
    b.write_text("y = 3\n")                                        # crossbar.py edited, forward.py not
    assert kernels.drop_stale_caches([a, b], stamp) is True
    assert _cache_files(pkg) == set()                              # forward's cache is gone too
    assert kernels.drop_stale_caches([a, b], stamp) is False


def test_the_digest_covers_every_kernel_file_and_the_encoders():
    names = {p.name for p in kernels.kernel_sources()}
    assert {"crossbar.py", "forward.py", "learning.py", "neuron.py", "rng.py", "layout.py", "encoders.py"} <= names
    stamp = Path(kernels.__file__).parent / "__pycache__" / kernels.DIGEST_NAME
    assert stamp.read_text().strip() == kernels.sources_digest(kernels.kernel_sources())
