"""Live progress of a sweep on the terminal (rich): state, current point, done / total, elapsed,
ETA and the last interlock event. A :class:`~cryodaq.sweeps.engine.SweepObserver`.

The ETA is the mean time per point measured in this session (pauses left out) times the
points left. Off a terminal nothing is drawn: the run's ``sweep.log`` has every point.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cryodaq.console import stderr_console
from cryodaq.sweeps.engine import Point, SweepEngine, SweepResult, SweepState

__all__ = ["SweepProgress", "format_duration"]

T = TypeVar("T")

_STYLE = {SweepState.RUNNING: "green", SweepState.PAUSED: "bold yellow", SweepState.PAUSING: "yellow",
          SweepState.STOPPING: "yellow", SweepState.ABORTING: "bold red", SweepState.DONE: "cyan"}


def format_duration(seconds: float | None) -> str:
    """``h:mm:ss`` (``--`` when unknown)."""
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return "--"
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class SweepProgress:
    """Rich live display fed by the engine; use as a context manager around the script."""

    def __init__(self, console: Console | None = None, *, enabled: bool | None = None, title: str = "") -> None:
        self.console = console or stderr_console()
        self.enabled = self.console.is_terminal if enabled is None else enabled
        self.title = title
        self.engine: SweepEngine | None = None
        self.point: Point | None = None
        self.point_started_s: float | None = None
        self.durations: list[float] = []
        self.last_event = ""
        self._live: Live | None = None
        self._streams: list[tuple[logging.StreamHandler, Any]] = []

    # -- context -----------------------------------------------------------------------------
    def __enter__(self) -> SweepProgress:
        if self.enabled:
            self._live = Live(self, console=self.console, refresh_per_second=4, transient=False)
            self._live.start()
            self._redirect_log_handlers()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        for handler, stream in self._streams:
            handler.setStream(stream)
        self._streams = []

    def _redirect_log_handlers(self) -> None:
        """Console log lines go above the live display instead of through it."""
        for handler in logging.getLogger().handlers:
            if type(handler) is logging.StreamHandler and handler.stream in (sys.__stderr__, sys.__stdout__):
                self._streams.append((handler, handler.stream))
                handler.setStream(self.console.file)

    def suspended(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (e.g. a terminal prompt) with the live display stopped."""
        live = self._live
        if live is None:
            return fn()
        live.stop()
        try:
            return fn()
        finally:
            live.start()

    # -- observer ------------------------------------------------------------------------------
    def sweep_started(self, engine: SweepEngine) -> None:
        self.engine, self.durations, self.point = engine, [], None

    def point_started(self, engine: SweepEngine, point: Point) -> None:
        self.point, self.point_started_s = point, time.monotonic()

    def point_done(self, engine: SweepEngine, point: Point, duration_s: float) -> None:
        self.durations.append(duration_s)

    def state_changed(self, engine: SweepEngine, state: SweepState, detail: str) -> None:
        if engine.last_event:
            self.last_event = engine.last_event

    def sweep_finished(self, engine: SweepEngine, result: SweepResult) -> None:
        if self._live is None:
            return
        self.console.print(f"sweep [bold]{result.name}[/]: {result.status}, {engine.n_done}/{engine.total} points "
                           f"({result.measured} this session, {len(result.pauses)} pause(s))")

    # -- numbers ---------------------------------------------------------------------------------
    def eta_s(self) -> float | None:
        e = self.engine
        if e is None or e.started_s is None or not e.measured:
            return None
        active = time.monotonic() - e.started_s - e.paused_s
        return active / e.measured * (e.total - e.n_done)

    def elapsed_s(self) -> float | None:
        e = self.engine
        return None if e is None or e.started_s is None else time.monotonic() - e.started_s

    # -- rendering --------------------------------------------------------------------------------
    def __rich__(self) -> Group:
        e = self.engine
        if e is None:
            return Group(Text(f"{self.title}: starting ..."))
        state = e.state
        head = Table.grid(padding=(0, 2))
        frac = e.n_done / e.total if e.total else 1.0
        head.add_row(Text(f"sweep {e.name}", style="bold"), Text(state.value, style=_STYLE.get(state, "")),
                     Text(f"{e.n_done}/{e.total} points ({100 * frac:.0f}%)"),
                     Text(f"elapsed {format_duration(self.elapsed_s())}"),
                     Text(f"ETA {format_duration(self.eta_s())}"))
        lines: list[Any] = [head]
        if self.point is not None:
            values = "  ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in self.point.values.items())
            lines.append(Text(f"  point {self.point.flat}: {values}"))
        if state in (SweepState.PAUSED, SweepState.PAUSING, SweepState.STOPPING, SweepState.ABORTING) and e.detail:
            lines.append(Text(f"  {e.detail}", style=_STYLE.get(state, "")))
        if self.last_event:
            lines.append(Text(f"  last event: {self.last_event}", style="dim"))
        return Group(*lines)
