"""The first-run note: chipsim says it is compiling when Numba's cache lacks the chip kernel."""
import importlib.util
import sys

from click.testing import CliRunner

import chipsim.first_run as first_run
from chipsim.cli import main

KERNEL = '''
from numba import njit


@njit(cache=True)
def twice(x):
    return 2 * x
'''


def test_cache_status_of_a_fresh_function(tmp_path):
    (tmp_path / "fresh_kernel.py").write_text(KERNEL)
    spec = importlib.util.spec_from_file_location("fresh_kernel", tmp_path / "fresh_kernel.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fresh_kernel"] = module
    try:
        spec.loader.exec_module(module)
        assert first_run.kernels_cached(module.twice) is False
        assert module.twice(3) == 6
        assert first_run.kernels_cached(module.twice) is True
        assert first_run.kernels_cached(object()) is None        # not a cached dispatcher: unknown
    finally:
        del sys.modules["fresh_kernel"]


def test_run_announces_compiling_only_when_not_cached(tmp_path, monkeypatch):
    for cached, shown in ((False, True), (True, False), (None, False)):
        monkeypatch.setattr(first_run, "kernels_cached", lambda c=cached: c)
        out = tmp_path / str(cached)
        result = CliRunner().invoke(main, ["run", "--samples", "2", "--no-progress", "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert (first_run.NOTE in result.stderr) == shown
        assert first_run.NOTE not in result.stdout
