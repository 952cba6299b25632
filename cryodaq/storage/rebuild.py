"""Rebuild a run's damaged metadata (``zarr.json`` of the root or of a group) from what survives.

Every chunk and every array's own ``zarr.json`` may be intact while the root's ``zarr.json`` is
truncated (a copy interrupted, a full disk) — and then nothing can read the run. What survives,
in the order it is trusted:

1. the damaged file itself: JSON cut short still holds every member before the cut, read one by
   one (the root's ``attributes`` come first, so the run's own attrs usually survive whole);
2. the consolidated copy of every node's metadata in the root ``zarr.json`` (finished runs): a
   group's or array's ``zarr.json`` exactly as it was;
3. the run catalog of the run's folder (``catalog.sqlite``): run id, station, kind, times,
   status, tags, format version;
4. the data: each array's own ``zarr.json`` (dtype, shape, dimensions), the time columns
   (``started``/``ended``), the leading chunks present and the fill values (a group's committed
   length), ``t`` and ``sample_index`` (the stream's sample rate).

What could not be rebuilt is listed, never made up. The run's root attrs get ``recovered``: one
entry per recovery (when, what was rebuilt from what, what is lost), and each damaged file is
kept beside its replacement as ``zarr.json.damaged``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore

import cryodaq
from cryodaq.storage._liveness import utc_now_iso
from cryodaq.storage._nodes import ARRAY, GROUP, META, Node, Tree, absent_chunks, chunk_coords, chunk_keys, grid, scan_tree
from cryodaq.storage.catalog import CATALOG_FILE, Catalog
from cryodaq.storage.format import (
    COMMITTED_ATTR,
    HOUSEKEEPING,
    REPROCESSED,
    ROOT_ATTR,
    STREAM,
    SWEEP_DONE,
    SWEEPS,
    RunKind,
    RunStatus,
    append_dim,
)
from cryodaq.storage.integrity import format_version

log = logging.getLogger(__name__)

DAMAGED_SUFFIX = ".damaged"  # the damaged original, kept beside the rebuilt zarr.json
RECOVERED = "recovered"  # root attr (in attrs["cryodaq"]): what recoveries rebuilt
_DECODER = json.JSONDecoder()


@dataclass
class Rebuilt:
    """One rebuilt ``zarr.json``: the node, where its content came from, what was inferred or lost."""

    node: str
    sources: list[str] = field(default_factory=list)
    inferred: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node or "(root)", "from": self.sources, "inferred": self.inferred, "lost": self.lost}

    def describe(self) -> str:
        text = f"rebuilt {(self.node + '/') if self.node else ''}{META} from {', '.join(self.sources) or 'nothing'}"
        if self.inferred:
            text += f"; inferred {', '.join(self.inferred)}"
        if self.lost:
            text += f"; lost {', '.join(self.lost)}"
        return text


# ------------------------------------------------------------ salvaging JSON
def _ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def salvage_object(text: str, start: int = 0, *, depth: int = 0) -> tuple[dict[str, Any], bool]:
    """The members of the JSON object at ``text[start]`` that are complete, and whether the object is.

    Members are read one by one; at the first incomplete one, an object value is salvaged in turn
    (up to ``depth`` levels) and reading stops.
    """
    out: dict[str, Any] = {}
    i = _ws(text, start)
    if i >= len(text) or text[i] != "{":
        return out, False
    i = _ws(text, i + 1)
    while i < len(text):
        if text[i] == "}":
            return out, True
        try:
            key, i = _DECODER.raw_decode(text, i)
        except json.JSONDecodeError:
            return out, False
        i = _ws(text, i)
        if not isinstance(key, str) or i >= len(text) or text[i] != ":":
            return out, False
        i = _ws(text, i + 1)
        try:
            value, i = _DECODER.raw_decode(text, i)
        except json.JSONDecodeError:
            if depth > 0 and i < len(text) and text[i] == "{":
                part, _ = salvage_object(text, i, depth=depth - 1)
                if part:
                    out[key] = part
                    out.setdefault("__partial__", []).append(key)
            return out, False
        out[key] = value
        i = _ws(text, i)
        if i < len(text) and text[i] == ",":
            i = _ws(text, i + 1)
    return out, False


def _salvage_root(file: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[str]]:
    """From a damaged root zarr.json: its attributes (members that survive), the consolidated node
    documents that survive whole, and the keys of the run attrs cut short."""
    try:
        text = file.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return {}, {}, []
    doc, _ = salvage_object(text, depth=3)
    attrs = doc.get("attributes") if isinstance(doc.get("attributes"), dict) else {}
    attrs = {k: v for k, v in attrs.items() if k != "__partial__"}
    partial: list[str] = []
    meta = attrs.get(ROOT_ATTR)
    if isinstance(meta, dict):
        partial = [str(k) for k in meta.pop("__partial__", [])]
    consolidated = doc.get("consolidated_metadata")
    nodes: dict[str, dict[str, Any]] = {}
    if isinstance(consolidated, dict) and isinstance(consolidated.get("metadata"), dict):
        nodes = {k: v for k, v in consolidated["metadata"].items()
                 if k != "__partial__" and isinstance(v, dict) and "__partial__" not in v and v.get("node_type")}
    return attrs, nodes, partial


# ------------------------------------------------------------ inference from data
def _read(root: Path, path: str, sel: Any = slice(None)) -> np.ndarray | None:
    try:
        return np.asarray(zarr.open_array(LocalStore(root, read_only=True), path=path, mode="r")[sel])
    except Exception as exc:  # noqa: BLE001 - an unreadable array is simply not used for inference
        log.debug("%s/%s not readable for recovery: %s", root, path, exc)
        return None


def _rows_with_data(tree: Tree, node: Node) -> int:
    """Rows of an appendable array that hold data: the leading chunks present, and for integer columns
    (times, indices: never equal to their fill value) up to the last row that is not the fill."""
    assert node.doc is not None
    shape, chunks = grid(node.doc)
    if not shape:
        return 0
    coords = [c for c in chunk_coords(node.doc) if all(i == 0 for i in c[1:])]
    missing, empty = absent_chunks(tree.root / node.path, chunk_keys(node.doc, coords))
    gone = {k for k in (*missing, *empty)}
    keys = chunk_keys(node.doc, coords)
    k = next((i for i, key in enumerate(keys) if key in gone), len(keys))
    rows = min(shape[0], k * chunks[0])
    kind = str(node.doc.get("data_type", ""))
    if rows and kind.startswith(("int", "uint")):
        last = _read(tree.root, node.path, slice(max(0, rows - chunks[0]), rows))
        if last is not None:
            fill = node.doc.get("fill_value")
            data = last.reshape(len(last), -1)
            keep = np.flatnonzero((data != fill).any(axis=1))
            rows = max(0, rows - chunks[0]) + (int(keep[-1]) + 1 if keep.size else 0)
    return rows


def _infer_group(tree: Tree, node: Node) -> tuple[dict[str, Any], list[str], list[str]]:
    """Attrs of a group whose metadata is lost, from its arrays: (attrs, inferred keys, lost keys)."""
    path = node.path
    top = path.split("/")[0]
    arrays = [n for n in tree.children(path) if n.kind == ARRAY and n.ok]
    attrs: dict[str, Any] = {}
    inferred: list[str] = []
    lost: list[str] = []
    along = append_dim(path, {"append_dim": arrays[0].dims[0]} if arrays and arrays[0].dims else None)
    growing = [a for a in arrays if along and a.dims[:1] == (along,)]
    if path in ("", HOUSEKEEPING, SWEEPS, REPROCESSED) or (not arrays and tree.children(path)):
        return attrs, inferred, lost  # containers: no attrs
    if growing:
        attrs[COMMITTED_ATTR] = min(_rows_with_data(tree, a) for a in growing)
        inferred.append(f"{COMMITTED_ATTR}={attrs[COMMITTED_ATTR]} (rows present in every column)")
    if top == REPROCESSED and along:
        attrs.update(append_dim=along, status="unknown")
        lost += ["config", "source", "created"]
    if top == STREAM:
        variables = [a for a in arrays if len(a.dims) == 2 and a.dims[1] == "channel"]
        if variables and variables[0].doc:
            attrs["n_channels"] = int(variables[0].doc["shape"][1])
            attrs["units"] = {a.name: str(a.attrs.get("units", "")) for a in variables}
            inferred += ["n_channels", "units"]
        n = min(attrs.get(COMMITTED_ATTR, 0), 100_000)
        t, si = _read(tree.root, f"{STREAM}/t", slice(0, n)), _read(tree.root, f"{STREAM}/sample_index", slice(0, n))
        if t is not None and si is not None and n > 1 and t[-1] > t[0] and si[-1] > si[0]:
            attrs["sample_rate_hz"] = float(f"{1e9 * (si[-1] - si[0]) / (t[-1] - t[0]):.9g}")
            inferred.append(f"sample_rate_hz={attrs['sample_rate_hz']:g} (from t and sample_index)")
        else:
            lost.append("sample_rate_hz")
    if top == HOUSEKEEPING and "/" in path:
        value = next((a for a in arrays if a.name == "value"), None)
        if value is not None and "units" in value.attrs:
            attrs["unit"] = value.attrs["units"]
            inferred.append("unit")
    if top == SWEEPS and path.count("/") == 1:
        done = next((a for a in arrays if a.name == SWEEP_DONE), None)
        if done is not None and done.doc:
            attrs.update(axes=list(done.dims), shape=[int(n) for n in done.doc["shape"]])
            inferred += ["axes", "shape"]
        lost.append("the sweep's own attrs (status, axis_info, procedure settings)")
    return attrs, inferred, lost


def _t_range(tree: Tree) -> tuple[int, int] | None:
    """First and last UTC ns over the run's committed time columns."""
    lo, hi = [], []
    for node in tree.arrays():
        if node.name != "t" or not node.ok or node.doc is None or len(node.doc["shape"]) != 1:
            continue
        group = tree.nodes.get(node.parent)
        n = group.attrs.get(COMMITTED_ATTR) if group is not None and group.ok else None
        if not isinstance(n, int) or n <= 0:
            continue
        first, last = _read(tree.root, node.path, 0), _read(tree.root, node.path, n - 1)
        fill = node.doc.get("fill_value")
        if first is not None and last is not None and int(first) not in (fill, 0) and int(last) not in (fill, 0):
            lo.append(int(first))
            hi.append(int(last))
    return (min(lo), max(hi)) if lo else None


