"""``python -m sim_instruments CONFIG.yaml``: serve the simulated station until Ctrl-C or SIGTERM.

CONFIG.yaml holds the simulation dict (``world`` and ``instruments``, optionally under a
top-level ``simulation`` key). Prints one line
``sim_instruments ready: name=face@port ...`` once every server listens.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

import yaml

from .launcher import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim_instruments", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="YAML file with the simulation section (world, instruments)")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        with open(args.config) as fh:
            config = yaml.safe_load(fh) or {}
        servers = serve(config)
    except (OSError, ValueError, yaml.YAMLError) as err:
        print(f"sim_instruments: {args.config}: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        print(servers.ready_line(), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        servers.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
