"""The simulated world and faces in a child process, for cryodaq's station bring-up, end-to-end tests and demos.

The child ('spawn') serves :func:`sim_instruments.servers.launcher.serve` until its parent
asks it to stop or dies. It ignores the stop signals (SIGINT, SIGTERM, SIGHUP;
:mod:`cryodaq.stop_signals`): a Ctrl-C in the terminal reaches the whole foreground process
group, systemd's SIGTERM the whole service, a closed terminal's SIGHUP the whole session, and
the parent, which owns the run, decides how to stop (it still needs the simulated board to
stop its stream cleanly); the child must neither die half-way nor print a traceback. When the
parent dies without stopping it (SIGKILL), the child notices within half a second and exits.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import signal
import time
import traceback
from collections.abc import Mapping
from typing import Any

from cryodaq.errors import ListenError, PortInUseError
from cryodaq.stop_signals import STOP_SIGNALS, stop_signals_ignored_by_children
from cryodaq.wire.addresses import socket_address
from sim_instruments.servers.launcher import serve

__all__ = ["SimulatedStation"]

log = logging.getLogger(__name__)


def _child_main(config: Mapping[str, Any], ready: Any, stop: Any) -> None:
    for sig in STOP_SIGNALS:  # the parent decides how to stop (inherited already; see start())
        signal.signal(sig, signal.SIG_IGN)
    try:
        servers = serve(config)
    except ListenError as err:  # a port in use: the parent raises the same one-line error
        ready.put({"listen_error": err.fields(), "in_use": isinstance(err, PortInUseError)})
        return
    except BaseException as err:
        ready.put({"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()})
        return
    parent = mp.parent_process()
    try:
        ready.put({"ports": servers.ports, "line": servers.ready_line()})
        # Stop when asked, or when the parent died (a SIGKILLed run must not leave
        # an orphan simulator streaming and holding its ports).
        while not stop.wait(0.5):
            if parent is not None and not parent.is_alive():
                break
    finally:
        servers.stop()


class SimulatedStation:
    """The world and all faces in a separate process ('spawn').

    ``with SimulatedStation(cfg) as sim: sim.ports["readout"]`` — waits until every
    server listens (``timeout_s``), raises RuntimeError with the child's error otherwise;
    on exit asks the child to stop and kills it if it does not.
    """

    def __init__(self, config: Mapping[str, Any], timeout_s: float = 30.0) -> None:
        self.config = dict(config)
        self.timeout_s = timeout_s
        self.ports: dict[str, int] = {}
        self.ready_line = ""
        self._ctx = mp.get_context("spawn")
        self._process: mp.process.BaseProcess | None = None
        self._stop = None

    def start(self) -> SimulatedStation:
        # The queue and event are the first semaphores of the process, which start multiprocessing's
        # resource tracker (a helper process of its own): created here, it inherits the ignored stop
        # signals too. Python ignores SIGINT and SIGTERM there itself, but not SIGHUP, which would
        # kill it and make a new one print KeyError tracebacks at exit.
        with stop_signals_ignored_by_children():
            ready = self._ctx.Queue()
            self._stop = self._ctx.Event()
            self._process = self._ctx.Process(target=_child_main, args=(self.config, ready, self._stop),
                                              name="sim_instruments", daemon=True)
            self._process.start()
        deadline = time.monotonic() + self.timeout_s
        msg = None
        while msg is None:
            try:
                msg = ready.get(timeout=0.2)
            except queue.Empty:
                exitcode = self._process.exitcode
                if exitcode is not None or time.monotonic() > deadline:
                    self.stop()
                    why = (f"exited with code {exitcode} before reporting ready (see its stderr)"
                           if exitcode is not None else f"did not report ready within {self.timeout_s} s")
                    raise RuntimeError(f"sim_instruments child process {why}") from None
        if "listen_error" in msg:
            self.stop()
            raise (PortInUseError if msg["in_use"] else ListenError)(**msg["listen_error"])
        if "error" in msg:
            self.stop()
            raise RuntimeError(f"sim_instruments failed to start: {msg['error']}\n{msg['traceback']}")
        self.ports = dict(msg["ports"])
        self.ready_line = msg["line"]
        return self

    def address(self, name: str, host: str = "127.0.0.1") -> str:
        return socket_address(host, self.ports[name])

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def stop(self, timeout_s: float = 5.0) -> None:
        proc = self._process
        if proc is None:
            return
        if self._stop is not None:
            self._stop.set()
        proc.join(timeout_s)
        if proc.is_alive():
            log.warning("sim_instruments process %s did not stop in %.1f s; terminating", proc.pid, timeout_s)
            proc.terminate()
            proc.join(2.0)
        if proc.is_alive():
            proc.kill()
            proc.join(2.0)
        self._process = None

    def __enter__(self) -> SimulatedStation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
