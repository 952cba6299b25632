"""Sweep axes: what is swept, over which values, and how each value is set.

QCoDeS users keep writing the sweeps they know — ``LinSweep``, ``LogSweep``, ``ArraySweep`` and
``TogetherSweep`` from ``qcodes.dataset`` (parameter, setpoints, ``delay`` after each set,
``post_actions``) — and :func:`as_axis` turns each into an :class:`Axis`. An ``Axis`` adds what a
qcodes sweep cannot express: a setter that is any callable (e.g. "set the fridge setpoint, then
wait until it is stable") or none at all (an index axis, such as "which resonator", whose value
the measurement reads from the point), a dimension name of one's choosing, and units.

Positional axes nest, outer first (as in ``dond``); :func:`zip_axes` (or a qcodes
``TogetherSweep``) sweeps several targets together along one dimension. Note that qcodes'
``LogSweep(param, start, stop, n)`` takes *exponents* (``numpy.logspace``); :meth:`Axis.log`
takes the end values themselves (``numpy.geomspace``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qcodes.dataset import AbstractSweep, ArraySweep, LinSweep, LogSweep, TogetherSweep
from qcodes.parameters import ParameterBase

from cryodaq.storage.format import check_name
from cryodaq.storage.sweep_store import AxisCoords

__all__ = [
    "AbstractSweep", "ArraySweep", "Axis", "AxisPart", "LinSweep", "LogSweep", "TogetherSweep", "as_axis",
    "axis_coords", "axis_shape", "zip_axes",
]

Setter = Callable[[Any], Any]


@dataclass(frozen=True)
class AxisPart:
    """One swept quantity: its name, values, and how a value is applied.

    ``target`` is a qcodes parameter (set with ``target.set(value)``), a callable taking the
    value, or None (nothing is set; the measurement reads the value from the point). After a
    set the engine waits ``delay_s`` and then calls each of ``after_set`` (no arguments).
    """

    name: str
    values: np.ndarray
    target: ParameterBase | Setter | None = None
    delay_s: float = 0.0
    units: str = ""
    after_set: tuple[Callable[[], Any], ...] = ()

    def apply(self, value: Any) -> None:
        """Set ``value`` on the target (no wait; the engine waits ``delay_s`` afterwards)."""
        if self.target is None:
            return
        if isinstance(self.target, ParameterBase):
            self.target.set(value)
        else:
            self.target(value)

    @property
    def target_name(self) -> str:
        """What is set, for the run's metadata: a parameter's full name, a callable's qualified name, or ''."""
        if self.target is None:
            return ""
        if isinstance(self.target, ParameterBase):
            return str(self.target.full_name)
        return str(getattr(self.target, "__qualname__", None) or repr(self.target))


