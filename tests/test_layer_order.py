"""The kernel runs each layer for all T ticks before the next layer (kernels/forward.py), which keeps a
layer's weights in cache. That must give what running every layer at each tick in turn gives, bit for
bit, including online learning (weights change tick by tick), delay mode, dynamic noise, the replayed
direct-input first layer and recorded traces.

The tick-major driver below calls the same jitted layer kernels from Python in tick order, reading
the first layer afresh every tick (no replay), and stands in for the kernel's run_samples."""
import numpy as np
import pytest

import chipsim.core.chip as chip_module
from chipsim.core.chip import Chip
from chipsim.config import LearningConfig, parse_net
from chipsim.core.kernels import layout as K
from chipsim.core.kernels.forward import decode_packed, layer_fire, layer_read
from chipsim.core.kernels.learning import learn_layer
from chipsim.core.learning import setup_learning
from noise import apply_noise

from tiny import bundle


def tick_major_run_samples(start, stop, desc, W, bias, theta, leak_a, enabled, params, tile_rows, acc, noise_f,
                           noise_k, sample_ids, in_packed, in_direct, U, S, C, counters, rec_S, rec_U,
                           learn, targets, lparams, lkeys, wlim, write_sigma, dev, written):
    T, L, n_in = int(params[K.P_T]), desc.shape[0], int(params[K.P_N_IN])
    delay, direct = params[K.P_DELAY] != 0, params[K.P_DIRECT] != 0
    max_n, limit, warmup = int(params[K.P_MAX_N]), params[K.P_ACC_LIMIT], int(params[K.P_WARMUP])
    disabled = np.array([int((enabled[desc[li, K.N_OFF]:desc[li, K.N_OFF] + desc[li, K.N_OUT]] == 0).sum())
                         for li in range(L)], np.int64)
    for b in range(start, stop):
        U[b], S[b], C[b] = 0, 0, 0
        cur, accum = np.empty(max_n, np.int32), np.empty(max_n, acc.dtype)
        lists, n_list = np.empty(U.shape[1], np.int32), np.zeros(L, np.int64)
        in_events, in_values = np.empty(n_in, np.int32), np.zeros(n_in, np.int32)
        nz = np.flatnonzero(in_direct[b]) if direct else np.zeros(0, np.int64)
        in_events[:len(nz)], in_values[:len(nz)] = nz, in_direct[b, nz] if direct else 0
        pos_start = np.zeros(max(max_n, n_in) + 1, np.int64)
        gsel, gerr = np.empty(max_n, np.int64), np.empty(max_n, np.float64)
        for t in range(T):
            t_in = t - 1 if delay else t
            n_host = 0
            if t_in >= 0:
                n_host = len(nz) if direct else decode_packed(in_packed[b, t_in], n_in, in_events)
            for step in range(L):
                li = L - 1 - step if delay else step
                row = counters[b, t, li]
                if li == 0:
                    events, values, n_ev, multibit = in_events, in_values, n_host, direct
                else:
                    off, n_ev = desc[li - 1, K.N_OFF], n_list[li - 1]
                    events, values, multibit = lists[off:off + n_ev], np.zeros(1, np.int32), False
                layer_read(li, desc, W, bias, params, cur, accum, events, values, n_ev, multibit, limit,
                           tile_rows, row)
                off, n = desc[li, K.N_OFF], desc[li, K.N_OUT]
                n_list[li] = layer_fire(li, desc, theta, leak_a, enabled, params, U[b], S[b], C[b], cur, accum,
                                        lists[off:off + n], row, noise_f, noise_k, sample_ids[b], t, disabled)
                if learn and t >= warmup and lparams[li, K.L_ON] != 0.0:
                    learn_layer(li, desc, W, bias, theta, U[b], C[b], events, values, n_ev, multibit, targets[b],
                                lparams[li], t + 1, params[K.P_TARGET_MAX], wlim[li, 0], wlim[li, 1],
                                params[K.P_BIAS_MAX], write_sigma, lkeys[li, 0], lkeys[li, 1], sample_ids[b], t,
                                pos_start, gsel, gerr, written, row, dev)
            if params[K.P_RECORD] & 1:
                rec_S[b, t, :] = S[b, :]
            if params[K.P_RECORD] & 2:
                rec_U[b, t, :] = U[b, :]


