"""Sweep runs written point by point, resumable: ``sweeps/<name>/`` groups (docs/run-format.md).

:class:`RunWriter.write_sweep` stores a *finished* sweep in one go; a sweep engine needs more:

- every array is preallocated over the whole grid (fill NaN, 0 or False) and each point is
  written where it belongs, so any subset of points can be present;
- ``done`` (bool, the axes' shape) is the committed state: a point's data are written first,
  then its ``done`` flag. zarr's LocalStore replaces every chunk by a rename, so a killed
  process leaves each chunk either old or new; a point whose flag is not set is measured
  again on resume and overwritten;
- pauses (interlocks, operator) are rows of ``sweeps/<name>/pauses/``;
- the run itself can be reopened for writing after its process died, or after it was
  stopped or aborted (:meth:`SweepRun.resume`), and gets back the status ``running``.

:class:`SweepRun` creates the run with :meth:`RunWriter.create` (same root layout, attrs and
catalog entry as any run) and from then on keeps the root attrs itself: a resumed run has no
RunWriter (whose appendable groups cannot be reopened) and a new one must behave the same.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr
from zarr.storage import LocalStore

from cryodaq.errors import CryodaqError, StorageFullError
from cryodaq.provenance import jsonable
from cryodaq.storage._liveness import utc_now_iso, writer_identity
from cryodaq.storage.catalog import update_catalog
from cryodaq.storage.format import (
    ARRAY_CONFIG,
    COMMITTED_ATTR,
    ROOT_ATTR,
    SWEEP_DONE,
    SWEEPS,
    T_ATTRS,
    RunKind,
    RunStatus,
    check_name,
    create_array,
    fill_value,
)
from cryodaq.storage.reader import open_run
from cryodaq.storage.writer import RunWriter

log = logging.getLogger(__name__)

__all__ = [
    "PAUSES",
    "SWEEP_LOG",
    "AxisCoords",
    "Measured",
    "SweepGroup",
    "SweepMismatchError",
    "SweepResumeError",
    "SweepRun",
]

PAUSES = "pauses"  # sweeps/<name>/pauses/: one row per pause
SWEEP_LOG = "sweep.log"  # text log of the sweep session(s), in the run folder
POINT_T = "t"  # per-point UTC ns of the measurement (dims: the axes)
PAUSE_DIM = "pause"
_SCALAR_CHUNK = 4096  # elements per chunk of point-shaped arrays (a point rewrites at most one chunk)
# A point writes one chunk per array; writing them in parallel takes ~5x less time than in turn.
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="cryodaq-sweep-store")


class SweepMismatchError(CryodaqError, ValueError):
    """A resumed sweep's axes or measurements differ from those stored in the run."""


class SweepResumeError(CryodaqError, ValueError):
    """A run cannot be resumed (not a sweep run, or its writer is still running)."""


@dataclass(frozen=True)
class AxisCoords:
    """One sweep dimension as stored: its name, its coordinates (the dimension's own first), units."""

    dim: str
    coords: dict[str, np.ndarray]
    units: dict[str, str] = field(default_factory=dict)
    description: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.coords.values())))


@dataclass(frozen=True)
class Measured:
    """One measured quantity at one point: trailing ``dims`` (none for a scalar), the values,
    units, and coordinates of the trailing dims (stored once, from the first point)."""

    dims: tuple[str, ...]
    data: np.ndarray
    units: str = ""
    coords: dict[str, np.ndarray] = field(default_factory=dict)


def _fill(dtype: np.dtype) -> Any:
    """NaN (float, complex), False (bool), 0 (int: documented, e.g. ``t`` 0 = not yet measured)."""
    if dtype.kind in "fc":
        return fill_value(dtype)
    return False if dtype.kind == "b" else 0


