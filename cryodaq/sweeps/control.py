"""Operator control of a running sweep: pause / resume / stop / abort, and what Ctrl-C, SIGTERM and SIGHUP do.

Requests are flags the engine reads at point boundaries (safe to set from any thread or a
signal handler). Signals (:meth:`SweepControl.handle_signal`, installed for SIGINT, SIGTERM
and SIGHUP by :meth:`signals` through :mod:`cryodaq.stop_signals`, as for a run):

- first Ctrl-C on a terminal: pause at the next point boundary and ask — resume, stop
  (end cleanly; the run is resumable) or abort. When stdin is not a terminal (a service,
  CI, a test) there is nobody to ask, and the first Ctrl-C means *stop cleanly*; so does a
  first SIGTERM (systemd, Slurm, ``timeout``, ``docker stop``) or SIGHUP (the terminal closed);
- a second signal before the first was dealt with (or at the prompt): abort now
  (``KeyboardInterrupt`` where the program is; the point in progress is not committed).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, TextIO

from cryodaq.stop_signals import handling_signals, signal_name

__all__ = ["Decision", "SweepAborted", "SweepControl", "SweepStopped", "terminal_prompt"]


class SweepStopped(BaseException):
    """The operator stopped the sweep at a point boundary; everything committed is consistent.

    A BaseException (like KeyboardInterrupt) so that a script's ``except Exception`` does not
    swallow the request."""


class SweepAborted(BaseException):
    """The operator aborted the sweep (second Ctrl-C, or 'abort' at the prompt)."""


class Decision(StrEnum):
    RESUME = "resume"
    STOP = "stop"
    ABORT = "abort"


def terminal_prompt(stdin: TextIO | None = None, stderr: TextIO | None = None) -> Decision:
    """Ask on the terminal what to do with a paused sweep; end of input means stop."""
    stdin, stderr = stdin or sys.stdin, stderr or sys.stderr
    while True:
        stderr.write("\nsweep paused: [r]esume, [s]top (keep the data; resumable with --resume) or [a]bort? ")
        stderr.flush()
        line = stdin.readline()
        if not line:
            return Decision.STOP
        answer = line.strip().lower()
        for decision in Decision:
            if answer and decision.value.startswith(answer):
                return decision


class SweepControl:
    """Pause / resume / stop / abort requests for a sweep (see the module docstring)."""

    def __init__(self, prompt: Callable[[], Decision] | None = None, *, interactive: bool | None = None,
                 notify: Callable[[str], Any] | None = None) -> None:
        self.prompt = prompt or terminal_prompt
        self.interactive = bool(sys.stdin and sys.stdin.isatty()) if interactive is None else interactive
        self.notify = notify or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._lock = threading.Lock()
        self._resume = threading.Event()
        self.pause_requested = False
        self.ask_on_pause = False
        self.stop_requested = False
        self.abort_requested = False
        self.reason = ""
        self._presses = 0

    # -- requests (any thread) --------------------------------------------------------------
    def request_pause(self, reason: str = "paused by the operator", *, ask: bool = False) -> None:
        """Pause at the next point boundary; ``ask``: then prompt (else wait for resume/stop/abort)."""
        with self._lock:
            self.pause_requested, self.ask_on_pause, self.reason = True, ask, reason
            self._resume.clear()

    def request_resume(self) -> None:
        with self._lock:
            self.pause_requested = False
            self._resume.set()

    def request_stop(self, reason: str = "stopped by the operator") -> None:
        with self._lock:
            self.stop_requested, self.reason = True, reason
            self._resume.set()

    def request_abort(self, reason: str = "aborted by the operator") -> None:
        with self._lock:
            self.abort_requested, self.reason = True, reason
            self._resume.set()

    @property
    def active(self) -> bool:
        """Whether any request waits to be handled."""
        return self.pause_requested or self.stop_requested or self.abort_requested

    # -- the engine's side --------------------------------------------------------------------
    def decide(self, poll: Callable[[], Any] | None = None, poll_s: float = 0.5) -> Decision:
        """Called by the engine while paused for the operator: ask, or wait for a request.

        ``poll`` runs every ``poll_s`` while waiting (the engine keeps its interlocks checked).
        """
        if self.abort_requested:
            return Decision.ABORT
        if self.stop_requested:
            return Decision.STOP
        if self.ask_on_pause:
            decision = self.prompt()
        else:
            while not self._resume.wait(poll_s):
                if poll is not None:
                    poll()
            decision = Decision.ABORT if self.abort_requested else Decision.STOP if self.stop_requested \
                else Decision.RESUME
        with self._lock:
            self.pause_requested = self.ask_on_pause = False
            self._presses = 0
            if decision is Decision.STOP:
                self.stop_requested = True
            elif decision is Decision.ABORT:
                self.abort_requested = True
        return decision

    # -- signals (Ctrl-C, SIGTERM, SIGHUP) ----------------------------------------------------------
    def handle_signal(self, signum: int = signal.SIGINT, frame: Any = None) -> None:
        """First signal: pause and ask (Ctrl-C on a terminal) or stop cleanly (otherwise); second: abort now."""
        name = signal_name(signum)
        self._presses += 1
        if self._presses >= 2 or self.abort_requested:
            self.request_abort(f"aborted by the operator (second {name})")
            raise KeyboardInterrupt
        if self.interactive and signum == signal.SIGINT:
            self.notify(f"{name}: pausing at the next point (press again to abort now)")
            self.request_pause(f"paused by the operator ({name})", ask=True)
        else:
            self.notify(f"{name}: stopping cleanly at the next point (send it again to abort now)")
            self.request_stop(f"stopped by the operator ({name})")

    @contextmanager
    def signals(self) -> Iterator[SweepControl]:
        """Install :meth:`handle_signal` for SIGINT, SIGTERM and SIGHUP while the block runs (main thread only)."""
        with handling_signals(self.handle_signal):
            yield self
