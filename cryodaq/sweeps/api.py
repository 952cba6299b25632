"""``sweep(...)``: the ``dond``-like entry point.

::

    from qcodes.dataset import LinSweep, ArraySweep
    from cryodaq.sweeps import sweep

    result = sweep(LinSweep(dac.ch1, 0, 1, 11, delay=0.01),     # outer axis
                   ArraySweep(dac.ch2, [0.1, 0.2]),             # inner axis
                   dmm.v1, trace_fn,                            # what to measure at each point
                   name="gate_map", run=run)                    # into sweeps/gate_map of a SweepRun
    ds = result.dataset()                                       # xarray: one coordinate per axis

Positional arguments that are axes (``Axis``, qcodes sweeps) nest outer first; the others
are measurement items (qcodes parameters, callables ``f(point) -> dict``), like ``dond``'s
parameters to measure. Without ``run`` the sweep is kept in memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from qcodes.parameters import ParameterBase

from cryodaq.storage.sweep_store import SweepRun
from cryodaq.sweeps.axes import (
    AbstractSweep,
    Axis,
    TogetherSweep,
    as_axis,
    axis_coords,
    axis_shape,
)
from cryodaq.sweeps.control import SweepControl
from cryodaq.sweeps.engine import SweepEngine, SweepObserver, SweepResult
from cryodaq.sweeps.interlocks import InterlockLike
from cryodaq.sweeps.measure import Measurement
from cryodaq.sweeps.memory import MemorySweep

__all__ = ["split_sweep_args", "sweep"]


def split_sweep_args(args: Sequence[Any], measure: Any = ()) -> tuple[list[Axis], Measurement]:
    """(axes, measurement) from ``dond``-style positional arguments plus ``measure=``."""
    axes: list[Axis] = []
    items: list[Any] = []
    for arg in args:
        if isinstance(arg, (Axis, AbstractSweep, TogetherSweep)):
            if items:
                raise TypeError(f"sweep axis {arg!r} comes after a measurement item; give the axes first")
            axes.append(as_axis(arg))
        elif isinstance(arg, ParameterBase) or callable(arg):
            items.append(arg)
        else:
            raise TypeError(f"sweep: {arg!r} is neither an axis (Axis, qcodes sweep) nor something to measure "
                            "(a qcodes parameter or a callable f(point) -> dict)")
    if isinstance(measure, ParameterBase) or callable(measure):
        items.append(measure)
    else:
        items.extend(measure)
    axis_shape(axes)  # names unique
    return axes, Measurement(items)


def sweep(
    *args: Any,
    name: str,
    measure: Any = (),
    run: SweepRun | None = None,
    interlocks: Sequence[InterlockLike] = (),
    control: SweepControl | None = None,
    observer: SweepObserver | None = None,
    attrs: Mapping[str, Any] | None = None,
    poll_s: float = 1.0,
    resume_hold_s: float = 0.0,
    max_pause_s: float | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> SweepResult:
    """Run a sweep (see the module docstring); with ``run``, into ``sweeps/<name>`` of that run.

    When the group already exists (a resumed run), its axes must match, and points already
    done are skipped. ``interlocks`` are checked around every point (``poll_s`` while paused;
    the sweep resumes once all have been clear for ``resume_hold_s``; ``max_pause_s`` ends it
    with :class:`~cryodaq.sweeps.engine.InterlockTimeout`).
    """
    axes, measurement = split_sweep_args(args, measure)
    coords = [axis_coords(a) for a in axes]
    meta = {"measure": measurement.describe(), **dict(attrs or {})}
    if run is not None:
        sink: Any = run.sweep(name, coords, attrs=meta)
        heartbeat: Callable[[], Any] | None = run.heartbeat
    else:
        sink = MemorySweep(name, coords)
        sink.set_attrs(**meta)
        heartbeat = None
    engine = SweepEngine(name, axes, measurement, sink, interlocks=interlocks, control=control, observer=observer,
                         poll_s=poll_s, resume_hold_s=resume_hold_s, max_pause_s=max_pause_s, sleep=sleep,
                         clock=clock, heartbeat=heartbeat)
    return engine.run()
