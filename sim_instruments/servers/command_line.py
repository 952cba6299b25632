"""``python -m sim_instruments FILE.yaml``: serve the simulated instruments until Ctrl-C or SIGTERM.

FILE.yaml is a cryodaq station file (its ``cryodaq.simulation`` section and the addresses of
its ``instruments:``; a shipped station also by its name, ``demo_mkid``) or a plain simulation dict (``world`` and ``instruments``, optionally
under ``simulation``). Prints one line ``sim_instruments ready: name=face@port ...`` with the
real ports once every server listens; a bad file exits with status 2 and a one-line error
naming the file and the key.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from cryodaq.station.shipped import station_path
from sim_instruments.servers.launcher import serve
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
            servers = serve(read_simulation(station_path(args.config)))
        except (OSError, ValueError) as err:
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
