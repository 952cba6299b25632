"""``cryodaq analyze RUN --config analysis.yaml [--label LABEL]``: summaries, cuts, drift, calibration, line fits."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(stderr=True)


def cmd_analyze(args: argparse.Namespace) -> int:
    from cryodaq.analysis.analyze import analyze_run

    result = analyze_run(args.run, args.config, label=args.label, overwrite=args.overwrite,
                         results_dir=args.results)
    table = Table(title=f"{result.run_path.name}: analysis/{result.label} (feature {result.feature})")
    for col in ("channel", "events", "good", "drift slope", "calibration"):
        table.add_column(col)
    for c in result.channels:
        cal = ", ".join(f"{p.line}@{p.value:.5g}" for p in c.curve.points) if c.curve else (c.message.strip() or "-")
        table.add_row(str(c.channel), str(c.n_events), str(c.n_good), f"{c.drift.slope:.4g}" if c.drift else "-", cal)
    console.print(table)
    for f in result.fits:
        console.print(f"[bold]{f.line}[/]: FWHM {f.fwhm:.4g} ± {f.fwhm_err:.2g} eV, position {f.position:.4f} ± "
                      f"{f.position_err:.2g} eV (line at {f.peak_energy:.4f}), E/ΔE {f.peak_energy / f.fwhm:.4g}, "
                      f"χ²/dof {f.deviance:.1f}/{f.dof}, {int(f.counts.sum())} counts")
    if result.results_dir is not None:
        console.print(f"plots and tables: {result.results_dir}")
    print(f"{result.run_path}/{result.group}")  # stdout: where the results are, for scripts
    return 0


def register(subparsers: Any) -> None:
    """Add the ``analyze`` subcommand to the ``cryodaq`` command line."""
    p = subparsers.add_parser(
        "analyze", help="pulse summaries, cuts, drift correction, energy calibration and line fits of a run",
        description="Analyse a run's events (docs/analysis.md): results go to analysis/<label>/ in the run, "
                    "plots and tables to <run_id>.results/analysis/<label>/.",
    )
    p.add_argument("run", type=Path, help="path of a <run>.zarr directory")
    p.add_argument("--config", type=Path, default=None, metavar="FILE",
                   help="analysis config YAML (docs/examples/analysis.yaml); default: summaries, cuts and drift only")
    p.add_argument("--label", default=None, metavar="LABEL", help="label of analysis/<label>/ (default: UTC now)")
    p.add_argument("--results", type=Path, default=None, metavar="DIR",
                   help="folder for plots and tables (default: <run_id>.results/analysis/<label>/)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing analysis of the same label")
    p.set_defaults(func=cmd_analyze)
