"""Interlocks: conditions that pause a sweep while they hold, and resume it when they clear.

An interlock is any object with

- ``name`` (str), ``safe_state`` (callables run once each time it trips, e.g. ``fridge.heater_off``),
- ``check() -> str | None``: the reason it holds now (e.g. ``"mxc 0.41 K above 0.35 K"``) or None;
- optionally ``notice(exc)``: told of an exception raised while setting or measuring a point
  (``InstrumentNotAnswering`` trips on an ``InstrumentError`` of its instrument this way, with
  no polling cost while all is well).

The engine checks every interlock before each point and after its measurement (and after any
exception during the point); when one holds, the point's data are discarded, the safe-state
actions run, the sweep waits, polling ``check()``, and redoes the point once all are clear.
:class:`Interlock` gives the hysteresis (trip at one level, clear at another) and the
fail-safe rule: a check that itself fails (a thermometer that cannot be read) holds.
"""

from __future__ import annotations

import logging
import math
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from qcodes.parameters import ParameterBase

from cryodaq.errors import InstrumentError

__all__ = ["Condition", "DiskNearlyFull", "InstrumentNotAnswering", "Interlock", "InterlockLike", "TemperatureAbove"]

log = logging.getLogger(__name__)

Action = Callable[[], Any]


@runtime_checkable
class InterlockLike(Protocol):
    """What the engine needs of an interlock (see the module docstring)."""

    name: str
    safe_state: Sequence[Action]

    def check(self) -> str | None: ...


class Interlock(ABC):
    """Base class: tracks whether the interlock is tripped; subclasses implement :meth:`evaluate`."""

    def __init__(self, name: str, safe_state: Sequence[Action] = ()) -> None:
        for action in safe_state:
            if not callable(action):
                raise TypeError(f"interlock {name!r}: safe_state entries must be callables, got {action!r}")
        self.name = name
        self.safe_state: tuple[Action, ...] = tuple(safe_state)
        self.tripped = False
        self.last_reason: str | None = None

    @abstractmethod
    def evaluate(self, tripped: bool) -> str | None:
        """The reason the condition holds, given whether it held at the previous check (for hysteresis)."""

    def check(self) -> str | None:
        try:
            reason = self.evaluate(self.tripped)
        except Exception as exc:  # fail safe: a condition that cannot be checked holds
            reason = f"{self.name}: cannot check ({type(exc).__name__}: {exc})"
        self.tripped = reason is not None
        if reason is not None:
            self.last_reason = reason
        return reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, tripped={self.tripped})"


class Condition(Interlock):
    """Any condition: ``fn()`` returns the reason it holds, or None."""

    def __init__(self, name: str, fn: Callable[[], str | None], safe_state: Sequence[Action] = ()) -> None:
        super().__init__(name, safe_state)
        self.fn = fn

    def evaluate(self, tripped: bool) -> str | None:
        return self.fn()


def _read(source: ParameterBase | Callable[[], float]) -> float:
    return float(source.get() if isinstance(source, ParameterBase) else source())


def _source_name(source: Any) -> str:
    if isinstance(source, ParameterBase):
        return str(source.full_name)
    return str(getattr(source, "__qualname__", None) or repr(source))


