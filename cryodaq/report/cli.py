"""``cryodaq report RUN --output DIR`` (and ``cryodaq report --compare REPORT_A REPORT_B``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cryodaq.console import stderr_console

__all__ = ["register"]

console = stderr_console()


def cmd_report(args: argparse.Namespace) -> int:
    if args.compare:
        from cryodaq.report.compare import compare_reports

        table = compare_reports(*args.compare)
        if args.output is not None:
            table.to_csv(args.output, index=False)
            print(args.output)
        else:
            print(table.to_csv(index=False), end="")
        bad = int((table["E_n"].abs() > 1).sum())
        console.print(f"{len(table)} results in both reports; {bad} with |E_n| > 1")
        return 0
    if args.run is None or args.output is None:
        console.print("[bold red]error:[/] give RUN and --output DIR (or --compare REPORT_A REPORT_B)")
        return 2
    from cryodaq.report.writer import write_report

    info = write_report(args.run, args.output, force=args.force)
    console.print(f"report of [bold]{args.run}[/]: {info.n_results} results, {info.n_budget_rows} budget lines")
    for w in info.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    print(info.path)  # stdout: the report folder, for scripts
    return 0


def register(sub: Any) -> None:
    """Add ``report`` to the ``cryodaq`` command's subparsers."""
    p = sub.add_parser("report", help="write a run's characterisation report (JSON + CSV + PNG, one folder)",
                       description="Write a self-contained characterisation report of RUN into --output DIR: results "
                                   "with uncertainties and budgets, distributions over time, provenance (station "
                                   "snapshot, instruments, calibrations, software and commit, checksums), in the "
                                   "versioned schema of docs/report-format.md. With --compare, match two reports' "
                                   "results point by point (E_n).")
    p.add_argument("run", type=Path, nargs="?", help="path of a <run>.zarr directory")
    p.add_argument("--output", type=Path, metavar="DIR",
                   help="report folder to create (with --compare: a CSV file; default stdout)")
    p.add_argument("--force", action="store_true", help="replace an existing report folder")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("REPORT_A", "REPORT_B"),
                   help="compare two report folders point by point instead")
    p.set_defaults(func=cmd_report)
