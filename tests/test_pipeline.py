"""Learning as a layer pipeline across samples (chipsim/core/pipeline.py) equals the sequential order, bit for bit.

Every way of cutting the test net's layers into 2, 3 and 5 contiguous stages
runs the same learning batch as run_samples on one thread; weights, biases,
thresholds, counters, spike counts and membranes must all be equal. Covered:
fractional and whole pulses, the direct-input first layer learning (its
replayed current is updated incrementally), rate input, delay mode, thermal
noise, tick silencing, write noise and the threshold trim.
"""
import itertools
import threading
import time

import numba
import numpy as np
import pytest

import chipsim.core.pipeline as pipeline_module
from chipsim.config import LearningConfig
from chipsim.core.kernels import layout as K
from chipsim.core.learning import setup_learning
from chipsim.core.pipeline import LayerPipeline, cost_segments
from noise import apply_noise

from test_layer_order import inputs, make_chip


def partitions(L: int, n: int):
    """Every split of layers 0..L-1 into n non-empty contiguous ranges."""
    for cuts in itertools.combinations(range(1, L), n - 1):
        bounds = (0, *cuts, L)
        yield [(bounds[i], bounds[i + 1]) for i in range(n)]


def learn_batch(delay, encoder, pulse, stages, choose_seed=None, workers=2):
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
    else:   # through chip.run with a pipeline (fixed stages, or dynamic with a random task choice)
        threads = numba.get_num_threads()
        numba.set_num_threads(2)       # the pipeline is looked up by the thread count; it runs `workers`
        L = len(chip.layers)
        if choose_seed is None:
            pipe = LayerPipeline(L, workers, stages=stages)
        else:
            pipe = LayerPipeline(L, workers)
            pipe.costs = np.asarray(stages, float)          # per-layer costs: they decide the segments
            rng = np.random.default_rng(choose_seed)
            pipe.choose = lambda ready: ready[int(rng.integers(len(ready)))]
        chip.__dict__["_pipelines"] = {2: pipe}
        calls = []
        real = pipeline_module.run_layers
        # dynamic: each task also sleeps 2 ms (the GIL released, as in a real kernel), so every thread gets
        # tasks and segments move between threads even on a busy machine
        nap = 0.002 if choose_seed is not None else 0.0
        pipeline_module.run_layers = lambda *a: calls.append((a[0], a[1], a[2], threading.get_ident())) or \
            time.sleep(nap) or real(*a)
        try:
            res = chip.run(x, learning=setup, targets=targets)
        finally:
            numba.set_num_threads(threads)
            pipeline_module.run_layers = real
        ran = sorted({tuple(c[1:3]) for c in calls})
        if choose_seed is None:
            assert ran == sorted(stages), "the pipeline did not run these stages"
        else:
            assert ran == pipe.last_stages and len(ran) > 1, "the dynamic schedule did not run its segments"
            learn_batch.threads_per_segment = {seg: len({c[3] for c in calls if c[1:3] == seg}) for seg in ran}
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


@pytest.mark.parametrize("delay,encoder,pulse", [(False, "direct", 0.4), (True, "rate", 1.0)])
def test_dynamic_schedule_equals_sequential(delay, encoder, pulse):
    """Tasks taken in random order by 2 and 3 threads, segments moving between threads, give the
    sequential chip bit for bit."""
    ref, w, b, th = learn_batch(delay, encoder, pulse, None)
    L = len(make_chip(delay, encoder, "avg", 3).layers)
    moved = 0
    for seed, workers, costs in [(0, 2, [1] * L), (1, 3, [1] * L), (2, 2, [5, 1] + [0.01] * (L - 2)),
                                 (3, 3, [0.01] + [1] * (L - 1))]:
        res, w2, b2, th2 = learn_batch(delay, encoder, pulse, costs, choose_seed=seed, workers=workers)
        assert np.array_equal(w, w2) and np.array_equal(b, b2) and np.array_equal(th, th2), (seed, costs)
        for name in ("counters", "counts", "potentials", "predictions"):
            assert np.array_equal(getattr(ref, name), getattr(res, name)), (seed, name)
        moved += sum(n > 1 for n in learn_batch.threads_per_segment.values())
    assert moved > 0, "no segment ever ran on two threads: the schedule was not dynamic"


def test_cheap_layers_join_a_neighbour():
    assert cost_segments([1, 1, 1, 1]) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert cost_segments([10, 10, 0.1, 0.1]) == [(0, 1), (1, 4)]
    assert cost_segments([0.1, 10, 10]) == [(0, 2), (2, 3)]
    assert cost_segments([5]) == [(0, 1)]


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
