"""What the commands print, and where: results on stdout, everything else on stderr (rich).

- :func:`stderr_console`: the console every command writes its messages and progress to. On
  a terminal it is rich's; anywhere else (a log file, a pipe, systemd's journal) lines are
  not wrapped, so a one-line error or an address stays one line a script can grep.
- :func:`results_to_stdout`: stdout carries only what a script captures (a run's path, or
  ``--json``); while a command runs, anything else printed there — qcodes' "Connected to:"
  lines, a sweep script's prints — goes to stderr. So ``RUN=$(cryodaq demo -q)`` works.
- :class:`RunProgress`: the live table of a streaming run, and its summary.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from cryodaq.acquisition.session import RunSummary, StreamSession

__all__ = ["RunProgress", "print_json", "results_to_stdout", "stderr_console", "stdout_console"]

#: line width off a terminal: wide enough that nothing is wrapped (tables still take only what they need)
UNWRAPPED_WIDTH = 100_000


def stderr_console() -> Console:
    """The console for a command's messages: stderr, wrapped only on a terminal (module docstring)."""
    console = Console(stderr=True)
    if console.is_terminal:
        return console
    return Console(stderr=True, soft_wrap=True, width=UNWRAPPED_WIDTH)


def stdout_console() -> Console:
    """A console for a command's result on stdout (a table a script may parse): wrapped only on a terminal."""
    console = Console(file=sys.stdout)
    if console.is_terminal:
        return console
    return Console(file=sys.stdout, soft_wrap=True, width=UNWRAPPED_WIDTH)


@contextmanager
def results_to_stdout() -> Iterator[TextIO]:
    """Yield the real stdout for a command's result; send everything else printed to stdout to stderr."""
    out = sys.stdout
    with redirect_stdout(sys.stderr):
        yield out


def print_json(result: Mapping[str, Any], out: TextIO) -> None:
    """A command's ``--json`` result: one JSON document on ``out`` (stdout)."""
    out.write(json.dumps(dict(result), indent=2, default=str) + "\n")
    out.flush()


def _fmt_count(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:.0f}"


def _veto_text(st: Any, k: int) -> str:
    rate = st.vetoed / st.elapsed if st.elapsed > 0 else 0.0
    return f"{st.vetoed} events vetoed ({rate:.3g}/s; groups on more than {k} channels)"


class RunProgress:
    """Live one-table view of a streaming run: elapsed, samples, events, drops, housekeeping.

    On a terminal the table is redrawn in place; elsewhere (a log, a pipe) only the last
    frame is printed, once, when the run ends.
    """

    def __init__(self, console: Console, name: str, duration_s: float | None, *, enabled: bool = True) -> None:
        self.console, self.name, self.duration_s, self.enabled = console, name, duration_s, enabled
        self._live: Live | None = None
        self._last: StreamSession | None = None

    def __enter__(self) -> RunProgress:
        if self.enabled and self.console.is_terminal:
            self._live = Live(Text(f"starting {self.name} ..."), console=self.console, refresh_per_second=4,
                              transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
        elif self.enabled and self._last is not None:
            self.console.print(self.render(self._last))  # off a terminal: the last frame, on lines of its own

    def update(self, session: StreamSession) -> None:
        self._last = session
        if self._live is not None:
            self._live.update(self.render(session))

    def render(self, session: StreamSession) -> Group:
        st = session.stats
        total = f" / {self.duration_s:g} s" if self.duration_s else " (Ctrl-C to stop)"
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        table.add_row("run", f"{self.name} -> {session.writer.path if session.writer else '...'}")
        table.add_row("elapsed", f"{st.elapsed:.1f} s{total}")
        rate = st.samples / st.elapsed if st.elapsed > 0 else 0.0
        if st.sample_unit == "samples":
            table.add_row("samples", f"{_fmt_count(st.samples)} ({_fmt_count(rate)}S/s), {st.packets} packets")
        else:
            table.add_row(st.sample_unit, f"{_fmt_count(st.samples)} ({_fmt_count(rate)}/s)")
        per = ", ".join(str(int(n)) for n in st.events_per_channel)
        table.add_row("events", f"{st.events} in all; per channel [{per}]")
        config = getattr(session, "config", None)
        veto = config.pipeline.veto if config is not None else None
        if veto is not None and veto.enabled:
            table.add_row("veto", _veto_text(st, veto.max_channels))
        for lane in getattr(session, "lanes", [])[1:]:  # a station with several readouts: a line for each other
            ls = lane.stats
            drops = f", {ls.lost_packets} packets lost, {ls.gaps} gaps" if ls.lost_packets or ls.gaps else ""
            vetoed = f", {_veto_text(ls, veto.max_channels)}" if veto is not None and veto.enabled else ""
            table.add_row(lane.name, f"{_fmt_count(ls.samples)} samples, {ls.events} events{vetoed}{drops} -> "
                                     f"{lane.writer.path.name}")
        drops = f"{st.lost_packets} packets lost, {st.dropped_blocks} blocks dropped, {st.gaps} gaps"
        table.add_row("drops", Text(drops, style="red" if (st.lost_packets or st.dropped_blocks) else ""))
        table.add_row("queue", f"{st.queue_fill} blocks waiting")
        for name, value in st.housekeeping.items():
            unit = st.housekeeping_units.get(name, "")
            table.add_row(name, f"{value:.4g} {unit}".rstrip())
        return Group(table)

    @staticmethod
    def print_summary(console: Console, summary: RunSummary) -> None:
        st = summary.stats
        state = summary.status + (" (interrupted)" if summary.interrupted else "")
        table = Table(title="run summary", show_header=False)
        table.add_row("status", state)
        table.add_row("duration", f"{summary.duration_s:.1f} s")
        table.add_row(st.sample_unit, f"{st.samples} in {st.packets} packets")
        table.add_row("events", f"{st.events}; per channel: {', '.join(str(int(n)) for n in st.events_per_channel)}")
        table.add_row("gaps", f"{st.gaps} ({st.samples_lost} {st.sample_unit} missing), "
                              f"{st.dropped_blocks} blocks dropped")
        if st.vetoed:
            table.add_row("vetoed", f"{st.vetoed} events ({st.vetoed / summary.duration_s:.3g}/s)"
                          if summary.duration_s > 0 else str(st.vetoed))
        for name, ls in list(summary.lane_stats.items())[1:]:
            table.add_row(name, f"{ls.events} events, {ls.vetoed} vetoed, {ls.gaps} gaps")
        for path in summary.paths or [summary.path]:
            table.add_row("run", str(path))
        console.print(table)
