"""``cryodaq reprocess RUN --config FILE [--label LABEL] [--workers N] [--scheduler ADDRESS]``."""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path
from typing import Any

from cryodaq.cli_options import add_renamed_option
from cryodaq.console import stderr_console

console = stderr_console()


def cmd_reprocess(args: argparse.Namespace) -> int:
    from cryodaq.reprocess import reprocess_run
    from cryodaq.stop_signals import stop_on_signals

    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        import distributed  # noqa: F401 - importing it sets its loggers' levels; quieten them after

        logging.getLogger("distributed").setLevel(logging.WARNING)  # else INFO per worker start/stop

    stop = threading.Event()
    with stop_on_signals(lambda name: stop.set(), notify=lambda msg: console.print(f"[yellow]{msg}[/]", highlight=False),
                         what="reprocessing"):  # first signal: cancel the chunks left, write nothing
        result = reprocess_run(args.run, args.config, label=args.label, workers=args.workers,
                               scheduler=args.scheduler, progress=not args.quiet, overwrite=args.overwrite, stop=stop)
    console.print(
        f"[green]{result.n_events} events[/] from {result.rows} samples x {result.n_channels} channels "
        f"({result.n_segments} segments, {result.n_chunks} chunks, {result.workers or 'no'} Dask workers): "
        f"{result.samples_per_s / 1e6:.3g} MS/s, {result.total_s:.1f} s in all"
    )
    print(f"{result.run_path}/{result.group}")  # stdout: where the results are, for scripts
    return 0


def register(subparsers: Any) -> None:
    """Add the ``reprocess`` subcommand to the ``cryodaq`` command line."""
    p = subparsers.add_parser(
        "reprocess", help="re-run pulse finding / optimal filtering on a stored run with new settings (Dask)",
        description="Re-run the trigger (and optionally the optimal filter) on a run's stored timestreams; "
                    "results go to reprocessed/<label>/ in the run, the raw data is never modified.",
    )
    p.add_argument("run", type=Path, help="path of a <run>.zarr directory")
    p.add_argument("--config", type=Path, default=None, metavar="FILE",
                   help="reprocessing config YAML (docs/reprocessing.md); default: the acquisition's settings")
    add_renamed_option(p, "--label", "--out", default=None, metavar="LABEL",
                       help="label of the output group reprocessed/<label>/ (default: UTC now)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="workers of the local Dask cluster (default: one per core; 0: no Dask)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="use this running Dask scheduler (e.g. tcp://host:8786) instead of a local cluster")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output of the same label")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_reprocess)
