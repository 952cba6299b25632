"""What every procedure does the same way: plans from ``-p`` options, plans as run metadata, and
putting an instrument back without hiding why a sweep ended."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, fields
from typing import Any, TypeVar

import numpy as np

__all__ = ["jsonable_plan", "plan_from_options", "restore_quietly"]

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
