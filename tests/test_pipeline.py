"""Learning as a layer pipeline across samples (chipsim/core/pipeline.py) equals the sequential order, bit for bit.

Every way of cutting the test net's layers into 2, 3 and 5 contiguous stages
runs the same learning batch as run_samples on one thread; weights, biases,
thresholds, counters, spike counts and membranes must all be equal. Covered:
fractional and whole pulses, the direct-input first layer learning (its
replayed current is updated incrementally), rate input, delay mode, thermal
noise, tick silencing, write noise and the threshold trim.
"""
import itertools

import numba
import numpy as np
import pytest

import chipsim.core.pipeline as pipeline_module
from chipsim.config import LearningConfig
from chipsim.core.kernels import layout as K
from chipsim.core.learning import setup_learning
from chipsim.core.pipeline import LayerPipeline, balanced_stages
from noise import apply_noise

from test_layer_order import inputs, make_chip


def partitions(L: int, n: int):
    """Every split of layers 0..L-1 into n non-empty contiguous ranges."""
    for cuts in itertools.combinations(range(1, L), n - 1):
        bounds = (0, *cuts, L)
        yield [(bounds[i], bounds[i + 1]) for i in range(n)]


def learn_batch(delay, encoder, pulse, stages):
    chip = make_chip(delay, encoder, "avg", seed=3)
    apply_noise(chip, ["thermal=0.05", "silence=0.05", "silence.scope=tick", "mismatch=0.1"], seed=2)
    config = LearningConfig(enabled=True, warmup=2, p=0.9, target_bits=3, threshold_pulse=0.05, pulse=pulse,
                            multibit_input="scale")
    setup = setup_learning(chip, config, seed=4)
    targets = np.random.default_rng(5).integers(0, 8, (7, setup.n_targets))
    x = inputs(chip, encoder, 7, np.random.default_rng(6))
    if stages is None:
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            res = chip.run(x, learning=setup, targets=targets)
        finally:
            numba.set_num_threads(threads)
    else:   # through chip.run with a pipeline of fixed stages (its stage count needs no more cores)
        threads = numba.get_num_threads()
        numba.set_num_threads(2)
        chip.__dict__["_pipelines"] = {2: LayerPipeline(len(chip.layers), 2, stages=stages)}
        calls = []
        real = pipeline_module.run_layers
        pipeline_module.run_layers = lambda *a: calls.append(a[1:3]) or real(*a)
        try:
            res = chip.run(x, learning=setup, targets=targets)
        finally:
            numba.set_num_threads(threads)
            pipeline_module.run_layers = real
        assert sorted(set(calls)) == sorted(stages), "the pipeline did not run these stages"
    r = chip.registers
    return res, r.weights.copy(), r.bias.copy(), r.theta.copy()


@pytest.mark.parametrize("delay,encoder,pulse", [(False, "direct", 0.4), (True, "rate", 0.4),
                                                 (False, "rate", 1.0), (True, "direct", 1.5)])
def test_pipelined_learning_equals_sequential(delay, encoder, pulse):
    ref, w, b, th = learn_batch(delay, encoder, pulse, None)
    assert ref.counters[..., K.C_PULSES].sum() > 50 and ref.counters[..., K.C_THRESHOLD_WRITES].sum() > 0
    L = len(make_chip(delay, encoder, "avg", 3).layers)
    cases = [p for n in (2, 3, L) for p in partitions(L, n)]
    assert len(cases) == (L - 1) + (L - 1) * (L - 2) // 2 + 1
    for stages in cases:
        res, w2, b2, th2 = learn_batch(delay, encoder, pulse, stages)
        assert np.array_equal(w, w2), stages
        assert np.array_equal(b, b2) and np.array_equal(th, th2), stages
        for name in ("counters", "counts", "potentials", "predictions"):
            assert np.array_equal(getattr(ref, name), getattr(res, name)), (stages, name)


def test_balanced_stages_minimise_the_largest_stage():
    assert balanced_stages([1, 1, 1, 1], 2) == [(0, 2), (2, 4)]
    assert balanced_stages([8, 1, 1, 1, 1, 1], 2) == [(0, 1), (1, 6)]
    assert balanced_stages([3, 3, 3], 5) == [(0, 1), (1, 2), (2, 3)]
    assert balanced_stages([5, 0, 0], 3) == [(0, 3)]       # fewer stages when more would not lower the maximum
    # brute force on random costs: no split into contiguous ranges has a smaller largest stage
    rng = np.random.default_rng(0)
    for _ in range(50):
        costs = rng.random(int(rng.integers(1, 9)))
        n = int(rng.integers(1, 5))
        got = max(costs[a:b].sum() for a, b in balanced_stages(costs, n))
        best = min(max(costs[a:b].sum() for a, b in p) for k in range(1, min(n, len(costs)) + 1)
                   for p in partitions(len(costs), k))
        assert got == pytest.approx(best)


def test_a_failing_stage_ends_the_pipeline(monkeypatch):
    """An error in one stage stops the others (they poll) and reaches the caller."""
    calls = {"n": 0}
    real = pipeline_module.run_layers

    def flaky(b, l0, l1, *rest):
        if l0 > 0 and b >= 3:
            raise RuntimeError("stage failed")
        calls["n"] += 1
        return real(b, l0, l1, *rest)

    monkeypatch.setattr(pipeline_module, "run_layers", flaky)
    with pytest.raises(RuntimeError, match="stage failed"):
        learn_batch(False, "rate", 0.4, [(0, 2), (2, 5)])
    assert calls["n"] < 7 + 7


def test_fixed_stages_must_cover_every_layer():
    for bad in ([(0, 2), (2, 4)], [(0, 2), (3, 5)], [(1, 5)], [(0, 0), (0, 5)], []):
        with pytest.raises(ValueError, match="contiguous"):
            LayerPipeline(5, 2, stages=bad)
    LayerPipeline(5, 2, stages=[(0, 2), (2, 5)])
