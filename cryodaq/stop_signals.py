"""How a long command stops on a signal: one handler for ``run``, ``sweep`` and ``reprocess``.

A terminal's Ctrl-C (SIGINT), a service manager, batch system, ``timeout`` or ``docker stop``
(SIGTERM) and a closed terminal or SSH session (SIGHUP) all mean the same: *stop now, keep
what was taken*. So the three are handled alike, by :func:`stop_on_signals`:

- the first signal calls ``on_stop(name)`` — the command ends cleanly at its next safe point
  (a run drains and closes ``complete``/``interrupted``; a sweep stops at a point boundary;
  reprocessing cancels its chunks and writes nothing) — and says so on stderr;
- the second signal (any of the three) calls ``on_abort(name)``, by default raising
  :class:`KeyboardInterrupt` where the program is, which the command turns into an abort.

A stop the operator asked for is not an error: no traceback reaches the terminal
(:class:`~cryodaq.errors.StoppedError` for work that ended before it produced anything).
Signal handlers can only be installed from the main thread; elsewhere this is a no-op.

Helper processes a command starts (the simulators, Dask's workers) are in its process group
and get the same signals from a terminal, systemd or a closed session; they must not die
half-way or print tracebacks — the command stops them when it stops. Started inside
:func:`stop_signals_ignored_by_children`, they inherit ignoring the stop signals from their
first instruction on.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["STOP_SIGNALS", "StopSignals", "handling_signals", "signal_name", "stop_on_signals",
           "stop_signals_ignored_by_children"]

#: the signals that ask a command to stop: Ctrl-C, a service manager / batch system, a closed terminal
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_WHAT = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


def signal_name(signum: int) -> str:
    """``Ctrl-C`` for SIGINT, else the signal's name (``SIGTERM``, ``SIGHUP``)."""
    try:
        sig = signal.Signals(signum)
    except ValueError:
        return f"signal {signum}"
    return _WHAT.get(sig, sig.name)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _raise_keyboard_interrupt(name: str) -> None:
    raise KeyboardInterrupt(name)


class StopSignals:
    """The handler :func:`stop_on_signals` installs: counts signals, stops on the first, aborts on the second."""

    def __init__(self, on_stop: Callable[[str], Any], *, on_abort: Callable[[str], Any] = _raise_keyboard_interrupt,
                 notify: Callable[[str], Any] = _stderr, what: str = "the run") -> None:
        self.on_stop, self.on_abort, self.notify, self.what = on_stop, on_abort, notify, what
        self.received: list[str] = []  # names of the signals received, in order

    @property
    def stop_requested(self) -> bool:
        return bool(self.received)

    def __call__(self, signum: int, frame: Any = None) -> None:
        name = signal_name(signum)
        self.received.append(name)
        if len(self.received) == 1:
            self.notify(f"{name}: stopping {self.what} cleanly (send it again to abort)")
            self.on_stop(name)
        else:
            self.notify(f"{name} again: aborting {self.what}")
            self.on_abort(name)


@contextmanager
def handling_signals(handler: Callable[[int, Any], Any],
                     signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Install ``handler`` for ``signals`` while the block runs, then put the previous handlers back.

    Main thread only (Python's rule for signal handlers); elsewhere nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            # None: a handler not installed from Python, which cannot be put back
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


@contextmanager
def stop_signals_ignored_by_children() -> Iterator[None]:
    """Ignore the stop signals while child processes start in the block, so they inherit SIG_IGN from
    their very first instruction (a disposition of SIG_IGN survives ``exec``, and Python keeps it),
    before they could set it themselves; then put this process's handlers back. Main thread only
    (Python's rule); elsewhere the children's own ``signal.signal`` has to do."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


@contextmanager
def stop_on_signals(on_stop: Callable[[str], Any], *, on_abort: Callable[[str], Any] = _raise_keyboard_interrupt,
                    notify: Callable[[str], Any] = _stderr, what: str = "the run",
                    signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> Iterator[StopSignals]:
    """Install one :class:`StopSignals` handler for ``signals`` while the block runs (main thread only)."""
    handler = StopSignals(on_stop, on_abort=on_abort, notify=notify, what=what)
    with handling_signals(handler, signals):
        yield handler
