"""The ``cryodaq`` command line (also ``python -m cryodaq``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.markup import escape

from cryodaq import __version__
from cryodaq.cli_options import duration_s, non_negative
from cryodaq.console import stderr_console
from cryodaq.errors import CryodaqError, StoppedError

DEMO_STATION = "demo_mkid"

console = stderr_console()


def _cmd_run(args: argparse.Namespace, station_file: Path) -> int:
    from cryodaq.acquisition.session import StreamSession
    from cryodaq.console import RunProgress, print_json, results_to_stdout
    from cryodaq.station import load_station_config
    from cryodaq.station.preflight import preflight
    from cryodaq.stop_signals import stop_on_signals

    config = _with_publish(load_station_config(station_file), args.publish)
    simulate = config.simulation.enabled if args.simulate is None else args.simulate
    # before any instrument is touched: the output directory, every port (the publisher's too)
    for warning in preflight(config, args.out, simulate=simulate, publish=True, min_free_bytes=args.min_free_gb * 1e9):
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    with results_to_stdout() as stdout:  # qcodes' "Connected to: ..." and the like go to stderr
        sinks = _live_publisher(config)
        session = StreamSession(config, args.out, simulate=simulate, backend=_backend(args), sinks=sinks,
                                check_first=False)

        def abort(name: str) -> None:
            session.request_abort(f"aborted by the operator (second {name})")
            raise KeyboardInterrupt(name)

        with RunProgress(console, config.name, args.duration, enabled=not args.quiet) as progress, \
                stop_on_signals(session.request_stop, on_abort=abort, notify=_notify):
            summary = session.run(args.duration, on_progress=progress.update)
        RunProgress.print_summary(console, summary)
        if args.json:
            print_json(summary.as_dict(), stdout)
        else:
            for path in summary.paths or [summary.path]:  # stdout: the run's path (one per readout), for scripts
                print(path, file=stdout, flush=True)
    return 0


def _with_publish(config: Any, address: str | None) -> Any:
    """``config`` with the live view at ``--publish ADDRESS`` (``off``: none) instead of the station file's."""
    if address is None:
        return config
    from dataclasses import replace

    publish = replace(config.publish, enabled=False) if address == "off" else \
        replace(config.publish, enabled=True, address=address)
    return replace(config, publish=publish)


def _publish_address(text: str) -> str:
    from cryodaq.config import check_value
    from cryodaq.errors import StationConfigError

    if text == "off":
        return text
    try:
        return str(check_value("--publish", "address", "zmq_address", text))
    except StationConfigError as exc:
        raise argparse.ArgumentTypeError(f"expected 'off' or {exc.expected}, got {text!r}") from None


def _notify(message: str) -> None:
    console.print(f"[yellow]{escape(message)}[/]", highlight=False)


def _live_publisher(config: Any) -> list[Any]:
    """The live publisher the station file asks for (``cryodaq.publish``), as a session sink.

    Its port was checked before anything started; one taken since then is a warning, not an
    error (the same one-line message): the run matters more than the live view.
    """
    if not config.publish.enabled:
        return []
    from cryodaq.live.publisher import LivePublisher, PublisherError
    from cryodaq.station.preflight import publisher_listener

    pub = config.publish
    try:
        publisher = LivePublisher(pub.address, channels=pub.channels)
    except PublisherError as exc:
        listener = publisher_listener(config)
        message = listener.error(exc.os_error, config.path) if listener and exc.os_error else exc
        console.print(f"[yellow]warning:[/] {escape(str(message))}; running without live view", highlight=False)
        return []
    console.print(f"live data on [bold]{publisher.address}[/]: watch with  cryodaq gui --connect {publisher.address}",
                  highlight=False)
    return [publisher]


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
    """Summarise a run; exit 1 when it is damaged (what is lost is listed), 2 when it is no run."""
    from cryodaq.storage import run_info

    info = run_info(args.run)
    console.print(info.render(), highlight=False, markup=False, soft_wrap=True)
    if info.damage:
        console.print(f"[bold red]error:[/] {args.run} is damaged ({len(info.damage)} finding(s) above); "
                      f"`cryodaq verify {args.run}` checks every chunk", highlight=False, soft_wrap=True)
        return 1
    if args.timing:
        from cryodaq.timing.report import timing_report

        text, plot = timing_report(args.run)
        console.print(text, highlight=False, markup=False, soft_wrap=True)
        if plot is not None:
            console.print(f"clock residuals plotted in {plot}", highlight=False, soft_wrap=True)
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    """Recover a run; exit 1 when data remain lost (listed), 2 when it is no run."""
    from cryodaq.storage import recover_run

    info = recover_run(args.run)
    console.print(info.render(), highlight=False, markup=False, soft_wrap=True)
    return 1 if info.damage else 0


def _add_run_options(p: argparse.ArgumentParser, default_duration: float | None) -> None:
    p.add_argument("--duration", type=duration_s, default=default_duration, metavar="S",
                   help="seconds to stream, > 0 (default: %(default)s); 'none' or 'inf': until stopped "
                        "(Ctrl-C, SIGTERM or SIGHUP)")
    p.add_argument("--out", type=Path, default=Path("runs"), metavar="DIR",
                   help="directory for the run (default: %(default)s)")
    p.add_argument("--backend", choices=["auto", "numpy", "cupy"], default=None,
                   help="array module for the DSP (default: $CRYODAQ_BACKEND or auto)")
    p.add_argument("--min-free-gb", type=non_negative, default=0.5, metavar="GB",
                   help="refuse to start with less free disk space than this under --out (default: %(default)s)")
    p.add_argument("--publish", type=_publish_address, default=None, metavar="ADDRESS",
                   help="live view address instead of the station file's cryodaq.publish.address, e.g. "
                        "tcp://127.0.0.1:0 (any free port, printed at start); 'off': no live view")
    p.add_argument("--json", action="store_true",
                   help="print a JSON summary of the run on stdout instead of its path")
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
    p.add_argument("--timing", action="store_true",
                   help="also the clock model in full, its residuals, and a plot of them (<run>.results/)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("recover", help="rebuild a run's damaged metadata, mark a run whose writer died as 'crashed' "
                                       "(data up to its last commit stay); says so when the run is intact")
    p.add_argument("run", type=Path, help="path of a <run>.zarr directory")
    p.set_defaults(func=cmd_recover)

    from cryodaq.storage import cli as storage_cli

    storage_cli.register(sub)

    from cryodaq.reprocess import cli as reprocess_cli

    reprocess_cli.register(sub)

    from cryodaq.analysis import cli as analysis_cli

    analysis_cli.register(sub)

    from cryodaq.sweeps import cli as sweeps_cli

    sweeps_cli.register(sub)

    from cryodaq.timing import cli as timing_cli

    timing_cli.register(sub)

    from cryodaq.report import cli as report_cli

    report_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except StoppedError as exc:  # the operator stopped it before it produced anything: not an error
        console.print(f"[yellow]{escape(str(exc))}[/]", highlight=False)
        return 130
    except CryodaqError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    except FileNotFoundError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]aborted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
