"""``cryodaq sweep SCRIPT.py --station FILE [--out DIR] [--resume RUN] [-p key=value ...]``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import yaml

from cryodaq.cli_options import non_negative
from cryodaq.console import stderr_console

__all__ = ["register"]

console = stderr_console()


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY an identifier, got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise argparse.ArgumentTypeError(f"{key}: value {value!r} is not valid YAML: {exc}") from None


def _console_log_level(level: int) -> None:
    """Keep the console at the level asked for (-v) while the run's log file takes INFO."""
    for handler in logging.getLogger().handlers:
        if handler.level == logging.NOTSET:
            handler.setLevel(level)


def cmd_sweep(args: argparse.Namespace) -> int:
    from cryodaq.console import print_json, results_to_stdout
    from cryodaq.station.shipped import script_path, station_path
    from cryodaq.sweeps.progress import SweepProgress
    from cryodaq.sweeps.script import run_script

    _console_log_level(logging.getLogger().getEffectiveLevel())
    script = script_path(args.script)
    progress = SweepProgress(console, enabled=None if not args.quiet else False, title=str(script))
    if args.resume:
        console.print(f"resuming [bold]{args.resume}[/] with {script}", highlight=False)
    with results_to_stdout() as stdout:  # qcodes' "Connected to: ..." and the script's prints go to stderr
        outcome = run_script(
            script, station_path(args.station), args.out, resume=args.resume, simulate=args.simulate,
            options=dict(args.option or []), run_id=args.run_id, tags=args.tag or [], progress=progress,
            on_ready=lambda ctx: console.print(f"run [bold]{ctx.run.path}[/] ({'resumed' if ctx.resumed else 'new'}); "
                                               f"log {ctx.run.log_path}", highlight=False),
            min_free_bytes=args.min_free_gb * 1e9,
        )
        style = "green" if outcome.exit_code == 0 else "yellow" if outcome.interrupted else "red"
        note = " (interrupted; continue with --resume)" if outcome.interrupted and outcome.status == "complete" else ""
        console.print(f"[{style}]run {outcome.status}{note}[/]: {outcome.path}", highlight=False)
        if outcome.status == "aborted" and outcome.end_reason:
            console.print(outcome.end_reason.rstrip(), highlight=False, markup=False)
        if outcome.results_dir.exists():
            console.print(f"plots and tables: {outcome.results_dir}", highlight=False)
        if args.json:
            print_json(outcome.as_dict(), stdout)
        else:
            print(outcome.path, file=stdout, flush=True)  # stdout: the run's path, for scripts
    return outcome.exit_code


def register(sub: Any) -> None:
    """Add ``sweep`` to the ``cryodaq`` command's subparsers."""
    p = sub.add_parser("sweep", help="run a sweep script (main(ctx)) on a station into a resumable sweep run",
                       description="Run SCRIPT.py's main(ctx) on the station: ctx.sweep(...) measures into "
                                   "sweeps/<name> of a new run, or of RUN with --resume (points already done are "
                                   "skipped). Ctrl-C pauses and asks (stops cleanly without a terminal; so do SIGTERM "
                                   "and SIGHUP); a second signal aborts.")
    p.add_argument("script", type=Path,
                   help="Python file defining main(ctx), or a shipped script's name (e.g. resonator_overnight)")
    p.add_argument("--station", required=True, help="station YAML file (or a shipped station's name, e.g. demo_sweep)")
    p.add_argument("--out", type=Path, default=Path("runs"), metavar="DIR",
                   help="directory for the run (default: %(default)s)")
    p.add_argument("--resume", metavar="RUN", default=None,
                   help="continue this run (its path, or its id in --out) instead of starting a new one")
    p.add_argument("-p", "--option", type=_option, action="append", metavar="KEY=VALUE",
                   help="option for the script (ctx.option(KEY)); VALUE is YAML, e.g. -p temperatures_k=[0.05,0.1]")
    p.add_argument("--run-id", default=None, help="id of the new run (default: time-station-random)")
    p.add_argument("--tag", action="append", metavar="TAG", help="tag the run (repeatable)")
    sim = p.add_mutually_exclusive_group()
    sim.add_argument("--simulate", dest="simulate", action="store_true", default=None,
                     help="start the station's simulated instruments (default: as the station file says)")
    sim.add_argument("--no-simulate", dest="simulate", action="store_false",
                     help="talk to the instruments at the file's addresses, even for a simulated station")
    p.add_argument("--min-free-gb", type=non_negative, default=0.5, metavar="GB",
                   help="refuse to start with less free disk space than this under --out (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print a JSON summary of the run on stdout instead of its path")
    p.add_argument("-q", "--quiet", action="store_true", help="no live progress display")
    p.set_defaults(func=cmd_sweep)
