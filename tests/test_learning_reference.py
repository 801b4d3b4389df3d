"""One learning tick of a conv layer against a plain-Python reference, bit for bit.

The reference gates neuron by neuron (the order of the paper's equations),
then draws each output position's fractional pulses by geometric skipping
over its (window row, gated channel) pairs with its own Python formula; the
kernel writes them row by row. Both must give the same weights, biases and
counters, because every random draw is addressed by (sample, tick, group or
pair) and a shared conv cell sees its updates in ascending output position
either way. (That skipping is statistically per-pair Bernoulli is
tests/test_sparse_draws.py's job.) Covered: fractional sign pulses, exact mode with
stochastic rounding, write noise, saturation, shared cells, bias updates,
the dead zone in spikes, multi-bit inputs scaled to their full scale and
the threshold trim (with clips at its window).
"""
import math

import numpy as np
import pytest

from chipsim.core.chip import Chip
from chipsim.config import LearningConfig, parse_net
from chipsim.core.kernels import layout as K
from chipsim.core.kernels.rng import fast_normal, hash4, mix64
from chipsim.core.learning import setup_learning

from tiny import bundle

T = 3
UNIT = 1.0 / 9007199254740992.0


def unit(bits) -> float:
    return float(int(bits) >> 11) * UNIT


def stochastic_round(x: float, bits) -> int:
    return int(math.floor(x + unit(bits)))


GOLDEN = 0x9E3779B97F4A7C15
SALT = 0x736B69702D647261
MASK = (1 << 64) - 1


def skip_fired(ekey, t, group, total, q, ratios=None) -> set:
    """Indices (0..total-1) that fire in one skip group of sample 0, tick t: gaps
    floor(log(1 - u) / log(1 - q)) between firing pairs, u the stream's draws 1, 3, 5, ...;
    with `ratios`, a candidate at f fires when draw 2, 4, 6, ... is below ratios[f]."""
    fired = set()
    if q <= 0:
        return fired
    stream = int(hash4(np.uint64(int(ekey) ^ SALT), 0, t, group))
    draw = lambda j: unit(mix64(np.uint64((stream + GOLDEN * (j + 1)) & MASK)))  # noqa: E731
    f, k = 0, 0
    while True:
        f += math.floor(math.log1p(-draw(2 * k)) / math.log1p(-q))
        if f >= total:
            return fired
        if ratios is None or draw(2 * k + 1) < ratios[f]:
            fired.add(f)
        f += 1
        k += 1


def make_chip(weight_bits=5):
    data = {"name": "c", "input_shape": [2, 4, 4], "time_steps": T, "encoder": {"kind": "direct", "input_bits": 3},
            "chip": {"weight_bits": weight_bits},
            "layers": [{"name": "conv", "type": "conv", "out": 3, "kernel": 3, "padding": 1}]}
    net = parse_net(data, "<conv>")
    rng = np.random.default_rng(11)
    w = rng.integers(-15, 16, (3, 2, 3, 3))
    b = rng.integers(-4, 5, 3)
    return Chip(net, bundle(net, [w], biases=[b], thresholds=[40]))