class Axis:
    """One sweep dimension (``dim``) with one part, or several zipped parts of equal length.

    The first part names the dimension unless ``dim`` is given; every part's values become a
    coordinate along it. Build one with ``Axis(name, values, target, ...)`` or the
    :meth:`linear`, :meth:`log` and :meth:`list` constructors, or from a qcodes sweep with
    :func:`as_axis`.
    """

    def __init__(self, name: str | None = None, values: Iterable[Any] | None = None,
                 target: ParameterBase | Setter | None = None, *, delay_s: float = 0.0, units: str = "",
                 after_set: Sequence[Callable[[], Any]] = (), parts: Sequence[AxisPart] | None = None,
                 dim: str | None = None) -> None:
        if parts is None:
            if name is None or values is None:
                raise TypeError("Axis(name, values, target=None, ...) needs a name and values")
            parts = (_part(name, values, target, delay_s, units, after_set),)
        parts = tuple(parts)
        if not parts:
            raise ValueError("an axis needs at least one part")
        n = len(parts[0].values)
        bad = {p.name: len(p.values) for p in parts if len(p.values) != n}
        if bad:
            raise ValueError(f"zipped axis parts must have equal lengths; {parts[0].name!r} has {n}, got {bad}")
        names = [p.name for p in parts]
        if len(set(names)) != len(names):
            raise ValueError(f"zipped axis parts need distinct names, got {names}")
        self.parts: tuple[AxisPart, ...] = parts
        self.dim: str = check_name(dim or parts[0].name, "sweep axis")

    # -- constructors ---------------------------------------------------------------------
    @classmethod
    def linear(cls, name: str, start: float, stop: float, num: int, target: ParameterBase | Setter | None = None,
               **kw: Any) -> Axis:
        """``num`` evenly spaced values from ``start`` to ``stop`` inclusive (``numpy.linspace``)."""
        return cls(name, np.linspace(start, stop, int(num)), target, **kw)

    @classmethod
    def log(cls, name: str, start: float, stop: float, num: int, target: ParameterBase | Setter | None = None,
            **kw: Any) -> Axis:
        """``num`` log-spaced values from ``start`` to ``stop`` inclusive (``numpy.geomspace``; not exponents)."""
        if not (start != 0 and stop != 0 and math.copysign(1, start) == math.copysign(1, stop)):
            raise ValueError(f"Axis.log({name!r}): start and stop must be non-zero and of one sign, got {start}, {stop}")
        return cls(name, np.geomspace(start, stop, int(num)), target, **kw)

    @classmethod
    def list(cls, name: str, values: Iterable[Any], target: ParameterBase | Setter | None = None, **kw: Any) -> Axis:
        """The given values, in the given order."""
        return cls(name, values, target, **kw)

    def __repr__(self) -> str:
        return f"Axis(dim={self.dim!r}, parts={self.names}, n={len(self)})"

    # -- properties -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.parts[0].values)

    @property
    def names(self) -> list[str]:
        """Names of the parts (the first is the dimension's own coordinate unless ``dim`` differs)."""
        return [p.name for p in self.parts]

    def values_at(self, i: int) -> dict[str, Any]:
        """Part name -> value at position ``i`` along this axis (numpy scalars as Python scalars);
        plus ``dim`` -> ``i`` when the dimension is named after none of the parts."""
        out = {p.name: _scalar(p.values[i]) for p in self.parts}
        if self.dim not in out:
            out[self.dim] = i
        return out

    def apply(self, i: int, sleep: Callable[[float], Any]) -> None:
        """Set every part to its value at ``i``, in order; after each, wait its delay and run its actions."""
        for p in self.parts:
            p.apply(_scalar(p.values[i]))
            if p.delay_s > 0:
                sleep(p.delay_s)
            for action in p.after_set:
                action()

    def describe(self) -> dict[str, Any]:
        """JSON-able description for the run's attrs (values are stored as coordinates, not here)."""
        return {"dim": self.dim, "parts": [
            {"name": p.name, "target": p.target_name, "units": p.units, "delay_s": p.delay_s} for p in self.parts]}


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _part(name: str, values: Iterable[Any], target: Any, delay_s: float, units: str,
          after_set: Sequence[Callable[[], Any]]) -> AxisPart:
    check_name(name, "sweep axis")
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"axis {name!r}: values must be a non-empty 1-D sequence, got shape {arr.shape}")
    if arr.dtype.kind not in "biufcUS":
        raise ValueError(f"axis {name!r}: values must be numbers or strings, got dtype {arr.dtype}")
    if not (math.isfinite(delay_s) and delay_s >= 0):
        raise ValueError(f"axis {name!r}: delay_s must be >= 0, got {delay_s}")
    if target is not None and not (isinstance(target, ParameterBase) or callable(target)):
        raise TypeError(f"axis {name!r}: target must be a qcodes parameter, a callable or None, got {target!r}")
    for action in after_set:
        if not callable(action):
            raise TypeError(f"axis {name!r}: after_set entries must be callables, got {action!r}")
    if arr.dtype.kind in "US":
        arr = arr.astype(str)
    return AxisPart(name, arr, target, float(delay_s), units, tuple(after_set))


def _param_units(param: ParameterBase) -> str:
    return str(getattr(param, "unit", "") or "")


def _from_qcodes(sw: AbstractSweep) -> AxisPart:
    param = sw.param
    return _part(param.full_name, np.asarray(sw.get_setpoints()), param, float(sw.delay), _param_units(param),
                 tuple(sw.post_actions))


def as_axis(obj: Axis | AbstractSweep | TogetherSweep) -> Axis:
    """An :class:`Axis` from an Axis or a qcodes sweep (the dimension is named after the parameter's full name)."""
    if isinstance(obj, Axis):
        return obj
    if isinstance(obj, TogetherSweep):
        return Axis(parts=[_from_qcodes(s) for s in obj.sweeps])
    if isinstance(obj, AbstractSweep):
        return Axis(parts=[_from_qcodes(obj)])
    raise TypeError(f"not a sweep axis: {obj!r}; expected cryodaq.sweeps.Axis or a qcodes LinSweep/LogSweep/"
                    "ArraySweep/TogetherSweep")


def zip_axes(*axes: Axis | AbstractSweep | TogetherSweep, dim: str | None = None) -> Axis:
    """Sweep several axes together along one dimension (all of equal length), like qcodes' ``TogetherSweep``."""
    if not axes:
        raise ValueError("zip_axes needs at least one axis")
    parts = [p for a in axes for p in as_axis(a).parts]
    return Axis(parts=parts, dim=dim or as_axis(axes[0]).dim)


def axis_shape(axes: Sequence[Axis]) -> tuple[int, ...]:
    """The shape of the sweep grid: one length per axis, outer first. Checks names are unique."""
    names = [n for a in axes for n in ([a.dim] + a.names)]
    dims = [a.dim for a in axes]
    if len(set(dims)) != len(dims):
        raise ValueError(f"sweep axes need distinct dimension names, got {dims}")
    seen: dict[str, str] = {}
    for a in axes:
        for n in {a.dim, *a.names}:
            if n in seen and seen[n] != a.dim:
                raise ValueError(f"name {n!r} is used by two axes ({seen[n]!r} and {a.dim!r}); names {names}")
            seen[n] = a.dim
    return tuple(len(a) for a in axes)


def axis_coords(axis: Axis) -> AxisCoords:
    """How ``axis`` is stored: a coordinate per part (plus an index coordinate when ``dim`` names no part)."""
    coords = {p.name: p.values for p in axis.parts}
    if axis.dim not in coords:
        coords = {axis.dim: np.arange(len(axis)), **coords}
    units = {p.name: p.units for p in axis.parts if p.units}
    return AxisCoords(axis.dim, coords, units, axis.describe())
