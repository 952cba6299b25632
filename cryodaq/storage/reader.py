"""Reading runs: :func:`open_run` gives a :class:`Run` whose datasets stop at the committed lengths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dask.array as da
import xarray as xr
import zarr
from zarr.storage import LocalStore

from cryodaq.errors import RunFormatError
from cryodaq.storage._liveness import parse_iso, utc_now_iso, writer_alive
from cryodaq.storage.format import (
    ANALYSIS,
    CHANNEL,
    DERIVED_PARENTS,
    COMMITTED_ATTR,
    EVENT,
    EVENTS,
    FILTER,
    FORMAT_VERSION,
    GAP,
    GAPS,
    HEARTBEAT_STALE_S,
    HOUSEKEEPING,
    OPTIMAL_FILTER,
    REPROCESSED,
    ROOT_ATTR,
    SPECTRA,
    STREAM,
    TIME,
    UPDATE,
    RunStatus,
)

_APPEND_DIM = {STREAM: TIME, EVENTS: EVENT, GAPS: GAP, SPECTRA: UPDATE, OPTIMAL_FILTER: FILTER}


def _read_root_meta(path: Path) -> tuple[dict[str, Any], bool]:
    """Root ``attrs["cryodaq"]`` and whether the run has consolidated metadata, checked for a readable version."""
    meta_file = path / "zarr.json"
    try:
        doc = json.loads(meta_file.read_text())
    except FileNotFoundError:
        raise RunFormatError(f"{path}: not a run (no zarr.json); expected a <run_id>.zarr folder") from None
    except json.JSONDecodeError as exc:
        raise RunFormatError(f"{meta_file}: unreadable JSON ({exc})") from None
    if doc.get("zarr_format") != 3 or doc.get("node_type") != "group":
        raise RunFormatError(f"{meta_file}: expected a zarr v3 group, got zarr_format={doc.get('zarr_format')!r}")
    meta = doc.get("attributes", {}).get(ROOT_ATTR)
    if not isinstance(meta, dict):
        raise RunFormatError(f"{meta_file}: no attributes.{ROOT_ATTR}; not a cryodaq run")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise RunFormatError(
            f"{path}: run format_version {version!r}; this cryodaq reads versions up to {FORMAT_VERSION}"
        )
    return meta, doc.get("consolidated_metadata") is not None


class Run:
    """A run on disk, read-only. Datasets are lazy (dask) and trimmed to committed lengths."""

    def __init__(self, path: str | Path, *, stale_after_s: float = HEARTBEAT_STALE_S) -> None:
        self.path = Path(path)
        # Consolidated metadata exists only for runs their writer closed, whose shapes are final.
        meta, self._consolidated = _read_root_meta(self.path)
        self.attrs: dict[str, Any] = meta
        self._stale_after_s = stale_after_s
        self.root = zarr.open_group(LocalStore(self.path, read_only=True), mode="r",
                                    use_consolidated=self._consolidated)

    # ------------------------------------------------------------------ status
    @property
    def stored_status(self) -> RunStatus:
        """Status as written in the run's attrs."""
        return RunStatus(self.attrs["status"])

    @property
    def status(self) -> RunStatus:
        """Status, reporting 'crashed' for a 'running' run whose writer is gone (see docs/run-format.md)."""
        stored = self.stored_status
        if stored is RunStatus.RUNNING and not writer_alive(self.attrs, stale_after_s=self._stale_after_s):
            return RunStatus.CRASHED
        return stored

    @property
    def run_id(self) -> str:
        return str(self.attrs["run_id"])

    # ------------------------------------------------------------------ layout
    @property
    def groups(self) -> list[str]:
        """Data groups present, housekeeping quantities as ``housekeeping/<name>``."""
        out: list[str] = []
        for name in sorted(name for name, _ in self.root.groups()):
            if name == HOUSEKEEPING:
                out += [f"{HOUSEKEEPING}/{q}" for q in self.housekeeping_names]
            elif name in DERIVED_PARENTS:
                out += [f"{name}/{label}" for label in self._labels(name)]
            else:
                out.append(name)
        return out

    @property
    def housekeeping_names(self) -> list[str]:
        if HOUSEKEEPING not in self.root:
            return []
        return sorted(name for name, _ in self.root[HOUSEKEEPING].groups())

    @property
    def reprocessed_labels(self) -> list[str]:
        """Labels of the derived groups ``reprocessed/<label>/`` (cryodaq.storage.derived)."""
        return self._labels(REPROCESSED)

    @property
    def analysis_labels(self) -> list[str]:
        """Labels of the ``analysis/<label>/`` groups (``cryodaq analyze``)."""
        return self._labels(ANALYSIS)

    def _labels(self, parent: str) -> list[str]:
        if parent not in self.root:
            return []
        return sorted(name for name, _ in self.root[parent].groups())

    @property
    def stream_names(self) -> list[str]:
        """Variables of ``stream/`` (e.g. ['phase'])."""
        if STREAM not in self.root:
            return []
        grp = self.root[STREAM]
        return sorted(name for name, arr in grp.arrays() if arr.metadata.dimension_names == (TIME, CHANNEL))

    def committed(self, group: str) -> int:
        """Committed length of a group ('events', 'housekeeping/mxc_temperature', ...) or of an array in it."""
        path = group.strip("/")
        node = self._node(path)
        if isinstance(node, zarr.Array):  # an array: its group's committed length if it grows with the group
            parent = path.rsplit("/", 1)[0] if "/" in path else ""
            dims = node.metadata.dimension_names or ()
            if parent and dims and dims[0] == self._append_dim(parent):
                return self.committed(parent)
            return int(node.shape[0])
        if COMMITTED_ATTR not in node.attrs:
            raise KeyError(f"{self.path}: group {path!r} is not an appendable group (no {COMMITTED_ATTR!r} attr)")
        return int(node.attrs[COMMITTED_ATTR])

    def _append_dim(self, group: str) -> str | None:
        top = group.split("/")[0]
        if top in DERIVED_PARENTS and "/" in group:  # a derived group names its own append dimension
            return str(self.root[group].attrs.get("append_dim", EVENT))
        return TIME if top == HOUSEKEEPING else _APPEND_DIM.get(top)

    def _node(self, path: str) -> zarr.Group | zarr.Array:
        try:
            return self.root[path]
        except KeyError:
            raise KeyError(f"{self.path}: no group or array {path!r}; groups are {self.groups}") from None

    # -------------------------------------------------------------- datasets
    def dataset(self, group: str) -> xr.Dataset:
        """One group as a lazy (dask) Dataset, every array cut at the group's committed length.

        Built from the zarr arrays directly rather than with ``xarray.open_zarr``: after a crash
        (or while a lagging sibling variable catches up) the arrays of a group can have unequal
        shapes, which ``open_zarr`` refuses.
        """
        path = group.strip("/")
        grp = self._node(path)
        if not isinstance(grp, zarr.Group):
            raise KeyError(f"{self.path}: {path!r} is an array, not a group")
        dim = self._append_dim(path)
        n = self.committed(path) if dim is not None else None
        return _group_dataset(grp, dim, n, where=f"{self.path}/{path}")

    def events(self) -> xr.Dataset:
        """Events (dim ``event``): t, sample_index, channel, amplitude, energy, baseline, chi2, flags[, records]."""
        return self.dataset(EVENTS)

    def stream(self, name: str | None = None) -> xr.Dataset:
        """The stream group (dims time, channel) with its coordinates; ``name`` keeps only that variable."""
        if STREAM not in self.root:
            raise KeyError(f"{self.path}: the run has no stream")
        ds = self.dataset(STREAM)
        if name is None:
            return ds
        if name not in self.stream_names:
            raise KeyError(f"{self.path}: no stream {name!r}; streams are {self.stream_names}")
        return ds[[name]]

    def housekeeping(self, name: str) -> xr.Dataset:
        """One housekeeping quantity: ``value`` (time) with coordinate ``t``; attrs ``unit``."""
        if name not in self.housekeeping_names:
            raise KeyError(f"{self.path}: no housekeeping {name!r}; quantities are {self.housekeeping_names}")
        return self.dataset(f"{HOUSEKEEPING}/{name}")

    def reprocessed(self, label: str) -> xr.Dataset:
        """A derived group ``reprocessed/<label>`` (dim ``event`` for reprocessed events); attrs hold
        its ``config``, ``source`` and ``created``."""
        if label not in self.reprocessed_labels:
            raise KeyError(f"{self.path}: no reprocessed output {label!r}; labels are {self.reprocessed_labels}")
        return self.dataset(f"{REPROCESSED}/{label}")

    def analysis(self, label: str) -> xr.Dataset:
        """An ``analysis/<label>`` group (dim ``event``): per-event summaries, cuts, energies; attrs hold the
        config, drift corrections, calibrations and line fits (docs/analysis.md)."""
        if label not in self.analysis_labels:
            raise KeyError(f"{self.path}: no analysis {label!r}; labels are {self.analysis_labels}")
        return self.dataset(f"{ANALYSIS}/{label}")

    def optimal_filters(self) -> xr.Dataset:
        """The live optimal filters (dim ``filter``, one row each; ``events/of_filter`` is the row index)."""
        if OPTIMAL_FILTER not in self.root:
            raise KeyError(f"{self.path}: the run stored no optimal filters (no live optimal_filter stage)")
        return self.dataset(OPTIMAL_FILTER)

    def gaps(self) -> xr.Dataset:
        """Gaps (dim ``gap``): first_sample, n_samples, t, cause, detail."""
        return self.dataset(GAPS)

    def spectra(self) -> xr.Dataset:
        """PSD snapshots ``psd`` (update, channel, freq) with coordinates t, channel, freq."""
        if SPECTRA not in self.root:
            raise KeyError(f"{self.path}: the run has no spectra")
        return self.dataset(SPECTRA)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, status={self.status.value!r})"


