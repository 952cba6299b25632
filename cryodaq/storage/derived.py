"""Derived outputs of a finished run: ``reprocessed/<label>/`` and ``analysis/<label>/`` groups (docs/run-format.md).

A derived group is added to a run after the fact (e.g. by ``cryodaq reprocess``), next to the
raw groups, which are never touched. It holds columns appended along one dimension
(``event`` by default) with the same committed-length semantics as the raw groups, plus
optional static arrays (e.g. per-channel templates), and attrs saying where it came from:
``config``, ``source``, ``created``, and ``status`` (``writing`` until :meth:`DerivedWriter.close`).
The run's consolidated metadata, if it has some (a closed run), is refreshed on close so that
``xarray.open_zarr`` sees the new group; the raw groups' data and attrs stay byte-identical.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import zarr
from zarr.errors import ZarrUserWarning
from zarr.storage import LocalStore

from cryodaq.errors import DerivedExistsError, RunFormatError
from cryodaq.provenance import jsonable
from cryodaq.storage._append import AppendGroup
from cryodaq.storage._liveness import utc_now_iso
from cryodaq.storage.format import (
    DERIVED_PARENTS,
    EVENT,
    REPROCESSED,
    RunStatus,
    check_name,
    chunk_rows,
    column_compressors,
    create_array,
    stream_compressors,
)
from cryodaq.storage.reader import open_run

_COLUMN_CHUNK = 16384

Column = np.ndarray | tuple[tuple[str, ...], np.ndarray]


def _split(name: str, value: Any, dim: str) -> tuple[tuple[str, ...], np.ndarray]:
    """(dims, values) of a column given as an array (1-D: along ``dim``) or as ``(dims, array)``."""
    if isinstance(value, tuple):
        dims, arr = value
        dims, arr = tuple(dims), np.asarray(arr)
    else:
        arr = np.asarray(value)
        if arr.ndim != 1:
            raise ValueError(f"derived column {name!r} has {arr.ndim} dimensions: give it as (dims, array)")
        dims = (dim,)
    if len(dims) != arr.ndim:
        raise ValueError(f"derived array {name!r}: dims {dims} do not match its shape {arr.shape}")
    return dims, arr


class DerivedWriter:
    """Writes one ``reprocessed/<label>/`` group of an existing run. Create with :meth:`create`."""

    def __init__(self, run_path: Path, root: zarr.Group, group: zarr.Group, dim: str, consolidated: bool) -> None:
        self.run_path = run_path
        self.dim = dim
        self._root = root
        self._group = group
        self._rows = AppendGroup(group, dim)
        self._consolidated = consolidated
        self._columns: dict[str, tuple[str, ...]] | None = None
        self._closed = False

    @property
    def path(self) -> str:
        """The group's path inside the run, e.g. ``reprocessed/20250131T170405``."""
        return self._group.path

    @classmethod
    def create(
        cls, run_path: str | Path, label: str, attrs: Mapping[str, Any], *, dim: str = EVENT, overwrite: bool = False,
        parent: str = REPROCESSED,
    ) -> DerivedWriter:
        """Add ``<parent>/<label>/`` (``reprocessed/`` or ``analysis/``) to the run at ``run_path`` with
        ``attrs`` (JSON-able).

        Refuses a run whose writer is still running, and an existing label unless ``overwrite``
        (which deletes the old group first).
        """
        if parent not in DERIVED_PARENTS:
            raise ValueError(f"derived groups live under {list(DERIVED_PARENTS)}, not {parent!r}")
        check_name(label, f"{parent} label")
        run = open_run(run_path)
        if run.status is RunStatus.RUNNING:
            raise RunFormatError(f"{run.path}: the run is still being written; derive results once it has ended")
        root = zarr.open_group(LocalStore(run.path), mode="r+", use_consolidated=False)
        top = root[parent] if parent in root else root.create_group(parent)
        if label in top:
            if not overwrite:
                raise DerivedExistsError(
                    f"{run.path}: {parent}/{label} already exists; choose another label or overwrite it"
                )
            del top[label]
        meta = {**jsonable(dict(attrs)), "status": "writing", "append_dim": dim}
        meta.setdefault("created", utc_now_iso())
        group = top.create_group(label, attributes=meta)
        return cls(run.path, root, group, dim, consolidated=run._consolidated)

    def append(self, columns: Mapping[str, Column], attrs: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Append rows: every column (along the group's dim first) gets the same number of rows.

        A column is a 1-D array, or ``(dims, array)`` for more dimensions, e.g.
        ``(("event", "sample"), records)``. The first append fixes the set of columns and takes
        each column's attrs from ``attrs`` (e.g. ``{"t": {"units": "ns"}}``).
        """
        self._check_open()
        parts = {name: _split(name, value, self.dim) for name, value in columns.items()}
        lengths = {name: arr.shape[0] for name, (_, arr) in parts.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"derived columns differ in length: {lengths}")
        bad = [name for name, (dims, _) in parts.items() if dims[0] != self.dim]
        if bad:
            raise ValueError(f"derived columns {bad} do not run along {self.dim!r}")
        if self._columns is None:
            for name, (dims, arr) in parts.items():
                check_name(name, "derived column")
                trailing = arr.shape[1:]
                if trailing:
                    rows = chunk_rows(int(np.prod(trailing)) * arr.dtype.itemsize, None, hi=2 * 1024**2)
                    comp = stream_compressors()
                else:
                    rows, comp = _COLUMN_CHUNK, column_compressors()
                self._rows.add_array(name, arr.dtype, chunk_rows=rows, trailing=trailing, trailing_dims=dims[1:],
                                     compressors=comp, attributes=jsonable(dict((attrs or {}).get(name, {}))))
            self._columns = {name: dims for name, (dims, _) in parts.items()}
        elif set(parts) != set(self._columns):
            raise ValueError(f"derived columns {sorted(parts)} differ from the first append's {sorted(self._columns)}")
        self._rows.append_many({name: arr for name, (_, arr) in parts.items()})

    def write_static(self, name: str, dims: tuple[str, ...], values: Any, attrs: Mapping[str, Any] | None = None) -> None:
        """A whole array that does not grow (templates, per-channel results, their coordinates)."""
        self._check_open()
        check_name(name, "derived array")
        arr = np.asarray(values)
        if len(dims) != arr.ndim:
            raise ValueError(f"derived array {name!r}: dims {dims} do not match its shape {arr.shape}")
        out = create_array(self._group, name, shape=arr.shape, dtype=arr.dtype, chunks=arr.shape or None,
                           dimension_names=tuple(dims), attributes=jsonable(dict(attrs or {})))
        out[...] = arr

    def set_attrs(self, **attrs: Any) -> None:
        """Add or replace group attrs (e.g. results known only at the end)."""
        self._check_open()
        self._group.attrs.update(jsonable(attrs))

    def commit(self) -> int:
        """Write buffered rows, then the committed length. Returns it."""
        self._check_open()
        return self._rows.commit()

    def close(self) -> None:
        """Final commit, status ``complete``, then the run's consolidated metadata refreshed. Idempotent."""
        if self._closed:
            return
        self._rows.commit()
        self._rows.trim_to_committed()
        self._group.attrs["status"] = "complete"
        self._closed = True
        self._consolidate()

    def abort(self, reason: str) -> None:
        """Stop writing: rows committed so far stay readable, the group's status says ``aborted``."""
        if self._closed:
            return
        self._group.attrs.update(status="aborted", end_reason=reason)
        self._closed = True
        self._consolidate()

    def _consolidate(self) -> None:
        """Refresh the run's consolidated metadata (closed runs have some) so readers see this group."""
        if self._consolidated:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=ZarrUserWarning, message=".*[Cc]onsolidated metadata.*")
                zarr.consolidate_metadata(self._root.store)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.run_path}/{self.path} is closed")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None:
            self.close()
        else:  # keep what was committed, marked as not finished
            self.abort(f"{type(exc).__name__}: {exc}")


def write_derived(
    run_path: str | Path,
    label: str,
    columns: Mapping[str, Column],
    attrs: Mapping[str, Any],
    *,
    column_attrs: Mapping[str, Mapping[str, Any]] | None = None,
    static: Mapping[str, tuple[tuple[str, ...], Any]] | None = None,
    dim: str = EVENT,
    overwrite: bool = False,
    parent: str = REPROCESSED,
) -> str:
    """Write ``<parent>/<label>/`` in one go (see :class:`DerivedWriter`); returns the group path."""
    with DerivedWriter.create(run_path, label, attrs, dim=dim, overwrite=overwrite, parent=parent) as w:
        if columns:
            w.append(columns, column_attrs)
        for name, (dims, values) in (static or {}).items():
            w.write_static(name, dims, values)
    return w.path


__all__ = ["REPROCESSED", "DerivedWriter", "write_derived"]
