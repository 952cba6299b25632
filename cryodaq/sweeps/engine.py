"""The sweep loop: set the axes that changed, settle, measure, commit — pausing when told or when
an interlock holds, and skipping points already committed (resume).

States (docs/sweeps.md has the diagram)::

    idle -> running -> done
    running -> pausing (operator request, until the point boundary) -> paused -> running | stopping | aborting
    running -> paused (an interlock holds; the point in progress is discarded) -> running (point redone)
    running -> stopping (stop request, at the point boundary)  -> raises SweepStopped
    any     -> aborting (abort request / second Ctrl-C)         -> raises SweepAborted or KeyboardInterrupt

One point: check requests and interlocks; set each axis whose index changed since the last
point (outer first; every axis after a pause), each followed by its ``delay_s`` and its
``after_set`` actions; measure; check interlocks again; write the values, then the point's
``done`` flag. An exception while setting or measuring is shown to the interlocks: when one
then holds, the sweep pauses and redoes the point; otherwise the exception ends the sweep.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import numpy as np

from cryodaq.errors import CryodaqError
from cryodaq.storage.sweep_store import Measured
from cryodaq.sweeps.axes import Axis, axis_shape
from cryodaq.sweeps.control import Decision, SweepAborted, SweepControl, SweepStopped
from cryodaq.sweeps.interlocks import InterlockLike

__all__ = ["InterlockTimeout", "PauseEvent", "Point", "SweepEngine", "SweepObserver", "SweepResult", "SweepSink",
           "SweepState"]

log = logging.getLogger("cryodaq.sweeps")


class SweepState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    STOPPING = "stopping"
    ABORTING = "aborting"
    DONE = "done"


class InterlockTimeout(CryodaqError, TimeoutError):
    """An interlock held for longer than the sweep's ``max_pause_s``: the sweep ends."""


