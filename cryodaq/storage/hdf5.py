"""HDF5 export and import of runs (h5py): the same tree of groups and arrays, for tools that read HDF5.

The HDF5 file mirrors the run: one HDF5 group per zarr group, one dataset per array, cut to the
committed length of its group (rows past it are not data), attributes copied. HDF5 attributes
hold strings and numbers natively; anything else (dicts, lists, null) is stored as JSON text and
its name listed in the object's ``_cryodaq_json_attrs`` attribute, so an import restores it
exactly. Each dataset carries ``_cryodaq_dimension_names`` (JSON list: the zarr v3 dimension
names) and ``_cryodaq_zarr`` (JSON: chunks, compressors, fill value, whether it holds strings),
and the file root carries ``cryodaq_hdf5_export`` (JSON: format version, source run, time).

:func:`import_hdf5` rebuilds the run from such a file: same arrays (values and dtypes), same
attributes, plus a root attribute ``cryodaq_import`` naming the source file (the one field that
differs). A run exported while ``running`` is imported as ``crashed`` (nobody writes the copy;
``ended`` is its last heartbeat), matching what ``cryodaq recover`` does to a dead run.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import zarr
from zarr.dtype import parse_data_type
from zarr.storage import LocalStore

import cryodaq
from cryodaq.errors import ImportFormatError, RunFormatError
from cryodaq.storage._importing import run_folder, staged_run
from cryodaq.storage._liveness import utc_now_iso
from cryodaq.storage.catalog import update_catalog
from cryodaq.storage.format import FORMAT_VERSION, ROOT_ATTR, RunStatus
from cryodaq.storage.reader import Run, open_run

log = logging.getLogger(__name__)

EXPORT_ATTR = "cryodaq_hdf5_export"  # file root: JSON {"version", "source", "exported", "software", "status"}
IMPORT_ATTR = "cryodaq_import"  # run root attr added by import_hdf5: {"format", "source", "imported", "software"}
HDF5_EXPORT_VERSION = 1
_JSON_ATTRS = "_cryodaq_json_attrs"
_DIMS = "_cryodaq_dimension_names"
_ZARR = "_cryodaq_zarr"
_INTERNAL = {_JSON_ATTRS, _DIMS, _ZARR}
_BLOCK_BYTES = 64 * 1024**2  # arrays are copied in blocks of about this size, so memory stays bounded
_INT64 = np.iinfo(np.int64)


# ------------------------------------------------------------------ attributes
def _native(value: Any) -> bool:
    """Whether HDF5 holds ``value`` as an attribute that reads back as the same Python value."""
    if isinstance(value, bool | float | str):
        return True
    return isinstance(value, int) and _INT64.min <= value <= _INT64.max


def _write_attrs(obj: h5py.Group | h5py.Dataset, attrs: dict[str, Any]) -> None:
    as_json = []
    for key, value in attrs.items():
        if key in _INTERNAL:
            raise RunFormatError(f"attribute name {key!r} is reserved by the HDF5 export")
        if _native(value):
            obj.attrs[key] = value
        else:
            obj.attrs[key] = json.dumps(value, allow_nan=True)
            as_json.append(key)
    if as_json:
        obj.attrs[_JSON_ATTRS] = json.dumps(as_json)


def _read_attrs(obj: h5py.Group | h5py.Dataset, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    as_json = set(json.loads(obj.attrs.get(_JSON_ATTRS, "[]")))
    out: dict[str, Any] = {}
    for key, value in obj.attrs.items():
        if key in _INTERNAL or key in skip:
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if key in as_json:
            value = json.loads(value)
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


# ---------------------------------------------------------------------- export
def _is_string(dtype: np.dtype) -> bool:
    return dtype.kind in "OUT"


def _rows_per_block(shape: tuple[int, ...], itemsize: int) -> int:
    row = int(np.prod(shape[1:], dtype=np.int64)) * max(itemsize, 8)
    return max(1, _BLOCK_BYTES // max(row, 1))


def _export_array(run: Run, arr: zarr.Array, path: str, parent: h5py.Group, name: str, compression: str | None) -> None:
    if arr.ndim:
        n = run.committed(path)
        if n > arr.shape[0]:
            raise RunFormatError(f"{run.path}/{path}: committed length {n} exceeds the {arr.shape[0]} rows stored")
        shape = (n, *arr.shape[1:])
    else:
        shape = ()
    string = _is_string(arr.dtype)
    size = int(np.prod(shape, dtype=np.int64))
    filters: dict[str, Any] = {}
    if size and shape and compression:
        filters = {"chunks": True, "compression": compression, "shuffle": not string}
        if compression == "gzip":
            filters["compression_opts"] = 1  # fast; bulk data are noise and compress little anyway
    ds = parent.create_dataset(name, shape=shape, dtype=h5py.string_dtype("utf-8") if string else arr.dtype, **filters)
    if not shape:
        ds[()] = arr[()]
    else:
        step = _rows_per_block(shape, arr.dtype.itemsize)
        for start in range(0, shape[0], step):
            stop = min(shape[0], start + step)
            block = arr[start:stop]
            ds[start:stop] = block.astype(object) if string else block
    _write_attrs(ds, dict(arr.attrs))
    ds.attrs[_DIMS] = json.dumps(list(arr.metadata.dimension_names or []))
    ds.attrs[_ZARR] = json.dumps({
        "chunks": list(arr.chunks),
        "compressors": [c.to_dict() for c in arr.compressors],
        "fill_value": arr.metadata.to_dict()["fill_value"],
        "string": string,
    }, allow_nan=True)


def _export_group(run: Run, group: zarr.Group, path: str, out: h5py.Group, compression: str | None) -> None:
    for name, arr in sorted(group.arrays()):
        _export_array(run, arr, f"{path}/{name}".strip("/"), out, name, compression)
    for name, sub in sorted(group.groups()):
        child = out.create_group(name)
        _write_attrs(child, dict(sub.attrs))
        _export_group(run, sub, f"{path}/{name}".strip("/"), child, compression)


def export_hdf5(run_path: str | Path, out_file: str | Path, *, compression: str | None = "gzip",
                overwrite: bool = False) -> Path:
    """Write the run at ``run_path`` to the HDF5 file ``out_file`` (every array cut to its committed length).

    The file is written under a temporary name and renamed when complete, so a failed export
    leaves no file that looks finished. ``compression``: an h5py filter name ('gzip', 'lzf') or None.
    """
    run = open_run(run_path)
    out = Path(out_file)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--force) to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.partial")
    try:
        with h5py.File(tmp, "w", track_order=True) as h5:
            _write_attrs(h5, dict(run.root.attrs))
            h5.attrs[EXPORT_ATTR] = json.dumps({
                "version": HDF5_EXPORT_VERSION, "source": str(run.path), "exported": utc_now_iso(),
                "software": {"cryodaq": cryodaq.__version__, "h5py": h5py.__version__},
                "status": run.status.value,
            })
            _export_group(run, run.root, "", h5, compression)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported %s to %s", run.path, out)
    return out


# ---------------------------------------------------------------------- import
def _import_dataset(ds: h5py.Dataset, group: zarr.Group, name: str, where: str) -> None:
    if _DIMS not in ds.attrs:
        raise ImportFormatError(f"{where}/{name}: dataset lacks {_DIMS!r}; not written by cryodaq's HDF5 export")
    try:
        dims = json.loads(ds.attrs[_DIMS])
        info = json.loads(ds.attrs.get(_ZARR, "{}"))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ImportFormatError(f"{where}/{name}: unreadable {_DIMS!r} or {_ZARR!r} attribute ({exc})") from None
    string = bool(info.get("string")) or h5py.check_string_dtype(ds.dtype) is not None
    kwargs: dict[str, Any] = {"compressors": info.get("compressors", "auto")}
    if ds.shape and info.get("chunks"):
        kwargs["chunks"] = tuple(int(c) for c in info["chunks"])
    dtype = parse_data_type(str if string else ds.dtype, zarr_format=3)
    if info.get("fill_value") is not None:  # stored in zarr's JSON form ("NaN", [re, im], ...)
        kwargs["fill_value"] = dtype.from_json_scalar(info["fill_value"], zarr_format=3)
    arr = group.create_array(name, shape=ds.shape, dtype=dtype, attributes=_read_attrs(ds),
                             dimension_names=dims or None, config={"write_empty_chunks": True}, **kwargs)
    source = ds.asstr() if string else ds
    if not ds.shape:
        arr[()] = source[()]
        return
    step = _rows_per_block(ds.shape, ds.dtype.itemsize)
    for start in range(0, ds.shape[0], step):
        stop = min(ds.shape[0], start + step)
        try:
            block = source[start:stop]
        except OSError as exc:  # h5py: a damaged or truncated dataset
            raise ImportFormatError(f"{where}/{name}: rows {start}..{stop} unreadable ({exc})") from None
        arr[start:stop] = np.asarray(block, dtype=str) if string else block


def _import_group(src: h5py.Group, group: zarr.Group, where: str) -> None:
    for name, item in src.items():
        if isinstance(item, h5py.Dataset):
            _import_dataset(item, group, name, where)
        elif isinstance(item, h5py.Group):
            _import_group(item, group.create_group(name, attributes=_read_attrs(item)), f"{where}/{name}")
        else:
            raise ImportFormatError(f"{where}/{name}: unexpected HDF5 object {type(item).__name__}")


def _run_attrs(h5: h5py.File, file: Path) -> dict[str, Any]:
    if EXPORT_ATTR not in h5.attrs:
        raise ImportFormatError(f"{file}: not a cryodaq HDF5 export (no root attribute {EXPORT_ATTR!r})")
    mark = json.loads(h5.attrs[EXPORT_ATTR])
    if int(mark.get("version", 0)) > HDF5_EXPORT_VERSION:
        raise ImportFormatError(f"{file}: HDF5 export version {mark.get('version')}; this cryodaq reads up to "
                                f"{HDF5_EXPORT_VERSION}")
    attrs = _read_attrs(h5, skip=(EXPORT_ATTR,))
    meta = attrs.get(ROOT_ATTR)
    if not isinstance(meta, dict) or not isinstance(meta.get("format_version"), int):
        raise ImportFormatError(f"{file}: root attribute {ROOT_ATTR!r} is missing or has no format_version")
    if meta["format_version"] > FORMAT_VERSION:
        raise ImportFormatError(f"{file}: run format_version {meta['format_version']}; this cryodaq reads up to "
                                f"{FORMAT_VERSION}")
    if meta.get("status") == RunStatus.RUNNING.value:
        meta.update(
            status=RunStatus.CRASHED.value, ended=meta.get("heartbeat"),
            end_reason=f"exported while running (data up to its last commit at {meta.get('heartbeat')}); "
                       f"imported from {file.name}",
        )
    attrs[IMPORT_ATTR] = {"format": "hdf5", "source": str(file), "imported": utc_now_iso(),
                          "software": {"cryodaq": cryodaq.__version__}}
    return attrs


def import_hdf5(file: str | Path, out_run_path: str | Path) -> Path:
    """Rebuild a run from an HDF5 file written by :func:`export_hdf5`; returns the new run folder.

    The run is built in a hidden sibling folder and renamed into place only when complete; a
    corrupt or foreign file raises :class:`~cryodaq.errors.ImportFormatError` and writes nothing.
    """
    file = Path(file)
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such HDF5 file")
    try:
        h5 = h5py.File(file, "r")
    except OSError as exc:
        raise ImportFormatError(f"{file}: not a readable HDF5 file ({exc})") from None
    with h5, staged_run(out_run_path) as (staging, run_id):
        attrs = _run_attrs(h5, file)
        path = staging / f"{run_id}.zarr"
        root = zarr.open_group(LocalStore(path), mode="w-", zarr_format=3, attributes=attrs)
        _import_group(h5, root, str(file))
        zarr.consolidate_metadata(root.store)
    final = run_folder(out_run_path)
    update_catalog(final)
    return final


__all__ = ["EXPORT_ATTR", "IMPORT_ATTR", "export_hdf5", "import_hdf5"]
