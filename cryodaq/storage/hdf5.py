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
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np
import zarr
from zarr.dtype import parse_data_type
from zarr.storage import LocalStore

import cryodaq
from cryodaq.errors import ImportFormatError, RunFormatError, one_line
from cryodaq.storage._importing import run_folder, staged_run
from cryodaq.storage._liveness import utc_now_iso
from cryodaq.storage.catalog import update_catalog
from cryodaq.storage.format import FORMAT_VERSION, ROOT_ATTR, RunStatus, check_name
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
# The file is outside input: every h5py access may fail in its own way on a damaged file (OSError,
# RuntimeError, KeyError, ValueError, UnicodeDecodeError ...). Each is read through _h5, which turns any
# failure into one ImportFormatError naming the file, the object and what was being read.
_T = TypeVar("_T")


def _h5(where: str, what: str, read: Callable[[], _T]) -> _T:
    try:
        return read()
    except ImportFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to read outside input is a bad file
        raise ImportFormatError(f"{where}: {what} unreadable ({type(exc).__name__}: {one_line(exc, 200)}); "
                                "a damaged or truncated HDF5 file, or not a cryodaq export") from None


def _json(where: str, name: str, text: Any) -> Any:
    if isinstance(text, bytes):
        text = _h5(where, f"attribute {name!r}", lambda: text.decode("utf-8"))
    if not isinstance(text, str):
        raise ImportFormatError(f"{where}: attribute {name!r} is {type(text).__name__}, expected JSON text")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ImportFormatError(f"{where}: attribute {name!r} is not valid JSON ({one_line(exc, 120)})") from None