def _group_dataset(grp: zarr.Group, dim: str | None, n: int | None, *, where: str) -> xr.Dataset:
    """Dataset of a group's arrays (dims from zarr ``dimension_names``), cut to ``n`` along ``dim``."""
    variables: dict[str, xr.Variable] = {}
    coord_names: set[str] = set()
    for name, arr in grp.arrays():
        dims = tuple(arr.metadata.dimension_names or ())
        if len(dims) != arr.ndim or None in dims:
            raise RunFormatError(f"{where}/{name}: array has no dimension_names for all {arr.ndim} axes")
        attrs = dict(arr.attrs)
        coord_names.update(str(attrs.pop("coordinates", "")).split())
        grows = dim is not None and dims[0] == dim
        if grows and n is not None and arr.shape[0] < n:
            raise RunFormatError(f"{where}/{name}: committed length {n} exceeds the {arr.shape[0]} rows stored")
        rows = (n,) if grows and n is not None else arr.shape[:1]
        shape = (*rows, *arr.shape[1:])
        if arr.dtype.kind in "OUT" or name in dims or not grows:
            # strings, dimension coordinates and per-channel metadata: small, read now
            data = arr[tuple(slice(0, k) for k in shape)] if shape else arr[()]
        else:
            data = da.from_array(arr, chunks=arr.chunks, lock=False, name=False)[tuple(slice(0, k) for k in shape)]
        variables[name] = xr.Variable(dims, data, attrs=attrs)
        if name in dims:
            coord_names.add(name)
    coords = {k: v for k, v in variables.items() if k in coord_names}
    data_vars = {k: v for k, v in variables.items() if k not in coord_names}
    return xr.Dataset(data_vars, coords=coords, attrs=dict(grp.attrs))


