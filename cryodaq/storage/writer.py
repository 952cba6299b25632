"""RunWriter: writes one run in the Zarr v3 run format (docs/run-format.md), crash-safely.

Appends are buffered; :meth:`RunWriter.commit` (call it about once a second) writes them and
then, per group, the committed length readers trust, then the heartbeat. Public methods hold
a lock, so appends from one thread and commits from another are safe.
"""

from __future__ import annotations

import errno
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import numpy as np
import zarr
from zarr.storage import LocalStore

from cryodaq.errors import StorageFullError
from cryodaq.provenance import jsonable, software_versions
from cryodaq.storage._append import AppendGroup, WriteFailure
from cryodaq.storage._liveness import utc_now_iso, writer_identity
from cryodaq.storage.catalog import clean_tags, update_catalog
from cryodaq.storage.format import (
    ANCHOR,
    CHANNEL,
    CLOCK,
    EVENT,
    EVENT_COLUMNS,
    EVENTS,
    FORMAT_VERSION,
    FILTER,
    FREQ,
    GAP,
    GAP_COLUMNS,
    GAPS,
    HOUSEKEEPING,
    OPTIMAL_FILTER,
    RECORDS,
    RETUNE,
    RETUNE_COLUMNS,
    RETUNES,
    ROOT_ATTR,
    SAMPLE,
    SPECTRA,
    STREAM,
    SWEEP_DONE,
    SWEEPS,
    T_ATTRS,
    TIME,
    UPDATE,
    RunKind,
    RunStatus,
    check_name,
    chunk_rows,
    column_compressors,
    create_array,
    stream_compressors,
)

log = logging.getLogger(__name__)

_EVENT_CHUNK = 16384
_GAP_CHUNK = 1024
_HK_CHUNK = 4096
_STREAM_COORDS = ("sample_index", "t", "channel")
_F = TypeVar("_F", bound=Callable[..., Any])


def _locked(method: _F) -> _F:
    """Serialise a public writer method: appends may come from one thread and commits from another."""

    @wraps(method)
    def wrapper(self: RunWriter, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def default_run_id(station_name: str) -> str:
    """``YYYYmmddTHHMMSSZ-<station>-<4 hex>``: sorts by start time, unique enough per station."""
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in station_name) or "station"
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{safe}-{secrets.token_hex(2)}"


