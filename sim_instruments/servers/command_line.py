"""``python -m sim_instruments FILE.yaml``: serve the simulated instruments until Ctrl-C or SIGTERM.

FILE.yaml is a cryodaq station file (its ``cryodaq.simulation`` section and the addresses of
its ``instruments:``; a shipped station also by its name, ``demo_mkid``) or a plain simulation dict (``world`` and ``instruments``, optionally
under ``simulation``). Prints one line ``sim_instruments ready: name=face@port ...`` with the
real ports once every server listens; a bad file exits with status 2 and a one-line error
naming the file and the key. A station whose ``simulation.plugin`` is ``rfmux_mock`` gets
rfmux's own mock CRS (:mod:`sim_instruments.servers.rfmux_mock`); its ready line names the
Tuber address and the stream's multicast port.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from cryodaq.station.shipped import station_path
from sim_instruments.servers.launcher import serve
from sim_instruments.servers.rfmux_env import RfmuxUnavailableError
from sim_instruments.servers.rfmux_mock import RfmuxMock
from sim_instruments.servers.station_file import read_simulation

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT or SIGTERM; 0 after a clean stop, 2 for a file that cannot be served."""
    parser = argparse.ArgumentParser(prog="python -m sim_instruments", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a cryodaq station file (or a shipped station's name, e.g. demo_mkid), or a "
                                       "YAML file with the simulation dict")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            simulation = read_simulation(station_path(args.config))
            servers: Any = _rfmux_mock(simulation) if simulation.get("plugin") == "rfmux_mock" else serve(simulation)
        except (OSError, ValueError, RfmuxUnavailableError) as err:
            print(f"sim_instruments: {args.config}: {' '.join(str(err).split())}", file=sys.stderr)
            return 2
        try:
            print(servers.ready_line(), flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            servers.stop()
        return 0
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: a handler not installed from Python, which cannot be put back
                signal.signal(sig, handler)


class _ServedMock:
    """rfmux's mock with the ready line and stop of the servers above."""

    def __init__(self, mock: RfmuxMock) -> None:
        self.mock = mock

    def ready_line(self) -> str:
        return "sim_instruments ready: " + " ".join(
            f"{name}=mock_crs@{board.address} stream_port={self.mock.stream_ports[name]}"
            for name, board in self.mock.boards.items())

    def stop(self) -> None:
        self.mock.stop()


def _rfmux_mock(simulation: dict[str, Any]) -> _ServedMock:
    return _ServedMock(RfmuxMock({k: v for k, v in simulation.items() if k != "plugin"}).start())
