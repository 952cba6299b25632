"""Lazy public names for cryodaq's subpackages.

The command line builds its parser from every subpackage, and their modules pull in
qcodes, xarray, dask or Qt, which take seconds to import. A package's ``__init__``
therefore maps each public name to the module that defines it, and the name is
imported the first time it is used.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_getattr(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``exports[name]`` (a module path) on first use."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(module), name)

    return __getattr__
