"""The zarr tree of a run as it is on disk: every ``zarr.json`` parsed on its own, and chunk keys.

Readers normally go through zarr (and the consolidated copy of the metadata); the integrity
checks, ``cryodaq verify`` and ``cryodaq recover`` must also cope with a tree whose metadata is
damaged, so they walk the folders themselves: each node's ``zarr.json`` is read and checked
separately, and a folder that holds nodes but has no readable ``zarr.json`` is reported.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryodaq.storage.format import RUN_GROUPS

META = "zarr.json"
GROUP, ARRAY = "group", "array"
_ARRAY_KEYS = ("shape", "data_type", "chunk_grid", "chunk_key_encoding", "fill_value", "codecs")


@dataclass
class Node:
    """One zarr node of a run: ``path`` inside the run ("" for the root), its kind and metadata.

    ``kind`` is ``group`` or ``array`` when its ``zarr.json`` is readable (``doc`` holds it), else
    the kind guessed from the folder's content and ``error`` says what is wrong with the metadata.
    """

    path: str
    kind: str
    doc: dict[str, Any] | None = None
    error: str = ""

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> str:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else ""

    @property
    def attrs(self) -> dict[str, Any]:
        return dict((self.doc or {}).get("attributes") or {})

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(str(d) for d in (self.doc or {}).get("dimension_names") or ())


@dataclass
class Tree:
    """Every node under a run folder, by path ("" is the root)."""

    root: Path
    nodes: dict[str, Node] = field(default_factory=dict)

    def arrays(self) -> Iterator[Node]:
        return (n for n in self.nodes.values() if n.kind == ARRAY)

    def groups(self) -> Iterator[Node]:
        return (n for n in self.nodes.values() if n.kind == GROUP)

    def children(self, path: str) -> list[Node]:
        return [n for p, n in self.nodes.items() if p and n.parent == path]

    def damaged(self) -> list[Node]:
        return [n for n in self.nodes.values() if not n.ok]


def read_meta(file: Path) -> tuple[dict[str, Any] | None, str]:
    """A node's parsed ``zarr.json`` and "" — or None and what is wrong with it."""
    try:
        text = file.read_bytes()
    except FileNotFoundError:
        return None, "no zarr.json"
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    try:
        doc = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"not valid JSON ({len(text)} bytes; {exc})"
    if not isinstance(doc, dict) or doc.get("zarr_format") != 3 or doc.get("node_type") not in (GROUP, ARRAY):
        return None, "not zarr v3 node metadata (zarr_format 3, node_type group or array)"
    if doc["node_type"] == ARRAY:
        missing = [k for k in _ARRAY_KEYS if k not in doc]
        if missing:
            return None, f"array metadata lacks {', '.join(missing)}"
    return doc, ""


def _holds_nodes(folder: Path) -> bool:
    for dirpath, _, files in os.walk(folder):
        if META in files:
            return True
    return False


def _looks_like_array(folder: Path) -> bool:
    """A folder with a chunk folder ``c`` (no zarr.json in it) and no child nodes: an array's data."""
    chunks = folder / "c"
    if not chunks.is_dir() or (chunks / META).exists():
        return False
    return not any(_holds_nodes(sub) for sub in _subfolders(folder) if sub.name != "c")


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def looks_like_run(path: str | Path) -> bool:
    """Whether ``path`` is a run folder: it has a ``zarr.json``, or (that lost) a group every run has
    (``events``, ``gaps``, ...) is there with its own."""
    path = Path(path)
    return (path / META).exists() or any((path / name / META).exists() for name in RUN_GROUPS)


def scan_tree(run: str | Path) -> Tree:
    """Walk the run folder: every node with its parsed metadata, or what is wrong with it."""
    root = Path(run)
    tree = Tree(root)

    def visit(folder: Path, path: str) -> None:
        doc, error = read_meta(folder / META)
        if doc is not None:
            tree.nodes[path] = Node(path, doc["node_type"], doc)
            if doc["node_type"] == ARRAY:
                return
        elif path == "" or (folder / META).exists() or _holds_nodes(folder):
            kind = ARRAY if _looks_like_array(folder) else GROUP
            tree.nodes[path] = Node(path, kind, None, error)
            if kind == ARRAY:
                return
        else:
            return  # a folder that is no zarr node (e.g. an empty leftover)
        for sub in _subfolders(folder):
            visit(sub, f"{path}/{sub.name}".strip("/"))

    visit(root, "")
    return tree


