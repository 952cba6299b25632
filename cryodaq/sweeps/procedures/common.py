"""What every procedure does the same way: plans from ``-p`` options, plans as run metadata,
putting an instrument back without hiding why a sweep ended, and waiting for a scheduled time."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, fields
from typing import Any, TypeVar

import numpy as np

__all__ = ["jsonable_plan", "plan_from_options", "restore_quietly", "scheduled_start", "wait_until"]

log = logging.getLogger(__name__)

PlanT = TypeVar("PlanT")


def plan_from_options(cls: type[PlanT], options: Mapping[str, Any], defaults: Mapping[str, Any]) -> PlanT:
    """A plan dataclass from ``defaults`` overridden by those ``options`` (``-p key=value``) that are its fields.

    Options meant for something else (another plan, the script) are ignored, so one option set can
    feed several plans.
    """
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{**defaults, **{k: v for k, v in options.items() if k in names}})


def jsonable_plan(plan: Any) -> dict[str, Any]:
    """A plan dataclass as a dict for the run's attrs (sequences as lists)."""
    return {k: list(v) if isinstance(v, (tuple, list, np.ndarray)) else v for k, v in asdict(plan).items()}


def restore_quietly(what: str, action: Callable[[], Any]) -> None:
    """Run ``action`` (putting ``what`` back); a failure is logged, not raised, so it cannot hide the
    error, stop or abort that ended the sweep."""
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.warning("could not put back %s: %s", what, exc)


def scheduled_start(ctx: Any, name: str, now: float, attr: str = "schedule_start_s") -> float:
    """The schedule origin stored with sweep ``name`` (a resumed run keeps its time base), else ``now``."""
    if name in ctx.run.sweep_names():
        stored = ctx.dataset(name).attrs.get(attr)
        if stored is not None:
            return float(stored)
    return now


def wait_until(target: float, *, clock: Callable[[], float] = time.time, sleep: Callable[[float], Any] = time.sleep,
               control: Any = None, poll_s: float = 1.0) -> None:
    """Sleep until ``clock()`` reaches ``target``, in steps of at most ``poll_s``, minding the operator.

    A stop or an abort requested meanwhile (``control``, a :class:`~cryodaq.sweeps.control.SweepControl`)
    raises :class:`~cryodaq.sweeps.control.SweepStopped` / ``SweepAborted`` at once, as the engine does at a
    point boundary; a pause request ends the wait (the engine pauses at the next boundary).
    """
    from cryodaq.sweeps.control import SweepAborted, SweepStopped

    while (left := target - clock()) > 0:
        if control is not None:
            if control.abort_requested:
                raise SweepAborted(control.reason)
            if control.stop_requested:
                raise SweepStopped(control.reason)
            if control.pause_requested:
                return
        sleep(min(left, poll_s))
