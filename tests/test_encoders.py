"""chipsim.hostlink.encoders: rate / if / direct encoders and the host-link byte count."""
from __future__ import annotations

import math

import numpy as np
import pytest

from chipsim.hostlink.encoders import Encoder, to_chip_order


def _unpack(packed: np.ndarray, n_in: int) -> np.ndarray:
    return np.unpackbits(packed, axis=2)[:, :, :n_in]


def _images(n=6, c=3, h=4, w=5, pixel_max=255, seed=0):
    return np.random.default_rng(seed).integers(0, pixel_max + 1, size=(n, c, h, w)).astype(np.uint8)


# --------------------------------------------------------------------------- rate


def test_rate_same_sample_id_same_spikes_whatever_the_batch():
    images = _images(n=10)
    n_in = 3 * 4 * 5
    enc = Encoder("rate", 16, 255, key=1234)
    ids = np.arange(100, 110)
    full = _unpack(enc.encode(images, ids), n_in)
    # a subset, in another order, inside another batch composition
    pick = np.array([7, 2, 9])
    part = _unpack(enc.encode(images[pick], ids[pick]), n_in)
    np.testing.assert_array_equal(part, full[pick])
    for i in range(10):
        one = _unpack(enc.encode(images[i:i + 1], ids[i:i + 1]), n_in)
        np.testing.assert_array_equal(one[0], full[i])
    # the id, not the position in the batch, selects the stream: same image, other id, other spikes
    other = _unpack(enc.encode(images[:1], np.array([555])), n_in)
    assert not np.array_equal(other[0], full[0])


def test_rate_packed_layout():
    images = _images(n=3, c=1, h=3, w=3)          # 9 inputs: 2 bytes per tick, 7 pad bits
    enc = Encoder("rate", 5, 255, key=9)
    packed = enc.encode(images, np.arange(3))
    assert packed.dtype == np.uint8 and packed.shape == (3, 5, 2)
    assert not (np.unpackbits(packed, axis=2)[:, :, 9:]).any(), "padding bits must be zero"


@pytest.mark.parametrize("max_rate", [1.0, 0.5, 0.2])
@pytest.mark.parametrize("x", [0, 1, 37, 128, 200, 255])
def test_rate_empirical_rate(max_rate, x):
    T, n_in, pixel_max = 400, 64, 255
    enc = Encoder("rate", T, pixel_max, max_rate=max_rate, key=0xDEADBEEF)
    images = np.full((2, 1, 8, 8), x, np.uint8)
    spikes = _unpack(enc.encode(images, np.array([0, 1])), n_in)
    p = max_rate * x / pixel_max
    n = spikes.size
    rate = spikes.mean()
    if p == 0.0:
        assert rate == 0.0
    elif p == 1.0:
        assert rate == 1.0
    else:
        sigma = math.sqrt(p * (1 - p) / n)
        assert abs(rate - p) < 4 * sigma, f"rate {rate} vs p {p} (4 sigma = {4 * sigma})"


def test_rate_per_tick_and_per_input_unbiased():
    """No tick and no input position is systematically favoured."""
    T, pixel_max = 200, 255
    enc = Encoder("rate", T, pixel_max, max_rate=1.0, key=42)
    images = np.full((50, 1, 4, 4), 128, np.uint8)
    spikes = _unpack(enc.encode(images, np.arange(50)), 16).astype(np.float64)
    p = 128 / 255
    per_tick = spikes.mean(axis=(0, 2))               # 800 draws each
    per_input = spikes.mean(axis=(0, 1))              # 10000 draws each
    assert np.all(np.abs(per_tick - p) < 5 * math.sqrt(p * (1 - p) / 800))
    assert np.all(np.abs(per_input - p) < 5 * math.sqrt(p * (1 - p) / 10000))


def test_rate_different_keys_differ_same_key_repeats():
    images = _images(n=4)
    ids = np.arange(4)
    a = Encoder("rate", 8, 255, key=1).encode(images, ids)
    b = Encoder("rate", 8, 255, key=2).encode(images, ids)
    a2 = Encoder("rate", 8, 255, key=1).encode(images, ids)
    np.testing.assert_array_equal(a, a2)
    assert not np.array_equal(a, b)


# --------------------------------------------------------------------------- if


