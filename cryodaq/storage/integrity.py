"""Which stored data of a run are missing or damaged, by group, array and sample range.

zarr reads a chunk file that is absent as the array's fill value, so a run that lost a chunk
(a partial copy, a lost file on a network disk) would read as valid data. The rules here say
which chunks must exist, so that their absence is reported instead (docs/run-format.md,
*Integrity*):

- every chunk of an appendable group's arrays (those along the group's append dimension)
  below its committed length — in every run, since cryodaq has always written those in full;
- in format version 2 and later, also every chunk of every other array (coordinates, spectra
  frequencies, finished sweeps, derived static arrays), and of a point-wise written sweep
  array every chunk that holds a point its ``done`` mask says was measured. (Version 1 did not
  write chunks equal to the fill value, so their absence proves nothing there.)

:func:`find_damage` checks that those chunk files exist and are not empty, which costs one
directory listing per chunk folder; :mod:`cryodaq.storage.verify` also decodes each one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cryodaq.errors import RunDamagedError
from cryodaq.storage._nodes import (
    ARRAY,
    META,
    Node,
    Tree,
    absent_chunks,
    chunk_coords,
    chunk_key,
    chunk_keys,
    chunk_region,
    grid,
    has_checksums,
)
from cryodaq.storage.format import COMMITTED_ATTR, FIRST_FORMAT_VERSION, ROOT_ATTR, STREAM, SWEEP_DONE, SWEEPS, append_dim

log = logging.getLogger(__name__)

MISSING, EMPTY, CORRUPT, METADATA, SHORT = "missing", "empty", "corrupt", "metadata", "short"
_WHAT = {MISSING: "missing", EMPTY: "empty (0 bytes)", CORRUPT: "corrupt", SHORT: "shorter than committed"}
_MAX_LISTED = 6  # damage entries named in one error message


@dataclass(frozen=True)
class Damage:
    """One stretch of damaged data: chunks of one array with the same problem, or a node's metadata.

    ``region`` is the [start, stop) range per dimension that the chunks cover (cut at the array's
    committed length); when ``along`` is set, ``region[0]`` are rows of the group's append
    dimension (``committed`` of them are data). ``samples`` are the stream's ``sample_index``
    values of the first and last lost row, when they could be read.
    """

    group: str
    array: str
    problem: str
    chunks: tuple[tuple[int, ...], ...] = ()
    keys: tuple[str, ...] = ()
    dims: tuple[str, ...] = ()
    region: tuple[tuple[int, int], ...] = ()
    along: str | None = None
    committed: int | None = None
    samples: tuple[int, int] | None = None
    detail: str = ""

    @property
    def where(self) -> str:
        """``group/array`` (or the node) the damage is in."""
        return "/".join(p for p in (self.group, self.array) if p) or "(root)"

    @property
    def rows(self) -> tuple[int, int] | None:
        """[start, stop) rows of the append dimension lost, for appendable arrays."""
        return self.region[0] if self.along and self.region else None

    def describe(self) -> str:
        """One line: where, what, which chunks and which samples."""
        if self.problem == METADATA:
            file = f"{self.where}/{META}" if self.group or self.array else META
            return f"{self.where}: metadata {file} unreadable: {self.detail}"
        n = len(self.keys)
        keys = ", ".join(self.keys[:3]) + (f", ... {self.keys[-1]}" if n > 3 else "")
        text = f"{self.where}: {n} chunk{'s' if n != 1 else ''} {_WHAT.get(self.problem, self.problem)} ({keys})"
        if self.problem == SHORT:
            text = f"{self.where}: {self.detail}"
        elif self.along and self.region:
            a, b = self.region[0]
            text += f": {self.along} rows {a}..{b - 1}"
            if self.committed is not None:
                text += f" of {self.committed} committed"
            if self.samples is not None:
                text += f" (samples {self.samples[0]}..{self.samples[1]})"
        elif self.region:
            text += ": elements " + ", ".join(f"{d} {a}..{b - 1}" for d, (a, b) in
                                              zip(self.dims or [f"axis{i}" for i in range(len(self.region))],
                                                  self.region, strict=False))
        if self.detail and self.problem != SHORT:
            text += f"; {self.detail}"
        return text

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (``cryodaq verify --json``)."""
        return {"group": self.group, "array": self.array, "problem": self.problem, "chunks": list(self.keys),
                "dims": list(self.dims), "region": [list(r) for r in self.region], "along": self.along,
                "rows": list(self.rows) if self.rows else None, "committed": self.committed,
                "samples": list(self.samples) if self.samples else None, "detail": self.detail,
                "description": self.describe()}


# ----------------------------------------------------------------- the rules
@dataclass
class ChunkPlan:
    """The chunks of one array that must exist, and what they mean."""

    node: Node
    group: str
    coords: list[tuple[int, ...]]
    along: str | None = None
    committed: int | None = None
    notes: list[str] = field(default_factory=list)

    def keys(self) -> list[str]:
        assert self.node.doc is not None
        return chunk_keys(self.node.doc, self.coords)


