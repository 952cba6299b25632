"""Reading runs: :func:`open_run` gives a :class:`Run` whose datasets stop at the committed lengths.

A damaged run (chunk files missing below a committed length, unreadable metadata, a chunk whose
checksum does not match) never reads as data: by default :func:`open_run` raises
:class:`~cryodaq.errors.RunDamagedError` naming each damaged group, array and sample range; with
``damaged="mask"`` it opens the run and lost data read as NaN (floats) or are flagged by the
``intact`` coordinate (docs/run-format.md, *Integrity*).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from zarr.storage import LocalStore

from cryodaq.errors import RunDamagedError, RunFormatError
from cryodaq.storage.guarded import GuardedArray
from cryodaq.storage._liveness import parse_iso, utc_now_iso, writer_alive
from cryodaq.storage._nodes import META, looks_like_run, scan_tree
from cryodaq.storage.format import (
    ANALYSIS,
    CHANNEL,
    DERIVED_PARENTS,
    COMMITTED_ATTR,
    EVENTS,
    FORMAT_VERSION,
    GAPS,
    HEARTBEAT_STALE_S,
    HOUSEKEEPING,
    OPTIMAL_FILTER,
    REPROCESSED,
    RETUNES,
    ROOT_ATTR,
    SPECTRA,
    STREAM,
    TIME,
    RunStatus,
    append_dim,
)
from cryodaq.storage.integrity import CORRUPT, EMPTY, METADATA, MISSING, Damage, find_damage, raise_if_damaged, \
    root_meta_damage

log = logging.getLogger(__name__)

DamagedMode = Literal["raise", "mask"]
INTACT = "intact"  # boolean coordinate along the append dimension of a damaged group (mask mode)
_LOST = (MISSING, EMPTY, CORRUPT)
_MASK_HINT = ("open_run(path, damaged='mask') reads the intact parts (lost float data as NaN, lost rows flagged by "
              "the 'intact' coordinate); `cryodaq verify` lists every damaged chunk")


def _read_root_meta(path: Path) -> tuple[dict[str, Any], bool]:
    """Root ``attrs["cryodaq"]`` and whether the run has consolidated metadata, checked for a readable version."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run folder")
    if not path.is_dir():
        raise RunFormatError(f"{path}: is a file, not a run; expected a <run_id>.zarr folder")
    meta_file = path / META
    try:
        text = meta_file.read_bytes()
    except FileNotFoundError:
        if looks_like_run(path):
            raise root_meta_damage(path, "missing") from None
        raise RunFormatError(f"{path}: not a run (no zarr.json); expected a <run_id>.zarr folder") from None
    try:
        doc = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise root_meta_damage(path, f"not valid JSON ({len(text)} bytes; {exc})") from None
    if not isinstance(doc, dict) or doc.get("zarr_format") != 3 or doc.get("node_type") != "group":
        got = doc.get("zarr_format") if isinstance(doc, dict) else type(doc).__name__
        raise RunFormatError(f"{meta_file}: expected a zarr v3 group, got zarr_format={got!r}")
    meta = (doc.get("attributes") or {}).get(ROOT_ATTR)
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

    def __init__(self, path: str | Path, *, stale_after_s: float = HEARTBEAT_STALE_S,
                 damaged: DamagedMode = "raise") -> None:
        if damaged not in ("raise", "mask"):
            raise ValueError(f"damaged={damaged!r}: expected 'raise' or 'mask'")
        self.path = Path(path)
        # Consolidated metadata exists only for runs their writer closed, whose shapes are final.
        meta, self._consolidated = _read_root_meta(self.path)
        self.attrs: dict[str, Any] = meta
        self._stale_after_s = stale_after_s
        self.damaged_mode: DamagedMode = damaged
        self._damage: list[Damage] | None = None
        if damaged == "raise":
            raise_if_damaged(self.path, self.damage, hint=_MASK_HINT)
        elif any(d.problem == METADATA for d in self.damage) and not self._consolidated:
            raise RunDamagedError(f"{self.path}: run metadata is damaged ({self.damage[0].describe()}); "
                                  f"`cryodaq recover {self.path}` rebuilds it", self.damage, str(self.path))
        elif self.damage:
            log.info("%s: reading a damaged run: %s", self.path, "; ".join(d.describe() for d in self.damage))
        try:
            self.root = zarr.open_group(LocalStore(self.path, read_only=True), mode="r",
                                        use_consolidated=self._consolidated)
        except (ValueError, TypeError, KeyError) as exc:  # consolidated metadata that zarr cannot take
            raise root_meta_damage(self.path, f"not usable by zarr ({type(exc).__name__}: {exc})") from None

    # ------------------------------------------------------------------ integrity
    @property
    def damage(self) -> list[Damage]:
        """What is missing or damaged (metadata, chunk files absent or empty; corrupt chunks once
        :meth:`verify` has decoded them); empty for an intact run."""
        if self._damage is None:
            live = self.stored_status is RunStatus.RUNNING and self.status is RunStatus.RUNNING
            self._damage = find_damage(scan_tree(self.path), live=live)
        return self._damage

    def verify(self) -> list[Damage]:
        """Decode every chunk (checksums checked) and add what fails to :attr:`damage`; returns the damage.

        In ``damaged="mask"`` mode, datasets made afterwards read around the corrupt chunks too.
        """
        from cryodaq.storage.verify import verify_run

        report = verify_run(self.path)
        self._damage = report.damage
        return self._damage

    def lost_chunks(self, group: str) -> dict[str, set[tuple[int, ...]]]:
        """Chunk coordinates lost per array of ``group`` (missing, empty or corrupt)."""
        out: dict[str, set[tuple[int, ...]]] = {}
        for d in self.damage:
            if d.group == group and d.problem in _LOST:
                out.setdefault(d.array, set()).update(d.chunks)
        return out

    def lost_rows(self, group: str, array: str | None = None) -> list[tuple[int, int]]:
        """[start, stop) row ranges of ``group`` (of one of its arrays) whose data are lost."""
        return sorted(d.rows for d in self.damage
                      if d.group == group and d.rows is not None and d.problem in _LOST and array in (None, d.array))

    # ------------------------------------------------------------------ status
    @property
    def stored_status(self) -> RunStatus:
        """Status as written in the run's attrs."""
        try:
            return RunStatus(self.attrs.get("status"))
        except ValueError:
            raise RunFormatError(f"{self.path}: run status {str(self.attrs.get('status'))[:40]!r} is none of "
                                 f"{', '.join(s.value for s in RunStatus)}") from None

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

    @property
    def main_stream(self) -> str | None:
        """The stream acquisition triggered on (``pipeline_calibration.stream``), else ``phase``, else the
        first (None: no stream stored). Other variables (e.g. ``i`` and ``q``) stand beside it."""
        names = self.stream_names
        if not names:
            return None
        acquired = (self.attrs.get("pipeline_calibration") or {}).get("stream")
        if acquired in names:
            return str(acquired)
        return "phase" if "phase" in names else names[0]

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
        attrs = self.root[group].attrs if group.split("/")[0] in DERIVED_PARENTS and "/" in group else None
        return append_dim(group, attrs)  # a derived group names its own append dimension

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
        n = self.committed(path) if dim is not None and COMMITTED_ATTR in grp.attrs else None
        if self.damaged_mode == "raise":
            raise_if_damaged(self.path, [d for d in self.damage if d.group == path], hint=_MASK_HINT)
        lost = self.lost_chunks(path)
        ds = _group_dataset(grp, dim, n, where=f"{self.path}/{path}",
                            guard=lambda name, arr: GuardedArray(arr, run=self.path, group=path, name=name,
                                                                 lost=lost.get(name, ()), along=dim, committed=n))
        if lost:
            ds.attrs["damage"] = [d.describe() for d in self.damage if d.group == path]
            rows = self.lost_rows(path)
            if dim is not None and n is not None and rows and dim in ds.dims and INTACT not in ds.variables:
                ds = ds.assign_coords({INTACT: (dim, _intact(n, ds.chunksizes.get(dim, (n,)), rows))})
        return ds

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

    def retunes(self) -> xr.Dataset:
        """Tones moved by resonator tracking (dim ``retune``: t, sample_index, channel, old/new frequency, the
        estimated resonance, drift rate and linewidth); raises KeyError when the run moved none."""
        if RETUNES not in self.root:
            raise KeyError(f"{self.path}: the run moved no tones (no resonator tracking, or nothing drifted)")
        return self.dataset(RETUNES)

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


