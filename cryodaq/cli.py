"""The ``cryodaq`` command line (also ``python -m cryodaq``)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from cryodaq import __version__
from cryodaq.errors import CryodaqError

DEMO_STATION = "demo_mkid"

console = Console(stderr=True)


def _cmd_run(args: argparse.Namespace, station_file: Path) -> int:
    from cryodaq.acquisition.session import StreamSession
    from cryodaq.console import RunProgress
    from cryodaq.station import load_station_config

    config = load_station_config(station_file)
    sinks = _live_publisher(config)
    session = StreamSession(config, args.out, simulate=args.simulate, backend=_backend(args), sinks=sinks)
    with RunProgress(console, config.name, args.duration, enabled=not args.quiet) as progress, \
            _ctrl_c_stops(session):
        summary = session.run(args.duration, on_progress=progress.update)
    RunProgress.print_summary(console, summary)
    print(summary.path)  # stdout: the run's path, for scripts
    return 0


def _live_publisher(config: Any) -> list[Any]:
    """The live publisher the station file asks for (``cryodaq.publish``), as a session sink.

    A publisher that cannot bind (address in use) is a warning, not an error: the
    run matters more than the live view.
    """
    if not config.publish.enabled:
        return []
    from cryodaq.live.publisher import LivePublisher, PublisherError

    pub = config.publish
    try:
        publisher = LivePublisher(pub.address, channels=pub.channels)
    except PublisherError as exc:
        console.print(f"[yellow]warning:[/] {exc} ({config.path}: cryodaq.publish.address); running without live view")
        return []
    console.print(f"live data on [bold]{publisher.address}[/]: watch with  cryodaq gui --connect {publisher.address}")
    return [publisher]


@contextmanager
def _ctrl_c_stops(session: Any) -> Iterator[None]:
    """First Ctrl-C: end the run cleanly (drain, save, mark interrupted). Second: abort now."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        console.print("[yellow]Ctrl-C: stopping the run cleanly (press again to abort)[/]")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        session.request_stop()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _backend(args: argparse.Namespace):  # noqa: ANN202 - Backend, imported lazily
    from cryodaq.backend import get_backend

    return get_backend(args.backend)


def cmd_demo(args: argparse.Namespace) -> int:
    from cryodaq.station.shipped import station_path

    args.simulate = True
    return _cmd_run(args, station_path(DEMO_STATION))


def cmd_run(args: argparse.Namespace) -> int:
    from cryodaq.station.shipped import station_path

    return _cmd_run(args, station_path(args.station))


def cmd_info(args: argparse.Namespace) -> int:
    from cryodaq.storage import run_info

    info = run_info(args.run)
    console.print(info.render())
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    from cryodaq.storage import recover_run

    info = recover_run(args.run)
    console.print(info.render())
    return 0


def _add_run_options(p: argparse.ArgumentParser, default_duration: float | None) -> None:
    p.add_argument("--duration", type=float, default=default_duration, metavar="S",
                   help="seconds to stream (default: %(default)s; none = until Ctrl-C)")
    p.add_argument("--out", type=Path, default=Path("runs"), metavar="DIR",
                   help="directory for the run (default: %(default)s)")
    p.add_argument("--backend", choices=["auto", "numpy", "cupy"], default=None,
                   help="array module for the DSP (default: $CRYODAQ_BACKEND or auto)")
    p.add_argument("-q", "--quiet", action="store_true", help="no live progress display")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cryodaq", description="DAQ and readout for cryogenic detectors.")
    parser.add_argument("--version", action="version", version=f"cryodaq {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="run the simulated MKID demo station and stream to a Zarr run")
    _add_run_options(p, 30.0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run", help="run a station file: stream its readout to a Zarr run")
    p.add_argument("station", help="station YAML file (or the name of a shipped station, e.g. demo_mkid)")
    _add_run_options(p, None)
    sim = p.add_mutually_exclusive_group()
    sim.add_argument("--simulate", dest="simulate", action="store_true", default=None,
                     help="start the station's simulated instruments (default: as the station file says)")
    sim.add_argument("--no-simulate", dest="simulate", action="store_false",
                     help="talk to instruments at the addresses in the file, even for a simulated station")
    p.set_defaults(func=cmd_run)

    from cryodaq.gui.cli import register as register_gui

    register_gui(sub)

    p = sub.add_parser("info", help="summarise a run on disk")
    p.add_argument("run", type=Path, help="path of a <run>.zarr directory")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("recover", help="mark a run whose writer died as 'crashed' (data up to its last commit stay)")
    p.add_argument("run", type=Path, help="path of a <run>.zarr directory")
    p.set_defaults(func=cmd_recover)

    from cryodaq.storage import cli as storage_cli

    storage_cli.register(sub)

    from cryodaq.reprocess import cli as reprocess_cli

    reprocess_cli.register(sub)

    from cryodaq.sweeps import cli as sweeps_cli

    sweeps_cli.register(sub)

    from cryodaq.report import cli as report_cli

    report_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except CryodaqError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2
    except FileNotFoundError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
