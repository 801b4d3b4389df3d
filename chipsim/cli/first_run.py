"""A note before the chip kernels are compiled: the first run after an install or an update spends
30-90 s in Numba's compiler before the progress bar moves, and would otherwise look hung."""
from __future__ import annotations

import click

NOTE = ("chipsim: compiling the chip kernels for this machine (first run after an install or update, "
        "about 30-90 s; later runs load them from Numba's cache)")


def kernels_cached(dispatcher=None) -> bool | None:
    """Whether Numba's cache holds a compiled `dispatcher` (default: the chip kernel's entry point,
    forward.run_samples) for this machine; None when that cannot be told.

    Reads the function's cache index the way Numba does: an index written for other source,
    another Numba version or another CPU does not count. Uses Numba internals, so any surprise
    there means "unknown" rather than an error."""
    try:
        if dispatcher is None:
            from chipsim.core.kernels.forward import run_samples as dispatcher

        index = dispatcher._cache._cache_file._load_index()
        magic = dispatcher.targetctx.codegen().magic_tuple()
        return any(key[1] == magic for key in index)
    except Exception:
        return None


def announce_compile() -> None:
    """Print NOTE to stderr when the kernels are known to be missing from the cache."""
    if kernels_cached() is False:
        click.echo(NOTE, err=True)