def open_run(path: str | Path, *, mark_crashed: bool = False, stale_after_s: float = HEARTBEAT_STALE_S) -> Run:
    """Open a run for reading. With ``mark_crashed``, a dead 'running' run is marked 'crashed' on disk."""
    run = Run(path, stale_after_s=stale_after_s)
    if mark_crashed and run.stored_status is RunStatus.RUNNING and run.status is RunStatus.CRASHED:
        _mark_crashed(run)
    return run


def _mark_crashed(run: Run) -> None:
    """Rewrite root attrs with status 'crashed'. Metadata is not consolidated: a wrongly judged writer
    (on another host) could still be appending, and stale consolidated shapes would hide its data."""
    meta = dict(run.attrs)
    beat = meta.get("heartbeat")
    meta.update(
        status=RunStatus.CRASHED.value,
        ended=beat if parse_iso(beat) else utc_now_iso(),
        end_reason=(
            f"writer (pid {meta.get('pid')} on {meta.get('host')}) stopped without closing the run; "
            f"data readable up to the last commit at {beat}; marked crashed at {utc_now_iso()}"
        ),
    )
    root = zarr.open_group(LocalStore(run.path), mode="r+", use_consolidated=False)
    root.attrs[ROOT_ATTR] = meta
    run.attrs = meta
