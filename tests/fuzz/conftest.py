"""Fuzz tests (hypothesis) of every parser of outside input: each gives a correct result or one clear error.

A clear error is a :class:`~cryodaq.errors.CryodaqError` (for the wire formats, their own ``ValueError``
subclass) whose message is one line and names the file or what was expected; never another exception
type, a hang, or a half-written run. Each test runs 100-200 examples in a few seconds; the settings in
each module derandomize them (the same examples on every run, so CI is stable) and keep no example
database (nothing is written to the working tree). To explore further, run with
``--hypothesis-seed=<n>`` after removing ``derandomize``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest


def check_clean_error(exc: BaseException, *, kinds: tuple[type[BaseException], ...], names: str | None = None) -> None:
    """``exc`` is one of ``kinds``, its message one line, naming ``names`` (e.g. the file) when given."""
    assert isinstance(exc, kinds), f"{type(exc).__name__}: {exc}"
    text = str(exc)
    assert text and "\n" not in text, f"not one line: {text!r}"
    if names is not None:
        assert names in text, f"{names!r} not named in {text!r}"


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    """Entries of ``folder`` other than ``keep``: a failed import must leave none (no run, no partial)."""
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.fixture(scope="session")
def fuzz() -> SimpleNamespace:
    """The helpers above, for the test modules (importlib mode cannot import this conftest)."""
    return SimpleNamespace(check_clean_error=check_clean_error, leftovers=leftovers)
