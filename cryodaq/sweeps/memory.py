"""A sweep kept in memory: what :func:`cryodaq.sweeps.sweep` writes to when no run is given.

Same interface as :class:`cryodaq.storage.sweep_store.SweepGroup` (the engine cannot tell them
apart), and the same layout once turned into an ``xarray.Dataset``: one array per measured
quantity over (axes..., trailing dims...), a coordinate per axis, ``done`` and ``t``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from cryodaq.storage.sweep_store import AxisCoords, Measured, SweepMismatchError

__all__ = ["MemorySweep"]


class MemorySweep:
    """Points of one sweep in numpy arrays (see the module docstring)."""

    def __init__(self, name: str, axes: Sequence[AxisCoords]) -> None:
        self.name = name
        self.axes = list(axes)
        self.dims = tuple(a.dim for a in axes)
        self.shape = tuple(len(a) for a in axes)
        self._done = np.zeros(self.shape, bool)
        self._t = np.zeros(self.shape, np.int64)
        self._data: dict[str, tuple[tuple[str, ...], np.ndarray, str]] = {}
        self._trailing_coords: dict[str, np.ndarray] = {}
        self._pauses: list[dict[str, Any]] = []
        self.attrs: dict[str, Any] = {}

    def done(self) -> np.ndarray:
        return self._done.copy()

    @property
    def n_done(self) -> int:
        return int(self._done.sum())

    def write_point(self, index: tuple[int, ...], values: Mapping[str, Measured], t_ns: int) -> None:
        for name, m in values.items():
            data = np.asarray(m.data)
            if name not in self._data:
                if name in self.dims or name in ("done", "t"):
                    raise ValueError(f"sweep {self.name!r}: a measurement may not be named {name!r}")
                fill = np.nan if data.dtype.kind in "fc" else 0
                self._data[name] = ((*self.dims, *m.dims), np.full((*self.shape, *data.shape), fill, data.dtype), m.units)
                for dim, c in m.coords.items():
                    self._trailing_coords.setdefault(dim, np.asarray(c))
            dims, arr, _ = self._data[name]
            if dims != (*self.dims, *m.dims) or arr.shape[len(self.shape):] != data.shape or \
                    not np.can_cast(data.dtype, arr.dtype, casting="same_kind"):
                raise SweepMismatchError(f"sweep {self.name!r}: measurement {name!r} changed from "
                                         f"{dims[len(self.dims):]} {arr.shape[len(self.shape):]} {arr.dtype} to {m.dims} {data.shape} "
                                         f"{data.dtype}")
            arr[index] = data
        self._t[index] = t_ns
        self._done[index] = True

    def begin_pause(self, t_ns: int, source: str, reason: str, point: int) -> int:
        self._pauses.append({"t_start": t_ns, "t_end": -1, "point": point, "source": source, "reason": reason})
        return len(self._pauses) - 1

    def end_pause(self, row: int, t_ns: int, reason: str | None = None) -> None:
        self._pauses[row]["t_end"] = t_ns
        if reason is not None:
            self._pauses[row]["reason"] = reason

    def pauses(self) -> list[dict[str, Any]]:
        return [dict(p) for p in self._pauses]

    def set_attrs(self, **fields: Any) -> None:
        self.attrs.update(fields)

    def dataset(self) -> xr.Dataset:
        coords: dict[str, Any] = {}
        for a in self.axes:
            for cname, values in a.coords.items():
                coords[cname] = ((a.dim,), np.asarray(values))
        coords.update({d: ((d,), c) for d, c in self._trailing_coords.items()})
        coords["t"] = (self.dims, self._t.copy())
        data = {name: (dims, arr.copy(), {"units": units} if units else {})
                for name, (dims, arr, units) in self._data.items()}
        data["done"] = (self.dims, self._done.copy())
        return xr.Dataset(data, coords=coords, attrs={"axes": list(self.dims), **self.attrs})
