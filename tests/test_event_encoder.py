"""The `events` encoder: binning by time and by count against a plain numpy reference, in_window =
delivered + merged, independence from batching and threads, the AER byte count by hand, config errors."""
from __future__ import annotations

import numpy as np
import pytest

from chipsim.config import ConfigError, EventsConfig, parse_net
from chipsim.hostlink.encoders import EventEncoder
from chipsim.hostlink.events.dataset import EventSet
from chipsim.hostlink.events.formats import Recording


def random_set(seed: int, n_rec: int = 9, sensor=(20, 14)) -> EventSet:
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n_rec):
        n = int(rng.integers(1, 400))
        t = np.sort(rng.integers(0, 50_000, n)) + int(rng.integers(0, 10_000))
        recs.append(Recording(rng.integers(0, sensor[0], n).astype(np.uint16),
                              rng.integers(0, sensor[1], n).astype(np.uint16), t.astype(np.int64),
                              rng.integers(0, 2, n).astype(np.uint8)))
    return EventSet.concat(recs)


def reference(ev: EventSet, cfg: EventsConfig, T: int, shape) -> tuple[np.ndarray, np.ndarray]:
    """Plain numpy: (B, T, n_in) event counts per bin (before any cap) and (B, 4) stats."""
    c, h, w = shape
    W, H = cfg.sensor
    B = len(ev)
    counts = np.zeros((B, T, c * h * w), np.int64)
    stats = np.zeros((B, 4), np.int64)
    for b in range(B):
        s, e = ev.offsets[b], ev.offsets[b + 1]
        t = ev.t[s:e].astype(np.float64)
        lo = t[0] + (cfg.window_ms[0] * 1000 if cfg.window_ms else 0)
        hi = lo + cfg.window_ms[1] * 1000 if cfg.window_ms else t[-1] + 1
        inside = np.flatnonzero((t >= lo) & (t < hi))
        if cfg.binning == "count":
            ticks = np.floor(np.arange(inside.size) * T / inside.size).astype(int)
        else:
            ticks = np.floor((t[inside] - lo) * T / (hi - lo)).astype(int)
        xo = np.floor(ev.x[s:e][inside] * w / W).astype(int)
        yo = np.floor(ev.y[s:e][inside] * h / H).astype(int)
        ch = ev.p[s:e][inside].astype(int) if c == 2 else np.zeros(inside.size, int)
        np.add.at(counts[b], (ticks, (yo * w + xo) * c + ch), 1)
        delivered = int(np.count_nonzero(counts[b]))
        stats[b] = (e - s, inside.size, delivered, inside.size - delivered)
    return counts, stats


CASES = [
    (EventsConfig((20, 14)), 8, (2, 14, 20)),
    (EventsConfig((20, 14), polarity="merged", binning="count"), 5, (1, 7, 10)),
    (EventsConfig((20, 14), window_ms=(3.0, 20.0)), 16, (2, 5, 6)),
    (EventsConfig((20, 14), binning="count", window_ms=(1.5, 30.0), bin_value="count", cap=3), 7, (2, 7, 20)),
]


@pytest.mark.parametrize("cfg,T,shape", CASES)
def test_binning_matches_numpy_reference(cfg, T, shape):
    ev = random_set(1)
    enc = EventEncoder(cfg, T, shape)
    out = enc.encode(ev, np.arange(len(ev)))
    ref, stats = reference(ev, cfg, T, shape)
    if cfg.bin_value == "count":
        assert np.array_equal(out, np.minimum(ref, cfg.cap))
        clipped = np.maximum(ref - cfg.cap, 0).sum(axis=(1, 2))
        assert np.array_equal(enc.sample_stats()[:, 4], clipped)
    else:
        assert np.array_equal(np.unpackbits(out, axis=2, count=ref.shape[2]), (ref > 0).astype(np.uint8))
    assert np.array_equal(enc.sample_stats()[:, :4], stats)
    tot = enc.input_events()
    assert tot["in_window"] == tot["delivered"] + tot["merged"]
    assert tot["in_files"] == ev.n_events and tot["in_window"] < tot["in_files"] if cfg.window_ms else True


