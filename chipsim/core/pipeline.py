"""Exact multi-core learning: a pipeline of layer ranges across consecutive samples.

While the chip learns, sample b + 1 needs the weights sample b left behind,
so samples cannot run side by side. But a layer depends only on the layer
below (its spikes of the same sample) and on itself (its weights, registers
and learning circuit). So stage s, a contiguous range of layers, can run
sample b while stage s + 1 runs sample b - 1: every layer still sees its own
samples in order and the same input spikes, and the calibrated chip is the
one the sequential order gives, bit for bit, for any number of stages
(tests/test_pipeline.py).

Stages hand each other a sample's spike lists of their boundary layer (all
T ticks) through a ring of `DEPTH` buffers per boundary. Each stage has its
own bitmap of written cells (distinct-write counting), so no two threads
write the same byte.

Balance: the first sample of each batch runs stage by stage with one layer
per stage on the calling thread (the sequential order), timing each layer;
an exponential average of those times splits the layers into the
contiguous stages of least maximum cost for the rest of the batch (or one
stage, sequentially, when a sample takes under MIN_PIPELINE_S). Timing only
moves the stage boundaries, never the results.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from chipsim.core.kernels.forward import disabled_counts, run_layers, run_samples

DEPTH = 2          #: hand-off buffers per stage boundary
#: below this chip time per sample the hand-offs (tens of microseconds) cost more than a second core
#: gains: such nets (digits: 0.2 ms) learn sequentially
MIN_PIPELINE_S = 2e-3
_POLL_S = 0.05
_POOLS: dict[int, ThreadPoolExecutor] = {}


def balanced_stages(costs, n_stages: int) -> list[tuple[int, int]]:
    """Split layers 0..L-1 into at most `n_stages` contiguous ranges [l0, l1) minimising the largest
    range's summed cost (exact, by dynamic programming over split points)."""
    costs = [max(float(c), 0.0) for c in costs]
    L = len(costs)
    S = max(1, min(n_stages, L))
    prefix = np.concatenate([[0.0], np.cumsum(costs)])
    inf = float("inf")
    best = np.full((S + 1, L + 1), inf)
    cut = np.zeros((S + 1, L + 1), np.int64)
    best[0, 0] = 0.0
    for s in range(1, S + 1):
        for j in range(1, L + 1):
            for i in range(s - 1, j):
                v = max(best[s - 1, i], prefix[j] - prefix[i])
                if v < best[s, j]:
                    best[s, j], cut[s, j] = v, i
    s = int(np.argmin(best[1:, L])) + 1          # fewer stages when more would not lower the maximum
    ranges = []
    j = L
    while s > 0:
        i = int(cut[s, j])
        ranges.append((i, j))
        j, s = i, s - 1
    return ranges[::-1]