def reference(chip, cfg, setup, x, targets, U, C, write_noise):
    """Expected weights/biases/counters after the single learning tick t = T - 1 (warm-up T - 1)."""
    W = chip.registers.weights.astype(np.int64).copy()
    bias = chip.registers.bias.astype(np.int64).copy()
    theta = chip.registers.theta.astype(np.int64)
    theta_after = theta.copy()
    layer = chip.layers[0]
    out_c, oh, ow = layer.out_shape
    in_c, ih, iw = layer.in_shape
    k, fan_in = 3, layer.fan_in
    wmax = chip.chip.weight_max
    bmax = chip.chip.bias_max
    t, t1 = T - 1, T
    R = (1 << cfg.target_bits) - 1
    nkey, ekey = setup.lkeys[0]
    p_q = int(round(cfg.p * 65536))
    dead = math.floor(cfg.dead_zone * R * t1 + cfg.dead_zone_spikes * R)
    X = 7 if cfg.multibit_input == "scale" else 1          # input_bits 3: full scale 7
    gain = cfg.lr * 2.0 / t1 * 65536.0 / p_q
    counts = dict(pulses=0, cells=set(), wsat=0, bias_writes=0, boxcar=0, sign=0, noise=0, th_writes=0,
                  rows=0, row_set=0, row_reset=0, row_rmw=0)
    row_max = {}                                 # (position, row) -> [largest SET, largest RESET] pulses
    nominal = int(chip.threshold_nominal[0])
    th_step = cfg.threshold_pulse * nominal
    th_lo = max(1, math.floor(nominal * (1 - cfg.threshold_range)))
    th_hi = math.ceil(nominal * (1 + cfg.threshold_range))

    def clip(v, bound):
        if v > bound or v < -bound:
            counts["wsat"] += 1
        return max(-bound, min(bound, v))

    n = out_c * oh * ow
    P = oh * ow
    gated = []                                   # (neuron, sign, error) in ascending neuron order
    for i in range(n):
        if 2 * abs(int(U[i]) - int(theta[i])) * 65536 >= p_q * theta[i]:
            continue
        counts["boxcar"] += 1
        diff = int(targets[i]) * t1 - int(C[i]) * R
        if -dead <= diff <= dead:
            continue
        counts["sign"] += 1
        gated.append((i, 1 if diff > 0 else -1, diff / (R * t1)))
    # threshold trim: whole steps plus a fraction drawn by skipping over the gated neurons (group P + 1)
    if th_step > 0:
        extra = skip_fired(ekey, t, P + 1, len(gated), th_step - math.floor(th_step))
        for m, (i, sgn, err) in enumerate(gated):
            d = math.floor(th_step) + (m in extra)
            if d != 0:
                v = theta[i] - d if sgn > 0 else theta[i] + d
                if not th_lo <= v <= th_hi:
                    counts["wsat"] += 1
                theta_after[i] = min(th_hi, max(th_lo, v))
                counts["th_writes"] += 1
    if cfg.bias:
        b_pulse = cfg.pulse * X
        extra = skip_fired(ekey, t, P, len(gated), b_pulse - math.floor(b_pulse))
        for m, (i, sgn, err) in enumerate(gated):
            co = i % out_c
            if cfg.mode == "exact":
                db = stochastic_round(gain * err * X * X, hash4(ekey, 0, t, n * fan_in + i))
            else:
                db = sgn * (math.floor(b_pulse) + (m in extra))
            if db != 0:
                bias[co] = clip(bias[co] + db, bmax)
                counts["bias_writes"] += 1
    levels_f = cfg.pulse                         # register levels per pulse (weight_step 1)
    fractional = cfg.mode == "sign" and not (X > 1 and levels_f >= 1) and \
        not (levels_f == int(levels_f) and levels_f > 0 and X == 1)

    def write(i, row, v, levels, sgn):
        pair = i * fan_in + row
        delta = sgn * levels
        if write_noise > 0:
            scale = 1.0 + write_noise * fast_normal(np.uint64(hash4(nkey, 0, t, 2 * pair)))
            delta = stochastic_round(delta * scale, hash4(nkey, 0, t, 2 * pair + 1))
            counts["noise"] += 1
        cell = row * out_c + i % out_c
        W[cell] = clip(W[cell] + delta, wmax)
        counts["pulses"] += levels
        counts["cells"].add(cell)
        pm = row_max.setdefault((i // out_c, row), [0, 0])
        pm[0 if sgn > 0 else 1] = max(pm[0 if sgn > 0 else 1], levels)

    for pos in range(P):                          # output positions in ascending order
        chans = [(i, sgn, err) for (i, sgn, err) in gated if i // out_c == pos]
        if not chans:
            continue
        oy, ox = divmod(pos, ow)
        window = []                               # (row, input value) of the active inputs, rows ascending
        for ky in range(k):
            for kx in range(k):
                y, x_ = oy - 1 + ky, ox - 1 + kx
                if not (0 <= y < ih and 0 <= x_ < iw):
                    continue
                for c in range(in_c):
                    v = int(x[(y * iw + x_) * in_c + c])
                    if v != 0:
                        window.append(((ky * k + kx) * in_c + c, v))
        g = len(chans)
        if fractional:   # pairs f = r * g + m of this position's group, fired by skipping
            ratios = [v / X for (_, v) in window for _ in range(g)] if X > 1 else None
            extra = skip_fired(ekey, t, pos, len(window) * g, levels_f - math.floor(levels_f), ratios)
            for r, (row, v) in enumerate(window):
                for m, (i, sgn, err) in enumerate(chans):
                    levels = math.floor(levels_f) + (r * g + m in extra)
                    if levels:
                        write(i, row, v, levels, sgn)
            continue
        for row, v in window:
            for i, sgn, err in chans:
                pair = i * fan_in + row
                if cfg.mode == "exact":
                    levels = stochastic_round(gain * err * v, hash4(ekey, 0, t, pair))
                else:
                    pulse = cfg.pulse * v / X if X > 1 else cfg.pulse
                    levels = int(pulse)
                    frac = pulse - levels
                    if frac > 0 and unit(hash4(ekey, 0, t, pair)) < frac:
                        levels += 1
                if levels < 0:
                    levels, s = -levels, -1
                else:
                    s = 1
                if levels != 0:
                    write(i, row, v, levels, s * (sgn if cfg.mode == "sign" else 1))
    for up, down in row_max.values():           # NeuroSim row writes: largest SET / RESET pulses per row
        counts["rows"] += 1
        counts["row_set"] += up
        counts["row_reset"] += down
        counts["row_rmw"] += max(up, down)
    return W, bias, theta_after, counts


@pytest.mark.parametrize("mode,pulse,lr,write_noise,multibit,spikes,th", [
    ("sign", 1.6, 0.0, 0.0, "count", 0.0, 0.0), ("sign", 0.7, 0.0, 0.4, "count", 0.0, 0.0),
    ("sign", 1.0, 0.0, 0.0, "count", 0.0, 0.0), ("sign", 2.0, 0.0, 0.3, "count", 0.0, 0.0),
    ("exact", 1.0, 3.0, 0.3, "count", 0.0, 0.0),
    ("sign", 2.0, 0.0, 0.0, "scale", 0.0, 0.0), ("sign", 5.6, 0.0, 0.3, "scale", 0.4, 0.0),
    ("exact", 1.0, 0.5, 0.0, "scale", 0.0, 0.0), ("sign", 1.6, 0.0, 0.0, "count", 0.4, 0.0),
    ("sign", 1.6, 0.0, 0.0, "count", 0.0, 0.037), ("exact", 1.0, 3.0, 0.3, "count", 0.0, 0.1),
    ("sign", 0.9, 0.0, 0.3, "scale", 0.0, 0.0), ("sign", 0.8, 0.0, 0.0, "scale", 0.4, 0.037)])
def test_conv_learning_tick_matches_reference(mode, pulse, lr, write_noise, multibit, spikes, th):
    x = np.random.default_rng(5).integers(0, 8, (1, 32)).astype(np.int32)
    x[0, ::5] = 0                                   # some silent inputs: no pulse on their rows
    probe = make_chip()
    rec = probe.run(x, record=("spikes", "membrane"))
    U = rec.membrane[0, T - 1]
    C = (rec.spikes[0] == 1).sum(axis=0)
    targets = np.random.default_rng(6).integers(0, 4, (1, 48))

    chip = make_chip()
    chip.write_noise = (write_noise, np.array([np.uint64(987654321)]))
    cfg = LearningConfig(enabled=True, mode=mode, pulse=pulse, lr=lr, p=1.5, warmup=T - 1, target_bits=2,
                         dead_zone=0.1, bias=True, multibit_input=multibit, dead_zone_spikes=spikes,
                         threshold_pulse=th, threshold_range=0.05)
    setup = setup_learning(chip, cfg, seed=3)
    W_ref, b_ref, th_ref, counts = reference(chip, cfg, setup, x[0], targets[0], U, C, write_noise)
    res = chip.run(x, learning=setup, targets=targets)
    c = res.counters[0, T - 1, 0]
    assert counts["sign"] > 5 and counts["pulses"] > 20, "the case must exercise the circuit"
    assert np.array_equal(chip.registers.weights.astype(np.int64), W_ref)
    assert np.array_equal(chip.registers.bias.astype(np.int64), b_ref)
    assert c[K.C_BOXCAR] == counts["boxcar"] * 18 and c[K.C_SIGN] == counts["sign"] * 18
    assert c[K.C_PULSES] == counts["pulses"]
    assert c[K.C_CELL_WRITES] == len(counts["cells"])
    assert c[K.C_W_SAT] == counts["wsat"]
    assert c[K.C_BIAS_WRITES] == counts["bias_writes"]
    assert c[K.C_WRITE_NOISE] == counts["noise"]
    assert np.array_equal(chip.registers.theta.astype(np.int64), th_ref)
    assert c[K.C_THRESHOLD_WRITES] == counts["th_writes"]
    assert c[K.C_WRITE_ROWS] == counts["rows"] and counts["rows"] > 0
    assert (c[K.C_ROW_SET], c[K.C_ROW_RESET], c[K.C_ROW_RMW]) == \
        (counts["row_set"], counts["row_reset"], counts["row_rmw"])
    if th > 0:       # the trim must have acted: some thresholds moved, and some hit the 5 % window
        assert counts["th_writes"] > 3 and not np.array_equal(th_ref, probe.registers.theta)
        if th >= 0.1:          # a step of 4 LSBs against a window of +-2: every write clips
            assert counts["wsat"] > 0
