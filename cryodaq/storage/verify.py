"""``cryodaq verify RUN``: check every chunk of every array of a run — present, decodable, checksum right.

On top of :func:`cryodaq.storage.integrity.find_damage` (metadata readable, every chunk that must
exist is there and not empty), every stored chunk the run's data cover is read and decoded: zarr
checks each chunk's crc32c checksum (format version 2 writes one on every chunk) and the
decompressor checks the frame. Chunks past a committed length (left by a crash) are not data
and are not read. Runs of format version 1 have no checksums: there, a flipped bit that still
decompresses cannot be seen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import google_crc32c
import numcodecs
import numpy as np
import zarr
from zarr.storage import LocalStore

from cryodaq.errors import RunFormatError
from cryodaq.storage.guarded import is_decode_error
from cryodaq.storage._liveness import writer_alive
from cryodaq.storage._nodes import (
    META,
    Node,
    Tree,
    chunk_coords,
    chunk_key,
    chunk_keys,
    chunk_region,
    grid,
    has_checksums,
    looks_like_run,
    scan_tree,
)
from cryodaq.storage.format import COMMITTED_ATTR, HEARTBEAT_STALE_S, ROOT_ATTR, RunStatus, append_dim
from cryodaq.storage.integrity import (
    CORRUPT,
    ChunkPlan,
    Damage,
    merge_chunks,
    add_samples,
    chunk_plans,
    format_version,
    metadata_damage,
    missing_chunks,
)

log = logging.getLogger(__name__)

_BATCH_BYTES = 32 * 1024**2  # decoded bytes read at a time


@dataclass
class VerifyReport:
    """What ``cryodaq verify`` found: ``damage`` (empty when intact) and what was checked."""

    path: Path
    format_version: int
    damage: list[Damage] = field(default_factory=list)
    arrays: int = 0
    chunks: int = 0  # chunks read and decoded
    checksummed: int = 0  # of those, with a crc32c checksum

    @property
    def intact(self) -> bool:
        return not self.damage

    def render(self) -> str:
        """Text for the terminal: one line per finding, or that the run is intact."""
        sums = ("every chunk checksummed" if self.checksummed == self.chunks else
                f"{self.checksummed} of them checksummed (format version {self.format_version})")
        head = f"{self.path}: {self.arrays} arrays, {self.chunks} chunks read and decoded, {sums}"
        if self.intact and self.checksummed == self.chunks:
            return f"{head}\nintact: every chunk present, decodable and its checksum right"
        if self.intact:
            return (f"{head}\nintact: every chunk present and decodable; {self.chunks - self.checksummed} chunk(s) "
                    "carry no checksum, so a changed byte that still decompresses would not be seen there")
        lines = [head, f"DAMAGED: {len(self.damage)} finding(s)"]
        lines += [f"  {d.describe()}" for d in self.damage]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "intact": self.intact, "format_version": self.format_version,
                "arrays": self.arrays, "chunks_checked": self.chunks, "chunks_checksummed": self.checksummed,
                "damage": [d.as_dict() for d in self.damage]}


def _live(tree: Tree) -> bool:
    root = tree.nodes.get("")
    meta = root.attrs.get(ROOT_ATTR) if root is not None and root.ok else None
    return (isinstance(meta, dict) and meta.get("status") == RunStatus.RUNNING.value
            and writer_alive(meta, stale_after_s=HEARTBEAT_STALE_S))


def _read_plan(tree: Tree, node: Node) -> ChunkPlan:
    """Every chunk of an array that holds data: below its group's committed length along the append
    dimension, else the whole array (absent ones read as fill, without error)."""
    assert node.doc is not None
    group = tree.nodes.get(node.parent)
    attrs = group.attrs if group is not None and group.ok else {}
    along = append_dim(node.parent, attrs) if node.parent else None
    committed = attrs.get(COMMITTED_ATTR)
    if along and node.dims and node.dims[0] == along and isinstance(committed, int):
        return ChunkPlan(node, node.parent, list(chunk_coords(node.doc, committed)), along, committed)
    return ChunkPlan(node, node.parent, list(chunk_coords(node.doc)))


_ITEMSIZE = {"bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "int64": 8,
             "uint64": 8, "float16": 2, "float32": 4, "float64": 8, "complex64": 8, "complex128": 16}


def _chunk_checker(doc: dict[str, Any]) -> Callable[[bytes], str | None] | None:
    """A fast check of one chunk file's bytes for the codecs cryodaq writes (crc32c, blosc, zstd, gzip over
    ``bytes`` or ``vlen-utf8``): checksum, decompression and decoded size. None for other codec chains
    (then zarr decodes the chunk). Returns what is wrong, or None."""
    codecs = [c for c in doc.get("codecs") or () if isinstance(c, dict)]
    if not codecs or len(codecs) != len(doc.get("codecs") or ()):
        return None
    first, rest = codecs[0], codecs[1:]
    n = int(np.prod(doc["chunk_grid"]["configuration"]["chunk_shape"], dtype=np.int64))
    if first.get("name") == "bytes" and doc.get("data_type") in _ITEMSIZE:
        size = n * _ITEMSIZE[str(doc["data_type"])]

        def finish(raw: bytes) -> str | None:
            return None if len(raw) == size else f"decodes to {len(raw)} bytes, expected {size}"
    elif first.get("name") == "vlen-utf8":
        utf8 = numcodecs.VLenUTF8()

        def finish(raw: bytes) -> str | None:
            count = len(utf8.decode(raw))
            return None if count == n else f"decodes to {count} strings, expected {n}"
    else:
        return None
    steps: list[Callable[[bytes], bytes]] = []
    for c in reversed(rest):
        name = c.get("name")
        if name == "crc32c":
            steps.append(_check_crc32c)
        elif name in ("blosc", "zstd", "gzip"):
            steps.append({"blosc": numcodecs.Blosc(), "zstd": numcodecs.Zstd(), "gzip": numcodecs.GZip()}[name].decode)
        else:
            return None

    def check(data: bytes) -> str | None:
        try:
            for step in steps:
                data = bytes(step(data))
            return finish(data)
        except Exception as exc:  # noqa: BLE001 - any failure to decode is the finding
            return f"{type(exc).__name__}: {exc}"

    return check


def _check_crc32c(data: bytes) -> bytes:
    if len(data) < 4:
        raise ValueError(f"{len(data)} bytes, shorter than its 4-byte checksum")
    if google_crc32c.value(data[:-4]) != int.from_bytes(data[-4:], "little"):
        raise ValueError("stored and computed crc32c checksums differ")
    return data[:-4]


def _decode_fast(folder: Path, plan: ChunkPlan, coords: list[tuple[int, ...]],
                 check: Callable[[bytes], str | None]) -> list[Damage]:
    """Read each chunk file and check it with ``check``; absent files (fill, allowed here) are skipped."""
    assert plan.node.doc is not None
    found: list[Damage] = []
    for c, key in zip(coords, chunk_keys(plan.node.doc, coords), strict=True):
        try:
            data = (folder / key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            continue
        bad = check(data)
        if bad:
            found += merge_chunks(plan, [c], CORRUPT, bad)
    return found


def _decode(store: LocalStore, plan: ChunkPlan, skip: set[tuple[int, ...]]) -> tuple[int, list[Damage]]:
    """Read ``plan``'s chunks (except ``skip``) in batches of whole chunk rows; a batch that fails is
    read again chunk by chunk to name the bad ones. Returns (chunks read, damage)."""
    node = plan.node
    assert node.doc is not None
    check = _chunk_checker(node.doc)
    if check is not None:
        coords = [c for c in plan.coords if c not in skip]
        return len(coords), _coalesce(_decode_fast(Path(store.root) / node.path, plan, coords, check))
    try:
        arr = zarr.open_array(store, path=node.path, mode="r")
    except Exception as exc:  # noqa: BLE001 - metadata zarr cannot use although it parses
        return 0, [Damage(plan.group, node.name, "metadata", detail=f"zarr cannot open it ({exc})")]
    coords = [c for c in plan.coords if c not in skip]
    if not coords:
        return 0, []
    if arr.ndim == 0:
        bad = _try(arr, ())
        return 1, merge_chunks(plan, [()], CORRUPT, bad) if bad else []
    shape, chunks = grid(node.doc)
    row_bytes = max(int(np.prod(shape[1:], dtype=np.int64)) * max(arr.dtype.itemsize, 8), 1)
    per_batch = max(1, _BATCH_BYTES // max(row_bytes * chunks[0], 1))
    by_row: dict[int, list[tuple[int, ...]]] = {}
    for c in coords:
        by_row.setdefault(c[0], []).append(c)
    rows = sorted(by_row)
    corrupt: list[tuple[int, ...]] = []
    details: dict[tuple[int, ...], str] = {}
    for i in range(0, len(rows), per_batch):
        batch = rows[i:i + per_batch]
        lo, hi = batch[0] * chunks[0], min((batch[-1] + 1) * chunks[0], shape[0])
        if batch[-1] - batch[0] + 1 == len(batch) and _try(arr, (slice(lo, hi),)) is None:
            continue
        for r in batch:
            for c in by_row[r]:
                bad = _try(arr, tuple(slice(a, b) for a, b in chunk_region(node.doc, c)))
                if bad:
                    corrupt.append(c)
                    details[c] = bad
    damage: list[Damage] = []
    for c in corrupt:
        damage += merge_chunks(plan, [c], CORRUPT, details[c])
    return len(coords), _coalesce(damage)


def _coalesce(damage: list[Damage]) -> list[Damage]:
    """Consecutive corrupt chunks of one array with the same error kind become one entry."""
    out: list[Damage] = []
    for d in damage:
        prev = out[-1] if out else None
        if (prev and prev.array == d.array and prev.group == d.group and prev.chunks[-1][1:] == d.chunks[0][1:]
                and prev.chunks[-1][0] + 1 == d.chunks[0][0] and prev.detail.split(":")[0] == d.detail.split(":")[0]):
            region = ((prev.region[0][0], d.region[0][1]), *prev.region[1:]) if prev.region else ()
            out[-1] = Damage(prev.group, prev.array, prev.problem, prev.chunks + d.chunks, prev.keys + d.keys,
                             prev.dims, region, prev.along, prev.committed, None, prev.detail)
        else:
            out.append(d)
    return out


def _try(arr: zarr.Array, sel: tuple) -> str | None:
    """None if ``arr[sel]`` decodes, else the error, as text."""
    try:
        arr[sel] if sel else arr[()]
    except Exception as exc:
        if not is_decode_error(exc):
            raise
        return f"{type(exc).__name__}: {exc}"
    return None


def verify_run(path: str | Path, *, progress: Callable[[str], None] | None = None) -> VerifyReport:
    """Check every chunk of every array of the run at ``path``; see the module docstring.

    Raises :class:`~cryodaq.errors.RunFormatError` (or ``FileNotFoundError``) when ``path`` is not a run.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run folder")
    if not path.is_dir():
        raise RunFormatError(f"{path}: is a file, not a run; expected a <run_id>.zarr folder")
    if not looks_like_run(path):
        raise RunFormatError(f"{path}: not a run (no {META}); expected a <run_id>.zarr folder")
    tree = scan_tree(path)
    version = format_version(tree)
    live = _live(tree)
    report = VerifyReport(path, version)
    report.damage = metadata_damage(tree)
    report.damage += missing_chunks(tree, chunk_plans(tree, version=version, live=live), live=live)
    absent = {(d.group, d.array): set(d.chunks) for d in report.damage if d.chunks}
    store = LocalStore(path, read_only=True)
    for node in sorted(tree.arrays(), key=lambda n: n.path):
        if not node.ok or node.doc is None:
            continue
        if progress is not None:
            progress(node.path)
        plan = _read_plan(tree, node)
        n, damage = _decode(store, plan, absent.get((plan.group, node.name), set()))
        report.arrays += 1
        report.chunks += n
        report.checksummed += n if has_checksums(node.doc) else 0
        report.damage += damage
    report.damage = add_samples(path, report.damage)
    return report


def chunk_file(run: str | Path, group: str, array: str, coords: tuple[int, ...]) -> Path:
    """The file of one chunk (for tests and for people repairing a run by hand)."""
    run = Path(run)
    node_path = "/".join(p for p in (group, array) if p)
    tree_doc = scan_tree(run).nodes[node_path].doc
    if tree_doc is None:
        raise RunFormatError(f"{run}/{node_path}: metadata unreadable")
    return run / node_path / chunk_key(tree_doc, coords)


__all__ = ["VerifyReport", "chunk_file", "verify_run"]