def point_chunks(axes_shape: tuple[int, ...], trailing: tuple[int, ...]) -> tuple[int, ...]:
    """Chunks of a point-wise written array: whole trailing dims, and as many innermost points as
    keep a chunk near ``_SCALAR_CHUNK`` elements (a point's write then rewrites one small chunk)."""
    n = int(np.prod(trailing, dtype=np.int64)) if trailing else 1
    chunk = [1] * len(axes_shape)
    for i in reversed(range(len(axes_shape))):
        fit = max(1, _SCALAR_CHUNK // n)
        chunk[i] = max(1, min(axes_shape[i], fit))
        n *= chunk[i]
        if chunk[i] < axes_shape[i]:
            break
    return (*chunk, *trailing)


class SweepGroup:
    """One ``sweeps/<name>/`` group of a run, written one point at a time. Get it from :meth:`SweepRun.sweep`."""

    def __init__(self, run: SweepRun, group: zarr.Group) -> None:
        self.run = run
        self.group = group
        self.name = group.basename
        self.dims: tuple[str, ...] = tuple(group.attrs["axes"])
        self.shape: tuple[int, ...] = tuple(int(n) for n in group.attrs["shape"])
        # reopened from disk: with the format's runtime config (every chunk written, even an all-fill one)
        self._arrays: dict[str, zarr.Array] = {n: a.with_config(ARRAY_CONFIG) for n, a in group.arrays()}
        self._done = np.asarray(self._arrays[SWEEP_DONE][...], dtype=bool)
        self._pauses = group[PAUSES]
        self._n_pauses = int(self._pauses.attrs.get(COMMITTED_ATTR, 0))

    # ------------------------------------------------------------------ creation
    @classmethod
    def open_or_create(cls, run: SweepRun, name: str, axes: Sequence[AxisCoords],
                       attrs: Mapping[str, Any] | None = None) -> SweepGroup:
        check_name(name, "sweep")
        top = run.root[SWEEPS] if SWEEPS in run.root else run.root.create_group(SWEEPS)
        if name in top and not {SWEEP_DONE, POINT_T, PAUSES} <= {n for n, _ in top[name].members()}:
            # created by a process that died before the group was complete: nothing was committed in it
            log.warning("%s/%s/%s was left half-created; creating it again", run.path, SWEEPS, name)
            del top[name]
        if name in top:
            group = cls(run, top[name])
            group._check_axes(axes)
            return group
        dims = [check_name(a.dim, "sweep axis") for a in axes]
        if len(set(dims)) != len(dims):
            raise ValueError(f"sweep {name!r}: axes need distinct names, got {dims}")
        shape = tuple(len(a) for a in axes)
        missing = [a.dim for a in axes if a.dim not in a.coords]
        if missing:
            raise ValueError(f"sweep {name!r}: axes {missing} lack a coordinate named after their dimension")
        extra = [c for a in axes for c in a.coords if c != a.dim]
        meta = {"axes": dims, "shape": list(shape), "status": "running", "created": utc_now_iso(),
                "axis_coords": extra, "axis_info": [a.description or {"dim": a.dim} for a in axes],
                **jsonable(dict(attrs or {}))}
        grp = top.create_group(name, attributes=meta)
        for a in axes:
            for cname, values in a.coords.items():
                check_name(cname, "sweep coordinate")
                values = np.asarray(values)
                arr = create_array(grp, cname, shape=values.shape, dtype=_dtype(values), chunks=values.shape,
                                   dimension_names=(a.dim,),
                                   attributes={"units": a.units.get(cname, "")} if a.units.get(cname) else {})
                arr[...] = values
        done = create_array(grp, SWEEP_DONE, shape=shape, dtype=bool, chunks=point_chunks(shape, ()),
                            dimension_names=tuple(dims), attributes={"long_name": "point measured and committed"})
        done[...] = np.zeros(shape, bool)  # written out (every chunk), so the group is complete on disk
        create_array(grp, POINT_T, shape=shape, dtype="int64", chunks=point_chunks(shape, ()), fill=0,
                     dimension_names=tuple(dims),
                     attributes={**T_ATTRS, "long_name": "UTC ns when the point was measured (0: not yet)"})
        pauses = grp.create_group(PAUSES, attributes={COMMITTED_ATTR: 0})
        for col, dtype, attrs_ in (("t_start", "int64", T_ATTRS), ("t_end", "int64", T_ATTRS),
                                   ("point", "int64", {"long_name": "flat (C-order) index of the point it interrupted"}),
                                   ("source", str, {}), ("reason", str, {})):
            create_array(pauses, col, shape=(0,), dtype=dtype, chunks=(256,), dimension_names=(PAUSE_DIM,),
                         attributes=dict(attrs_))
        return cls(run, grp)

    def _check_axes(self, axes: Sequence[AxisCoords]) -> None:
        dims = tuple(a.dim for a in axes)
        shape = tuple(len(a) for a in axes)
        where = f"{self.run.path}/{SWEEPS}/{self.name}"
        if dims != self.dims or shape != self.shape:
            raise SweepMismatchError(
                f"{where}: the stored sweep has axes {dict(zip(self.dims, self.shape))}, the script now asks for "
                f"{dict(zip(dims, shape))}; resume with the same axes, or use another sweep name")
        for a in axes:
            for cname, values in a.coords.items():
                if cname not in self.group:
                    raise SweepMismatchError(f"{where}: no stored coordinate {cname!r} for axis {a.dim!r}")
                stored = self.group[cname][...]
                values = np.asarray(values)
                same = stored.shape == values.shape and (
                    np.allclose(stored, values, rtol=1e-12, atol=0, equal_nan=True) if values.dtype.kind in "iufc"
                    and stored.dtype.kind in "iufc" else [str(v) for v in stored.tolist()] == [str(v) for v in values.tolist()])
                if not same:
                    raise SweepMismatchError(f"{where}: axis {a.dim!r} coordinate {cname!r} differs from the stored "
                                             f"values {stored.tolist()[:8]}...; got {values.tolist()[:8]}...")

    # ------------------------------------------------------------------ points
    def done(self) -> np.ndarray:
        """Copy of the done mask (True: the point is committed)."""
        return self._done.copy()

    @property
    def n_done(self) -> int:
        return int(self._done.sum())

    def write_point(self, index: tuple[int, ...], values: Mapping[str, Measured], t_ns: int) -> None:
        """Write one point's values, its time, then its done flag (the commit)."""
        index = tuple(int(i) for i in index)

        def write() -> None:
            jobs = [(self._array_for(name, m), m.data) for name, m in values.items()]
            jobs.append((self._arrays[POINT_T], np.int64(t_ns)))
            # the values and the time in parallel (each is its own chunk write), then the commit
            for future in [_POOL.submit(arr.__setitem__, index, data) for arr, data in jobs]:
                future.result()
            self._arrays[SWEEP_DONE][index] = True

        self.run.guarded(write, f"{SWEEPS}/{self.name}")
        self._done[index] = True

    def _array_for(self, name: str, m: Measured) -> zarr.Array:
        where = f"{self.run.path}/{SWEEPS}/{self.name}"
        if name in (SWEEP_DONE, POINT_T, PAUSES) or name in self.dims:
            raise ValueError(f"{where}: a measurement may not be named {name!r} (reserved or an axis name)")
        check_name(name, "sweep measurement")
        data = np.asarray(m.data)
        if name in self._arrays:
            arr = self._arrays[name]
            stored_dims = tuple(arr.metadata.dimension_names or ())
            if stored_dims != (*self.dims, *m.dims) or tuple(arr.shape) != (*self.shape, *data.shape):
                raise SweepMismatchError(
                    f"{where}: measurement {name!r} has dims {stored_dims[len(self.dims):]} shape "
                    f"{tuple(arr.shape)[len(self.dims):]} stored; this point gives {m.dims} {data.shape}")
            if not np.can_cast(data.dtype, arr.dtype, casting="same_kind"):
                raise SweepMismatchError(f"{where}: measurement {name!r} is stored as {arr.dtype}; this point gives "
                                         f"{data.dtype}, which does not fit")
            return arr
        clash = set(m.dims) & set(self.dims)
        if clash:
            raise ValueError(f"{where}: measurement {name!r} dims {m.dims} reuse the axis names {sorted(clash)}")
        if name in self.group:
            raise SweepMismatchError(f"{where}: {name!r} is a group, not a measurement array")
        for dim, n in zip(m.dims, data.shape):
            if dim in self._arrays and tuple(self._arrays[dim].shape) != (n,):
                raise SweepMismatchError(f"{where}: dim {dim!r} of {name!r} has length {n}, the stored coordinate "
                                         f"{dim!r} has {self._arrays[dim].shape}")
        for dim, values in m.coords.items():
            if dim in m.dims and dim not in self._arrays:
                values = np.asarray(values)
                c = create_array(self.group, dim, shape=values.shape, dtype=_dtype(values), chunks=values.shape,
                                 dimension_names=(dim,))
                c[...] = values
                self._arrays[dim] = c
        dtype = _dtype(data)
        attrs = {"units": m.units} if m.units else {}
        # the point time and zipped axes' other parts are coordinates (xarray reads this attr)
        attrs["coordinates"] = " ".join([*self.group.attrs.get("axis_coords", []), POINT_T])
        arr = create_array(self.group, name, shape=(*self.shape, *data.shape), dtype=dtype,
                           chunks=point_chunks(self.shape, data.shape), fill=_fill(dtype),
                           dimension_names=(*self.dims, *m.dims), attributes=attrs)
        self._arrays[name] = arr
        return arr

    # ------------------------------------------------------------------ pauses
    def begin_pause(self, t_ns: int, source: str, reason: str, point: int) -> int:
        """Record a pause starting now (``t_end`` = -1 until :meth:`end_pause`); returns its row."""
        row = self._n_pauses

        def write() -> None:
            cols = {"t_start": t_ns, "t_end": -1, "point": point, "source": source, "reason": reason}
            for col, value in cols.items():
                arr = self._pauses[col].with_config(ARRAY_CONFIG)
                arr.resize((row + 1,))
                arr[row] = value
            self._pauses.attrs[COMMITTED_ATTR] = row + 1

        self.run.guarded(write, f"{SWEEPS}/{self.name}/{PAUSES}")
        self._n_pauses = row + 1
        return row

    def end_pause(self, row: int, t_ns: int, reason: str | None = None) -> None:
        """Close pause ``row`` at ``t_ns`` (and update its reason, e.g. with everything that tripped)."""

        def write() -> None:
            self._pauses["t_end"].with_config(ARRAY_CONFIG)[row] = t_ns
            if reason is not None:
                self._pauses["reason"].with_config(ARRAY_CONFIG)[row] = reason

        self.run.guarded(write, f"{SWEEPS}/{self.name}/{PAUSES}")

    def pauses(self) -> list[dict[str, Any]]:
        """The recorded pauses as dicts (t_start, t_end, point, source, reason)."""
        n = self._n_pauses
        cols = {c: self._pauses[c][:n] for c in ("t_start", "t_end", "point", "source", "reason")}
        return [{c: (v[i].item() if hasattr(v[i], "item") else v[i]) for c, v in cols.items()} for i in range(n)]

    # ------------------------------------------------------------------ status
    def set_attrs(self, **fields: Any) -> None:
        """Add or replace group attrs (``status``: running | complete | stopped | aborted)."""
        self.run.guarded(lambda: self.group.attrs.update(jsonable(fields)), f"{SWEEPS}/{self.name}")

    def dataset(self) -> xr.Dataset:
        """The group as an xarray Dataset as it is on disk now (use ``done`` to tell measured points)."""
        return read_sweep(self.run.path, self.name)


def read_sweep(run_path: str | Path, name: str) -> xr.Dataset:
    """``sweeps/<name>`` of a run (running or finished) as an xarray Dataset, loaded into memory."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(str(run_path), group=f"{SWEEPS}/{name}", consolidated=False)
        return ds.load()


def _dtype(values: np.ndarray) -> Any:
    if values.dtype.kind in "OUST":
        return str
    if values.dtype.kind not in "biufc":
        raise ValueError(f"cannot store values of dtype {values.dtype} in a sweep")
    return values.dtype


class SweepRun:
    """A run of kind ``sweep`` open for writing: new (:meth:`create`) or reopened (:meth:`resume`)."""

    def __init__(self, path: Path, *, catalog: bool = True, resumed_from: str | None = None) -> None:
        self.path = Path(path)
        self._catalog = catalog
        self.store = LocalStore(self.path)
        self.root = zarr.open_group(self.store, mode="r+", use_consolidated=False)
        self.meta: dict[str, Any] = dict(self.root.attrs[ROOT_ATTR])
        self.resumed_from = resumed_from  # the status the run had before this session, or None (new run)
        self.closed = False
        self._failed: BaseException | None = None
        self._groups: dict[str, SweepGroup] = {}
        self._last_beat = 0.0
        self._lock = threading.RLock()  # root attrs are written from the heartbeat thread too
        self._beat_stop = threading.Event()
        self._beat_thread: threading.Thread | None = None

    @property
    def run_id(self) -> str:
        return str(self.meta["run_id"])

    @property
    def log_path(self) -> Path:
        """The sweep's text log, inside the run folder."""
        return self.path / SWEEP_LOG

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(cls, out_dir: str | Path, *, station_name: str, station_snapshot: dict[str, Any],
               config: dict[str, Any], run_id: str | None = None, tags: Iterable[str] = (),
               catalog: bool = True) -> SweepRun:
        """Create ``out_dir/<run_id>.zarr`` (kind ``sweep``, status ``running``) and open it for sweeps."""
        writer = RunWriter.create(out_dir, kind=RunKind.SWEEP.value, station_name=station_name,
                                  station_snapshot=station_snapshot, config=config, run_id=run_id, tags=tags,
                                  catalog=catalog)
        # The writer has laid out the run (root attrs, empty events/gaps/housekeeping groups) and
        # registered it; from here the root attrs are kept by this object (see the module docstring).
        return cls(writer.path, catalog=catalog)

    @classmethod
    def resume(cls, path: str | Path, *, catalog: bool = True) -> SweepRun:
        """Reopen a sweep run whose process died, or that was stopped or aborted, and mark it running again.

        Refuses a run that is not a sweep run or whose writer is still alive. Consolidated
        metadata (written when the run was closed) is dropped until it is closed again, and
        temporaries of writes killed half-way (``*.partial``) are removed.
        """
        run = open_run(path)
        if run.attrs.get("kind") != RunKind.SWEEP.value:
            raise SweepResumeError(f"{run.path}: a {run.attrs.get('kind')!r} run, not a sweep run; cannot resume it")
        status = run.status
        if status is RunStatus.RUNNING:
            raise SweepResumeError(f"{run.path}: its writer (pid {run.attrs.get('pid')} on {run.attrs.get('host')}) "
                                   "is still running; stop it before resuming")
        for leftover in Path(run.path).rglob("*.partial"):
            if leftover.is_file():
                leftover.unlink()
        self = cls(run.path, catalog=catalog, resumed_from=status.value)
        now = utc_now_iso()
        resumes = list(self.meta.get("resumes", []))
        resumes.append({"at": now, "previous_status": status.value, "previous_end_reason": self.meta.get("end_reason", ""),
                        "previous_ended": self.meta.get("ended")})
        self.meta.update(status=RunStatus.RUNNING.value, interrupted=False, end_reason="", ended=None,
                         heartbeat=now, resumes=resumes, **writer_identity())
        self.guarded(self._write_meta, "zarr.json")  # also drops the consolidated metadata
        if catalog:
            update_catalog(self.path)
        return self

    # ------------------------------------------------------------------ sweeps
    def sweep(self, name: str, axes: Sequence[AxisCoords], attrs: Mapping[str, Any] | None = None) -> SweepGroup:
        """The group ``sweeps/<name>``: created, or reopened after checking its axes (SweepMismatchError)."""
        self._check_open()
        if name not in self._groups:
            self._groups[name] = self.guarded(lambda: SweepGroup.open_or_create(self, name, axes, attrs),
                                              f"{SWEEPS}/{name}")
        else:
            self._groups[name]._check_axes(axes)
        return self._groups[name]

    def sweep_names(self) -> list[str]:
        if SWEEPS not in self.root:
            return []
        return sorted(n for n, _ in self.root[SWEEPS].groups())

    # ------------------------------------------------------------------ attrs
    def heartbeat(self, *, min_interval_s: float = 1.0) -> None:
        """Write the root ``heartbeat`` (at most every ``min_interval_s``), so readers see a live writer."""
        with self._lock:
            now = time.monotonic()
            if self.closed or now - self._last_beat < min_interval_s:
                return
            self._last_beat = now
            self.meta["heartbeat"] = utc_now_iso()
            self.guarded(self._write_meta, "zarr.json (heartbeat)")

    def start_heartbeat(self, interval_s: float = 10.0) -> None:
        """Write the heartbeat every ``interval_s`` from a thread until :meth:`close`, so that a run
        waiting a long time (a fridge settling for an hour) still looks alive to readers on other hosts."""
        if self._beat_thread is not None:
            return

        def beat() -> None:
            while not self._beat_stop.wait(interval_s):
                try:
                    self.heartbeat(min_interval_s=0.0)
                except Exception as exc:  # the main thread meets the same storage error at its next write
                    log.error("heartbeat of %s failed: %s", self.path, exc)
                    return

        self._beat_thread = threading.Thread(target=beat, name="cryodaq-sweep-heartbeat", daemon=True)
        self._beat_thread.start()

    def _stop_heartbeat(self) -> None:
        self._beat_stop.set()
        if self._beat_thread is not None and self._beat_thread is not threading.current_thread():
            self._beat_thread.join(timeout=5)
        self._beat_thread = None

    def update_attrs(self, **fields: Any) -> None:
        """Add or replace root ``cryodaq`` attrs other than the life-cycle keys."""
        self._check_open()
        reserved = {"format_version", "run_id", "kind", "status", "started", "ended", "heartbeat"} & set(fields)
        if reserved:
            raise ValueError(f"run attrs {sorted(reserved)} are managed by the writer")
        with self._lock:
            self.meta.update(jsonable(fields))
            self.guarded(self._write_meta, "zarr.json")

    def close(self, status: RunStatus | str = RunStatus.COMPLETE, *, interrupted: bool = False,
              end_reason: str = "") -> None:
        """Status and end time in the root attrs, then consolidated metadata, then the catalog. Idempotent."""
        if self.closed:
            return
        status = RunStatus(status)
        if status not in (RunStatus.COMPLETE, RunStatus.ABORTED):
            raise ValueError(f"a sweep run closes as 'complete' or 'aborted', not {status.value!r}")
        self._stop_heartbeat()
        with self._lock:
            now = utc_now_iso()
            self.meta.update(status=status.value, interrupted=bool(interrupted), end_reason=end_reason, ended=now,
                             heartbeat=now)
            self.guarded(self._write_meta, "zarr.json")
            self.guarded(lambda: zarr.consolidate_metadata(self.store), "zarr.json")
            self.closed = True
        if self._catalog:
            update_catalog(self.path)

    # ------------------------------------------------------------------ failures
    def _write_meta(self) -> None:
        self.root.attrs[ROOT_ATTR] = self.meta

    def _check_open(self) -> None:
        if self._failed is not None:
            raise RuntimeError(f"run {self.path} was aborted after a storage error: {self._failed}")
        if self.closed:
            raise RuntimeError(f"run {self.path} is closed")

    def guarded(self, fn: Any, what: str) -> Any:
        """Run a store write; an OSError marks the run aborted (if still possible) and is re-raised naming it."""
        if self._failed is not None:
            raise RuntimeError(f"run {self.path} was aborted after a storage error: {self._failed}")
        try:
            return fn()
        except OSError as exc:
            msg = (f"run {self.path}: writing {what} failed: {exc.strerror or exc}; the run is aborted, "
                   "points committed before are intact")
            err: OSError = StorageFullError(f"disk full: {msg}") if exc.errno == errno.ENOSPC else OSError(exc.errno, msg)
            self._failed = err
            self.meta.update(status=RunStatus.ABORTED.value, end_reason=str(err), ended=utc_now_iso())
            try:
                self._write_meta()
            except OSError as again:  # a reader will then see a dead 'running' run: crashed
                log.error("could not mark %s aborted: %s", self.path, again)
            self.closed = True
            if self._catalog:
                update_catalog(self.path)
            raise err from exc
