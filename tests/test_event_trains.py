"""The float SNN of an events net (offline LTL, tandem) reads the recordings' binned spike trains, as the chip."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="pretraining needs the optional torch extra (pip install -e .[torch])")

from chipsim.hostlink.encoders import EventEncoder  # noqa: E402
from chipsim.models.pretrain import eval_subset, event_trains, load_split, resolve_net  # noqa: E402
from chipsim.models.torch import SpikingNet  # noqa: E402


@pytest.fixture(scope="module")
def dvs():
    net = resolve_net("digits-dvs")
    return net, load_split(net, "digits-dvs", "test", 24)


def test_trains_are_the_chips_spikes_tick_by_tick(dvs):
    """Exact: tick t, input i of the trains is bit i of the packed spikes the chip gets at tick t, and the
    trains summed over the ticks are the teacher's rate image."""
    net, data = dvs
    ids = np.array([3, 0, 17, 9])
    trains = event_trains(net, data, ids).numpy()                       # (T, B, C, H, W)
    enc = EventEncoder(net.encoder.events, net.time_steps, net.input_shape)
    packed = enc.encode(data.events.images[ids], ids)                   # (B, T, bytes), chip order (h, w, c)
    c, h, w = net.input_shape
    bits = np.unpackbits(packed, axis=2)[:, :, :c * h * w].reshape(len(ids), net.time_steps, h, w, c)
    np.testing.assert_array_equal(trains, bits.transpose(1, 0, 4, 2, 3).astype(np.float32))
    np.testing.assert_array_equal(trains.sum(0), data.images[ids].astype(np.float32))


def test_encode_returns_the_trains_and_checks_their_shape(dvs):
    net, data = dvs
    snn = SpikingNet(net)
    x = torch.as_tensor(data.images[:4].astype(np.float32) / data.pixel_max)
    snn.event_trains = event_trains(net, data, np.arange(4))
    assert torch.equal(snn.encode(x), snn.event_trains)
    snn.event_trains = snn.event_trains[:, :3]
    with pytest.raises(ValueError, match="event_trains: shape"):
        snn.encode(x)


def test_eval_subset_keeps_recordings_with_their_images(dvs):
    net, data = dvs
    sub = eval_subset(data, 7)
    np.testing.assert_array_equal(event_trains(net, sub, np.arange(7)).sum(0).numpy(),
                                  sub.images.astype(np.float32))
