"""``cryodaq coincide RUN [RUN ...] --window T``: join runs (or one run's channels) in time (docs/timing.md)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from rich.console import Console

console = Console(stderr=True)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a time in seconds (e.g. 200e-6), got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a time > 0 s, got {text!r}")
    return value


def cmd_coincide(args: argparse.Namespace) -> int:
    from cryodaq.timing.coincidences import coincide

    if logging.getLogger().getEffectiveLevel() > logging.INFO and args.workers != 0:
        import distributed  # noqa: F401 - importing it sets its loggers' levels; quieten them after

        logging.getLogger("distributed").setLevel(logging.WARNING)
    result = coincide(args.runs, args.window, label=args.label, search_s=args.search, off_time=args.off_time,
                      shift_s=args.shift, max_drift_ppm=args.max_drift, workers=args.workers, scheduler=args.scheduler, overwrite=args.overwrite)
    console.print(result.render(), highlight=False)
    if args.output is not None:
        args.output.write_text(json.dumps(result.summary(), indent=2) + "\n")
        console.print(f"figures written to {args.output}", highlight=False)
    print(f"{result.run_paths[0]}/{result.group}")  # stdout: where the groups are, for scripts
    return 0


def register(subparsers: Any) -> None:
    """Add the ``coincide`` subcommand to the ``cryodaq`` command line."""
    p = subparsers.add_parser(
        "coincide", help="join the events of several runs (or the channels of one) in time, on Dask",
        description="Join runs in time using each run's clock model: estimate the clock offset between "
                    "stations from the coincidences, write the coincidence groups to reprocessed/<label>/ of "
                    "the first run, and compare the accidental rate expected from the singles rates with the "
                    "one measured in off-time windows (docs/timing.md).",
    )
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="<run>.zarr directories; the first is the reference")
    p.add_argument("--window", type=_seconds, required=True, metavar="T",
                   help="coincidence window in seconds: events chained within T of each other form a group")
    p.add_argument("--label", default=None, metavar="LABEL",
                   help="the output group reprocessed/<LABEL>/ in the first run (default: coincide-<UTC now>)")
    p.add_argument("--output", type=Path, default=None, metavar="FILE", help="also write the figures as JSON to FILE")
    p.add_argument("--search", type=_seconds, default=None, metavar="S",
                   help="half-width of the clock-offset search (default: 3 x the runs' stated clock uncertainty)")
    p.add_argument("--max-drift", type=float, default=None, metavar="PPM",
                   help="how fast the clocks may drift apart (default: from their stated rate uncertainties)")
    p.add_argument("--off-time", type=int, default=20, metavar="K", help="off-time windows for the accidentals (even)")
    p.add_argument("--shift", type=_seconds, default=None, metavar="S",
                   help="step between off-time windows (default: max(20 windows, 1 ms))")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="workers of a local Dask cluster (default: one per core for runs of more than 2 million "
                        "events, else none; 0: no Dask)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="use this running Dask scheduler instead")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output of the same label")
    p.set_defaults(func=cmd_coincide)
