"""What is measured at each point: qcodes parameters and callables, normalised to named arrays.

A measurement item is

- a qcodes parameter: ``get()`` at every point, stored under its ``full_name`` with its unit;
  a ``ParameterWithSetpoints`` (a VNA trace, a spectrum) keeps its setpoints as the trailing
  dimensions and their values as coordinates;
- a callable ``f(point) -> Mapping[name, value]`` (``point``: :class:`~cryodaq.sweeps.engine.Point`),
  whose values may be scalars, numpy arrays (dims named ``<name>_dim<i>``), ``(dims, array)``
  tuples, or ``xarray.DataArray`` (dims, coordinates of its dims and ``attrs['units']`` kept).

Arrays keep their shape from point to point (stored as one N-D array: axes + trailing dims).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from qcodes.parameters import ParameterBase, ParameterWithSetpoints

from cryodaq.storage.sweep_store import Measured

__all__ = ["Measurement", "to_measured"]


def to_measured(name: str, value: Any, units: str = "") -> Measured:
    """Normalise one measured value (see the module docstring) to :class:`Measured`."""
    if value is None:
        raise ValueError(f"measurement {name!r} returned None; return a number or an array")
    if isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # a plain Python int (``return {"n": 0}``) may be a float at the next point
    if isinstance(value, xr.DataArray):
        dims = tuple(str(d) for d in value.dims)
        coords = {d: np.asarray(value.coords[d].values) for d in dims if d in value.coords}
        return Measured(dims, _array(name, value.values), str(value.attrs.get("units", units) or ""), coords)
    if isinstance(value, tuple):
        if len(value) != 2 or not isinstance(value[0], (tuple, list)):
            raise ValueError(f"measurement {name!r}: a tuple must be (dims, array), got {type(value[0]).__name__} first")
        dims = tuple(str(d) for d in value[0])
        data = _array(name, value[1])
        if data.ndim != len(dims):
            raise ValueError(f"measurement {name!r}: dims {dims} do not match the array shape {data.shape}")
        return Measured(dims, data, units)
    data = _array(name, value)
    return Measured(tuple(f"{name}_dim{i}" for i in range(data.ndim)), data, units)


def _array(name: str, value: Any) -> np.ndarray:
    data = np.asarray(value)
    if data.dtype.kind not in "biufc":
        raise ValueError(f"measurement {name!r}: expected numbers, got dtype {data.dtype} ({type(value).__name__})")
    return data


class Measurement:
    """The measurement items of one sweep; calling it at a point gives ``{name: Measured}``."""

    def __init__(self, items: Sequence[ParameterBase | Callable[[Any], Mapping[str, Any]]]) -> None:
        if not items:
            raise ValueError("a sweep needs something to measure: qcodes parameters or callables f(point) -> dict")
        for item in items:
            if not (isinstance(item, ParameterBase) or callable(item)):
                raise TypeError(f"cannot measure {item!r}: expected a qcodes parameter or a callable f(point) -> dict")
            if isinstance(item, ParameterBase) and not item.gettable:
                raise TypeError(f"cannot measure {item.full_name!r}: the parameter is not gettable")
        self.items = list(items)

    def __call__(self, point: Any) -> dict[str, Measured]:
        out: dict[str, Measured] = {}
        for item in self.items:
            if isinstance(item, ParameterBase):
                new = {item.full_name: _param_value(item)}
            else:
                values = item(point)
                if not isinstance(values, Mapping):
                    raise TypeError(f"measurement {_name(item)} returned {type(values).__name__}; expected a mapping "
                                    "of names to values")
                new = {str(k): to_measured(str(k), v) for k, v in values.items()}
            dup = set(new) & set(out)
            if dup:
                raise ValueError(f"measured names {sorted(dup)} are given twice at point {getattr(point, 'index', '')}")
            out.update(new)
        return out

    def describe(self) -> list[str]:
        """Names of the items (parameters' full names, callables' qualified names), for the run's attrs."""
        return [item.full_name if isinstance(item, ParameterBase) else _name(item) for item in self.items]


def _name(fn: Any) -> str:
    return str(getattr(fn, "__qualname__", None) or repr(fn))


def _param_value(param: ParameterBase) -> Measured:
    value = param.get()
    units = str(getattr(param, "unit", "") or "")
    if isinstance(param, ParameterWithSetpoints):
        setpoints = list(param.setpoints)
        dims = tuple(sp.full_name for sp in setpoints)
        coords = {sp.full_name: np.asarray(sp.get()) for sp in setpoints}
        data = _array(param.full_name, value)
        if data.ndim != len(dims):
            raise ValueError(f"{param.full_name}: {data.ndim}-D values for {len(dims)} setpoints")
        return Measured(dims, data, units, coords)
    return to_measured(param.full_name, value, units)
