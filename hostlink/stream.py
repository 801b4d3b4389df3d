"""Bounded producer/consumer streaming of batches from the host to the chip.

A producer thread prepares batch i+1 (load, encode, targets) while the chip
works on batch i. At most `slots` batches exist at once: the producer takes a
slot before it builds a batch, the consumer gives it back when it asks for the
next one. The chip kernels release the GIL (`nogil`), so the two overlap.

An exception in the producer is re-raised in the consumer with its traceback;
the consumer polls, so Ctrl-C and producer errors end the run within a
fraction of a second instead of hanging on a queue.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

_POLL_S = 0.05


@dataclass
class StreamStats:
    producer_busy_s: float = 0.0     #: host time spent preparing batches
    consumer_wait_s: float = 0.0     #: time the chip waited for a batch
    batches: int = 0

    @property
    def hidden_s(self) -> float:
        """Host time that overlapped with chip work."""
        return max(0.0, self.producer_busy_s - self.consumer_wait_s)

    @property
    def hidden_fraction(self) -> float:
        return self.hidden_s / self.producer_busy_s if self.producer_busy_s > 0 else 1.0

    def to_dict(self) -> dict:
        return {"producer_busy_s": round(self.producer_busy_s, 4), "consumer_wait_s": round(self.consumer_wait_s, 4),
                "hidden_s": round(self.hidden_s, 4), "hidden_fraction": round(self.hidden_fraction, 4),
                "batches": self.batches}


@dataclass
class _Failure:
    error: BaseException


@dataclass
class BatchStream:
    """Iterate over `make_batch(0..n_batches-1)`, built ahead in a producer thread."""

    make_batch: Callable[[int], Any]
    n_batches: int
    slots: int = 2
    stats: StreamStats = field(default_factory=StreamStats)

    def __iter__(self) -> Iterator[Any]:
        ready: queue.Queue = queue.Queue()
        free = threading.Semaphore(self.slots)
        stop = threading.Event()

        def produce() -> None:
            try:
                for i in range(self.n_batches):
                    while not free.acquire(timeout=_POLL_S):
                        if stop.is_set():
                            return
                    if stop.is_set():
                        return
                    t0 = time.perf_counter()
                    batch = self.make_batch(i)
                    self.stats.producer_busy_s += time.perf_counter() - t0
                    ready.put(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, never swallowed
                ready.put(_Failure(exc))

        thread = threading.Thread(target=produce, name="chipsim-host-producer", daemon=True)
        thread.start()
        try:
            for _ in range(self.n_batches):
                t0 = time.perf_counter()
                while True:
                    try:
                        item = ready.get(timeout=_POLL_S)
                        break
                    except queue.Empty:
                        if not thread.is_alive() and ready.empty():
                            raise RuntimeError("host producer stopped without delivering a batch")
                self.stats.consumer_wait_s += time.perf_counter() - t0
                if isinstance(item, _Failure):
                    raise item.error
                self.stats.batches += 1
                yield item
                free.release()
        finally:
            stop.set()
            thread.join(timeout=5.0)