def _iso(t_ns: int) -> str:
    sec, ns = divmod(int(t_ns), 10**9)
    stamp = datetime.fromtimestamp(sec, UTC).replace(microsecond=ns // 1000)
    return stamp.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _catalog_entry(path: Path) -> dict[str, Any] | None:
    if not (path.parent / CATALOG_FILE).is_file():
        return None
    try:
        entry = Catalog(path.parent, timeout_s=2.0).get(path)
    except Exception as exc:  # noqa: BLE001 - a catalog that cannot help is just not a source
        log.debug("catalog of %s has no entry for it: %s", path.parent, exc)
        return None
    return {"run_id": entry.run_id, "station": entry.station, "kind": entry.kind, "started": entry.started,
            "ended": entry.ended, "status": entry.status.value, "interrupted": entry.interrupted,
            "tags": list(entry.tags), "format_version": entry.format_version}


def _root_meta(path: Path, tree: Tree, salvaged: dict[str, Any], partial: list[str], rec: Rebuilt) -> dict[str, Any]:
    """The run attrs: salvaged members first, then the catalog's, then what the data tell."""
    meta = dict(salvaged)
    if meta:
        rec.sources.append(f"the damaged {META} ({len(meta)} run attrs survived)")
    if partial:
        rec.lost += [f"part of {k}" for k in partial]
    entry = _catalog_entry(path)
    if entry is not None:
        filled = [k for k, v in entry.items() if k not in meta and v is not None]
        for key in filled:
            meta[key] = {"name": entry[key], "snapshot": {}} if key == "station" else entry[key]
        if filled:
            rec.sources.append(f"{CATALOG_FILE} ({', '.join(filled)})")
        if "station" in filled:
            rec.lost.append("station.snapshot")
    meta.pop("__partial__", None)
    defaults: dict[str, Any] = {
        "format_version": format_version(tree),
        "run_id": path.name[:-5] if path.name.endswith(".zarr") else path.name,
        "kind": RunKind.SWEEP.value if (path / SWEEPS).is_dir() and not (path / STREAM).is_dir() else RunKind.STREAM.value,
        "interrupted": False,
        "station": {"name": "unknown", "snapshot": {}},
        "config": {},
        "software": {},
        "clock": {"source": "unknown (run attrs rebuilt by cryodaq recover)", "uncertainty_s": None},
        "tags": [],
    }
    span = _t_range(tree)
    if span is not None:
        defaults.update(started=_iso(span[0]), ended=_iso(span[1]))
    for key, value in defaults.items():
        if key not in meta:
            meta[key] = value
            (rec.inferred if key in ("format_version", "run_id", "kind", "started", "ended") else rec.lost).append(key)
    if meta.get("status") not in {s.value for s in RunStatus}:
        meta["status"] = RunStatus.CRASHED.value
        meta["end_reason"] = ("the run's status was lost with its metadata; rebuilt by cryodaq recover (the data "
                              "committed before are intact)")
        rec.lost.append("status (marked crashed)")
    meta.setdefault("end_reason", "")
    meta.setdefault("ended", meta.get("started"))
    meta.setdefault("started", None)
    meta.setdefault("heartbeat", meta.get("ended") or utc_now_iso())
    return meta


# ------------------------------------------------------------ writing
def _write_json(file: Path, doc: dict[str, Any]) -> None:
    """Replace ``file`` atomically, keeping a damaged original beside it as ``zarr.json.damaged``."""
    if file.exists() and not (file.parent / (file.name + DAMAGED_SUFFIX)).exists():
        os.replace(file, file.parent / (file.name + DAMAGED_SUFFIX))
    tmp = file.parent / f".{file.name}.{secrets.token_hex(4)}.partial"
    tmp.write_text(json.dumps(doc, indent=2, allow_nan=True))
    os.replace(tmp, file)


def _group_doc(attrs: dict[str, Any]) -> dict[str, Any]:
    return {"attributes": attrs, "zarr_format": 3, "consolidated_metadata": None, "node_type": GROUP}


def rebuild_metadata(path: str | Path) -> list[Rebuilt]:
    """Rebuild every damaged ``zarr.json`` of the run at ``path`` (see the module docstring); returns what
    was rebuilt (empty when the metadata are intact). Arrays whose own metadata are lost and have no
    consolidated copy cannot be rebuilt: they are listed with ``lost``."""
    path = Path(path)
    tree = scan_tree(path)
    damaged = tree.damaged()
    if not damaged:
        return []
    root = tree.nodes.get("")
    salvaged_attrs: dict[str, Any] = {}
    copies: dict[str, dict[str, Any]] = {}
    partial: list[str] = []
    if root is not None and not root.ok:
        salvaged_attrs, copies, partial = _salvage_root(path / META)
    elif root is not None and root.doc is not None:
        consolidated = root.doc.get("consolidated_metadata") or {}
        copies = dict(consolidated.get("metadata") or {}) if isinstance(consolidated, dict) else {}
    done: list[Rebuilt] = []
    # children before the root (the root's attrs are inferred from the groups' committed lengths)
    for node in sorted(damaged, key=lambda n: (-n.path.count("/"), n.path)):
        if node.path == "":
            continue
        rec = Rebuilt(node.path)
        copy = copies.get(node.path)
        if copy is not None:
            doc = dict(copy)
            doc.setdefault("zarr_format", 3)
            rec.sources.append("the consolidated copy in the root zarr.json")
        elif node.kind == GROUP:
            attrs, rec.inferred, rec.lost = _infer_group(tree, node)
            doc = _group_doc(attrs)
            rec.sources.append("its arrays")
        else:
            rec.lost.append("the array's metadata (no consolidated copy): its chunks cannot be read")
            done.append(rec)
            continue
        _write_json(path / node.path / META, doc)
        tree.nodes[node.path] = Node(node.path, doc["node_type"], doc)
        done.append(rec)
    if root is not None and not root.ok:
        rec = Rebuilt("")
        attrs = {k: v for k, v in salvaged_attrs.items() if k != ROOT_ATTR}
        salvaged_meta = salvaged_attrs.get(ROOT_ATTR) if isinstance(salvaged_attrs.get(ROOT_ATTR), dict) else {}
        attrs[ROOT_ATTR] = _root_meta(path, tree, salvaged_meta, partial, rec)
        if copies:
            rec.sources.append(f"the consolidated copy ({len(copies)} nodes survived; not needed: every node has "
                               "its own zarr.json)")
        rec.sources.append("the arrays' own zarr.json and data")
        _write_json(path / META, _group_doc(attrs))
        done.insert(0, rec)
    _record(path, done)
    return done


def _record(path: Path, done: list[Rebuilt]) -> None:
    """Add a ``recovered`` entry to the run attrs; consolidate a finished run's metadata again."""
    store = LocalStore(path)
    root = zarr.open_group(store, mode="r+", use_consolidated=False)
    meta = dict(root.attrs[ROOT_ATTR])
    entry = {"at": utc_now_iso(), "software": f"cryodaq {cryodaq.__version__}",
             "rebuilt": [r.as_dict() for r in done], "kept": f"each damaged original as {META}{DAMAGED_SUFFIX}"}
    meta[RECOVERED] = [*meta.get(RECOVERED, []), entry]
    root.attrs[ROOT_ATTR] = meta
    unrecoverable = any(r.lost and not r.sources for r in done)
    if meta.get("status") in (RunStatus.COMPLETE.value, RunStatus.ABORTED.value) and not unrecoverable:
        zarr.consolidate_metadata(store)


__all__ = ["DAMAGED_SUFFIX", "RECOVERED", "Rebuilt", "rebuild_metadata", "salvage_object"]
