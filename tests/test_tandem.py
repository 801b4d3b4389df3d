"""Tandem learning (`chipsim pretrain --method tandem`, models/tandem.py)."""
from __future__ import annotations

import numpy as np
import pytest

from chipsim.config import parse_net
from chipsim.core.weights import load_weights
from chipsim.models.tandem import approx_count

TORCH_REASON = "tandem learning needs the optional torch extra (pip install -e .[torch])"


def _if_counts(current: np.ndarray, theta: float, T: int) -> np.ndarray:
    """Spike counts of IF neurons (reset by subtraction, SpikingNet's update order) under a constant current."""
    u = np.zeros_like(current)
    s = np.zeros_like(current)
    c = np.zeros_like(current)
    for _ in range(T):
        u = u - theta * s + current
        s = (u >= theta).astype(current.dtype)
        c += s
    return c


def test_approx_count_is_the_clamped_scaled_potential_and_tracks_if_counts():
    """No torch needed: clamp(V / theta, 0, T) exactly, and within one spike of an IF neuron's count under a
    constant current (V = T I), over currents from far below zero to far above threshold."""
    theta, T = 0.75, 16
    cur = np.random.default_rng(0).uniform(-1.0, 2.0, 4000)
    v = T * cur
    a = approx_count(v, theta, T)
    assert np.array_equal(a, np.minimum(np.maximum(v / theta, 0.0), T))
    assert a.min() == 0.0 and a.max() == T            # both clamps are reached
    c = _if_counts(cur, theta, T)
    assert np.abs(c - a).max() <= 1.0
    assert np.all(c <= a + 1e-9)                       # IF with subtract reset never beats its drive


def _tiny_net(readout="potential"):
    return parse_net({"name": "tiny", "input_shape": [1, 4, 4], "time_steps": 8,
                      "neuron": {"model": "IF", "threshold": 1.0, "reset": "subtract"},
                      "layers": [{"type": "flatten"}, {"name": "f1", "type": "fc", "out": 12},
                                 {"name": "f2", "type": "fc", "out": 5}],
                      "readout": readout}, "<tiny>")


def _scaled_snn(net, seed=0, gain=6.0):
    import torch

    from chipsim.models.torch import SpikingNet

    torch.manual_seed(seed)
    snn = SpikingNet(net)
    with torch.no_grad():
        for mod in snn.weighted.values():
            mod.weight.mul_(gain)              # some neurons silent, some saturated, most in between
            mod.bias.uniform_(-0.3, 0.3)
    return snn


@pytest.mark.parametrize("readout", ["potential", "count"])
def test_counts_passed_forward_are_the_snns(readout):
    """Every layer passes on the SNN's spike count (SpikingNet's own run), not the ANN's approximation,
    and the scores are the SNN's."""
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    from chipsim.models.tandem import tandem_forward

    net = _tiny_net(readout)
    snn = _scaled_snn(net)
    x = torch.rand(32, 1, 4, 4)
    run = tandem_forward(snn, x)
    with torch.no_grad():
        scores, runs = snn(x)
    c1 = runs["f1"].spikes.sum(0)
    assert torch.equal(run.counts["f1"].detach(), c1)
    assert not torch.allclose(run.approx["f1"], c1)      # the approximation differs: the test can tell them apart
    assert torch.allclose(run.scores.detach(), scores, atol=1e-6)
    if readout == "count":
        assert torch.equal(run.counts["f2"].detach(), runs["f2"].spikes.sum(0))