@dataclass(frozen=True)
class Point:
    """One grid point: its index per axis, its flat (C-order) index, and the axes' values there."""

    index: tuple[int, ...]
    flat: int
    values: Mapping[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


@dataclass
class PauseEvent:
    """A pause of this session: what caused it, why, which point it interrupted, when (monotonic s)."""

    source: str
    reason: str
    point: int
    started_s: float
    ended_s: float | None = None


@dataclass
class SweepResult:
    """What a sweep did in this session; ``dataset()`` reads everything it holds (this and earlier sessions)."""

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    total: int
    measured: int
    skipped: int
    status: str
    pauses: list[PauseEvent] = field(default_factory=list)
    sink: Any = None

    def dataset(self) -> Any:
        """The sweep as an ``xarray.Dataset`` (``done`` marks the measured points)."""
        return self.sink.dataset()


class SweepSink(Protocol):
    """Where points go: :class:`~cryodaq.storage.sweep_store.SweepGroup` or :class:`~cryodaq.sweeps.memory.MemorySweep`."""

    dims: tuple[str, ...]
    shape: tuple[int, ...]

    def done(self) -> np.ndarray: ...
    def write_point(self, index: tuple[int, ...], values: Mapping[str, Measured], t_ns: int) -> None: ...
    def begin_pause(self, t_ns: int, source: str, reason: str, point: int) -> int: ...
    def end_pause(self, row: int, t_ns: int, reason: str | None = None) -> None: ...
    def set_attrs(self, **fields: Any) -> None: ...
    def dataset(self) -> Any: ...


class SweepObserver(Protocol):
    """Told what the engine does (the progress display implements it); all methods optional."""

    def sweep_started(self, engine: SweepEngine) -> None: ...
    def point_started(self, engine: SweepEngine, point: Point) -> None: ...
    def point_done(self, engine: SweepEngine, point: Point, duration_s: float) -> None: ...
    def state_changed(self, engine: SweepEngine, state: SweepState, detail: str) -> None: ...
    def sweep_finished(self, engine: SweepEngine, result: SweepResult) -> None: ...


class SweepEngine:
    """Runs one sweep over ``axes`` into ``sink`` (see the module docstring).

    ``clock``/``sleep``/``time_ns`` are injectable so tests can run on a fake clock;
    ``heartbeat`` is called after each committed point (the run writes its liveness there).
    """

    def __init__(
        self,
        name: str,
        axes: Sequence[Axis],
        measure: Callable[[Point], Mapping[str, Measured]],
        sink: SweepSink,
        *,
        interlocks: Sequence[InterlockLike] = (),
        control: SweepControl | None = None,
        observer: SweepObserver | None = None,
        poll_s: float = 1.0,
        resume_hold_s: float = 0.0,
        max_pause_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
        time_ns: Callable[[], int] = time.time_ns,
        heartbeat: Callable[[], Any] | None = None,
    ) -> None:
        self.name = name
        self.axes = list(axes)
        self.shape = axis_shape(self.axes)
        if tuple(sink.shape) != self.shape:
            raise ValueError(f"sweep {name!r}: sink shape {sink.shape} differs from the axes' {self.shape}")
        for il in interlocks:
            if not isinstance(il, InterlockLike):
                raise TypeError(f"sweep {name!r}: {il!r} is not an interlock (needs name, safe_state, check())")
        self.measure = measure
        self.sink = sink
        self.interlocks = list(interlocks)
        self.control = control
        self.observer = observer
        self.poll_s, self.resume_hold_s, self.max_pause_s = float(poll_s), float(resume_hold_s), max_pause_s
        self._clock, self._sleep, self._time_ns, self._heartbeat = clock, sleep, time_ns, heartbeat
        self.total = int(np.prod(self.shape, dtype=np.int64))
        self.n_done = 0
        self.measured = 0
        self.pauses: list[PauseEvent] = []
        self.current: Point | None = None
        self.started_s: float | None = None
        self.paused_s = 0.0  # seconds spent paused this session (the ETA leaves them out)
        self.last_event = ""
        self._state = SweepState.IDLE
        self._detail = ""
        self._last: list[int | None] = [None] * len(self.axes)

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> SweepState:
        """The state, with a pending operator request shown as pausing / stopping / aborting."""
        c = self.control
        if self._state is SweepState.RUNNING and c is not None:
            if c.abort_requested:
                return SweepState.ABORTING
            if c.stop_requested:
                return SweepState.STOPPING
            if c.pause_requested:
                return SweepState.PAUSING
        return self._state

    @property
    def detail(self) -> str:
        """Why the engine is in its state (the interlock reason while paused, the request while stopping)."""
        return self._detail

    def _set_state(self, state: SweepState, detail: str = "") -> None:
        self._state, self._detail = state, detail
        self._notify("state_changed", state, detail)

    def _notify(self, method: str, *args: Any) -> None:
        fn = getattr(self.observer, method, None) if self.observer is not None else None
        if fn is None:
            return
        try:
            fn(self, *args)
        except Exception:  # a broken display must not cost a night of data
            log.exception("sweep observer %s failed", method)

    # ------------------------------------------------------------------ loop
    def point(self, index: tuple[int, ...]) -> Point:
        values: dict[str, Any] = {}
        for axis, i in zip(self.axes, index):
            values.update(axis.values_at(i))
        flat = int(np.ravel_multi_index(index, self.shape)) if self.shape else 0
        return Point(tuple(int(i) for i in index), flat, values)

    def run(self) -> SweepResult:
        """Measure every point not yet done; returns what happened. Raises SweepStopped /
        SweepAborted on operator requests, InterlockTimeout, or the error that ended the sweep."""
        done = self.sink.done()
        self.n_done = int(done.sum())
        skipped = self.n_done
        self.started_s = self._clock()
        self._set_state(SweepState.RUNNING)
        self._notify("sweep_started")
        if skipped:
            log.info("sweep %s: resuming, %d of %d points already done", self.name, skipped, self.total)
        else:
            log.info("sweep %s: %d points over %s", self.name, self.total, dict(zip(self.sink.dims, self.shape)))
        status = "error"
        try:
            for index in np.ndindex(*self.shape):
                if done[index]:
                    continue
                self._do_point(self.point(index))
            status = "complete"
        except SweepStopped:
            status = "stopped"
            raise
        except (SweepAborted, KeyboardInterrupt):
            status = "aborted"
            raise
        finally:
            self._finish(status, skipped)
        return self._result(status, skipped)

    def _result(self, status: str, skipped: int) -> SweepResult:
        return SweepResult(self.name, tuple(self.sink.dims), self.shape, self.total, self.measured, skipped, status,
                           list(self.pauses), self.sink)

    def _finish(self, status: str, skipped: int) -> None:
        self._set_state(SweepState.DONE, status)
        try:
            self.sink.set_attrs(status=status, points_done=self.n_done, points_total=self.total)
        except Exception as exc:  # e.g. the disk that ended the sweep is still full: keep the first error
            log.error("sweep %s: could not record its status %r: %s", self.name, status, exc)
        log.info("sweep %s %s: %d of %d points done (%d this session, %d pauses)", self.name, status, self.n_done,
                 self.total, self.measured, len(self.pauses))
        self._notify("sweep_finished", self._result(status, skipped))

    def _do_point(self, point: Point) -> None:
        while True:
            self._boundary(point)
            self.current = point
            self._notify("point_started", point)
            started = self._clock()
            try:
                self._set_axes(point.index)
                values = self.measure(point)
            except Exception as exc:
                for il in self.interlocks:
                    notice = getattr(il, "notice", None)
                    if notice is not None:
                        notice(exc)
                tripped = self._check()
                if not tripped:
                    raise
                log.warning("sweep %s: point %d failed while an interlock holds (%s: %s); it will be redone",
                            self.name, point.flat, type(exc).__name__, exc)
                self._interlock_pause(tripped, point)
                continue
            tripped = self._check()
            if tripped:  # the data may have been taken under the condition: discard, wait, redo
                self._interlock_pause(tripped, point)
                continue
            self.sink.write_point(point.index, values, self._time_ns())
            self.n_done += 1
            self.measured += 1
            duration = self._clock() - started
            log.info("sweep %s: point %d/%d %s done in %.3g s", self.name, self.n_done, self.total,
                     _fmt_values(point.values), duration)
            if self._heartbeat is not None:
                self._heartbeat()
            self._notify("point_done", point, duration)
            return

    def _set_axes(self, index: tuple[int, ...]) -> None:
        for i, (axis, k) in enumerate(zip(self.axes, index)):
            if self._last[i] != k:
                self._last[i] = None  # unknown until the set (and its settling) completed
                axis.apply(k, self._sleep)
                self._last[i] = k

    # ------------------------------------------------------------------ interlocks
    def _check(self) -> list[tuple[InterlockLike, str]]:
        out = []
        for il in self.interlocks:
            try:
                reason = il.check()
            except Exception as exc:  # fail safe: a check that fails holds
                reason = f"{il.name}: check failed ({type(exc).__name__}: {exc})"
            if reason:
                out.append((il, reason))
        return out

    def _safe_state(self, interlock: InterlockLike) -> None:
        for action in interlock.safe_state:
            try:
                action()
                log.warning("sweep %s: interlock %s: safe state %s done", self.name, interlock.name,
                            getattr(action, "__qualname__", action))
            except Exception:  # the pause goes on regardless; say loudly that the safe state failed
                log.exception("sweep %s: interlock %s: safe-state action %r failed", self.name, interlock.name, action)

    def _interlock_pause(self, tripped: list[tuple[InterlockLike, str]], point: Point) -> None:
        reasons = [r for _, r in tripped]
        source = ", ".join(il.name for il, _ in tripped)
        log.warning("sweep %s: interlock: %s; pausing at point %d %s", self.name, "; ".join(reasons), point.flat,
                    _fmt_values(point.values))
        event = PauseEvent(source, "; ".join(reasons), point.flat, self._clock())
        self.pauses.append(event)
        self.last_event = f"interlock: {event.reason}"
        row = self.sink.begin_pause(self._time_ns(), source, event.reason, point.flat)
        self._set_state(SweepState.PAUSED, event.reason)
        handled = set()
        for il, _ in tripped:
            self._safe_state(il)
            handled.add(id(il))
        clear_since: float | None = None
        try:
            while True:
                self._sleep(self.poll_s)
                if self.control is not None and self.control.active:
                    self._operator(point, during_interlock=True)
                now_tripped = self._check()
                now = self._clock()
                if now_tripped:
                    clear_since = None
                    for il, reason in now_tripped:
                        if id(il) not in handled:  # another interlock joined in: its safe state too
                            self._safe_state(il)
                            handled.add(id(il))
                        if reason not in reasons and len(reasons) < 20:
                            reasons.append(reason)
                    if self.max_pause_s is not None and now - event.started_s > self.max_pause_s:
                        raise InterlockTimeout(
                            f"sweep {self.name!r}: interlock held for more than {self.max_pause_s:g} s "
                            f"({'; '.join(r for _, r in now_tripped)}); giving up at point {point.flat}")
                    continue
                clear_since = now if clear_since is None else clear_since
                if now - clear_since >= self.resume_hold_s:
                    break
        finally:
            event.ended_s = self._clock()
            self.paused_s += event.ended_s - event.started_s
            event.reason = "; ".join(reasons)
            self.sink.end_pause(row, self._time_ns(), event.reason)
        log.warning("sweep %s: interlock cleared after %.1f s; redoing point %d", self.name,
                    event.ended_s - event.started_s, point.flat)
        self.last_event = f"interlock cleared after {event.ended_s - event.started_s:.0f} s: {event.reason}"
        self._last = [None] * len(self.axes)  # the safe state may have changed anything: set every axis again
        self._set_state(SweepState.RUNNING)

    # ------------------------------------------------------------------ operator
    def _boundary(self, point: Point) -> None:
        """Between points: operator requests first, then the interlocks (pausing until they clear)."""
        while True:
            if self.control is not None and self.control.active:
                self._operator(point)
            tripped = self._check()
            if not tripped:
                return
            self._interlock_pause(tripped, point)

    def _operator(self, point: Point, during_interlock: bool = False) -> None:
        c = self.control
        assert c is not None
        if c.abort_requested:
            self._set_state(SweepState.ABORTING, c.reason)
            raise SweepAborted(c.reason)
        if c.stop_requested:
            self._set_state(SweepState.STOPPING, c.reason)
            log.warning("sweep %s: %s before point %d", self.name, c.reason, point.flat)
            raise SweepStopped(c.reason)
        if not c.pause_requested:
            return
        reason = c.reason
        log.warning("sweep %s: %s before point %d", self.name, reason, point.flat)
        event = PauseEvent("operator", reason, point.flat, self._clock())
        self.pauses.append(event)
        self.last_event = reason
        row = self.sink.begin_pause(self._time_ns(), "operator", reason, point.flat)
        self._set_state(SweepState.PAUSED, reason)
        try:
            decision = c.decide()
        finally:
            event.ended_s = self._clock()
            self.paused_s += event.ended_s - event.started_s
            self.sink.end_pause(row, self._time_ns())
        log.warning("sweep %s: operator chose %s", self.name, decision.value)
        if decision is Decision.ABORT:
            self._set_state(SweepState.ABORTING, c.reason)
            raise SweepAborted(c.reason)
        if decision is Decision.STOP:
            self._set_state(SweepState.STOPPING, c.reason)
            raise SweepStopped(c.reason)
        self._last = [None] * len(self.axes)  # hardware may have been touched while paused
        self._set_state(SweepState.PAUSED if during_interlock else SweepState.RUNNING)


def _fmt_values(values: Mapping[str, Any]) -> str:
    parts = []
    for k, v in values.items():
        parts.append(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}")
    return "(" + ", ".join(parts) + ")"
