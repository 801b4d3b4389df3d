"""The chip model: integer state, Numba kernels, learning policy, chip and weight files."""
