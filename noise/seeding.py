"""Where every random number of a noise model comes from.

Derivation (one place, so it can be written down and reproduced):

    stream(seed, kind, layer, parameter) = numpy SeedSequence(
        entropy   = seed,                                  # the run's --seed
        spawn_key = (crc32(kind), layer, crc32(parameter)))

* Frozen noise (mismatch, silencing masks) draws from
  `np.random.Generator(PCG64(stream(...)))`: one independent stream per
  (kind, layer, parameter), so two layers of the same shape never share draws
  and adding a noise kind never shifts another kind's draws.
* Dynamic noise (thermal, per-tick silencing) uses a 64-bit key
  `stream(...).generate_state(1, uint64)`; inside the kernels each draw is
  `hash(key, sample index, tick, neuron)` (kernels/rng.py), so it does not
  depend on batch size, batch order or thread count.
* Write noise of on-chip learning likewise: key per (layer, 'write'), draw
  addressed by (sample, tick, cell).

`layer` is the index of the layer in the net's chip layers (0-based).
"""
from __future__ import annotations

import zlib

import numpy as np


def _code(name: str) -> int:
    return zlib.crc32(name.encode())


def stream(seed: int, kind: str, layer: int, parameter: str) -> np.random.SeedSequence:
    return np.random.SeedSequence(entropy=int(seed), spawn_key=(_code(kind), int(layer), _code(parameter)))


def generator(seed: int, kind: str, layer: int, parameter: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(stream(seed, kind, layer, parameter)))


def key64(seed: int, kind: str, layer: int, parameter: str) -> np.uint64:
    return stream(seed, kind, layer, parameter).generate_state(1, np.uint64)[0]
