"""Lazy public faces for cryodaq's subpackages, in one style.

The command line builds its parser from every subpackage, and their modules pull in
qcodes, xarray, dask or Qt, which take seconds to import. So a package's ``__init__``
lists its public names as imports under ``if TYPE_CHECKING:`` — type checkers and readers
see exactly where each name comes from — and :func:`lazy_exports` turns that same block
into a module ``__getattr__`` that imports a name the first time it is used::

    from typing import TYPE_CHECKING

    from cryodaq._lazy import lazy_exports

    if TYPE_CHECKING:
        from cryodaq.storage.writer import RunWriter

    __getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)

The ``TYPE_CHECKING`` block is the one list of the public names; nothing is written twice.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

__all__ = ["exported_names", "lazy_exports"]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def exported_names(package: str, init_file: str | Path) -> dict[str, tuple[str, str]]:
    """``{public name: (module, name in module)}`` from the ``if TYPE_CHECKING:`` imports of ``init_file``."""
    tree = ast.parse(Path(init_file).read_text(encoding="utf-8"))
    exports: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if not (isinstance(node, ast.If) and _is_type_checking(node.test)):
            continue
        for stmt in node.body:
            if not isinstance(stmt, ast.ImportFrom):
                raise TypeError(f"{init_file}: only 'from module import name' belongs in the TYPE_CHECKING block")
            module = stmt.module or ""
            if stmt.level:  # relative to the package itself
                base = package.split(".")[: len(package.split(".")) - (stmt.level - 1)]
                module = ".".join(base + ([module] if module else []))
            for alias in stmt.names:
                exports[alias.asname or alias.name] = (module, alias.name)
    return exports


def lazy_exports(package: str, init_file: str) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for a package whose public names sit in its TYPE_CHECKING block."""
    exports = exported_names(package, init_file)

    def __getattr__(name: str) -> Any:
        where = exports.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(where[0]), where[1])

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__, sorted(exports)
