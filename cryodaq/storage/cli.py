"""Storage subcommands of ``cryodaq``: ``runs`` (the run catalog), ``export`` and ``import``.

``cryodaq/cli.py`` adds them with :func:`register`. Each handler returns an exit code; what it
wrote (an exported file, an imported run) is printed as a path on stdout, for scripts; ``runs``
prints its table (or ``--paths``) on stdout and notes on stderr.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cryodaq.cli_options import add_renamed_option
from cryodaq.console import stdout_console
from cryodaq.errors import ImportFormatError
from cryodaq.storage.catalog import Catalog, CatalogEntry, time_bound
from cryodaq.storage.format import RunKind, RunStatus

FORMATS = ("hdf5", "ljh", "off", "touchstone")
_STATUS_STYLE = {"running": "cyan", "complete": "green", "aborted": "yellow", "crashed": "bold red"}


def _time_arg(text: str) -> str:
    try:
        return time_bound(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: Any) -> None:
    """Add ``runs``, ``verify``, ``export`` and ``import`` to an argparse subparsers object."""
    p = subparsers.add_parser("runs", help="list the runs of a data directory, from its catalog")
    p.add_argument("data_dir", nargs="?", type=Path, default=Path("runs"),
                   help="directory holding the runs and their catalog.sqlite (default: %(default)s)")
    p.add_argument("--rebuild", action="store_true", help="rescan the runs on disk and rewrite the catalog first")
    p.add_argument("--station", metavar="S", help="only runs of this station")
    p.add_argument("--status", choices=[s.value for s in RunStatus], help="only runs with this status")
    p.add_argument("--kind", choices=[k.value for k in RunKind], help="only runs of this kind")
    p.add_argument("--since", type=_time_arg, metavar="DATE", help="only runs started at or after DATE (ISO, UTC)")
    p.add_argument("--until", type=_time_arg, metavar="DATE", help="only runs started before DATE (ISO, UTC)")
    p.add_argument("--tag", metavar="T", help="only runs with this tag")
    p.add_argument("--paths", action="store_true", help="print only the run folders, one per line")
    p.set_defaults(func=cmd_runs)

    p = subparsers.add_parser("verify", help="check every chunk of a run: present, decodable, checksum right "
                                             "(exit 0: intact, 1: damaged)")
    p.add_argument("run", type=Path, help="path of a <run>.zarr directory")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.set_defaults(func=cmd_verify)

    p = subparsers.add_parser("export", help="export a run to another format (HDF5)")
    p.add_argument("run", type=Path, help="path of a <run>.zarr directory")
    p.add_argument("--format", choices=["hdf5"], default="hdf5", help="output format (default: %(default)s)")
    add_renamed_option(p, "--output", "--out", type=Path, metavar="FILE",
                       help="output file (default: the run path with .h5)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser("import", help="make a run from an HDF5 export, LJH or OFF pulse files, or Touchstone "
                                             "files")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE",
                   help="input file(s); LJH, OFF and Touchstone take several")
    p.add_argument("--format", choices=FORMATS, help="input format (default: from the file extension)")
    add_renamed_option(p, "--output", "--out", type=Path, metavar="RUN", default=None,
                       help="run folder to create (.zarr appended); required")
    p.add_argument("--tag", action="append", default=[], metavar="T", help="tag the new run (LJH, Touchstone; repeatable)")
    p.add_argument("--station", metavar="S", help="station name recorded in the run (LJH, OFF, Touchstone)")
    p.add_argument("--ports", type=int, metavar="N", help="Touchstone: port count, for a file not named .sNp "
                                                           "whose data do not tell it")
    p.add_argument("--experiment-state", type=Path, metavar="FILE", default=None,
                   help="DASTARD experiment-state file for an OFF import (default: the one beside the files, if any)")
    p.set_defaults(func=cmd_import)


def _err(message: object) -> int:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    return 2


# ------------------------------------------------------------------------ runs
def _fmt_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _table(entries: list[CatalogEntry], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col, just in (("run", "left"), ("station", "left"), ("kind", "left"), ("status", "left"),
                      ("started (UTC)", "left"), ("duration", "right"), ("events", "right"), ("size", "right"),
                      ("tags", "left")):
        table.add_column(col, justify=just, no_wrap=col in ("run", "started (UTC)"))
    for e in entries:
        status = e.status.value + (" (interrupted)" if e.interrupted else "")
        table.add_row(
            e.run_id, e.station, e.kind, f"[{_STATUS_STYLE.get(e.status.value, '')}]{status}[/]",
            (e.started or "")[:19].replace("T", " "), f"{e.duration_s:.1f} s" if e.duration_s is not None else "",
            str(e.n_events), _fmt_size(e.size_bytes), ", ".join(e.tags),
        )
    return table


def cmd_runs(args: argparse.Namespace) -> int:
    """List catalogued runs (optionally after rebuilding the catalog from disk)."""
    if not Path(args.data_dir).is_dir():
        return _err(f"data directory {args.data_dir} does not exist")
    cat = Catalog(args.data_dir)
    if args.rebuild:
        n = len(cat.rebuild())
        Console(stderr=True).print(f"rebuilt {cat.path}: {n} run(s)", highlight=False)
    entries = cat.query(station=args.station, status=args.status, kind=args.kind, since=args.since,
                        until=args.until, tag=args.tag)
    if args.paths:
        for e in entries:
            print(cat.run_path(e))
        return 0
    stdout_console().print(_table(entries, f"{len(entries)} run(s) in {cat.data_dir}"))
    return 0


# ---------------------------------------------------------------------- verify
def cmd_verify(args: argparse.Namespace) -> int:
    """Check every chunk of a run; exit 0 when intact, 1 when damaged (2: not a run)."""
    from cryodaq.storage.verify import verify_run

    report = verify_run(args.run)
    if args.json:
        print(json.dumps(report.as_dict(), indent=1))
    else:
        print(report.render())
    return 0 if report.intact else 1


# -------------------------------------------------------------- export/import
def cmd_export(args: argparse.Namespace) -> int:
    """Export a run; prints the written file."""
    from cryodaq.storage.hdf5 import export_hdf5

    out = args.output or Path(args.run).with_suffix(".h5")
    try:
        written = export_hdf5(args.run, out, overwrite=args.force)
    except FileExistsError as exc:
        return _err(exc)
    print(written)
    return 0


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _sniff(f: Path) -> str | None:
    """The format of a file from its first bytes: HDF5 signature, LJH first line, Touchstone option line."""
    from cryodaq.storage.ljh import LJH_FIRST_LINE

    try:
        with open(f, "rb") as fh:
            head = fh.read(64 * 1024)
    except OSError:
        return None
    if head.startswith(_HDF5_MAGIC):
        return "hdf5"
    if head.startswith(LJH_FIRST_LINE.encode()):
        return "ljh"
    if b"\0" not in head:
        from cryodaq.storage.touchstone import looks_like_touchstone

        if looks_like_touchstone(head.decode("latin-1")):
            return "touchstone"
    return None


def guess_format(files: list[Path]) -> str:
    """The import format from the file extensions (.h5/.hdf5, .ljh, .off, .sNp), else from the content (HDF5
    signature, LJH header, Touchstone option line such as ``# Hz S RI R 50``); all files must agree."""
    found = set()
    for f in files:
        suffix = f.suffix.lower()
        if suffix in (".h5", ".hdf5", ".he5"):
            found.add("hdf5")
        elif suffix == ".ljh":
            found.add("ljh")
        elif suffix == ".off":
            found.add("off")
        elif re.fullmatch(r"\.s\d+p", suffix):
            found.add("touchstone")
        elif (fmt := _sniff(f)) is not None:
            found.add(fmt)
        else:
            raise ImportFormatError(f"{f}: cannot tell the format from the extension {suffix!r} or the content "
                                    f"(expected HDF5, LJH or Touchstone); give --format ({', '.join(FORMATS)})")
    if len(found) != 1:
        raise ImportFormatError(f"files of several formats given ({', '.join(sorted(found))}); import one format at a time")
    return found.pop()


def cmd_import(args: argparse.Namespace) -> int:
    """Import files into a new run; prints the run folder."""
    files = list(args.files)
    if args.output is None:
        return _err("import: give the run folder to create with --output RUN")
    fmt = args.format or guess_format(files)
    if args.ports is not None and fmt != "touchstone":
        return _err("--ports is for Touchstone files only")
    extra: dict[str, Any] = {"tags": args.tag}
    if args.station:
        extra["station_name"] = args.station
    try:
        if fmt == "hdf5":
            from cryodaq.storage.hdf5 import import_hdf5

            if len(files) != 1 or args.tag or args.station:
                return _err("--format hdf5 takes exactly one file, and no --tag/--station (the run keeps its own)")
            out = import_hdf5(files[0], args.output)
        elif fmt == "ljh":
            from cryodaq.storage.ljh import import_ljh

            out = import_ljh(files, args.output, **extra)
        elif fmt == "off":
            from cryodaq.storage.off import import_off

            out = import_off(files, args.output, experiment_state=args.experiment_state, **extra)
        else:
            from cryodaq.storage.touchstone import import_touchstone

            out = import_touchstone(files, args.output, ports=args.ports, **extra)
    except FileExistsError as exc:
        return _err(exc)
    print(out)
    return 0


__all__ = ["cmd_export", "cmd_import", "cmd_runs", "cmd_verify", "guess_format", "register"]