def _read_import_attrs(obj: h5py.Group | h5py.Dataset, where: str, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The attributes of an HDF5 object as the export wrote them (JSON ones decoded), checked."""
    raw = _h5(where, "attributes", lambda: {str(k): v for k, v in obj.attrs.items()})
    as_json = _json(where, _JSON_ATTRS, raw[_JSON_ATTRS]) if _JSON_ATTRS in raw else []
    if not isinstance(as_json, list) or not all(isinstance(k, str) for k in as_json):
        raise ImportFormatError(f"{where}: attribute {_JSON_ATTRS!r} is not a list of names")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _INTERNAL or key in skip:
            continue
        if isinstance(value, bytes):
            value = _h5(where, f"attribute {key!r}", lambda v=value: v.decode("utf-8"))
        if key in as_json:
            value = _json(where, key, value)
        elif isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, np.ndarray):
            raise ImportFormatError(f"{where}: attribute {key!r} is an array; the export writes scalars and JSON")
        out[key] = value
    return out


def _zarr_info(where: str, ds: h5py.Dataset, ndim: int) -> tuple[list[str] | None, dict[str, Any]]:
    """The dimension names and the zarr settings (chunks, compressors, fill, strings) the export recorded."""
    attrs = _h5(where, "attributes", lambda: dict(ds.attrs))
    if _DIMS not in attrs:
        raise ImportFormatError(f"{where}: dataset lacks {_DIMS!r}; not written by cryodaq's HDF5 export")
    dims = _json(where, _DIMS, attrs[_DIMS])
    if not isinstance(dims, list) or not all(isinstance(d, str) and d for d in dims) or len(dims) not in (0, ndim):
        raise ImportFormatError(f"{where}: {_DIMS!r} must list {ndim} dimension names, got {one_line(dims, 80)}")
    info = _json(where, _ZARR, attrs.get(_ZARR, "{}"))
    if not isinstance(info, dict):
        raise ImportFormatError(f"{where}: {_ZARR!r} is not a JSON object")
    chunks = info.get("chunks")
    if chunks is not None and not (isinstance(chunks, list) and len(chunks) == ndim and all(
            isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in chunks)):
        raise ImportFormatError(f"{where}: {_ZARR!r} chunks {one_line(chunks, 60)} are not {ndim} positive integers")
    compressors = info.get("compressors", "auto")
    if compressors != "auto" and not (isinstance(compressors, list) and all(isinstance(c, dict) for c in compressors)):
        raise ImportFormatError(f"{where}: {_ZARR!r} compressors are not a list of codec settings")
    return dims or None, info


def _check_allocated(where: str, ds: h5py.Dataset) -> None:
    """Refuse a dataset whose stored data cannot cover its shape (the export writes every element), so a
    shape damaged into something huge is not read as a sea of fill values."""
    n = int(np.prod(ds.shape, dtype=object)) if ds.shape else 1
    if n == 0:
        return
    layout_chunks = _h5(where, "layout", lambda: ds.chunks)
    if layout_chunks:
        want = int(np.prod([-(-s // c) for s, c in zip(ds.shape, layout_chunks, strict=True)], dtype=object))
        have = _h5(where, "chunk index", lambda: ds.id.get_num_chunks())
        if have < want:
            raise ImportFormatError(f"{where}: {have} of its {want} HDF5 chunks are stored; the export writes all")
    else:
        size = _h5(where, "storage size", lambda: ds.id.get_storage_size())
        item = _h5(where, "data type", lambda: ds.id.get_type().get_size())
        if size < n * item:
            raise ImportFormatError(f"{where}: {size} bytes stored for {n} elements of {item} bytes")


def _import_dataset(ds: h5py.Dataset, group: zarr.Group, name: str, where: str) -> None:
    where = f"{where}/{name}"
    shape, h5dtype = _h5(where, "shape and type", lambda: (tuple(ds.shape), ds.dtype))
    dims, info = _zarr_info(where, ds, len(shape))
    string = bool(info.get("string")) or _h5(where, "type", lambda: h5py.check_string_dtype(h5dtype)) is not None
    if not string and h5dtype.kind not in "biufc":
        raise ImportFormatError(f"{where}: HDF5 type {h5dtype} is not one a run holds (numbers, bool, strings)")
    _check_allocated(where, ds)
    kwargs: dict[str, Any] = {"compressors": info.get("compressors", "auto")}
    if shape and info.get("chunks"):
        kwargs["chunks"] = tuple(info["chunks"])
    try:
        dtype = parse_data_type(str if string else h5dtype, zarr_format=3)
        if info.get("fill_value") is not None:  # stored in zarr's JSON form ("NaN", [re, im], ...)
            kwargs["fill_value"] = dtype.from_json_scalar(info["fill_value"], zarr_format=3)
        arr = group.create_array(name, shape=shape, dtype=dtype, attributes=_read_import_attrs(ds, where),
                                 dimension_names=dims, config={"write_empty_chunks": True}, **kwargs)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # the recorded settings do not make an array
        raise ImportFormatError(f"{where}: the recorded zarr settings are not valid ({type(exc).__name__}: "
                                f"{one_line(exc, 200)})") from None
    source = ds.asstr() if string else ds
    if not shape:
        arr[()] = _h5(where, "value", lambda: source[()])
        return
    step = _rows_per_block(shape, h5dtype.itemsize)
    for start in range(0, shape[0], step):
        stop = min(shape[0], start + step)
        block = _h5(where, f"rows {start}..{stop}", lambda a=start, b=stop: np.asarray(source[a:b]))
        arr[start:stop] = np.asarray(block, dtype=str) if string else block


def _import_group(src: h5py.Group, group: zarr.Group, where: str) -> None:
    items = _h5(where, "members", lambda: [(str(k), src[k]) for k in src])
    for name, item in items:
        if isinstance(item, h5py.Dataset):
            _import_dataset(item, group, name, where)
        elif isinstance(item, h5py.Group):
            try:
                check_name(name, "group")
            except ValueError as exc:
                raise ImportFormatError(f"{where}/{name}: {exc}") from None
            attrs = _read_import_attrs(item, f"{where}/{name}")
            _import_group(item, group.create_group(name, attributes=attrs), f"{where}/{name}")
        else:
            raise ImportFormatError(f"{where}/{name}: unexpected HDF5 object {type(item).__name__}")


def _run_attrs(h5: h5py.File, file: Path) -> dict[str, Any]:
    where = str(file)
    marks = _h5(where, "root attributes", lambda: dict(h5.attrs))
    if EXPORT_ATTR not in marks:
        raise ImportFormatError(f"{file}: not a cryodaq HDF5 export (no root attribute {EXPORT_ATTR!r})")
    mark = _json(where, EXPORT_ATTR, marks[EXPORT_ATTR])
    version = mark.get("version", 0) if isinstance(mark, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise ImportFormatError(f"{file}: root attribute {EXPORT_ATTR!r} has no integer 'version'")
    if version > HDF5_EXPORT_VERSION:
        raise ImportFormatError(f"{file}: HDF5 export version {version}; this cryodaq reads up to "
                                f"{HDF5_EXPORT_VERSION}")
    attrs = _read_import_attrs(h5, where, skip=(EXPORT_ATTR,))
    meta = attrs.get(ROOT_ATTR)
    if not isinstance(meta, dict) or not isinstance(meta.get("format_version"), int):
        raise ImportFormatError(f"{file}: root attribute {ROOT_ATTR!r} is missing or has no format_version")
    if meta["format_version"] > FORMAT_VERSION:
        raise ImportFormatError(f"{file}: run format_version {meta['format_version']}; this cryodaq reads up to "
                                f"{FORMAT_VERSION}")
    if meta.get("status") not in {s.value for s in RunStatus}:
        raise ImportFormatError(f"{file}: run status {one_line(meta.get('status'), 40)!r} is none of "
                                f"{', '.join(s.value for s in RunStatus)}")
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

    The run is built in a hidden sibling folder and renamed into place only when complete and readable;
    a corrupt or foreign file raises :class:`~cryodaq.errors.ImportFormatError` and writes nothing.
    """
    file = Path(file)
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such HDF5 file")
    try:
        h5 = h5py.File(file, "r")
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError, and others on damaged superblocks
        raise ImportFormatError(f"{file}: not a readable HDF5 file ({type(exc).__name__}: {one_line(exc, 200)})") \
            from None
    with h5, staged_run(out_run_path, source=str(file)) as (staging, run_id):
        attrs = _run_attrs(h5, file)
        path = staging / f"{run_id}.zarr"
        root = zarr.open_group(LocalStore(path), mode="w-", zarr_format=3, attributes=attrs)
        _import_group(h5, root, str(file))
        zarr.consolidate_metadata(root.store)
    final = run_folder(out_run_path)
    update_catalog(final)
    return final


__all__ = ["EXPORT_ATTR", "IMPORT_ATTR", "export_hdf5", "import_hdf5"]
