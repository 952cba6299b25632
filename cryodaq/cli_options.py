"""Command-line pieces every ``cryodaq`` subcommand shares (argparse), so each is written once."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["add_renamed_option", "duration_s", "non_negative"]


def duration_s(text: str) -> float | None:
    """``--duration``: seconds (a positive number), or ``none`` / ``inf`` for until stopped (None)."""
    if text.strip().lower() in ("none", "inf", "infinity", "forever"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a positive number) or 'none', got {text!r}") from None
    if math.isinf(value) and value > 0:
        return None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0 (or 'none' to run until stopped), got {text!r}")
    return value


def non_negative(text: str) -> float:
    """A finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


class _DeprecatedAlias(argparse.Action):
    """Stores like the new option, and says once on stderr that the old spelling is going away."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str = "", **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: warning: {option_string} is deprecated and will be removed in the next release; "
              f"use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_renamed_option(parser: argparse.ArgumentParser, new: str, old: str, **kwargs: Any) -> argparse.Action:
    """Add option ``new`` (``kwargs`` as for ``add_argument``) and the hidden deprecated alias ``old``."""
    action = parser.add_argument(new, **kwargs)
    alias = {k: v for k, v in kwargs.items() if k in ("type", "metavar", "choices")}
    parser.add_argument(old, dest=action.dest, action=_DeprecatedAlias, new=new, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS, **alias)
    return action
