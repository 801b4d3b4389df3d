"""Results do not depend on batch size or on the number of numba threads.

(a) Chip.run directly: the bundled digits net (direct encoder) and a small random
    conv net fed by the rate encoder (keyed by global sample index), one sample at
    a time vs 64 at once, 1 thread vs 2 threads: predictions, counters, recorded
    membrane and spikes bit-identical.
    Also with dynamic noise (thermal, per-tick silence), which is keyed by the global
    sample id: passing the same ids must give the same draws whatever the batch.
(b) The same through chipsim.workflows.runner.run_inference (batch_size 1 vs 64, 1 vs 2 threads),
    without and with noise.
"""
from __future__ import annotations

import contextlib

import numba
import numpy as np
import pytest
import yaml

from chipsim.core.chip import Chip
from chipsim.config import load_net, parse_net
from chipsim.hostlink.datasets import load_dataset
from chipsim.hostlink.encoders import Encoder
from chipsim.core.kernels import layout as K
from chipsim.models import resolve_net
from chipsim.noise import apply_noise
from chipsim.workflows.runner import RunOptions, run_inference
from chipsim.core.weights import load_weights, random_weights

N = 64
THREADS = (1, min(2, numba.config.NUMBA_NUM_THREADS))
DYNAMIC_NOISE = ("thermal=0.2", "silence=0.2", "silence.scope=tick")


@contextlib.contextmanager
def numba_threads(n: int):
    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _conv_net_cfg() -> dict:
    return {
        "name": "rate_conv",
        "input_shape": [1, 8, 8],
        "time_steps": 12,
        "encoder": {"kind": "rate", "max_rate": 0.8},
        "neuron": {"model": "LIF", "alpha": 0.9, "reset": "subtract"},
        "layers": [
            {"name": "conv1", "type": "conv", "out": 4, "kernel": 3, "padding": 1},
            {"name": "pool1", "type": "pool", "kernel": 2, "kind": "avg"},
            {"name": "conv2", "type": "conv", "out": 6, "kernel": 3, "stride": 2, "padding": 1},
            {"type": "flatten"},
            {"name": "fc3", "type": "fc", "out": 10},
        ],
        "readout": "count",
        "chip": {"tile_rows": 16, "tile_cols": 4, "membrane_bits": 16, "counter_bits": 4},
        "data": "digits",
    }


def _digits_case():
    net = load_net(resolve_net("digits"))
    chip = Chip(net, load_weights(net.weights))
    data = load_dataset("digits", "test", limit=N)
    enc = Encoder("direct", net.time_steps, data.pixel_max, net.encoder.input_bits)
    ids = np.arange(N)
    batch = enc.encode(data.images, ids)
    singles = [enc.encode(data.images[i:i + 1], ids[i:i + 1]) for i in range(N)]
    return chip, batch, singles


def _digits_noisy_case():
    chip, batch, singles = _digits_case()
    apply_noise(chip, DYNAMIC_NOISE + ("mismatch=0.1",), seed=4)
    return chip, batch, singles


def _rate_conv_case():
    net = parse_net(_conv_net_cfg(), "test")
    chip = Chip(net, random_weights(net, seed=11, rate_target=0.2))
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(N, 1, 8, 8), dtype=np.uint8)
    enc = Encoder("rate", net.time_steps, 255, max_rate=net.encoder.max_rate, key=0xC0FFEE)
    ids = np.arange(N)
    batch = enc.encode(images, ids)
    singles = [enc.encode(images[i:i + 1], ids[i:i + 1]) for i in range(N)]
    # the encoding itself is batch independent
    np.testing.assert_array_equal(np.concatenate(singles), batch)
    return chip, batch, singles


def _rate_conv_noisy_case():
    chip, batch, singles = _rate_conv_case()
    apply_noise(chip, DYNAMIC_NOISE, seed=9)
    return chip, batch, singles


CASES = {"digits": _digits_case, "rate_conv": _rate_conv_case, "digits_noisy": _digits_noisy_case,
         "rate_conv_noisy": _rate_conv_noisy_case}


def _fields(res):
    return {"predictions": res.predictions, "counts": res.counts, "potentials": res.potentials,
            "counters": res.counters, "membrane": res.membrane, "spikes": res.spikes}


def _assert_same(a: dict, b: dict, what: str) -> None:
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=f"{what}: {key} differs")


@pytest.mark.parametrize("case", sorted(CASES))
def test_chip_batch_size_and_threads_do_not_change_results(case):
    chip, batch, singles = CASES[case]()
    record = ("spikes", "membrane")
    results = {}
    ids = np.arange(N)
    for threads in THREADS:
        with numba_threads(threads):
            results[("batch", threads)] = _fields(chip.run(batch, record, sample_ids=ids))
    # one sample per call uses one thread whatever the setting (and 2-thread launches of a
    # 1-sample batch are slow on a loaded 2-core CI machine)
    with numba_threads(1):
        ones = [_fields(chip.run(x, record, sample_ids=ids[i:i + 1])) for i, x in enumerate(singles)]
        results[("single", 1)] = {k: np.concatenate([o[k] for o in ones]) for k in ones[0]}
    ref = results[("batch", THREADS[-1])]
    assert ref["counters"].sum() > 0 and ref["spikes"].any(), "the case must do some work"
    for key, value in results.items():
        _assert_same(ref, value, f"{case} {key} vs batch of {N} on {THREADS[-1]} threads")
    if case.endswith("noisy"):
        # the noise is really on, and keyed by the sample id (not the batch position)
        silenced = ref["counters"][..., K.C_SILENCED]
        assert silenced.sum() > 0
        shifted = _fields(chip.run(batch, record, sample_ids=ids + 1000))
        assert not np.array_equal(shifted["membrane"], ref["membrane"])


def test_thread_count_is_restored():
    before = numba.get_num_threads()
    with numba_threads(1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before


# --------------------------------------------------------------------------- through the runner


def _outcome_fields(out):
    layers = {name: {k: v for k, v in stats.items() if isinstance(v, int)}
              for name, stats in out.summary["layers"].items()}
    return {"predictions": out.predictions, "labels": out.labels, "counters": out.counters,
            "counters_per_sample": out.counters_per_sample, "layers": layers,
            "accuracy": out.summary["accuracy"]}


@pytest.mark.parametrize("noise", [(), DYNAMIC_NOISE + ("mismatch=0.2",)], ids=["ideal", "noisy"])
@pytest.mark.parametrize("net_kind", ["digits", "rate_conv"])
def test_runner_batch_size_and_threads_do_not_change_results(net_kind, noise, tmp_path):
    if net_kind == "digits":
        opts = dict(net="digits")
    else:
        path = tmp_path / "rate_conv.yaml"
        path.write_text(yaml.safe_dump(_conv_net_cfg()))
        opts = dict(net=str(path), weights="random", seed=3)
    runs = {}
    for bs, threads in ((1, 1), (N, 1), (N, THREADS[-1]), (7, THREADS[-1])):
        with numba_threads(threads):
            out = run_inference(RunOptions(samples=100, batch_size=bs, noise=noise, **opts))
            runs[(bs, threads)] = _outcome_fields(out)
    ref = runs[(N, THREADS[-1])]
    assert ref["counters"].sum() > 0
    for key, value in runs.items():
        for field in ref:
            if isinstance(ref[field], np.ndarray):
                np.testing.assert_array_equal(ref[field], value[field], err_msg=f"{net_kind} {key}: {field}")
            else:
                assert ref[field] == value[field], f"{net_kind} {key}: {field}"