def test_frames_are_spike_counts_over_ticks():
    cfg, T, shape = CASES[0]
    ev = random_set(2)
    enc = EventEncoder(cfg, T, shape)
    ref, _ = reference(ev, cfg, T, shape)
    frames = enc.frames(ev, batch=4)
    c, h, w = shape
    expect = (ref > 0).sum(axis=1).reshape(len(ev), h, w, c).transpose(0, 3, 1, 2)
    assert frames.dtype == np.uint8 and np.array_equal(frames, expect)


def test_independent_of_batching_and_order():
    cfg, T, shape = CASES[3]
    ev = random_set(3, n_rec=11)
    whole = EventEncoder(cfg, T, shape)
    ref = whole.encode(ev, np.arange(11))
    parts = EventEncoder(cfg, T, shape)
    order = np.random.default_rng(0).permutation(11)
    for chunk in np.array_split(order, 4):
        assert np.array_equal(parts.encode(ev[chunk], chunk), ref[chunk])
    assert np.array_equal(parts.sample_stats(), whole.sample_stats())
    assert parts.input_events() == whole.input_events()


def test_aer_bytes_by_hand():
    """Two recordings on a 4 x 2 sensor, merged polarity, 3 ticks by time, input 1 x 2 x 4 = 8 lines."""
    r0 = Recording(np.array([0, 0, 3, 1], np.uint16), np.array([0, 0, 1, 1], np.uint16),
                   np.array([0, 1, 5, 8], np.int64), np.array([1, 0, 1, 1], np.uint8))
    r1 = Recording(np.array([2], np.uint16), np.array([0], np.uint16), np.array([7], np.int64),
                   np.array([0], np.uint8))
    enc = EventEncoder(EventsConfig((4, 2), polarity="merged"), 3, (1, 2, 4))
    enc.encode(EventSet.concat([r0, r1]), np.array([0, 1]))
    # r0: window [0, 9), tick = t * 3 // 9: t 0, 1 -> tick 0 line 0 (one word, one merged), t 5 -> tick 1
    # line 7, t 8 -> tick 2 line 5: 3 words; r1: one event, one word
    assert enc.input_events() == {"in_files": 5, "in_window": 5, "delivered": 4, "merged": 1}
    # a word = 3 address bits (8 lines) + 2 tick bits (3 ticks) = 5 bits: r0 15 bits -> 2 bytes, r1 1 byte
    link = enc.host_link(8, 2)
    assert link["aer"]["word_bits"] == 5 and link["aer"]["words"] == 4
    assert link["bytes_in_total"] == 3 and link["bytes_in_per_sample"] == 1.5
    assert link["aer"]["frame_bytes_per_sample"] == 3        # T x ceil(8 / 8)


def net_yaml(**encoder):
    return {"name": "ev", "input_shape": [2, 17, 17], "time_steps": 8,
            "encoder": {"kind": "events", "sensor": [34, 34], **encoder},
            "layers": [{"type": "flatten"}, {"name": "fc", "type": "fc", "out": 10}]}


def test_config_parses_and_rejects():
    net = parse_net(net_yaml(window_ms=[0, 150], binning="count"), "n.yaml")
    assert net.encoder.events == EventsConfig((34, 34), "split", (0.0, 150.0), "count", "spike", 1)
    assert "events" not in parse_net({**net_yaml(), "encoder": {"kind": "rate"}}, "n.yaml").to_dict()["encoder"]
    for enc, match in (({"polarity": "merged"}, r"n\.yaml: input_shape: expected 1 channel\(s\)"),
                       ({"sensor": [16, 16]}, r"input_shape: expected at most the 16 x 16 sensor"),
                       ({"window_ms": [0, 0]}, r"encoder\.window_ms: expected null .* length > 0"),
                       ({"cap": 3}, r"encoder\.cap: expected 1 \(or omitted\) with bin_value: spike"),
                       ({"bin_value": "count", "cap": 300}, r"encoder\.cap: 300 does not fit encoder\.input_bits 8"),
                       ({"binning": "rate"}, r"encoder\.binning: expected one of 'time', 'count'")):
        with pytest.raises(ConfigError, match=match):
            parse_net(net_yaml(**enc), "n.yaml")
    with pytest.raises(ConfigError, match=r"encoder\.sensor: unknown key"):
        parse_net({**net_yaml(), "encoder": {"kind": "rate", "sensor": [34, 34]}}, "n.yaml")
