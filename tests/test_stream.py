"""chipsim.hostlink.stream.BatchStream: order, bounded slots, error propagation, early stop, stats."""
from __future__ import annotations

import threading
import time
import traceback

import pytest

from chipsim.hostlink.stream import BatchStream, StreamStats

PRODUCER_NAME = "chipsim-host-producer"


def _producers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == PRODUCER_NAME and t.is_alive()]


def _wait_no_producer(timeout: float = 2.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not _producers():
            return True
        time.sleep(0.01)
    return not _producers()


def run_guarded(fn, timeout: float = 10.0):
    """Run fn() in a daemon thread; fail (instead of hanging the suite) if it does not finish."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), f"stream consumer still running after {timeout} s (hang)"
    if "error" in box:
        raise box["error"]
    return box["value"]


@pytest.fixture(autouse=True)
def no_leftover_producer():
    assert _wait_no_producer(), "a producer thread from an earlier test is still alive"
    yield
    assert _wait_no_producer(), "the stream left its producer thread running"


@pytest.mark.parametrize("n_batches,slots", [(0, 2), (1, 1), (7, 1), (25, 2), (25, 4)])
def test_yields_all_batches_in_order(n_batches, slots):
    stream = BatchStream(lambda i: ("batch", i), n_batches, slots=slots)
    got = run_guarded(lambda: list(stream))
    assert got == [("batch", i) for i in range(n_batches)]
    assert stream.stats.batches == n_batches


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_at_most_slots_batches_alive(slots):
    lock = threading.Lock()
    alive = [0]
    peak = [0]
    built = []

    def make_batch(i):
        with lock:
            alive[0] += 1
            peak[0] = max(peak[0], alive[0])
            built.append(i)
        time.sleep(0.002)
        return i

    def consume():
        seen = []
        for i, batch in enumerate(BatchStream(make_batch, 30, slots=slots)):
            seen.append(batch)
            if i % 3 == 0:
                time.sleep(0.01)          # a slow consumer lets the producer run ahead
            with lock:                     # done with this batch: it is no longer alive
                alive[0] -= 1
        return seen

    assert run_guarded(consume) == list(range(30))
    assert built == list(range(30))
    assert 1 <= peak[0] <= slots, f"peak {peak[0]} batches alive with {slots} slots"
    if slots > 1:
        assert peak[0] > 1, "the producer never ran ahead of the consumer"


@pytest.mark.parametrize("fail_at", [0, 3])
def test_producer_exception_reaches_consumer_quickly(fail_at):
    raised_at = {}

    class BoomError(RuntimeError):
        pass

    def make_batch(i):
        if i == fail_at:
            raised_at["t"] = time.perf_counter()
            raise BoomError(f"cannot build batch {i}")
        return i

    def consume():
        seen = []
        try:
            for batch in BatchStream(make_batch, 10, slots=2):
                seen.append(batch)
        except BoomError as exc:
            return seen, exc, time.perf_counter()
        return seen, None, time.perf_counter()

    seen, exc, caught_at = run_guarded(consume, timeout=5.0)
    assert seen == list(range(fail_at))
    assert exc is not None, "the producer's exception was not re-raised in the consumer"
    assert type(exc) is BoomError and str(exc) == f"cannot build batch {fail_at}"
    assert caught_at - raised_at["t"] < 1.0
    frames = [frame.name for frame in traceback.extract_tb(exc.__traceback__)]
    assert "make_batch" in frames, f"the producer's traceback was lost: {frames}"
    assert _wait_no_producer(1.0), "the producer thread did not end after its failure"


def test_producer_exception_while_consumer_busy():
    """The failure is queued while the consumer works on an earlier batch; it still arrives."""

    def make_batch(i):
        if i == 2:
            raise KeyError("missing sample 17")
        return i

    def consume():
        seen = []
        with pytest.raises(KeyError, match="missing sample 17"):
            for batch in BatchStream(make_batch, 5, slots=3):
                time.sleep(0.05)
                seen.append(batch)
        return seen

    assert run_guarded(consume, timeout=5.0) == [0, 1]


@pytest.mark.parametrize("how", ["break", "close"])
def test_consumer_stopping_early_stops_producer(how):
    calls = []

    def make_batch(i):
        calls.append(i)
        time.sleep(0.001)
        return i

    stream = BatchStream(make_batch, 1000, slots=2)

    def consume():
        if how == "break":
            seen = []
            for batch in stream:
                seen.append(batch)
                if batch == 2:
                    break
            return seen
        it = iter(stream)
        seen = [next(it), next(it), next(it)]
        it.close()
        return seen

    assert run_guarded(consume) == [0, 1, 2]
    assert _wait_no_producer(1.0), "the producer kept running after the consumer stopped"
    n_calls = len(calls)
    time.sleep(0.2)
    assert len(calls) == n_calls, "make_batch still called after the stream was closed"
    assert n_calls <= 3 + 2, f"{n_calls} batches built for 3 consumed with 2 slots"
    assert stream.stats.batches == 3


def test_stats_are_sane():
    def make_batch(i):
        time.sleep(0.01)
        return i

    stream = BatchStream(make_batch, 8, slots=2)

    def consume():
        out = []
        for batch in stream:
            time.sleep(0.01)
            out.append(batch)
        return out

    assert run_guarded(consume) == list(range(8))
    s = stream.stats
    assert s.batches == 8
    assert 0.08 * 0.9 <= s.producer_busy_s < 5.0
    assert 0.0 <= s.consumer_wait_s < 5.0
    assert 0.0 <= s.hidden_s <= s.producer_busy_s
    assert 0.0 <= s.hidden_fraction <= 1.0
    d = s.to_dict()
    assert set(d) == {"producer_busy_s", "consumer_wait_s", "hidden_s", "hidden_fraction", "batches"}
    assert d["batches"] == 8
    assert d["producer_busy_s"] == pytest.approx(s.producer_busy_s, abs=1e-4)


def test_empty_stats():
    s = StreamStats()
    assert s.hidden_s == 0.0 and s.hidden_fraction == 1.0 and s.batches == 0