class TemperatureAbove(Interlock):
    """Holds while a temperature (a qcodes parameter or callable, K) is above ``limit_k``.

    Trips above ``limit_k`` and clears only below ``clear_below_k`` (default ``limit_k``), so
    a reading hovering at the limit does not toggle the sweep. A failed reading holds too.
    """

    def __init__(self, parameter: ParameterBase | Callable[[], float], limit_k: float,
                 clear_below_k: float | None = None, *, safe_state: Sequence[Action] = (),
                 name: str | None = None) -> None:
        clear = limit_k if clear_below_k is None else clear_below_k
        if not clear <= limit_k:
            raise ValueError(f"TemperatureAbove: clear_below_k ({clear}) must be <= limit_k ({limit_k})")
        super().__init__(name or f"{_source_name(parameter)} above {limit_k:g} K", safe_state)
        self.parameter, self.limit_k, self.clear_below_k = parameter, float(limit_k), float(clear)
        self.last_value: float | None = None

    def evaluate(self, tripped: bool) -> str | None:
        value = _read(self.parameter)
        self.last_value = value
        what = _source_name(self.parameter)
        if value > self.limit_k or math.isnan(value):  # NaN holds
            return f"{what} = {value:.4g} K, above the limit {self.limit_k:g} K"
        if tripped and value >= self.clear_below_k:
            return f"{what} = {value:.4g} K, not yet below {self.clear_below_k:g} K after exceeding {self.limit_k:g} K"
        return None


class InstrumentNotAnswering(Interlock):
    """Holds while an instrument does not answer.

    Trips when the engine notices an :class:`~cryodaq.errors.InstrumentError` naming the
    instrument (raised by the reliability layer after its retries) during a point, or, with
    ``poll=True``, when ``ping`` fails at a check. While tripped, each check pings; it clears
    when the ping answers. ``ping`` defaults to ``instrument.ask('*IDN?')`` (a VISA/IP
    instrument) or reading ``instrument.IDN``.
    """

    def __init__(self, instrument: Any, *, ping: Callable[[], Any] | None = None, poll: bool = False,
                 safe_state: Sequence[Action] = (), name: str | None = None) -> None:
        self.instrument = instrument
        self.instrument_name = str(getattr(instrument, "name", instrument))
        super().__init__(name or f"{self.instrument_name} not answering", safe_state)
        self.ping = ping or self._default_ping
        self.poll = poll
        self._error: str | None = None

    def _default_ping(self) -> Any:
        ask = getattr(self.instrument, "ask", None)
        if callable(ask):
            return ask("*IDN?")
        return self.instrument.IDN.get()

    def notice(self, exc: BaseException) -> None:
        """Trip when ``exc`` (or its cause chain) is an InstrumentError of this instrument."""
        seen: BaseException | None = exc
        while seen is not None:
            if isinstance(seen, InstrumentError) and seen.instrument == self.instrument_name:
                self._error = str(seen)
                self.tripped = True
                return
            seen = seen.__cause__ or seen.__context__

    def evaluate(self, tripped: bool) -> str | None:
        if not (tripped or self.poll):
            return None
        try:
            self.ping()
        except Exception as exc:
            self._error = f"{type(exc).__name__}: {exc}"
            return f"instrument {self.instrument_name!r} does not answer ({self._error})"
        self._error = None
        return None


class DiskNearlyFull(Interlock):
    """Holds while the disk holding ``path`` has less than ``min_free_bytes`` free
    (clears above ``clear_above_bytes``, default the same)."""

    def __init__(self, path: str | Path, min_free_bytes: float, clear_above_bytes: float | None = None, *,
                 safe_state: Sequence[Action] = (), name: str | None = None,
                 disk_usage: Callable[[str], Any] = shutil.disk_usage) -> None:
        clear = min_free_bytes if clear_above_bytes is None else clear_above_bytes
        if not clear >= min_free_bytes:
            raise ValueError("DiskNearlyFull: clear_above_bytes must be >= min_free_bytes")
        super().__init__(name or f"disk of {path} nearly full", safe_state)
        self.path, self.min_free, self.clear_above = Path(path), float(min_free_bytes), float(clear)
        self._usage = disk_usage

    def evaluate(self, tripped: bool) -> str | None:
        path = self.path
        while not path.exists() and path != path.parent:  # a run folder not yet created: its disk
            path = path.parent
        free = float(self._usage(str(path)).free)
        threshold = self.clear_above if tripped else self.min_free
        if free < threshold:
            return f"only {free / 1e9:.3g} GB free on the disk of {self.path} (need {threshold / 1e9:.3g} GB)"
        return None
