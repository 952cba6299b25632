"""The package's seams hold: no import cycles, no private names across modules, the simulators
are a plugin (cryodaq never imports them), and every subpackage's public face resolves.

The import graph is read with ``ast`` from the source, so it sees every import: module level,
inside functions, and under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cryodaq", "sim_instruments")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = f
    return mods


MODULES = _modules()


def _target(module: str, node: ast.ImportFrom | ast.Import, name: str | None) -> str:
    """The module an import refers to (the longest known prefix)."""
    if isinstance(node, ast.Import):
        target = name or ""
    else:
        base = node.module or ""
        if node.level:
            pkg = module.split(".")
            if MODULES[module].name != "__init__.py":
                pkg = pkg[:-1]
            pkg = pkg[: len(pkg) - (node.level - 1)]
            base = ".".join(pkg + ([base] if base else []))
        target = f"{base}.{name}" if f"{base}.{name}" in MODULES else base
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    edges: dict[str, set[str]] = defaultdict(set)
    private: list[tuple[str, str, str]] = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    t = _target(module, node, alias.name)
                    if t and t != module:
                        edges[module].add(t)
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    t = _target(module, node, alias.name)
                    if not t:
                        continue  # a third-party import
                    if t != module:
                        edges[module].add(t)
                    if alias.name.startswith("_") and not alias.name.startswith("__") and t != module:
                        private.append((module, t, alias.name))
    return edges, private


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(set(edges) | {t for ts in edges.values() for t in ts}):
        if v not in index:
            visit(v)
    return found


def test_the_graph_walker_sees_every_kind_of_import(tmp_path):
    """The checks below could fail: a cycle through a function-level or TYPE_CHECKING import is found."""
    code = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cryodaq.b import X\ndef f():\n    from . import b\n"
    tree = ast.parse(code)
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert len(imports) == 3  # typing, the TYPE_CHECKING one, the function-level one
    assert _cycles({"cryodaq.a": {"cryodaq.b"}, "cryodaq.b": {"cryodaq.a"}}) == [["cryodaq.a", "cryodaq.b"]]


def test_no_import_cycles():
    edges, _ = _graph()
    assert _cycles(edges) == []


def test_no_private_names_imported_across_modules():
    _, private = _graph()
    assert private == []


def test_cryodaq_never_imports_the_simulators():
    edges, _ = _graph()
    offenders = sorted((m, t) for m, ts in edges.items() if m.startswith("cryodaq") for t in ts
                       if t.startswith("sim_instruments"))
    assert offenders == []


def test_importing_the_product_loads_no_simulator():
    code = ("import sys, cryodaq, cryodaq.acquisition, cryodaq.dsp, cryodaq.storage, cryodaq.readout, cryodaq.live\n"
            "import cryodaq.station, cryodaq.reprocess, cryodaq.sweeps, cryodaq.config, cryodaq.cli\n"
            "from cryodaq.acquisition import StreamSession\nfrom cryodaq.station import station_up\n"
            "from cryodaq.instruments import MKIDReadoutBoard\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'sim_instruments')\n"
            "assert not bad, bad\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr


def _faces() -> list[str]:
    return sorted(m for m, p in MODULES.items() if p.name == "__init__.py" and "lazy_exports" in p.read_text())


@pytest.mark.parametrize("package", _faces())
def test_every_public_name_of_a_face_resolves_to_where_it_says(package):
    from cryodaq._lazy import exported_names

    exports = exported_names(package, MODULES[package])
    mod = importlib.import_module(package)
    assert exports and sorted(exports) == mod.__all__ == dir(mod)
    for name, (where, attr) in exports.items():
        assert getattr(mod, name) is getattr(importlib.import_module(where), attr), name
    with pytest.raises(AttributeError, match="no attribute"):
        mod.not_a_public_name  # noqa: B018


def test_every_subpackage_has_a_lazy_typed_face():
    plain = sorted(m for m, p in MODULES.items() if p.name == "__init__.py" and m.startswith("cryodaq.")
                   and "lazy_exports" not in p.read_text() and m not in ("cryodaq.wire",))
    assert plain == []
