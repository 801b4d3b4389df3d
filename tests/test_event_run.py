"""Event input through `chipsim run`: the bundled digits-dvs net, results independent of batch size and
thread count, input_events and the AER host-link counts in the summary, and the mismatched-data errors."""
from __future__ import annotations

import dataclasses

import numba
import numpy as np
import pytest

from chipsim.workflows.runner import RunError, RunOptions, run_inference


def run(batch: int, threads: int, samples: int = 40):
    old = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        return run_inference(RunOptions(net="digits-dvs", samples=samples, batch_size=batch))
    finally:
        numba.set_num_threads(old)


def test_digits_dvs_runs_and_does_not_depend_on_batching_or_threads():
    a, b = run(64, 1), run(7, 2)
    assert np.array_equal(a.predictions, b.predictions)
    assert np.array_equal(a.counters, b.counters)
    ev = a.summary["input_events"]
    assert ev == b.summary["input_events"]
    assert ev["in_window"] == ev["delivered"] + ev["merged"] and ev["merged"] > 0
    link = a.summary["host_link"]
    assert link["bytes_in_total"] == b.summary["host_link"]["bytes_in_total"]
    assert link["aer"]["words"] == ev["delivered"]
    # 2 x 17 x 17 = 578 lines: 10 address bits; 32 ticks: 5 tick bits
    assert link["aer"]["word_bits"] == 15
    assert link["bytes_in_total"] <= (ev["delivered"] * 15 + 7 * 40) // 8 + 40
    assert a.summary["accuracy"] >= 0.85          # 40 test recordings of a net at 94 % on all 360


def test_event_data_needs_an_events_net():
    with pytest.raises(RunError, match=r"--data: digits-dvs: event-camera recordings, but net 'digits' has "
                                       r"encoder.kind direct; expected a net with encoder.kind: events"):
        run_inference(RunOptions(net="digits", data="digits-dvs", samples=5))
    with pytest.raises(RunError, match=r"--data: digits: not event-camera data, but net 'digits-dvs' has "
                                       r"encoder.kind events"):
        run_inference(RunOptions(net="digits-dvs", data="digits", samples=5))


def test_chip_refuses_count_bins():
    from chipsim.config import load_net
    from chipsim.core.chip import Chip, DeployError
    from chipsim.core.weights import load_weights
    from chipsim.models import resolve_net

    net = load_net(resolve_net("digits-dvs"))
    ev = dataclasses.replace(net.encoder.events, bin_value="count", cap=3)
    counted = dataclasses.replace(net, encoder=dataclasses.replace(net.encoder, events=ev))
    with pytest.raises(DeployError, match=r"encoder\.bin_value: the chip takes one-bit spikes"):
        Chip(counted, load_weights(net.weights))


def test_pretrain_sees_rate_images_and_measures_the_chip_on_events():
    from chipsim.config import load_net
    from chipsim.core.weights import load_weights
    from chipsim.hostlink.encoders import EventEncoder
    from chipsim.models import resolve_net
    from chipsim.models.pretrain import chip_accuracy, load_split

    net = load_net(resolve_net("digits-dvs"))
    frames = load_split(net, "digits-dvs", "test", 30)
    assert frames.images.shape == (30, 2, 17, 17) and frames.pixel_max == 32
    enc = EventEncoder(net.encoder.events, 32, net.input_shape)
    spikes = enc.encode(frames.events.images, np.arange(30))
    per_input = np.unpackbits(spikes, axis=2, count=578).sum(axis=1)          # (30, 578) chip order (y, x, c)
    assert np.array_equal(frames.images.transpose(0, 2, 3, 1).reshape(30, -1), per_input)
    acc, preds = chip_accuracy(net, load_weights(net.weights), frames)
    direct = run_inference(RunOptions(net="digits-dvs", samples=30))
    assert np.array_equal(preds, direct.predictions) and acc == direct.summary["accuracy"]


def test_calibration_on_events(tmp_path):
    from chipsim.workflows.calibrate import CalibOptions, run_calibration

    s = run_calibration(CalibOptions(net="digits-dvs", noise=("mismatch=0.4",), epochs=1, calib_samples=64,
                                     samples=40, batch_size=32, out=tmp_path / "cal"))
    assert s["calibration_samples"] == 64 and 0.0 <= s["accuracy_after"] <= 1.0
