"""The synthetic DVS camera behind digits-dvs: per-recording seeding, the pixel model's basic laws."""
from __future__ import annotations

import numpy as np

from chipsim.hostlink.events.formats import read_nmnist, write_nmnist
from chipsim.hostlink.events.synth import DVSParams, recording

QUICK = DVSParams(saccade_ms=20.0, dt_us=1000, noise_hz=0.0, threshold_sigma=0.0, refractory_us=3000, threshold=0.3)


def digit():
    img = np.zeros((8, 8))
    img[1:7, 3:5] = 16
    return img


def test_recording_depends_only_on_its_index():
    a = recording(digit(), 16, 5, QUICK)
    recording(digit(), 16, 4, QUICK)                  # another recording in between changes nothing
    b = recording(digit(), 16, 5, QUICK)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    c = recording(digit(), 16, 6, QUICK)
    assert not np.array_equal(a[2], c[2])             # event times are drawn per recording


def test_pixel_model_laws():
    x, y, t, p = recording(digit(), 16, 0, QUICK)
    assert len(t) > 0 and np.all(np.diff(t) >= 0) and t.max() < 60_000
    assert x.max() < 34 and y.max() < 34 and set(np.unique(p)) <= {0, 1}
    for px in set(zip(x.tolist(), y.tolist())):       # refractory: a pixel's events are >= 3 - 1 ms apart (times drawn within a step)
        mine = t[(x == px[0]) & (y == px[1])]
        assert np.all(np.diff(mine) >= QUICK.refractory_us - QUICK.dt_us)
    # a blank image does not change: no events without noise, Poisson noise with it
    assert len(recording(np.zeros((8, 8)), 16, 0, QUICK)[2]) == 0
    noisy = DVSParams(saccade_ms=20.0, dt_us=1000, noise_hz=50.0)
    n = len(recording(np.zeros((8, 8)), 16, 0, noisy)[2])
    expect = 50.0 * 0.06 * 34 * 34                      # rate x 60 ms x pixels = 173
    assert abs(n - expect) < 4 * np.sqrt(expect)
    # written as N-MNIST and read back unchanged
    back = read_nmnist(write_nmnist(x, y, t, p), "r.bin")
    assert np.array_equal(back.t, t) and np.array_equal(back.x, x) and np.array_equal(back.p, p)
