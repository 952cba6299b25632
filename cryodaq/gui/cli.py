"""``cryodaq gui``: the live window (``--connect``) or a stored run played back (``--replay``).

Qt and pyqtgraph are imported only when the command runs, so the rest of
cryodaq works without the ``gui`` extra.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from cryodaq.errors import CryodaqError

DEFAULT_ADDRESS = "tcp://127.0.0.1:5556"


class GuiUnavailableError(CryodaqError, ImportError):
    """PySide6 or pyqtgraph is missing."""


def require_qt() -> None:
    """Import the GUI toolkit, or say how to install it; refuse a PySide6 build that would crash overnight."""
    try:
        import pyqtgraph  # noqa: F401
        import PySide6
    except ImportError as exc:
        raise GuiUnavailableError(
            f"the GUI needs PySide6 and pyqtgraph ({exc}); install them with:  pip install -e \".[gui]\""
        ) from None
    if loses_none_references():
        raise GuiUnavailableError(
            f"PySide6 {PySide6.__version__} on Python {sys.version.split()[0]} drops a reference to None on every "
            "Qt call, which crashes a long-running window ('deallocating None'); install another build:  "
            "pip install \"PySide6-Essentials<6.12\""
        )


def loses_none_references() -> bool:
    """Whether this PySide6 decrements None's refcount on calls returning void (6.12.0 on CPython < 3.12).

    From Python 3.12 None is immortal and the bug is harmless; before, None's count
    reaches zero after a few hundred thousand Qt calls and the interpreter aborts.
    """
    if sys.version_info >= (3, 12):
        return False
    from PySide6 import QtCore

    probe = QtCore.QObject()
    before = sys.getrefcount(None)
    for _ in range(64):
        probe.setObjectName("probe")
    return sys.getrefcount(None) < before - 32


def _speed(text: str) -> float:
    if text.lower() in ("max", "inf"):
        return math.inf
    try:
        value = float(text.rstrip("xX×"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a speed like 1, 10 or max, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"speed must be > 0, got {text!r}")
    return value


def cmd_gui(args: argparse.Namespace) -> int:
    require_qt()
    if args.replay is not None and not args.replay.exists():
        raise FileNotFoundError(f"{args.replay}: no such run")
    from cryodaq.gui.app import run_gui

    return run_gui(connect=args.connect, replay=args.replay, speed=args.speed, start_s=args.start,
                   snapshot_dir=args.snapshot_dir)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``gui`` subcommand to the ``cryodaq`` parser."""
    p = subparsers.add_parser("gui", help="live view of a running station, or replay of a stored run")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--connect", metavar="ADDRESS", default=None,
                     help=f"address of a running session's live publisher (default: {DEFAULT_ADDRESS})")
    src.add_argument("--replay", metavar="RUN", type=Path, default=None, help="a <run>.zarr to play back")
    p.add_argument("--speed", type=_speed, default=1.0, metavar="X",
                   help="replay speed: 1, 10, ... or max (default: %(default)s)")
    p.add_argument("--start", type=float, default=0.0, metavar="S",
                   help="replay from S seconds after the run's start (default: %(default)s)")
    p.add_argument("--snapshot-dir", type=Path, default=Path("snapshots"), metavar="DIR",
                   help="where 'Save snapshot' writes (default: %(default)s)")
    p.set_defaults(func=cmd_gui)
    return p
