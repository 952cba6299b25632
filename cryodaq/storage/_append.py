"""Buffered, crash-safe appends to the arrays of one zarr group.

zarr-python's ``Array.append`` grows the stored shape before it writes the chunks, so
after a crash a shape can promise rows that were never written. This module therefore
keeps, per group, a ``committed`` attr written only after every array of the group holds
that many rows on disk. Readers trust ``committed``, never the shapes. (zarr's LocalStore
writes every key through a temporary file and a rename, so a chunk being rewritten by a
killed process keeps its previous content.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

from cryodaq.storage.format import COMMITTED_ATTR, create_array

# Rows buffered per array before a write happens even without a commit, in chunks: bounds memory.
_FLUSH_CHUNKS = 4


class WriteFailure(Exception):
    """An OSError from the store while writing ``key`` (a path inside the run)."""

    def __init__(self, key: str, cause: OSError) -> None:
        self.key, self.cause = key, cause
        super().__init__(f"writing {key}: {cause}")


@dataclass
class _Column:
    array: zarr.Array
    chunk_rows: int
    written: int = 0
    pending: list[np.ndarray] = field(default_factory=list)
    n_pending: int = 0

    @property
    def length(self) -> int:
        return self.written + self.n_pending


class AppendGroup:
    """Arrays of one group appended along axis 0 (dimension ``dim``), committed together."""

    def __init__(self, group: zarr.Group, dim: str) -> None:
        self.group, self.dim = group, dim
        self.committed = int(group.attrs.get(COMMITTED_ATTR, 0))
        self._cols: dict[str, _Column] = {}
        if COMMITTED_ATTR not in group.attrs:
            self._write_attr(COMMITTED_ATTR, 0)

    @property
    def path(self) -> str:
        return self.group.path

    def __contains__(self, name: str) -> bool:
        return name in self._cols

    @property
    def names(self) -> list[str]:
        return list(self._cols)

    def add_array(
        self,
        name: str,
        dtype: Any,
        *,
        chunk_rows: int,
        trailing: tuple[int, ...] = (),
        trailing_dims: tuple[str, ...] = (),
        compressors: Any = None,
        attributes: dict[str, Any] | None = None,
    ) -> zarr.Array:
        """Create an empty array of shape (0, *trailing) that grows along ``self.dim``, with the format's
        checksummed codecs (``compressors`` default: the column codec) and fill value."""
        try:
            arr = create_array(
                self.group, name, shape=(0, *trailing), dtype=dtype, chunks=(int(chunk_rows), *trailing),
                compressors=compressors, attributes=attributes, dimension_names=(self.dim, *trailing_dims),
            )
        except OSError as exc:
            raise WriteFailure(f"{self.path}/{name}", exc) from exc
        self._cols[name] = _Column(arr, int(chunk_rows))
        return arr

    def length(self, name: str) -> int:
        """Rows appended to ``name`` so far (written or still buffered)."""
        return self._cols[name].length

    def cast(self, name: str, values: Any) -> np.ndarray:
        """``values`` as rows of array ``name``: shape checked, dtype cast (same kind only), copied."""
        arr = self._cols[name].array
        values = np.asarray(values)
        if values.ndim < 1 or values.shape[1:] != arr.shape[1:]:
            raise ValueError(
                f"{self.path}/{name}: rows of shape {values.shape[1:]} do not fit an array of rows {arr.shape[1:]}"
            )
        if values.dtype.kind in "OUT":  # strings: zarr's vlen-utf8 takes numpy unicode arrays
            if arr.dtype.kind not in "OUT":
                raise ValueError(f"{self.path}/{name}: strings given for a {arr.dtype} column")
            return values.astype(str)
        if not np.can_cast(values.dtype, arr.dtype, casting="same_kind"):
            raise ValueError(f"{self.path}/{name}: {values.dtype} values do not fit the {arr.dtype} column")
        return values.astype(arr.dtype, copy=True)

    def append(self, name: str, values: Any) -> None:
        """Buffer rows for ``name``; writes once enough is buffered."""
        self.append_many({name: values})

    def append_many(self, rows: dict[str, Any]) -> None:
        """Buffer rows for several arrays; all are checked before any is buffered, so a bad column
        cannot leave the group's arrays out of step."""
        cast = {name: self.cast(name, values) for name, values in rows.items()}
        for name, values in cast.items():
            if not len(values):
                continue
            col = self._cols[name]
            col.pending.append(values)
            col.n_pending += len(values)
            if col.n_pending >= _FLUSH_CHUNKS * col.chunk_rows:
                self._flush(name, col)

    def _flush(self, name: str, col: _Column) -> None:
        if not col.n_pending:
            return
        data = col.pending[0] if len(col.pending) == 1 else np.concatenate(col.pending)
        col.pending, col.n_pending = [], 0
        start, stop = col.written, col.written + len(data)
        try:
            col.array.resize((stop, *col.array.shape[1:]))
            col.array[start:stop] = data
        except OSError as exc:
            raise WriteFailure(f"{self.path}/{name}", exc) from exc
        col.written = stop

    def commit(self) -> int:
        """Write every buffered row, then record how many rows all arrays hold. Returns that count."""
        for name, col in self._cols.items():
            self._flush(name, col)
        n = min((c.written for c in self._cols.values()), default=0)
        if n != self.committed:
            self._write_attr(COMMITTED_ATTR, n)
            self.committed = n
        return n

    def trim_to_committed(self) -> None:
        """Shrink arrays that ran ahead of the committed length (a lagging sibling variable) at close,
        so a finished group has equal lengths and opens with plain ``xarray.open_zarr``."""
        for name, col in self._cols.items():
            if col.written > self.committed:
                try:
                    col.array.resize((self.committed, *col.array.shape[1:]))
                except OSError as exc:
                    raise WriteFailure(f"{self.path}/{name}", exc) from exc
                col.written = self.committed

    def _write_attr(self, key: str, value: Any) -> None:
        try:
            self.group.attrs[key] = value
        except OSError as exc:
            raise WriteFailure(f"{self.path}/zarr.json", exc) from exc
