"""Reading the arrays of a run so that damage never reads as data.

:class:`GuardedArray` stands between zarr and dask (``dask.array.from_array``) or an eager
read: a chunk that fails to decode (checksum mismatch, truncated, not decompressible) raises
:class:`~cryodaq.errors.RunDamagedError` naming the group, array, chunk and rows, where zarr
would raise a bare ``ValueError``; chunks known to be lost (``open_run(..., damaged="mask")``)
are not read at all and come back blank: NaN for float and complex arrays, the fill value for
others (which the ``intact`` coordinate of the dataset flags).
"""

from __future__ import annotations

import errno
import itertools
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from cryodaq.errors import RunDamagedError
from cryodaq.storage.integrity import CORRUPT, Damage

Coords = tuple[int, ...]


def is_decode_error(exc: BaseException) -> bool:
    """Whether ``exc`` from reading a chunk means its bytes are bad (not a bug or a missing permission)."""
    if isinstance(exc, OSError):
        return exc.errno == errno.EIO
    return isinstance(exc, ValueError | RuntimeError | TypeError | EOFError)


def blank_value(arr: zarr.Array) -> Any:
    """What a lost chunk reads as: NaN for float/complex, else the array's fill value."""
    return np.nan if arr.dtype.kind in "fc" else arr.fill_value


class GuardedArray:
    """Array-like over a zarr array of a run (see the module docstring). ``lost`` are chunk coordinates."""

    def __init__(self, arr: zarr.Array, *, run: Path, group: str, name: str, lost: Iterable[Coords] = (),
                 along: str | None = None, committed: int | None = None) -> None:
        self.arr = arr
        self.run, self.group, self.name = run, group, name
        self.lost = frozenset(tuple(c) for c in lost)
        self.along, self.committed = along, committed
        self.shape = tuple(arr.shape)
        self.dtype = arr.dtype
        self.ndim = arr.ndim
        self.chunks = tuple(arr.chunks)

    def _bounds(self, key: Any) -> tuple[tuple[slice, ...], tuple[Any, ...]]:
        """The bounding step-1 slices a key reads, and the indexing that then picks the key's elements
        (dask may push integer, strided or list indexing down to the source array)."""
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1:]
        key = key + (slice(None),) * (self.ndim - len(key))
        if len(key) != self.ndim:
            raise IndexError(f"{self.group}/{self.name}: {len(key)} indices for {self.ndim} dimensions")
        bounds, post = [], []
        for k, n in zip(key, self.shape, strict=True):
            if isinstance(k, slice):
                start, stop, step = k.indices(n)
                picked = range(start, stop, step)
                if not len(picked):
                    bounds.append(slice(0, 0))
                    post.append(slice(None))
                    continue
                lo, hi = min(picked[0], picked[-1]), max(picked[0], picked[-1]) + 1
                bounds.append(slice(lo, hi))
                post.append(slice(None) if step == 1 else np.arange(picked.start, picked.stop, picked.step) - lo)
            elif isinstance(k, int | np.integer):
                i = int(k) + n if int(k) < 0 else int(k)
                if not 0 <= i < n:
                    raise IndexError(f"{self.group}/{self.name}: index {int(k)} out of range for length {n}")
                bounds.append(slice(i, i + 1))
                post.append(0)
            else:
                idx = np.asarray(k)
                if idx.dtype == bool:
                    idx = np.flatnonzero(idx)
                idx = np.where(idx < 0, idx + n, idx).astype(np.int64)
                if idx.size and (idx.min() < 0 or idx.max() >= n):
                    raise IndexError(f"{self.group}/{self.name}: index out of range for length {n}")
                lo = int(idx.min()) if idx.size else 0
                bounds.append(slice(lo, int(idx.max()) + 1 if idx.size else 0))
                post.append(idx - lo)
        return tuple(bounds), tuple(post)

    def _covered(self, sel: tuple[slice, ...]) -> list[Coords]:
        ranges = [range(s.start // c, math.ceil(s.stop / c)) if s.stop > s.start else range(0)
                  for s, c in zip(sel, self.chunks, strict=True)]
        return list(itertools.product(*ranges))

    def _region(self, coords: Coords) -> tuple[slice, ...]:
        return tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(coords, self.chunks, self.shape, strict=True))

    def _damaged(self, coords: Coords, exc: BaseException) -> RunDamagedError:
        region = tuple((s.start, s.stop) for s in self._region(coords))
        key = self.arr.metadata.encode_chunk_key(coords)
        dmg = Damage(self.group, self.name, CORRUPT, (coords,), (key,), tuple(self.arr.metadata.dimension_names or ()),
                     region, self.along, self.committed, None, f"{type(exc).__name__}: {exc}")
        return RunDamagedError(
            f"{self.run}: run is damaged: {dmg.describe()}. `cryodaq verify {self.run}` lists every damaged chunk; "
            "open_run(path, damaged='mask') and Run.verify() read around them", [dmg], str(self.run))

    def _read(self, sel: tuple[slice, ...]) -> np.ndarray:
        try:
            return np.asarray(self.arr[sel] if self.ndim else self.arr[()])
        except Exception as exc:
            if not is_decode_error(exc):
                raise
            for coords in self._covered(sel) or [()]:  # find the chunk that fails
                try:
                    self.arr[self._region(coords)] if coords else self.arr[()]
                except Exception as inner:
                    if is_decode_error(inner):
                        raise self._damaged(coords, inner) from None
                    raise
            raise

    def __getitem__(self, key: Any) -> np.ndarray:
        if self.ndim == 0:
            if () in self.lost:
                return np.asarray(blank_value(self.arr), dtype=self.dtype)
            return self._read(())
        sel, post = self._bounds(key)
        block = self._block(sel)
        if all(isinstance(p, slice) and p == slice(None) for p in post):
            return block
        arrays = [p for p in post if isinstance(p, np.ndarray)]
        if len(arrays) > 1:  # outer indexing on several axes, one at a time
            out = block
            for axis in reversed(range(len(post))):
                p = post[axis]
                out = out[(slice(None),) * axis + (p,)] if not isinstance(p, int) else np.take(out, p, axis=axis)
            return out
        return block[post]

    def _block(self, sel: tuple[slice, ...]) -> np.ndarray:
        """The elements of step-1 slices ``sel``: lost chunks blank, the others read (decode errors named)."""
        covered = self._covered(sel)
        if not self.lost.intersection(covered):
            return self._read(sel)
        out = np.full(tuple(s.stop - s.start for s in sel), blank_value(self.arr), dtype=self.dtype)
        for coords in covered:
            if coords in self.lost:
                continue
            part = tuple(slice(max(s.start, r.start), min(s.stop, r.stop)) for s, r in
                         zip(sel, self._region(coords), strict=True))
            out[tuple(slice(p.start - s.start, p.stop - s.start) for p, s in zip(part, sel, strict=True))] = \
                self._read(part)
        return out


__all__ = ["GuardedArray", "blank_value", "is_decode_error"]