# ------------------------------------------------------------------ chunks
def grid(doc: dict[str, Any], rows: int | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(shape, chunk shape) of an array's metadata; ``rows`` replaces the length of the first axis."""
    shape = tuple(int(n) for n in doc["shape"])
    chunks = tuple(int(c) for c in doc["chunk_grid"]["configuration"]["chunk_shape"])
    if rows is not None and shape:
        shape = (min(int(rows), shape[0]), *shape[1:])
    return shape, chunks


def chunk_coords(doc: dict[str, Any], rows: int | None = None) -> Iterator[tuple[int, ...]]:
    """Grid coordinates of every chunk holding elements of the array (of its first ``rows`` rows)."""
    shape, chunks = grid(doc, rows)
    counts = [math.ceil(n / c) if c else 0 for n, c in zip(shape, chunks, strict=True)]
    return itertools.product(*(range(n) for n in counts))


def chunk_region(doc: dict[str, Any], coords: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """[start, stop) per axis of the elements chunk ``coords`` holds (cut at the array's shape)."""
    shape, chunks = grid(doc)
    return tuple((i * c, min((i + 1) * c, n)) for i, c, n in zip(coords, chunks, shape, strict=True))


def _encoding(doc: dict[str, Any]) -> tuple[str, str]:
    enc = doc.get("chunk_key_encoding") or {}
    name = enc.get("name", "default") if isinstance(enc, dict) else "default"
    sep = ((enc.get("configuration") or {}) if isinstance(enc, dict) else {}).get("separator",
                                                                                 "/" if name == "default" else ".")
    return str(name), str(sep)


def chunk_keys(doc: dict[str, Any], coords: Iterable[tuple[int, ...]]) -> list[str]:
    """The store keys of chunks, relative to the array's folder (zarr v3 ``default`` or ``v2`` encoding)."""
    name, sep = _encoding(doc)
    if name == "v2":
        return [sep.join(map(str, c)) if c else "0" for c in coords]
    return [sep.join(("c", *map(str, c))) for c in coords]


def chunk_key(doc: dict[str, Any], coords: tuple[int, ...]) -> str:
    """The store key of one chunk, relative to the array's folder."""
    return chunk_keys(doc, [coords])[0]


def absent_chunks(folder: Path, keys: Iterable[str]) -> tuple[list[str], list[str]]:
    """Of the chunk ``keys`` of the array in ``folder``: those with no file, and those whose file is empty.

    Chunks that share a folder (1-D arrays: ``c/0``, ``c/1``, ...) are found by listing it once;
    one chunk per folder (``c/<row>/0``) by one ``stat`` each.
    """
    keys = list(keys)
    base = os.fspath(folder)
    by_parent: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        parent, _, name = key.rpartition("/")
        by_parent[parent].append(name)
    missing: list[str] = []
    empty: list[str] = []
    if len(by_parent) * 4 > len(keys):
        for key in keys:
            try:
                size = os.stat(os.path.join(base, key)).st_size
            except FileNotFoundError:
                missing.append(key)
                continue
            except NotADirectoryError:
                missing.append(key)
                continue
            if size == 0:
                empty.append(key)
        return missing, empty
    for parent, names in by_parent.items():
        sizes: dict[str, int] = {}
        try:
            with os.scandir(os.path.join(base, parent) if parent else base) as it:
                for entry in it:
                    if entry.is_file():
                        sizes[entry.name] = entry.stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            pass
        prefix = f"{parent}/" if parent else ""
        for name in names:
            size = sizes.get(name)
            if size is None:
                missing.append(prefix + name)
            elif size == 0:
                empty.append(prefix + name)
    return missing, empty


def has_checksums(doc: dict[str, Any]) -> bool:
    """Whether the array's chunks end in a crc32c checksum."""
    return any(isinstance(c, dict) and c.get("name") == "crc32c" for c in doc.get("codecs") or ())


__all__ = [
    "ARRAY",
    "GROUP",
    "META",
    "Node",
    "Tree",
    "absent_chunks",
    "chunk_coords",
    "chunk_key",
    "chunk_keys",
    "chunk_region",
    "grid",
    "has_checksums",
    "looks_like_run",
    "read_meta",
    "scan_tree",
]