def _group_dataset(grp: zarr.Group, dim: str | None, n: int | None, *, where: str, guard: Any) -> xr.Dataset:
    """Dataset of a group's arrays (dims from zarr ``dimension_names``), cut to ``n`` along ``dim``;
    every array is read through ``guard(name, array)`` (a :class:`GuardedArray`)."""
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
        src = guard(name, arr)
        if arr.dtype.kind in "OUT" or name in dims or not grows:
            # strings, dimension coordinates and per-channel metadata: small, read now
            data = src[tuple(slice(0, k) for k in shape)] if shape else src[()]
        else:
            data = da.from_array(src, chunks=arr.chunks, lock=False, name=False, asarray=True)[
                tuple(slice(0, k) for k in shape)]
        variables[name] = xr.Variable(dims, data, attrs=attrs)
        if name in dims:
            coord_names.add(name)
    coords = {k: v for k, v in variables.items() if k in coord_names}
    data_vars = {k: v for k, v in variables.items() if k not in coord_names}
    return xr.Dataset(data_vars, coords=coords, attrs=dict(grp.attrs))


def _intact(n: int, chunks: tuple[int, ...], lost: list[tuple[int, int]]) -> da.Array:
    """Lazy bool (n,): False on the ``lost`` [start, stop) rows."""

    def mark(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        (a, b), = block_info[0]["array-location"] if block_info else ((0, len(block)),)
        out = block.copy()
        for x, y in lost:
            lo, hi = max(x, a), min(y, b)
            if lo < hi:
                out[lo - a:hi - a] = False
        return out

    return da.ones(n, chunks=chunks, dtype=bool).map_blocks(mark, dtype=bool)


def open_run(path: str | Path, *, mark_crashed: bool = False, stale_after_s: float = HEARTBEAT_STALE_S,
             damaged: DamagedMode = "raise") -> Run:
    """Open a run for reading. With ``mark_crashed``, a dead 'running' run is marked 'crashed' on disk.

    ``damaged`` says what to do with a damaged run (chunk files missing below a committed length,
    unreadable metadata): ``"raise"`` (default) raises :class:`~cryodaq.errors.RunDamagedError`
    naming each damaged group, array and sample range; ``"mask"`` opens it: lost float data read
    as NaN, a damaged group's dataset gets a boolean ``intact`` coordinate along its append
    dimension (False where any of its arrays lost the row; integer columns hold no data there)
    and attr ``damage``; :attr:`Run.damage` lists everything. A chunk that fails its checksum
    raises ``RunDamagedError`` when read, in either mode (``Run.verify()`` finds them all first).
    """
    run = Run(path, stale_after_s=stale_after_s, damaged=damaged)
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