def test_if_exact_spike_trains():
    """v += x each tick, spike and subtract pixel_max at v >= pixel_max: after t ticks exactly
    floor(t * x / pixel_max) spikes, so tick t spikes iff floor((t+1)x/m) > floor(t x/m)."""
    pixel_max, T = 16, 23
    values = np.arange(pixel_max + 1, dtype=np.uint8)          # every level 0..16
    images = values.reshape(1, 1, 1, -1)
    enc = Encoder("if", T, pixel_max)
    spikes = _unpack(enc.encode(images, np.array([0])), values.size)[0]   # (T, n_in)
    for j, x in enumerate(values.astype(int)):
        expected = [(t + 1) * x // pixel_max - t * x // pixel_max for t in range(T)]
        assert spikes[:, j].tolist() == expected, f"x = {x}"
        assert spikes[:, j].sum() == T * x // pixel_max
    assert spikes[:, -1].all() and not spikes[:, 0].any()


def test_if_counts_large_images():
    pixel_max, T = 255, 37
    images = _images(n=5, pixel_max=pixel_max, seed=3)
    enc = Encoder("if", T, pixel_max)
    n_in = images[0].size
    counts = _unpack(enc.encode(images, np.arange(5)), n_in).sum(axis=1)
    expected = (T * to_chip_order(images).astype(np.int64)) // pixel_max
    np.testing.assert_array_equal(counts, expected)
    # hand-checked values: x = 255 -> 37 spikes, x = 128 -> floor(37 * 128 / 255) = 18, x = 7 -> 1
    hand = Encoder("if", T, pixel_max).encode(np.array([255, 128, 7, 6], np.uint8).reshape(1, 1, 1, 4),
                                              np.array([0]))
    assert _unpack(hand, 4)[0].sum(axis=0).tolist() == [37, 18, 1, 0]


# --------------------------------------------------------------------------- direct


def test_direct_returns_chip_order_values():
    images = _images(n=3, c=3, h=2, w=4, pixel_max=16, seed=5)
    enc = Encoder("direct", 10, 16, input_bits=5)
    out = enc.encode(images, np.arange(3))
    assert out.shape == (3, 3 * 2 * 4)
    assert out.dtype == np.int32
    for n in range(3):
        for c in range(3):
            for y in range(2):
                for x in range(4):
                    assert out[n, (y * 4 + x) * 3 + c] == images[n, c, y, x]


def test_to_chip_order_single_channel_is_plain_flatten():
    images = _images(n=2, c=1, h=3, w=3)
    np.testing.assert_array_equal(to_chip_order(images), images.reshape(2, -1))


# --------------------------------------------------------------------------- host bytes, errors


@pytest.mark.parametrize("kind,T,bits,n_in,expected", [
    ("direct", 32, 5, 64, 64),
    ("direct", 32, 8, 3072, 3072),
    ("direct", 32, 9, 100, 200),
    ("direct", 4, 16, 10, 20),
    ("rate", 32, 8, 64, 32 * 8),
    ("rate", 10, 8, 9, 10 * 2),
    ("if", 16, 8, 3072, 16 * 384),
    ("if", 1, 8, 1, 1),
])
def test_host_bytes(kind, T, bits, n_in, expected):
    enc = Encoder(kind, T, (1 << min(bits, 8)) - 1, input_bits=bits)
    assert enc.host_bytes(n_in) == expected


def test_host_bytes_match_encoded_size():
    images = _images(n=1, c=3, h=3, w=3, pixel_max=255)
    for kind in ("rate", "if"):
        enc = Encoder(kind, 7, 255)
        assert enc.encode(images, np.array([0])).nbytes == enc.host_bytes(27)


def test_bad_kind():
    with pytest.raises(ValueError, match="encoder.kind"):
        Encoder("poisson", 8, 255)


def test_bad_input_bits_for_direct():
    with pytest.raises(ValueError, match="input_bits"):
        Encoder("direct", 8, 255, input_bits=7)
    with pytest.raises(ValueError, match="input_bits"):
        Encoder("direct", 8, 16, input_bits=4)
    Encoder("direct", 8, 16, input_bits=5)            # 5 bits carry 0..16
    Encoder("direct", 8, 255, input_bits=8)
    Encoder("rate", 8, 255, input_bits=1)             # spikes do not use input_bits
