"""Counters as labelled arrays: an int64 numpy array with a name per axis and a label per index.

Why not xarray or pandas: both are large dependencies for one `sel`, pandas turns
int64 columns into floats as soon as a value is missing, and chipsim's counts are
exact integers that tests compare exactly. This keeps numpy's array (`.values`),
reads like xarray (`c.sel(layer="fc2", counter="spikes")`) and converts to it on
request (`to_xarray`, if xarray is installed).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Counters:
    values: np.ndarray                      #: int64, one axis per name in `dims`
    dims: tuple[str, ...]                   #: axis names, e.g. ("layer", "counter")
    coords: dict                            #: {dim: tuple of labels}; ticks are 0..T-1

    @classmethod
    def from_table(cls, table: np.ndarray, layers: tuple[str, ...], leading: tuple[str, ...] = ()) -> "Counters":
        """From a chip counter table (..., L, N_COUNTERS) with `leading` names for the leading axes."""
        from chipsim.core.kernels.layout import COUNTER_NAMES

        coords = {d: tuple(range(n)) for d, n in zip(leading, table.shape[:len(leading)])}
        coords.update(layer=tuple(layers), counter=tuple(COUNTER_NAMES))
        return cls(np.asarray(table, np.int64), leading + ("layer", "counter"), coords)

    def _axis(self, dim: str) -> int:
        if dim not in self.dims:
            raise KeyError(f"no dimension {dim!r}; expected one of {', '.join(self.dims)}")
        return self.dims.index(dim)

    def _index(self, dim: str, label) -> int:
        self._axis(dim)
        labels = self.coords[dim]
        if label not in labels:
            raise KeyError(f"{dim}={label!r}: no such label; expected one of {', '.join(map(str, labels))}")
        return labels.index(label)

    def sel(self, **labels):
        """Select by label, e.g. sel(layer="fc2") or sel(layer="fc2", counter="spikes") (a plain int when
        every dimension is selected)."""
        values, dims, coords = self.values, list(self.dims), dict(self.coords)
        for dim, label in labels.items():
            i = self._index(dim, label)
            axis = dims.index(dim)
            values = np.take(values, i, axis=axis)
            dims.pop(axis)
            coords.pop(dim)
        if not dims:
            return int(values)
        return Counters(values, tuple(dims), coords)

    def sum(self, dim: str) -> "Counters":
        axis = self._axis(dim)
        coords = {k: v for k, v in self.coords.items() if k != dim}
        return Counters(self.values.sum(axis=axis), self.dims[:axis] + self.dims[axis + 1:], coords)

    def to_dict(self) -> dict:
        """Nested {label: ...} dicts of ints, outermost dimension first."""
        def walk(values, dims):
            if not dims:
                return int(values)
            return {label: walk(values[i], dims[1:]) for i, label in enumerate(self.coords[dims[0]])}
        return walk(self.values, list(self.dims))

    def to_xarray(self):
        import xarray

        return xarray.DataArray(self.values, dims=self.dims, coords={d: list(self.coords[d]) for d in self.dims})

    def __repr__(self) -> str:
        shape = ", ".join(f"{d}: {len(self.coords[d])}" for d in self.dims)
        return f"Counters({shape})"