class RunWriter:
    """Writes one run directory ``<out_dir>/<run_id>.zarr``. Create with :meth:`create`."""

    def __init__(self, path: Path, root: zarr.Group, meta: dict[str, Any], *, catalog: bool = True) -> None:
        self.path = path
        self._catalog = catalog
        self._store = root.store
        self._root = root
        self._meta = meta
        self._lock = threading.RLock()
        self._closed = False
        self._failed: BaseException | None = None
        self._events = AppendGroup(root.create_group(EVENTS), EVENT)
        self._gaps = AppendGroup(root.create_group(GAPS), GAP)
        self._hk_root = root.create_group(HOUSEKEEPING)
        self._hk: dict[str, AppendGroup] = {}
        self._stream: AppendGroup | None = None
        self._stream_coords: dict[str, np.ndarray] = {}
        self._spectra: AppendGroup | None = None
        self._filters: AppendGroup | None = None
        self._retunes: AppendGroup | None = None
        self._setup_columns()

    # ----------------------------------------------------------------- creation
    @classmethod
    def create(
        cls,
        out_dir: str | Path,
        *,
        kind: str = "stream",
        station_name: str,
        station_snapshot: dict[str, Any],
        config: dict[str, Any],
        run_id: str | None = None,
        clock: dict[str, Any] | None = None,
        tags: Iterable[str] = (),
        catalog: bool = True,
    ) -> RunWriter:
        """Create ``out_dir/<run_id>.zarr`` with status 'running' and the run metadata in root attrs.

        ``tags`` are stored in the run's attrs and in the catalog. With ``catalog`` (default) the run
        is registered in ``out_dir/catalog.sqlite`` now and updated when it ends (best effort: a catalog
        failure logs a warning and never stops the run).
        """
        kind = RunKind(kind).value
        tags = clean_tags(tags)
        run_id = run_id or default_run_id(station_name)
        check_name(run_id, "run id")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{run_id}.zarr"
        if path.exists():
            raise FileExistsError(errno.EEXIST, f"run {run_id!r} already exists; choose another run id", str(path))
        now = utc_now_iso()
        meta: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "run_id": run_id,
            "kind": kind,
            "status": RunStatus.RUNNING.value,
            "interrupted": False,
            "end_reason": "",
            "started": now,
            "ended": None,
            "station": {"name": station_name, "snapshot": jsonable(station_snapshot)},
            "config": jsonable(config),
            "software": software_versions(),
            "clock": jsonable(clock) if clock else {"source": "host system clock", "uncertainty_s": None},
            "tags": tags,
            **writer_identity(),
            "heartbeat": now,
        }
        try:
            root = zarr.open_group(LocalStore(path), mode="w-", zarr_format=3, attributes={ROOT_ATTR: meta})
            writer = cls(path, root, meta, catalog=catalog)
        except WriteFailure as exc:
            raise _converted(path, exc.key, exc.cause) from exc.cause
        except OSError as exc:
            raise _converted(path, "zarr.json", exc) from exc
        if catalog:
            update_catalog(path)
        return writer

    def _setup_columns(self) -> None:
        for name, (dtype, fill, units) in EVENT_COLUMNS.items():
            attrs = dict(T_ATTRS) if name == "t" else ({"units": units} if units else {})
            self._events.add_array(name, dtype, chunk_rows=_EVENT_CHUNK, compressors=column_compressors(),
                                   attributes=attrs)
        for name, (dtype, units) in GAP_COLUMNS.items():
            attrs = dict(T_ATTRS) if name == "t" else ({"units": units} if units else {})
            self._gaps.add_array(name, dtype, chunk_rows=_GAP_CHUNK, compressors=column_compressors(), attributes=attrs)

    # ------------------------------------------------------------------ streams
    @_locked
    def declare_stream(
        self,
        name: str = "phase",
        *,
        n_channels: int,
        dtype: Any = "float32",
        sample_rate_hz: float,
        units: str,
        channel_coords: Mapping[str, Any] | None = None,
        chunk_time: int | None = None,
    ) -> None:
        """Declare a (time, channel) stream variable in ``stream/``.

        ``channel_coords`` maps names to per-channel arrays (length ``n_channels``); the key
        ``"channel"`` is the channel coordinate itself (default ``arange(n_channels)``, int32),
        others (e.g. ``tone_frequency_hz``) become per-channel coordinates. Several variables
        (e.g. phase and dissipation) may share ``stream/``: they share its time axis, channel
        count and sample rate, and must be appended with the same sample order.
        """
        self._check_open()
        check_name(name, "stream")
        n_channels = int(n_channels)
        coords = {k: np.asarray(v) for k, v in (channel_coords or {}).items()}
        for key, val in coords.items():
            check_name(key, "channel coordinate")
            if val.shape != (n_channels,):
                raise ValueError(f"channel coordinate {key!r}: expected shape ({n_channels},), got {val.shape}")
        if name in _STREAM_COORDS or name in coords:
            raise ValueError(f"stream name {name!r} clashes with a coordinate name")
        if self._stream is None:
            self._guarded(lambda: self._create_stream_group(n_channels, sample_rate_hz, coords), STREAM)
        else:
            self._check_same_stream(name, n_channels, sample_rate_hz, coords)
        dtype = np.dtype(dtype)
        rows = int(chunk_time) if chunk_time else chunk_rows(n_channels * dtype.itemsize, sample_rate_hz)
        coord_names = " ".join(["sample_index", "t", *[k for k in self._stream_coords if k != "channel"]])

        def create() -> None:
            assert self._stream is not None
            if "t" not in self._stream:
                self._stream.add_array(
                    "sample_index", "int64", chunk_rows=rows, compressors=column_compressors(),
                    attributes={"units": "sample", "long_name": "index of the sample since the run's first sample"},
                )
                self._stream.add_array("t", "int64", chunk_rows=rows, compressors=column_compressors(), attributes=T_ATTRS)
            self._stream.add_array(
                name, dtype, chunk_rows=rows, trailing=(n_channels,), trailing_dims=(CHANNEL,),
                compressors=stream_compressors(), attributes={"units": units, "coordinates": coord_names},
            )
            grp = self._stream.group
            grp.attrs["units"] = {**grp.attrs.get("units", {}), name: units}

        self._guarded(create, f"{STREAM}/{name}")

    def _create_stream_group(self, n_channels: int, sample_rate_hz: float, coords: dict[str, np.ndarray]) -> None:
        grp = self._root.create_group(STREAM, attributes={"sample_rate_hz": float(sample_rate_hz), "n_channels": n_channels})
        self._stream = AppendGroup(grp, TIME)
        coords.setdefault("channel", np.arange(n_channels, dtype="int32"))
        coords["channel"] = coords["channel"].astype("int32", casting="same_kind")
        for key, val in coords.items():
            arr = create_array(grp, key, shape=val.shape, dtype=val.dtype, chunks=val.shape, dimension_names=(CHANNEL,))
            arr[:] = val
        self._stream_coords = coords

    def _check_same_stream(self, name: str, n_channels: int, sample_rate_hz: float, coords: dict[str, np.ndarray]) -> None:
        assert self._stream is not None
        grp = self._stream.group
        if name in self._stream:
            raise ValueError(f"stream {name!r} is already declared in {self.path}")
        if n_channels != grp.attrs["n_channels"] or float(sample_rate_hz) != grp.attrs["sample_rate_hz"]:
            raise ValueError(
                f"stream {name!r} ({n_channels} channels at {sample_rate_hz} Hz) does not share the time axis of "
                f"{self.path}/stream ({grp.attrs['n_channels']} channels at {grp.attrs['sample_rate_hz']} Hz); "
                "the run format holds one timebase per run"
            )
        for key, val in coords.items():
            if key not in self._stream_coords or not np.array_equal(self._stream_coords[key], val):
                raise ValueError(f"stream {name!r}: channel coordinate {key!r} differs from the one already stored")

    @_locked
    def append_stream(self, name: str, data: np.ndarray, sample_index: np.ndarray, t_ns: np.ndarray) -> None:
        """Append ``data`` (n, n_channels) with its sample indices and UTC times (int64 ns)."""
        self._check_open()
        if self._stream is None or name not in self._stream:
            raise KeyError(f"stream {name!r} is not declared in {self.path}; call declare_stream(name={name!r}, ...) first")
        data = np.asarray(data)
        sample_index, t_ns = np.asarray(sample_index), np.asarray(t_ns)
        n = len(data)
        if sample_index.shape != (n,) or t_ns.shape != (n,):
            raise ValueError(
                f"stream {name!r}: data has {n} rows but sample_index {sample_index.shape} and t_ns {t_ns.shape}"
            )
        s = self._stream

        def append() -> None:
            start, have = s.length(name), s.length("t")
            rows = {name: data}
            if start + n > have:  # this variable runs ahead: extend the shared time coordinates
                rows.update(sample_index=sample_index[max(have - start, 0):], t=t_ns[max(have - start, 0):])
            s.append_many(rows)

        self._guarded(append, f"{STREAM}/{name}")

    # ------------------------------------------------------------------- events
    @_locked
    def append_events(
        self,
        batch: Mapping[str, np.ndarray],
        *,
        record_presamples: int | None = None,
        record_sample_rate_hz: float | None = None,
    ) -> None:
        """Append a batch of events (columns of equal length; see ``EVENT_COLUMNS``).

        ``t``, ``sample_index``, ``channel`` and ``amplitude`` are required; ``energy``,
        ``baseline``, ``chi2`` default to NaN and ``flags`` to 0. ``records`` (n, n_samples)
        is optional but, once a run has stored records, every batch must carry them; they are
        stored as float32, or, given as integers (raw samples), in the integer type of the first batch.
        Extra numeric columns are accepted if present from the first event on.
        """
        self._check_open()
        cols = {k: np.asarray(v) for k, v in batch.items()}
        missing = [k for k, (_, fill, _) in EVENT_COLUMNS.items() if fill is None and k not in cols]
        if missing:
            raise ValueError(f"event batch for {self.path} lacks required columns {missing}")
        n = len(cols["t"])
        bad = {k: v.shape for k, v in cols.items() if v.ndim < 1 or len(v) != n}
        if bad:
            raise ValueError(f"event batch columns must all have {n} rows, got {bad}")
        ev = self._events
        first = ev.length("t") == 0
        extra = [k for k in cols if k not in EVENT_COLUMNS and k != RECORDS]
        for key in extra:
            if key not in ev and not first:
                raise ValueError(f"event column {key!r} is new but {self.path} already holds events without it")
            check_name(key, "event column")
        for key in ev.names:
            if key not in cols and key not in EVENT_COLUMNS:
                raise ValueError(f"event batch lacks column {key!r}, present in earlier batches")
        if n == 0:
            return

        def append() -> None:
            for key in extra:
                if key not in ev:
                    ev.add_array(key, cols[key].dtype, chunk_rows=_EVENT_CHUNK, compressors=column_compressors())
            rows = {key: cols[key] if key in cols else np.full(n, fill, dtype=dtype)
                    for key, (dtype, fill, _) in EVENT_COLUMNS.items()}
            rows.update({key: cols[key] for key in extra})
            if RECORDS in cols:
                rec = cols[RECORDS]
                if RECORDS not in ev:
                    if not first:
                        raise ValueError(f"records appear in {self.path} after events without records were stored")
                    attrs = {"presamples": record_presamples, "sample_rate_hz": record_sample_rate_hz}
                    # raw integer samples (a records source, e.g. DASTARD) are kept in their own type
                    dtype = rec.dtype if rec.dtype.kind in "iu" else np.dtype("float32")
                    ev.add_array(
                        RECORDS, dtype, chunk_rows=chunk_rows(rec.shape[1] * dtype.itemsize, None, hi=2 * 1024**2),
                        trailing=rec.shape[1:], trailing_dims=(SAMPLE,), compressors=stream_compressors(),
                        attributes={k: v for k, v in attrs.items() if v is not None},
                    )
                rows[RECORDS] = rec
            elif RECORDS in ev:
                raise ValueError(f"event batch lacks 'records', which {self.path} stores for every event")
            ev.append_many(rows)

        self._guarded(append, EVENTS)

    # ------------------------------------------------------------- housekeeping
    @_locked
    def append_housekeeping(self, name: str, t_ns: Any, values: Any, unit: str) -> None:
        """Append samples of one housekeeping quantity (e.g. ``mxc_temperature`` in K) to ``housekeeping/<name>``."""
        self._check_open()
        check_name(name, "housekeeping quantity")
        t_ns, values = np.atleast_1d(np.asarray(t_ns)), np.atleast_1d(np.asarray(values, dtype="float64"))
        if t_ns.shape != values.shape or t_ns.ndim != 1:
            raise ValueError(f"housekeeping {name!r}: t_ns {t_ns.shape} and values {values.shape} must be equal 1-D")
        hk = self._hk.get(name)
        if hk is not None and hk.group.attrs["unit"] != unit:
            raise ValueError(f"housekeeping {name!r}: unit {unit!r} differs from the stored {hk.group.attrs['unit']!r}")

        def append() -> None:
            nonlocal hk
            if hk is None:
                hk = AppendGroup(self._hk_root.create_group(name, attributes={"unit": unit}), TIME)
                hk.add_array("t", "int64", chunk_rows=_HK_CHUNK, compressors=column_compressors(), attributes=T_ATTRS)
                hk.add_array("value", "float64", chunk_rows=_HK_CHUNK, compressors=column_compressors(),
                             attributes={"units": unit, "coordinates": "t", "long_name": name})
                self._hk[name] = hk
            hk.append_many({"t": t_ns, "value": values})

        self._guarded(append, f"{HOUSEKEEPING}/{name}")

    # --------------------------------------------------------------------- gaps
    @_locked
    def append_gap(self, first_sample: int, n_samples: int, t_ns: int, cause: str, detail: str = "") -> None:
        """Record ``n_samples`` missing from ``first_sample`` on (e.g. cause 'packet_loss', 'pipeline_overrun')."""
        self._check_open()
        row = {"first_sample": [first_sample], "n_samples": [n_samples], "t": [t_ns], "cause": [cause], "detail": [detail]}
        self._guarded(lambda: self._gaps.append_many(row), GAPS)

    # ------------------------------------------------------------------ spectra
    @_locked
    def append_spectrum(self, t_ns: int, freq: np.ndarray, psd: np.ndarray, *, units: str = "") -> None:
        """Append one PSD snapshot ``psd`` (channel, freq) taken at ``t_ns``; ``freq`` is fixed by the first call."""
        self._check_open()
        freq, psd = np.asarray(freq, dtype="float64"), np.asarray(psd)
        if psd.ndim != 2 or psd.shape[1] != len(freq):
            raise ValueError(f"spectrum: psd must be (channel, freq={len(freq)}), got {psd.shape}")
        if self._spectra is not None:
            stored = self._spectra.group["freq"]
            if stored.shape != freq.shape or not np.array_equal(stored[:], freq):
                raise ValueError(f"spectrum: freq differs from the first snapshot's in {self.path}/spectra")

        def append() -> None:
            if self._spectra is None:
                self._spectra = self._create_spectra(freq, psd.shape[0], units)
            self._spectra.append_many({"t": np.asarray([t_ns]), "psd": psd[None]})

        self._guarded(append, SPECTRA)

    def _create_spectra(self, freq: np.ndarray, n_channels: int, units: str) -> AppendGroup:
        grp = self._root.create_group(SPECTRA)
        sp = AppendGroup(grp, UPDATE)
        create_array(grp, "freq", shape=freq.shape, dtype="float64", chunks=freq.shape, dimension_names=(FREQ,),
                     attributes={"units": "Hz"})[:] = freq
        channel = np.arange(n_channels, dtype="int32")
        if self._stream is not None and len(self._stream_coords["channel"]) == n_channels:
            channel = self._stream_coords["channel"]
        create_array(grp, "channel", shape=channel.shape, dtype="int32", chunks=channel.shape,
                     dimension_names=(CHANNEL,))[:] = channel
        sp.add_array("t", "int64", chunk_rows=1024, compressors=column_compressors(), attributes=T_ATTRS)
        sp.add_array("psd", "float32", chunk_rows=1, trailing=(n_channels, len(freq)), trailing_dims=(CHANNEL, FREQ),
                     compressors=column_compressors(), attributes={"units": units, "coordinates": "t"})
        return sp

    # -------------------------------------------------------------------- clock
    @_locked
    def write_clock(self, model: Mapping[str, Any], anchors: Mapping[str, Any] | None = None) -> None:
        """Store the run's clock model (root attr ``clock``, :meth:`cryodaq.timing.clock.ClockModel.as_attrs`)
        and, when given, the timestamps it was fitted to (``clock/``: arrays over dim ``anchor``, replaced
        whole; docs/run-format.md). Called now and then while running and once at the end."""
        self._check_open()
        self._meta["clock"] = jsonable(dict(model))

        def write() -> None:
            if anchors is not None:
                if CLOCK in self._root:
                    del self._root[CLOCK]
                grp = self._root.create_group(CLOCK)
                units = {"sample_index": "sample", "t": "ns"}
                for name, values in anchors.items():
                    arr = np.asarray(values)
                    out = create_array(grp, check_name(name, "clock array"), shape=arr.shape, dtype=arr.dtype,
                                       chunks=(max(arr.shape[0], 1),), dimension_names=(ANCHOR,),
                                       attributes={"units": units[name]} if name in units else {})
                    out[...] = arr
            self._write_meta()

        self._guarded(write, CLOCK)

    # ------------------------------------------------------------------- sweeps
    @_locked
    def write_sweep(
        self,
        name: str,
        coords: Mapping[str, Any],
        data: Mapping[str, Any],
        *,
        attrs: Mapping[str, Any] | None = None,
        array_attrs: Mapping[str, Mapping[str, Any]] | None = None,
        done: Any = None,
    ) -> None:
        """Write a finished sweep to ``sweeps/<name>/`` in one go (e.g. an imported VNA trace).

        ``coords`` maps each sweep axis, in order, to its 1-D values (the dimension takes the
        coordinate's name, e.g. ``frequency`` in Hz); every ``data`` array has the shape of the axes
        in that order. ``done`` (bool, same shape; default all True) is the mask of measured points.
        ``array_attrs`` maps array names to their attrs (e.g. ``{"frequency": {"units": "Hz"}}``).
        """
        self._check_open()
        check_name(name, "sweep")
        axes = {check_name(k, "sweep axis"): np.asarray(v) for k, v in coords.items()}
        if not axes or any(v.ndim != 1 for v in axes.values()):
            raise ValueError(f"sweep {name!r}: coords must map each axis to 1-D values, got "
                             f"{ {k: v.shape for k, v in axes.items()} }")
        shape = tuple(len(v) for v in axes.values())
        arrays = {check_name(k, "sweep array"): np.asarray(v) for k, v in data.items()}
        arrays[SWEEP_DONE] = np.ones(shape, bool) if done is None else np.asarray(done, dtype=bool)
        bad = {k: v.shape for k, v in arrays.items() if v.shape != shape}
        clash = set(arrays) & set(axes)
        if bad or clash:
            raise ValueError(f"sweep {name!r}: arrays must have the axes' shape {shape} and other names than the "
                             f"axes {list(axes)}; got shapes {bad}, clashing names {sorted(clash)}")
        extra = dict(array_attrs or {})

        def write() -> None:
            top = self._root[SWEEPS] if SWEEPS in self._root else self._root.create_group(SWEEPS)
            if name in top:
                raise ValueError(f"sweep {name!r} already exists in {self.path}/{SWEEPS}")
            grp = top.create_group(name, attributes={"axes": list(axes), **jsonable(dict(attrs or {}))})
            for key, val in [*axes.items(), *arrays.items()]:
                dims = (key,) if key in axes else tuple(axes)
                arr = create_array(grp, key, shape=val.shape, dtype=val.dtype, dimension_names=dims,
                                   attributes=jsonable(dict(extra.get(key, {}))))
                arr[...] = val

        self._guarded(write, f"{SWEEPS}/{name}")

    # ---------------------------------------------------------- optimal filters
    @_locked
    def append_optimal_filters(self, rows: Mapping[str, Any]) -> None:
        """Append learnt optimal filters to ``optimal_filter/`` (dim ``filter``, one row per filter; the
        columns of :func:`cryodaq.analysis.filters.filter_rows`: ``template`` (filter, sample), ``noise_psd``
        and ``transfer`` (filter, freq), and per-row scalars). Events refer to a row by its index (``of_filter``)."""
        self._check_open()
        cols = {k: np.asarray(v) for k, v in rows.items()}
        for key in ("template", "noise_psd", "transfer", "rate_hz"):
            if key not in cols:
                raise ValueError(f"optimal filter rows for {self.path} lack {key!r}")
        n = len(cols["rate_hz"])
        if any(len(v) != n for v in cols.values()):
            raise ValueError(f"optimal filter columns differ in length: { {k: len(v) for k, v in cols.items()} }")
        if self._filters is not None and set(cols) != set(self._filters.names):
            raise ValueError(f"optimal filter columns {sorted(cols)} differ from the stored {sorted(self._filters.names)}")

        def append() -> None:
            if self._filters is None:
                self._filters = self._create_filters(cols)
            self._filters.append_many(cols)

        self._guarded(append, OPTIMAL_FILTER)

    # ------------------------------------------------------------------ retunes
    @_locked
    def append_retunes(self, rows: Mapping[str, Any]) -> None:
        """Record tones moved by resonator tracking in ``retunes/`` (dim ``retune``, one row per tone moved,
        the columns of :data:`~cryodaq.storage.format.RETUNE_COLUMNS`)."""
        self._check_open()
        missing = sorted(set(RETUNE_COLUMNS) - set(rows))
        extra = sorted(set(rows) - set(RETUNE_COLUMNS))
        if missing or extra:
            raise ValueError(f"retune rows for {self.path}: missing columns {missing}, unknown {extra}")
        cols = {k: np.atleast_1d(np.asarray(rows[k], dtype=RETUNE_COLUMNS[k][0])) for k in RETUNE_COLUMNS}
        if len({len(v) for v in cols.values()}) != 1:
            raise ValueError(f"retune columns differ in length: { {k: len(v) for k, v in cols.items()} }")

        def append() -> None:
            if self._retunes is None:
                grp = AppendGroup(self._root.create_group(RETUNES, attributes={
                    "description": "tones moved by resonator tracking, one row per tone; the data dropped "
                                   "while they settled are gaps of cause 'retune'"}), RETUNE)
                for name, (dtype, units) in RETUNE_COLUMNS.items():
                    attrs = dict(T_ATTRS) if name == "t" else ({"units": units} if units else {})
                    grp.add_array(name, dtype, chunk_rows=_GAP_CHUNK, compressors=column_compressors(),
                                  attributes=attrs)
                self._retunes = grp
            self._retunes.append_many(cols)

        self._guarded(append, RETUNES)

    def _create_filters(self, cols: dict[str, np.ndarray]) -> AppendGroup:
        grp = self._root.create_group(OPTIMAL_FILTER, attributes={
            "description": "live optimal filters, one row each; events/of_filter is the row index"})
        out = AppendGroup(grp, FILTER)
        n_samples = cols["template"].shape[1]
        freq = np.fft.rfftfreq(n_samples, 1.0 / float(cols["rate_hz"][0]))
        create_array(grp, "freq", shape=freq.shape, dtype="float64", chunks=freq.shape, dimension_names=(FREQ,),
                     attributes={"units": "Hz"})[:] = freq
        trailing = {"template": (SAMPLE,), "noise_psd": (FREQ,), "transfer": (FREQ,)}
        units = {"noise_psd": "stream units^2/Hz", "resolution": "stream units (1 sigma)", "fwhm_ev": "eV",
                 "valid_from_sample": "sample", "rate_hz": "Hz", "max_delay": "sample"}
        for key, val in cols.items():
            dims = trailing.get(key, ())
            out.add_array(key, val.dtype, chunk_rows=64, trailing=val.shape[1:], trailing_dims=dims,
                          compressors=column_compressors(), attributes={"units": units[key]} if key in units else {})
        return out

    @_locked
    def write_group(self, name: str, arrays: Mapping[str, tuple[tuple[str, ...], Any]],
                    attrs: Mapping[str, Any] | None = None) -> None:
        """Write a group of whole arrays that do not grow (``{name: (dims, values)}``), e.g. an import's
        projectors or experiment states. A group of that name must not exist yet."""
        self._check_open()
        check_name(name, "group")
        parts = {check_name(k, "array"): (tuple(dims), np.asarray(v)) for k, (dims, v) in arrays.items()}
        bad = {k: (dims, v.shape) for k, (dims, v) in parts.items() if len(dims) != v.ndim}
        if bad:
            raise ValueError(f"group {name!r}: dims do not match the shapes of {bad}")

        def write() -> None:
            if name in self._root:
                raise ValueError(f"group {name!r} already exists in {self.path}")
            grp = self._root.create_group(name, attributes=jsonable(dict(attrs or {})))
            for key, (dims, val) in parts.items():
                arr = create_array(grp, key, shape=val.shape, dtype=val.dtype, chunks=val.shape or None,
                                   dimension_names=dims)
                arr[...] = val

        self._guarded(write, name)

    # ------------------------------------------------------------ commit / close
    def _groups(self) -> list[AppendGroup]:
        """The groups in commit order: what describes the stream (gaps first, then events, housekeeping,
        spectra, optimal filters) before the stream, so a process killed half-way through a commit never leaves stream
        rows committed after a gap whose record is not (a reader would see a stitched-over gap)."""
        out = [g for g in (self._filters, self._retunes, self._spectra, self._stream) if g is not None]
        return [self._gaps, self._events, *self._hk.values(), *out]

    @_locked
    def commit(self) -> None:
        """Write buffered data, then each group's committed length, then the heartbeat."""
        self._check_open()

        def commit() -> None:
            for grp in self._groups():
                grp.commit()
            self._meta["heartbeat"] = utc_now_iso()
            self._write_meta()

        self._guarded(commit, "zarr.json (heartbeat)")

    def committed(self, group: str) -> int:
        """Committed length of ``group`` ('stream', 'events', 'gaps', 'spectra', 'housekeeping/<name>')."""
        groups = {g.path: g for g in self._groups()}
        return groups[group].committed

    @_locked
    def close(self, status: RunStatus | str = "complete", *, interrupted: bool = False, end_reason: str = "") -> None:
        """Final commit, then status/ended in root attrs, then consolidated metadata. Idempotent."""
        if self._closed:
            return
        status = RunStatus(status)
        if status not in (RunStatus.COMPLETE, RunStatus.ABORTED):
            raise ValueError(f"a writer closes a run as 'complete' or 'aborted', not {status.value!r}")
        self.commit()
        self._guarded(lambda: [grp.trim_to_committed() for grp in self._groups()], "close")
        now = utc_now_iso()
        self._meta.update(status=status.value, interrupted=bool(interrupted), end_reason=end_reason, ended=now, heartbeat=now)
        self._guarded(self._write_meta, "zarr.json")
        # Consolidate last: only a finished run, whose shapes no longer change, gets consolidated metadata.
        self._guarded(lambda: zarr.consolidate_metadata(self._store), "zarr.json")
        self._closed = True
        if self._catalog:
            update_catalog(self.path)

    @_locked
    def update_attrs(self, **fields: Any) -> None:
        """Add or replace entries of the run's root ``cryodaq`` attrs (e.g. calibration found while running).

        Written now; the reserved keys (status, times, format) stay the writer's own.
        """
        self._check_open()
        reserved = {"format_version", "run_id", "kind", "status", "started", "ended", "heartbeat"} & set(fields)
        if reserved:
            raise ValueError(f"run attrs {sorted(reserved)} are managed by the writer")
        self._meta.update(jsonable(fields))
        self._guarded(self._write_meta, "zarr.json")

    @_locked
    def abort(self, exc: BaseException | str) -> None:
        """Close as 'aborted', recording the error text as end_reason."""
        reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        self.close(RunStatus.ABORTED, end_reason=reason)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._closed:
            return
        if exc is None:
            self.close(RunStatus.COMPLETE)
        elif isinstance(exc, KeyboardInterrupt):
            self.close(RunStatus.COMPLETE, interrupted=True, end_reason="KeyboardInterrupt")
        else:
            self.abort(exc)

    # ----------------------------------------------------------------- failures
    def _write_meta(self) -> None:
        self._root.attrs[ROOT_ATTR] = self._meta

    def _check_open(self) -> None:
        if self._failed is not None:
            raise RuntimeError(f"run {self.path} was aborted after a storage error: {self._failed}")
        if self._closed:
            raise RuntimeError(f"run {self.path} is closed")

    def _guarded(self, fn: Any, what: str) -> Any:
        """Run a store write; an OSError ends the run (status aborted if still writable) and is re-raised naming it."""
        try:
            return fn()
        except (WriteFailure, OSError) as exc:
            key, cause = (exc.key, exc.cause) if isinstance(exc, WriteFailure) else (what, exc)
            err = _converted(self.path, key, cause)
            self._fail(err)
            raise err from cause

    def _fail(self, err: OSError) -> None:
        self._failed = err
        self._closed = True
        self._meta.update(status=RunStatus.ABORTED.value, end_reason=str(err), ended=utc_now_iso())
        try:
            self._write_meta()
        except OSError as exc:  # best effort only: a reader will then see a dead 'running' run, i.e. crashed
            log.error("could not mark %s aborted: %s", self.path, exc)
        if self._catalog:
            update_catalog(self.path)


def _converted(path: Path, key: str, cause: OSError) -> OSError:
    """An error naming the run and what was being written; StorageFullError for ENOSPC."""
    what = cause.strerror or str(cause)
    msg = f"run {path}: writing {key} failed: {what}; the run is aborted, data committed before is intact"
    if cause.errno == errno.ENOSPC:
        err = StorageFullError(f"disk full: {msg}")
        err.errno, err.strerror, err.filename = errno.ENOSPC, what, str(path)
        return err
    return OSError(cause.errno, msg)  # OSError picks the matching subclass (PermissionError, ...)


__all__ = ["RunWriter", "default_run_id"]