def conv_net(delay: bool, encoder: str, pool: str):
    return parse_net({
        "name": "order", "input_shape": [2, 6, 6], "time_steps": 7,
        "encoder": {"kind": encoder, "input_bits": 4},
        "neuron": {"model": "LIF", "alpha": 0.875, "reset": "subtract"},
        "chip": {"weight_bits": 6, "delay": delay, "tile_rows": 8, "tile_cols": 4},
        "layers": [{"name": "conv1", "type": "conv", "out": 4, "kernel": 3, "padding": 1},
                   {"name": "pool1", "type": "pool", "kind": pool, "kernel": 2},
                   {"name": "conv2", "type": "conv", "out": 5, "kernel": 3, "padding": 1, "stride": 2},
                   {"type": "flatten"},
                   {"name": "fc3", "type": "fc", "out": 6},
                   {"name": "fc4", "type": "fc", "out": 3}]}, "<order>")


def make_chip(delay: bool, encoder: str, pool: str, seed: int) -> Chip:
    net = conv_net(delay, encoder, pool)
    rng = np.random.default_rng(seed)
    weights = [rng.integers(-12, 20, (layer.out_shape[0], layer.fan_in)) for layer in net.weighted_layers]
    return Chip(net, bundle(net, weights, thresholds=[40, 30, 25, 20]))


def inputs(chip: Chip, encoder: str, batch: int, rng: np.random.Generator) -> np.ndarray:
    if encoder == "direct":
        return rng.integers(0, 16, (batch, chip.n_inputs)).astype(np.int32)
    spikes = (rng.random((batch, chip.net.time_steps, chip.n_inputs)) < 0.3).astype(np.uint8)
    return np.packbits(spikes, axis=2)


@pytest.mark.parametrize("delay", [False, True])
@pytest.mark.parametrize("encoder", ["direct", "rate"])
@pytest.mark.parametrize("learning", [False, True])
@pytest.mark.parametrize("pool", ["avg", "or"])
def test_layer_major_kernel_equals_tick_major_order(delay, encoder, learning, pool, monkeypatch):
    results = []
    for driver in ("kernel", "tick-major"):
        chip = make_chip(delay, encoder, pool, seed=3)
        apply_noise(chip, ["thermal=0.05", "silence=0.05", "silence.scope=tick"], seed=2)
        setup = targets = None
        if learning:
            config = LearningConfig(enabled=True, warmup=2, p=0.7, target_bits=3, threshold_pulse=0.05)
            setup = setup_learning(chip, config, seed=4)
            targets = np.random.default_rng(5).integers(0, 8, (6, setup.n_targets))
        x = inputs(chip, encoder, 6, np.random.default_rng(6))
        with monkeypatch.context() as m:
            if driver == "tick-major":
                m.setattr(chip_module, "run_samples", tick_major_run_samples)
                m.setattr(chip_module.numba, "get_num_threads", lambda: 1)
            res = chip.run(x, record=("spikes", "membrane"), learning=setup, targets=targets)
        r = chip.registers
        results.append((res, r.weights.copy(), r.bias.copy(), r.theta.copy()))
    (a, wa, ba, ta), (b, wb, bb, tb) = results
    assert a.counters[..., K.C_SPIKES].sum() > 0
    if learning:
        assert a.counters[..., K.C_PULSES].sum() > 0
    for name in ("predictions", "counts", "potentials", "counters", "spikes", "membrane"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(wa, wb) and np.array_equal(ba, bb) and np.array_equal(ta, tb)
    if learning:                                 # the threshold trim moved some thresholds
        assert not np.array_equal(ta, make_chip(delay, encoder, pool, seed=3).registers.theta)