def format_version(tree: Tree) -> int:
    """The run's format version from its root attrs; if those are unreadable, 2 when its arrays carry
    checksums (version 2 writes them on every array), else 1."""
    root = tree.nodes.get("")
    meta = root.attrs.get(ROOT_ATTR) if root is not None and root.ok else None
    if isinstance(meta, dict) and isinstance(meta.get("format_version"), int):
        return int(meta["format_version"])
    docs = [n.doc for n in tree.arrays() if n.doc]
    return 2 if docs and all(has_checksums(d) for d in docs) else FIRST_FORMAT_VERSION


def _committed(node: Node | None) -> int | None:
    if node is None or not node.ok:
        return None
    value = node.attrs.get(COMMITTED_ATTR)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _done_chunks(tree: Tree, group: Node, axes: tuple[str, ...], chunks: tuple[int, ...]) -> set[tuple[int, ...]] | None:
    """Chunk coordinates (over the sweep axes, with ``chunks`` along them) that hold a measured point;
    None when the ``done`` mask cannot be read (its own damage is reported)."""
    import zarr
    from zarr.storage import LocalStore

    done_path = f"{group.path}/{SWEEP_DONE}"
    node = tree.nodes.get(done_path)
    if node is None or not node.ok:
        return None
    try:
        done = np.asarray(zarr.open_array(LocalStore(tree.root, read_only=True), path=done_path, mode="r")[...], bool)
    except Exception as exc:  # noqa: BLE001 - any decode failure of the mask: its chunks are checked on their own
        log.debug("%s/%s unreadable: %s", tree.root, done_path, exc)
        return None
    if done.ndim != len(axes):
        return None
    idx = np.argwhere(done)
    return {tuple(int(i) // c for i, c in zip(row, chunks, strict=True)) for row in idx}


def chunk_plans(tree: Tree, *, version: int | None = None, live: bool = False) -> list[ChunkPlan]:
    """For every array of the run: the chunks that must exist (see the module docstring)."""
    version = format_version(tree) if version is None else version
    strict = version >= 2
    plans: list[ChunkPlan] = []
    done_cache: dict[tuple[str, tuple[int, ...]], set[tuple[int, ...]] | None] = {}
    for node in tree.arrays():
        if not node.ok or node.doc is None:
            continue
        group = tree.nodes.get(node.parent)
        gpath = node.parent
        dims = node.dims
        committed = _committed(group)
        along = append_dim(gpath, group.attrs if group is not None and group.ok else None) if gpath else None
        in_sweeps = gpath.split("/")[0] == SWEEPS
        if committed is not None and along is not None and dims and dims[0] == along:
            if in_sweeps and not strict:
                continue  # version 1 wrote sweep pauses without the empty chunks
            plans.append(ChunkPlan(node, gpath, list(chunk_coords(node.doc, committed)), along, committed))
            continue
        if group is not None and not group.ok and along is not None and dims and dims[0] == along:
            continue  # the group's committed length is lost with its metadata (reported); rows unknown
        if not strict:
            continue
        shape, chunks = grid(node.doc)
        axes = tuple(group.attrs.get("axes") or ()) if in_sweeps and group is not None and group.ok else ()
        coords = list(chunk_coords(node.doc))
        if axes and node.name != SWEEP_DONE and dims[: len(axes)] == axes and len(dims) >= len(axes):
            key = (gpath, chunks[: len(axes)])
            if key not in done_cache:
                done_cache[key] = _done_chunks(tree, group, axes, chunks[: len(axes)])
            measured = done_cache[key]
            if measured is None:
                continue
            coords = [c for c in coords if c[: len(axes)] in measured]
        plans.append(ChunkPlan(node, gpath, coords))
    return plans


# ----------------------------------------------------------------- findings
def merge_chunks(plan: ChunkPlan, coords: list[tuple[int, ...]], problem: str, detail: str = "") -> list[Damage]:
    """Damage entries for ``coords`` of one array: consecutive chunks along the first axis with the same
    trailing coordinates make one entry."""
    doc = plan.node.doc
    assert doc is not None
    out: list[Damage] = []
    run: list[tuple[int, ...]] = []

    def flush() -> None:
        if not run:
            return
        lo, hi = chunk_region(doc, run[0]), chunk_region(doc, run[-1])
        region = tuple((a[0], b[1]) for a, b in zip(lo, hi, strict=True))
        if plan.committed is not None and region:
            region = ((region[0][0], min(region[0][1], plan.committed)), *region[1:])
        out.append(Damage(plan.group, plan.node.name, problem, tuple(run), tuple(chunk_key(doc, c) for c in run),
                          plan.node.dims, region, plan.along, plan.committed, None, detail))
        run.clear()

    for c in sorted(coords):
        if run and c[1:] == run[-1][1:] and c[0] == run[-1][0] + 1:
            run.append(c)
        else:
            flush()
            run.append(c)
    flush()
    return out


def metadata_damage(tree: Tree) -> list[Damage]:
    """Nodes whose ``zarr.json`` is missing or unreadable."""
    out = []
    for node in tree.damaged():
        group, array = (node.parent, node.name) if node.kind == ARRAY else (node.path, "")
        out.append(Damage(group, array, METADATA, detail=node.error))
    return out


def missing_chunks(tree: Tree, plans: Iterable[ChunkPlan], *, live: bool = False) -> list[Damage]:
    """Chunks the plans require that have no file, or an empty one; arrays shorter than committed."""
    out: list[Damage] = []
    for plan in plans:
        doc = plan.node.doc
        assert doc is not None
        if plan.committed is not None and int(doc["shape"][0]) < plan.committed:
            out.append(Damage(plan.group, plan.node.name, SHORT, dims=plan.node.dims, along=plan.along,
                              committed=plan.committed,
                              detail=f"holds {doc['shape'][0]} rows, {plan.committed} committed"))
        if not plan.coords:
            continue
        by_key = dict(zip(plan.keys(), plan.coords, strict=True))
        missing, empty = absent_chunks(tree.root / plan.node.path, by_key)
        if live and plan.along is None and len(missing) == len(by_key):
            continue  # a static array of a live run, created but not yet written
        out += merge_chunks(plan, [by_key[k] for k in missing], MISSING)
        out += merge_chunks(plan, [by_key[k] for k in empty], EMPTY)
    return out


def add_samples(root: Path, damage: list[Damage]) -> list[Damage]:
    """Stream damage gets the ``sample_index`` values of its first and last lost row, where readable."""
    rows = [d for d in damage if d.group == STREAM and d.rows is not None and d.array != "sample_index"]
    if not rows:
        return damage
    import zarr
    from zarr.storage import LocalStore

    lost_si = [d.rows for d in damage if d.group == STREAM and d.array == "sample_index" and d.rows]
    try:
        si = zarr.open_array(LocalStore(root, read_only=True), path=f"{STREAM}/sample_index", mode="r")
    except Exception as exc:  # noqa: BLE001 - no readable sample_index: rows only
        log.debug("%s: stream/sample_index unreadable: %s", root, exc)
        return damage

    def sample(row: int) -> int | None:
        if any(a <= row < b for a, b in lost_si):  # a missing chunk would read as the fill value
            return None
        try:
            return int(si[row])
        except Exception as exc:  # noqa: BLE001 - a corrupt sample_index chunk: rows only
            log.debug("%s: stream/sample_index[%d] unreadable: %s", root, row, exc)
            return None

    out = []
    for d in damage:
        if d in rows:
            a, b = d.rows  # type: ignore[misc]
            first, last = sample(a), sample(b - 1)
            if first is not None and last is not None:
                d = Damage(**{**d.__dict__, "samples": (first, last)})
        out.append(d)
    return out


def find_damage(tree: Tree, *, live: bool = False, version: int | None = None) -> list[Damage]:
    """Metadata that cannot be read and chunks that must exist but do not (or are empty)."""
    damage = metadata_damage(tree)
    damage += missing_chunks(tree, chunk_plans(tree, version=version, live=live), live=live)
    return add_samples(tree.root, damage)


def damage_message(path: str | Path, damage: list[Damage], *, hint: str = "") -> str:
    """One line naming the run and each damaged group, array and sample range."""
    listed = "; ".join(d.describe() for d in damage[:_MAX_LISTED])
    more = f"; and {len(damage) - _MAX_LISTED} more" if len(damage) > _MAX_LISTED else ""
    return f"{path}: run is damaged: {listed}{more}" + (f". {hint}" if hint else "")


def raise_if_damaged(path: str | Path, damage: list[Damage], *, hint: str = "") -> None:
    """Raise :class:`RunDamagedError` listing ``damage``, if there is any."""
    if damage:
        raise RunDamagedError(damage_message(path, damage, hint=hint), damage, str(path))


def root_meta_damage(path: Path, error: str) -> RunDamagedError:
    """The error for a run whose root metadata cannot be read."""
    dmg = Damage("", "", METADATA, detail=error)
    return RunDamagedError(
        f"{path}: run is damaged: its root {META} is {error}; `cryodaq recover {path}` rebuilds it from the "
        "metadata that survives", [dmg], str(path))


__all__ = [
    "CORRUPT",
    "EMPTY",
    "METADATA",
    "MISSING",
    "SHORT",
    "ChunkPlan",
    "add_samples",
    "Damage",
    "chunk_plans",
    "damage_message",
    "find_damage",
    "format_version",
    "merge_chunks",
    "metadata_damage",
    "missing_chunks",
    "raise_if_damaged",
]
