"""Command-line pieces every ``cryodaq`` subcommand shares (argparse), so each is written once."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["add_renamed_option"]


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
