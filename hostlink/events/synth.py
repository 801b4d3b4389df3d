"""A synthetic event camera: images moved along N-MNIST's saccades, seen by a DVS pixel model.

N-MNIST (Orchard et al. 2015) was recorded by moving an ATIS sensor in front of
a screen along three saccades that trace a triangle, ~100 ms each, the 28 x 28
digit filling most of the 34 x 34 field of view.  This module imitates that
for any small grey image (the bundled 8 x 8 digits; hostlink/data/make_digits_dvs.py):

1. the image (0..pixel_max) is upscaled bilinearly to `size` x `size` and put
   on the `sensor` x `sensor` field at `origin`, on a screen of brightness
   I = black + (1 - black) * pixel / pixel_max;
2. the sensor moves along `saccades` (pixel offsets, straight lines at
   constant speed, `saccade_ms` each); every `dt_us` the field is sampled
   bilinearly at the moved position;
3. each pixel keeps a reference log intensity L_ref (the value at its last
   event): when |log I - L_ref| >= its contrast threshold and the pixel is
   not refractory (`refractory_us` after its last event), it emits one event
   of that sign at a time drawn uniformly inside the step and moves L_ref by
   one threshold towards log I.  Thresholds are `threshold` times a fixed
   per-pixel mismatch factor, 1 + `threshold_sigma` * N(0, 1), drawn once for
   the sensor (seed `seed`, stream 'sensor');
4. background activity: every pixel fires noise events of random polarity as
   a Poisson process of `noise_hz`.

Every draw of recording i comes from ``np.random.default_rng([seed, i])``, so a
recording does not depend on which others are generated or in what order.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class DVSParams:
    sensor: int = 34                  #: sensor side (pixels), N-MNIST's 34
    size: int = 28                    #: upscaled image side, N-MNIST's 28
    origin: tuple[float, float] = (1.0, 1.0)        #: (x, y) of the image's corner at rest
    #: sensor offsets (x, y) in pixels the saccades run through: a triangle, back to the start
    saccades: tuple[tuple[float, float], ...] = ((0.0, 0.0), (2.0, 4.0), (4.0, 0.0), (0.0, 0.0))
    saccade_ms: float = 100.0
    dt_us: int = 500                  #: simulation step
    black: float = 0.1                #: screen brightness of a zero pixel (relative to full)
    threshold: float = 0.35           #: log-intensity contrast threshold
    threshold_sigma: float = 0.05     #: per-pixel threshold mismatch (relative)
    refractory_us: int = 1000
    noise_hz: float = 0.2             #: background events per pixel per second
    seed: int = 20260601

    def to_dict(self) -> dict:
        return asdict(self)


def upscale(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a 2-D array to size x size (pixel centres aligned)."""
    h, w = image.shape
    ys = (np.arange(size) + 0.5) * h / size - 0.5
    xs = (np.arange(size) + 0.5) * w / size - 0.5
    return _sample(image.astype(np.float64), ys[:, None] + 0 * xs[None, :], xs[None, :] + 0 * ys[:, None])


def _sample(img: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Bilinear samples of img at (ys, xs); 0 outside."""
    h, w = img.shape
    pad = np.zeros((h + 2, w + 2))
    pad[1:-1, 1:-1] = img
    ys = np.clip(ys + 1, 0, h + 0.999999)
    xs = np.clip(xs + 1, 0, w + 0.999999)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = ys - y0, xs - x0
    y1, x1 = np.minimum(y0 + 1, h + 1), np.minimum(x0 + 1, w + 1)
    return ((1 - fy) * ((1 - fx) * pad[y0, x0] + fx * pad[y0, x1]) + fy * ((1 - fx) * pad[y1, x0] + fx * pad[y1, x1]))


def sensor_thresholds(params: DVSParams) -> np.ndarray:
    rng = np.random.default_rng([params.seed, 0x73656E])      # 'sen': the sensor, not any recording
    f = 1.0 + params.threshold_sigma * rng.standard_normal((params.sensor, params.sensor))
    return params.threshold * np.maximum(f, 0.2)


def recording(image: np.ndarray, pixel_max: int, index: int, params: DVSParams,
              thresholds: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Events (x, y, t [us], p) of one image, sorted by time."""
    p = params
    rng = np.random.default_rng([p.seed, int(index)])
    th = sensor_thresholds(p) if thresholds is None else thresholds
    big = upscale(image / pixel_max, p.size)
    field = np.zeros((p.sensor, p.sensor))       # the screen in sensor coordinates at rest
    field[:, :] = 0.0
    grid_y, grid_x = np.mgrid[0:p.sensor, 0:p.sensor].astype(np.float64)
    vertices = np.asarray(p.saccades, np.float64)
    total_us = int(round(p.saccade_ms * 1000)) * (len(vertices) - 1)
    steps = total_us // p.dt_us

    def log_intensity(t_us: float) -> np.ndarray:
        seg = min(int(t_us // (p.saccade_ms * 1000)), len(vertices) - 2)
        f = (t_us - seg * p.saccade_ms * 1000) / (p.saccade_ms * 1000)
        dx, dy = vertices[seg] + f * (vertices[seg + 1] - vertices[seg])
        img = _sample(big, grid_y - p.origin[1] - dy, grid_x - p.origin[0] - dx)
        return np.log(p.black + (1.0 - p.black) * img)

    ref = log_intensity(0.0)
    last = np.full(ref.shape, -10 ** 9, np.int64)
    xs, ys, ts, ps = [], [], [], []
    for k in range(1, steps + 1):
        t_end = k * p.dt_us
        diff = log_intensity(t_end) - ref
        fire = (np.abs(diff) >= th) & (t_end - last >= p.refractory_us)
        if fire.any():
            iy, ix = np.nonzero(fire)
            sign = np.sign(diff[iy, ix])
            t = t_end - p.dt_us + rng.integers(0, p.dt_us, iy.size)
            ref[iy, ix] += sign * th[iy, ix]
            last[iy, ix] = t
            xs.append(ix); ys.append(iy); ts.append(t); ps.append((sign > 0).astype(np.uint8))
    n_noise = rng.poisson(p.noise_hz * total_us * 1e-6 * p.sensor * p.sensor)
    xs.append(rng.integers(0, p.sensor, n_noise)); ys.append(rng.integers(0, p.sensor, n_noise))
    ts.append(rng.integers(0, total_us, n_noise)); ps.append(rng.integers(0, 2, n_noise).astype(np.uint8))
    x, y, t, pol = (np.concatenate(a) for a in (xs, ys, ts, ps))
    order = np.argsort(t, kind="stable")
    return x[order].astype(np.uint16), y[order].astype(np.uint16), t[order].astype(np.int64), pol[order]
