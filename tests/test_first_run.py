"""The first-run note: chipsim says it is compiling when Numba's cache lacks the chip kernel."""
import importlib.util
import sys

import pytest
from click.testing import CliRunner

import chipsim.cli.first_run as first_run
from chipsim.cli.main import main

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


@pytest.mark.parametrize("net_name, record", [("digits", ()), ("digits", ("spikes", "membrane"))])
def test_warm_up_compiles_the_specialization_the_run_uses(monkeypatch, net_name, record):
    """Chip.warm_up runs an empty batch so that compiling is timed apart from the run: it must reach
    the kernel with exactly the argument types of a real batch, or the run would compile again."""
    import numba
    import numpy as np

    import chipsim.core.chip as chip_module
    from chipsim.core.chip import Chip
    from chipsim.config import load_net
    from chipsim.models import resolve_net
    from chipsim.core.weights import load_weights

    seen = []
    real = chip_module.run_samples

    def spy(*args):
        seen.append(tuple(numba.typeof(a) for a in args))
        return real(*args)

    monkeypatch.setattr(chip_module, "run_samples", spy)
    net = load_net(resolve_net(net_name))
    chip = Chip(net, load_weights(net.weights))
    chip.warm_up(record)
    assert len(seen) == 1                                    # the warm-up reached the kernel
    chip.run(np.ones((3, chip.n_inputs), np.int32), record)
    assert len(seen) >= 2 and len(set(seen)) == 1       # warm-up, then the batch (maybe in several ranges)
