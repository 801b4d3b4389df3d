"""Exact multi-core learning: a pipeline of layer ranges across consecutive samples.

While the chip learns, sample b + 1 needs the weights sample b left behind,
so samples cannot run side by side. But a layer depends only on the layer
below (its spikes of the same sample) and on itself (its weights, registers
and learning circuit). So stage s, a contiguous range of layers, can run
sample b while stage s + 1 runs sample b - 1: every layer still sees its own
samples in order and the same input spikes, and the calibrated chip is the
one the sequential order gives, bit for bit, for any number of stages
(tests/test_pipeline.py).

The work of a batch is a grid of tasks (sample b, segment s), a segment
being a contiguous range of layers. Task (b, s) waits for (b - 1, s) and
(b, s - 1); free threads take ready tasks, the deepest segment first, so the
layers' 10x different costs balance themselves instead of through a fixed
split into one range per thread (which left a 2-thread VGG-11 at 1.6x).
Segments hand each other a sample's spike lists of their boundary layer
(all T ticks) through a ring of `DEPTH` buffers per boundary. Each thread
has its own bitmap of written cells (distinct-write counting), so no two
threads write the same byte.

The first batch's first sample runs one layer at a time on the calling
thread (the sequential order), timing each layer: layers under
MIN_TASK_FRACTION of the sample join a neighbour's segment, and a net whose
sample takes under MIN_PIPELINE_S learns sequentially. Timing only groups
layers and orders tasks, never changes the results.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from chipsim.core.kernels.forward import disabled_counts, run_layers, run_samples

DEPTH = 4          #: hand-off buffers per segment boundary: how far a segment may run ahead of the next
#: below this chip time per sample the hand-offs (tens of microseconds) cost more than a second core
#: gains: such nets (digits: 0.2 ms) learn sequentially
MIN_PIPELINE_S = 2e-3
#: layers cheaper than this fraction of a sample join their neighbours in one task: a task costs a
#: Numba dispatch and a lock round trip (tens of microseconds)
MIN_TASK_FRACTION = 0.02
_POOLS: dict[int, ThreadPoolExecutor] = {}


def cost_segments(costs, min_fraction: float = MIN_TASK_FRACTION) -> list[tuple[int, int]]:
    """Contiguous layer groups [l0, l1): each layer its own, except that layers cheaper than
    `min_fraction` of the total join the group before them (or after, at the start)."""
    costs = [max(float(c), 0.0) for c in costs]
    floor = min_fraction * sum(costs)
    groups: list[list[int]] = []
    for li, c in enumerate(costs):
        if groups and (c < floor or sum(costs[i] for i in groups[-1]) < floor):
            groups[-1].append(li)
        else:
            groups.append([li])
    return [(g[0], g[-1] + 1) for g in groups]


class LayerPipeline:
    """Runs learning batches of one chip over `threads` host threads, layer ranges pipelined."""

    def __init__(self, L: int, threads: int, stages: list[tuple[int, int]] | None = None):
        self.L = L
        self.threads = threads
        if stages is not None:      # the ranges must tile 0..L-1: a gap would hand spikes to no buffer
            bounds = [a for a, _ in stages] + [stages[-1][1]] if stages else []
            if not stages or bounds[0] != 0 or bounds[-1] != L or \
                    any(b != c or a >= b for (a, b), (c, _) in zip(stages, list(stages[1:]) + [(L, L)])):
                raise ValueError(f"stages {stages}: expected contiguous non-empty ranges covering layers 0..{L - 1}")
        self.stages = stages                        #: fixed layer ranges (tests); None: balanced by cost
        self.costs: np.ndarray | None = None      #: seconds per sample of each layer, timed on the first batch
        #: picks a task among the ready segments (ascending); None: the deepest. Tests pass a random one.
        self.choose = None
        self.last_stages: list[tuple[int, int]] = []

    def run(self, args: list, tail: list, batch: int, T: int, max_n: int) -> None:
        """`args`: run_samples' arguments after (start, stop); `tail`: its learning arguments
        (learn, targets, lparams, lkeys, wlim, write_sigma, dev, written)."""
        desc, enabled = args[0], args[5]
        disabled = disabled_counts(desc, enabled)
        first = 0
        if self.stages is not None:             # fixed ranges, one thread each (tests)
            segments, workers, pinned = self.stages, len(self.stages), True
        else:
            if self.costs is None:              # the first batch: time each layer once
                self._probe(args, tail, disabled, T, max_n)
                first = 1
            segments, workers, pinned = cost_segments(self.costs), self.threads, False
            if self.costs.sum() < MIN_PIPELINE_S:
                segments = [(0, self.L)]
        self.last_stages = segments
        if first >= batch:
            return
        if len(segments) == 1 or workers == 1:
            run_samples(first, batch, *args, *tail)
            return
        self._schedule(args, tail, disabled, T, max_n, segments, workers, pinned, first, batch)

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
        self.costs = costs

    # ------------------------------------------------------------------ schedule
    def _schedule(self, args, tail, disabled, T, max_n, segments, workers, pinned, first, batch) -> None:
        """Run tasks (sample b, segment s) on `workers` threads. Task (b, s) is ready when segment s has
        finished sample b - 1 (its weights and registers), segment s - 1 has finished sample b (its
        spikes) and segment s + 1 has taken sample b - DEPTH's spikes out of the hand-off slot b reuses.
        A free thread takes the deepest ready segment (draining first keeps the hand-offs short);
        `pinned` gives segment s to thread s only (fixed stages). Which thread runs a task, and when,
        changes nothing but the wall time."""
        n = len(segments)
        written = tail[-1]
        hand = [[(np.empty(T * max_n, np.int32), np.zeros(T, np.int64)) for _ in range(DEPTH)]
                for _ in range(n - 1)]
        done = [first] * n              # samples finished per segment
        running = [False] * n
        failed: list[BaseException] = []
        cond = threading.Condition()
        no_lists, no_counts = np.empty(1, np.int32), np.zeros(1, np.int64)
        choose = self.choose or (lambda ready: ready[-1])

        def is_ready(s: int) -> bool:
            b = done[s]
            return (not running[s] and b < batch and (s == 0 or done[s - 1] > b)
                    and (s == n - 1 or done[s + 1] > b - DEPTH))

        def worker(w: int) -> None:
            lists_a, lists_b = np.empty(T * max_n, np.int32), np.empty(T * max_n, np.int32)
            # thread 0 keeps the caller's bitmap, the others their own: no byte is written by two threads.
            # A layer clears its bits at every tick, so which bitmap a task uses does not matter.
            own_tail = list(tail[:-1]) + [written if w == 0 else np.zeros_like(written)]
            mine = [w] if pinned else range(n)
            while True:
                with cond:
                    while True:
                        if failed or all(done[s] >= batch for s in mine):
                            return
                        ready = [s for s in mine if is_ready(s)]
                        if ready:
                            break
                        cond.wait()
                    s = choose(ready)
                    running[s] = True
                    b = done[s]
                l0, l1 = segments[s]
                hin, nin = hand[s - 1][b % DEPTH] if s > 0 else (no_lists, no_counts)
                hout, nout = hand[s][b % DEPTH] if s < n - 1 else (no_lists, no_counts)
                try:
                    run_layers(b, l0, l1, *args, *own_tail, disabled, lists_a, lists_b, hin, nin, hout, nout)
                except BaseException as e:
                    with cond:
                        failed.append(e)
                        cond.notify_all()
                    raise
                with cond:
                    running[s] = False
                    done[s] += 1
                    cond.notify_all()

        pool = _POOLS.get(workers)
        if pool is None:
            pool = _POOLS[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chipsim-stage")
        futures = [pool.submit(worker, w) for w in range(workers)]
        for f in futures:
            f.result()