def test_gradient_is_the_ann_approximations():
    """Gradient check on a tiny layer: d loss / d W1 through the tandem pass equals the central finite
    difference of the ANN's approximation clamp((W1 C0 + T b1) / theta, 0, T), with the SNN's counts held."""
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    from chipsim.models.tandem import tandem_forward

    net = _tiny_net("potential")
    snn = _scaled_snn(net, seed=2).double()
    T, theta = net.time_steps, snn.theta
    x = torch.rand(6, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    g = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    run = tandem_forward(snn, x)
    (run.scores * g).sum().backward()
    grad = snn.weighted["f1"].weight.grad.clone()

    w1 = snn.weighted["f1"].weight.detach().clone()
    b1 = snn.weighted["f1"].bias.detach()
    w2, b2 = snn.weighted["f2"].weight.detach(), snn.weighted["f2"].bias.detach()
    c0 = (x * T).flatten(1)                                    # direct encoder: the image on every tick
    c1 = run.counts["f1"].detach()

    def loss(w):
        a = ((c0 @ w.T + T * b1) / theta).clamp(0, T)         # written out: independent of approx_count
        a0 = ((c0 @ w1.T + T * b1) / theta).clamp(0, T)
        h = c1 + (a - a0)                                      # the SNN's count, moved as the ANN moves
        return float(((h @ w2.T / T + b2) * g).sum())

    eps = 1e-6
    fd = torch.zeros_like(w1)
    for i in range(w1.shape[0]):
        for j in range(w1.shape[1]):
            d = torch.zeros_like(w1)
            d[i, j] = eps
            fd[i, j] = (loss(w1 + d) - loss(w1 - d)) / (2 * eps)
    v = c0 @ w1.T + T * b1
    saturated = ((v / theta <= 0) | (v / theta >= T)).double().mean()
    assert 0.1 < saturated < 0.9                        # both sides of the clamp are exercised
    assert torch.allclose(grad, fd, rtol=1e-5, atol=1e-7)
    assert grad.abs().sum() > 0


def _opts(tmp_path, name, **kw):
    from chipsim.models.pretrain import PretrainOptions

    base = dict(net="digits", epochs=1, batch_size=32, out=tmp_path / name, eval_samples=40, progress=False,
                log=lambda msg: None, seed=3, method="tandem", ltl_epochs=1, ltl_samples=64, ltl_batch_size=16,
                ltl_lr=1e-3, augment=True, dropout=0.2)
    base.update(kw)
    return PretrainOptions(**base)


def test_tandem_mid_epoch_resume_equals_uninterrupted_run(tmp_path):
    """Stopped inside the teacher epoch and inside the tandem epoch, each resumed: the same chip weights,
    accuracies and float teacher as a run that was never stopped."""
    pytest.importorskip("torch", reason=TORCH_REASON)
    from chipsim.models.pretrain import Stopped, pretrain

    full = load_weights(pretrain(_opts(tmp_path, "a.h5"))["out"])
    assert full.attrs["method"] == "tandem"
    # teacher: 45 batches (44 resume points); the first run stops after 20, the second after the remaining
    # 24 and 2 tandem batches (64 samples at 16: 3 resume points), the last one finishes
    stops = iter([20, 26, None])
    where = []
    opts = _opts(tmp_path, "b.h5", stop_after_batches=next(stops), checkpoint_minutes=0.0)
    while True:
        try:
            summary = pretrain(opts)
            break
        except Stopped as exc:
            where.append(str(exc).split(" (")[0])
            opts = _opts(tmp_path, "b.h5", resume=True, stop_after_batches=next(stops), checkpoint_minutes=0.0)
    assert where == ["stopped in teacher epoch 1 after batch 20", "stopped in snn epoch 1 after batch 2"]
    resumed = load_weights(summary["out"])
    for name, lw in full.layers.items():
        assert np.array_equal(lw.weight, resumed.layers[name].weight), name
        assert np.array_equal(lw.bias, resumed.layers[name].bias), name
        assert lw.threshold == resumed.layers[name].threshold
    for key in ("snn_accuracy", "float_snn_accuracy", "teacher_accuracy"):
        assert resumed.attrs[key] == full.attrs[key], key
    for name, (w, b) in full.teacher.items():
        assert np.array_equal(w, resumed.teacher[name][0]) and np.array_equal(b, resumed.teacher[name][1])



def test_progressive_schedule_switches_one_layer_per_phase():
    """Progressive tandem learning: L + 1 equal phases, phase k with the first k weighted layers spiking."""
    from chipsim.models import MODELS_DIR
    from chipsim.config import load_net
    from chipsim.models.tandem import progressive_layers

    digits = load_net(MODELS_DIR / "digits.yaml")           # count readout: 3 switchable layers
    assert [progressive_layers(digits, p) for p in (0.0, 0.2499, 0.25, 0.5, 0.7499, 0.75, 0.999, 1.0)] \
        == [0, 0, 1, 2, 2, 3, 3, 3]
    tiny = _tiny_net("potential")                            # the potential readout is exact either way
    assert [progressive_layers(tiny, p) for p in (0.0, 0.4999, 0.5, 1.0)] == [0, 0, 1, 1]


def test_progressive_pass_sends_the_anns_count_after_the_switch():
    """Before a layer switches it passes on the ANN's count; after, the SNN's; all switched = plain tandem."""
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    from chipsim.models.tandem import tandem_forward

    net = _tiny_net("count")
    snn = _scaled_snn(net)
    x = torch.rand(32, 1, 4, 4)
    with torch.no_grad():
        _, runs = snn(x)
    c1 = runs["f1"].spikes.sum(0)
    ann = tandem_forward(snn, x, snn_layers=0)
    assert torch.equal(ann.counts["f1"], ann.approx["f1"]) and not torch.allclose(ann.counts["f1"], c1)
    half = tandem_forward(snn, x, snn_layers=1)
    assert torch.equal(half.counts["f1"].detach(), c1)
    assert torch.equal(half.counts["f2"], half.approx["f2"])
    assert torch.equal(half.scores, half.approx["f2"] / net.time_steps)
    full, plain = tandem_forward(snn, x, snn_layers=2), tandem_forward(snn, x)
    assert torch.equal(full.scores, plain.scores)


def test_progressive_needs_tandem(tmp_path):
    pytest.importorskip("torch", reason=TORCH_REASON)
    from chipsim.models.pretrain import PretrainError, pretrain

    with pytest.raises(PretrainError, match="--tandem-progressive: expected --method tandem"):
        pretrain(_opts(tmp_path, "p.h5", method="offline-ltl", tandem_progressive=True))