class LayerPipeline:
    """Runs learning batches of one chip over `threads` host threads, layer ranges pipelined."""

    def __init__(self, L: int, threads: int, smoothing: float = 0.5,
                 stages: list[tuple[int, int]] | None = None):
        self.L = L
        self.threads = threads
        self.smoothing = smoothing
        if stages is not None:      # the ranges must tile 0..L-1: a gap would hand spikes to no buffer
            bounds = [a for a, _ in stages] + [stages[-1][1]] if stages else []
            if not stages or bounds[0] != 0 or bounds[-1] != L or \
                    any(b != c or a >= b for (a, b), (c, _) in zip(stages, list(stages[1:]) + [(L, L)])):
                raise ValueError(f"stages {stages}: expected contiguous non-empty ranges covering layers 0..{L - 1}")
        self.stages = stages                        #: fixed layer ranges (tests); None: balanced by cost
        self.costs: np.ndarray | None = None      #: seconds per sample of each layer (exponential average)
        self.last_stages: list[tuple[int, int]] = []

    def run(self, args: list, tail: list, batch: int, T: int, max_n: int) -> None:
        """`args`: run_samples' arguments after (start, stop); `tail`: its learning arguments
        (learn, targets, lparams, lkeys, wlim, write_sigma, dev, written)."""
        desc, enabled = args[0], args[5]
        disabled = disabled_counts(desc, enabled)
        first = 0
        stages = self.stages
        if stages is None:
            self._probe(args, tail, disabled, T, max_n)
            first = 1
            stages = balanced_stages(self.costs, self.threads)
            if self.costs.sum() < MIN_PIPELINE_S:
                stages = [(0, self.L)]
        self.last_stages = stages
        if len(stages) == 1:
            if first < batch:
                run_samples(first, batch, *args, *tail)
            return
        if first < batch:
            self._pipeline(args, tail, disabled, T, max_n, stages, first, batch)

    # ------------------------------------------------------------------ probe
    def _probe(self, args, tail, disabled, T, max_n) -> None:
        """Sample 0 in sequential order, one layer at a time, timed."""
        lists = [np.empty(T * max_n, np.int32) for _ in range(4)]
        counts = [np.zeros(T, np.int64) for _ in range(2)]
        costs = np.zeros(self.L)
        # an empty range first: the call that loads the kernel from Numba's cache is not timed
        run_layers(0, 0, 0, *args, *tail, disabled, lists[0], lists[1], lists[2], counts[0], lists[3], counts[1])
        for li in range(self.L):
            hin, hout = lists[2 + li % 2], lists[2 + (li + 1) % 2]
            nin, nout = counts[li % 2], counts[(li + 1) % 2]
            t0 = time.perf_counter()
            run_layers(0, li, li + 1, *args, *tail, disabled, lists[0], lists[1], hin, nin, hout, nout)
            costs[li] = time.perf_counter() - t0
        if self.costs is None:
            self.costs = costs
        else:
            self.costs = self.smoothing * self.costs + (1 - self.smoothing) * costs

    # ------------------------------------------------------------------ pipeline
    def _pipeline(self, args, tail, disabled, T, max_n, stages, first, batch) -> None:
        n = len(stages)
        written = tail[-1]
        hand = [[(np.empty(T * max_n, np.int32), np.zeros(T, np.int64)) for _ in range(DEPTH)]
                for _ in range(n - 1)]
        ready = [threading.Semaphore(0) for _ in range(n - 1)]
        free = [threading.Semaphore(DEPTH) for _ in range(n - 1)]
        failed = threading.Event()
        no_lists, no_counts = np.empty(1, np.int32), np.zeros(1, np.int64)

        def acquire(sem: threading.Semaphore) -> bool:
            while not sem.acquire(timeout=_POLL_S):
                if failed.is_set():
                    return False
            return not failed.is_set()

        def stage(s: int) -> None:
            l0, l1 = stages[s]
            lists_a, lists_b = np.empty(T * max_n, np.int32), np.empty(T * max_n, np.int32)
            # stage 0 keeps the caller's bitmap; the others their own (no byte is shared across threads)
            stage_tail = list(tail[:-1]) + [written if s == 0 else np.zeros_like(written)]
            try:
                for b in range(first, batch):
                    slot = b % DEPTH
                    if s > 0 and not acquire(ready[s - 1]):
                        return
                    if s < n - 1 and not acquire(free[s]):
                        return
                    hin, nin = hand[s - 1][slot] if s > 0 else (no_lists, no_counts)
                    hout, nout = hand[s][slot] if s < n - 1 else (no_lists, no_counts)
                    run_layers(b, l0, l1, *args, *stage_tail, disabled, lists_a, lists_b, hin, nin, hout, nout)
                    if s > 0:
                        free[s - 1].release()
                    if s < n - 1:
                        ready[s].release()
            except BaseException:
                failed.set()
                raise

        pool = _POOLS.get(n)
        if pool is None:
            pool = _POOLS[n] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="chipsim-stage")
        futures = [pool.submit(stage, s) for s in range(n)]
        for f in futures:
            f.result()
