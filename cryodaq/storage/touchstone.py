"""Import Touchstone files (``.s1p``, ``.s2p``, any ``.sNp``; read with scikit-rf) as VNA sweeps of a run.

Each file becomes ``sweeps/<name>/`` (name: the file stem unless given) in a run of kind
``sweep``: the coordinate ``frequency`` (Hz, float64) and one array per S-parameter, ``s11``,
``s21``, ... (``s1_10`` style beyond 9 ports), complex64 by default over dim ``frequency`` (zarr
v3 and xarray round-trip complex arrays), plus the ``done`` mask, all true for an imported
trace. Group attrs: ``source_file``, ``comments`` (the file's ``!`` lines), ``network_name``,
``n_ports``, ``parameter`` ("S") and ``z0_ohm`` (per port, real; ``[re, im]`` pairs when a port's
reference impedance is complex). A reference impedance that varies with frequency is stored as
arrays ``z0_port<k>`` (complex128) instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import skrf

from cryodaq.errors import ImportFormatError
from cryodaq.storage._importing import run_folder, staged_run
from cryodaq.storage.catalog import update_catalog
from cryodaq.storage.format import check_name
from cryodaq.storage.writer import RunWriter

log = logging.getLogger(__name__)


def read_touchstone(path: str | Path) -> skrf.Network:
    """Read one Touchstone file; a file scikit-rf cannot parse raises ImportFormatError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Touchstone file {path} does not exist")
    try:
        net = skrf.Network(str(path))
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - scikit-rf raises ValueError, EOFError, IndexError ... on bad files
        raise ImportFormatError(f"Touchstone file {path}: not readable by scikit-rf ({type(exc).__name__}: {exc})") from None
    if net.s.ndim != 3 or not len(net.f):
        raise ImportFormatError(f"Touchstone file {path}: no frequency points")
    return net


def _param_names(n_ports: int) -> list[tuple[str, int, int]]:
    sep = "_" if n_ports > 9 else ""
    return [(f"s{i + 1}{sep}{j + 1}", i, j) for i in range(n_ports) for j in range(n_ports)]


def _z0(net: skrf.Network) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Reference impedances: a per-port attr when constant over frequency, else per-port arrays."""
    z0 = np.asarray(net.z0, dtype=np.complex128).reshape(len(net.f), -1)
    if np.all(z0 == z0[0]):
        return {"z0_ohm": [float(z.real) if z.imag == 0 else [float(z.real), float(z.imag)] for z in z0[0]]}, {}
    return {}, {f"z0_port{k + 1}": z0[:, k] for k in range(z0.shape[1])}


def import_touchstone(
    files: str | Path | Iterable[str | Path],
    out_run_path: str | Path,
    *,
    names: Sequence[str] | None = None,
    station_name: str = "vna",
    tags: Iterable[str] = (),
    dtype: Any = np.complex64,
) -> Path:
    """Import Touchstone files into a new sweep run, one ``sweeps/<name>/`` each; returns the run folder.

    Every file is read and checked before anything is written; the run is built in a hidden
    sibling folder and renamed into place when complete.
    """
    paths = [Path(files)] if isinstance(files, str | Path) else [Path(f) for f in files]
    if not paths:
        raise ValueError("import_touchstone: no Touchstone files given")
    names = list(names) if names is not None else [p.stem for p in paths]
    if len(names) != len(paths):
        raise ValueError(f"import_touchstone: {len(names)} names for {len(paths)} files")
    for name, path in zip(names, paths, strict=True):
        try:
            check_name(name, "sweep")
        except ValueError as exc:
            raise ValueError(f"{exc} (from {path}; pass names=[...] to choose one)") from None
    if len(set(names)) != len(names):
        raise ValueError(f"import_touchstone: sweep names {names} repeat; pass names=[...] to make them unique")
    dtype = np.dtype(dtype)
    if dtype.kind != "c":
        raise ValueError(f"import_touchstone: dtype {dtype} is not complex")
    networks = [read_touchstone(p) for p in paths]
    with staged_run(out_run_path) as (staging, run_id):
        writer = RunWriter.create(
            staging, kind="sweep", station_name=station_name, station_snapshot={}, run_id=run_id,
            config={"import": {"format": "touchstone", "files": [str(p) for p in paths]}},
            clock={"source": "import time (Touchstone files carry no timestamps)", "uncertainty_s": None},
            tags=tags, catalog=False,
        )
        with writer:
            for name, path, net in zip(names, paths, networks, strict=True):
                z0_attrs, z0_arrays = _z0(net)
                data: dict[str, np.ndarray] = {key: net.s[:, i, j].astype(dtype) for key, i, j in _param_names(net.nports)}
                data.update(z0_arrays)
                array_attrs: dict[str, dict[str, Any]] = {"frequency": {"units": "Hz", "long_name": "frequency"}}
                array_attrs.update({key: {"units": "", "long_name": key.upper().replace("_", ",")}
                                    for key, _, _ in _param_names(net.nports)})
                array_attrs.update({key: {"units": "ohm"} for key in z0_arrays})
                writer.write_sweep(
                    name, {"frequency": np.asarray(net.f, dtype=np.float64)}, data,
                    attrs={"source_file": str(path.resolve()), "comments": net.comments or "", "network_name": net.name or "",
                           "n_ports": int(net.nports), "parameter": "S", "format": "touchstone", **z0_attrs},
                    array_attrs=array_attrs,
                )
    final = run_folder(out_run_path)
    update_catalog(final)
    log.info("imported %d Touchstone file(s) into %s", len(paths), final)
    return final


__all__ = ["import_touchstone", "read_touchstone"]
