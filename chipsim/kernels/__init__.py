"""Numba kernels of the chip core: no Python objects, no I/O."""
