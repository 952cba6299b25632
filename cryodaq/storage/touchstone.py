"""Import Touchstone files (``.s1p``, ``.s2p``, any ``.sNp``, or any name with Touchstone content; read with
scikit-rf) as VNA sweeps of a run.

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

import io
import logging
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import skrf

from cryodaq.errors import ImportFormatError, one_line
from cryodaq.storage._importing import run_folder, staged_run
from cryodaq.storage.catalog import update_catalog
from cryodaq.storage.format import check_name
from cryodaq.storage.writer import RunWriter

log = logging.getLogger(__name__)


_UNITS = {"hz", "khz", "mhz", "ghz"}
_PARAMETERS = {"s", "y", "z", "g", "h"}
_FORMATS = {"db", "ma", "ri"}
_MAX_PORTS = 64
_SNP = re.compile(r"\.s(\d+)p", re.IGNORECASE)


def _data_lines(text: str) -> list[str]:
    """Lines without their ``!`` comments, blank ones dropped."""
    return [line.split("!", 1)[0].strip() for line in text.splitlines() if line.split("!", 1)[0].strip()]


def is_option_line(line: str) -> bool:
    """Whether ``line`` is a Touchstone option line, e.g. ``# Hz S RI R 50`` (any order, any subset)."""
    tokens = line.split()
    if not tokens or tokens[0] != "#":
        return False
    rest = [t.lower() for t in tokens[1:]]
    i = 0
    while i < len(rest):
        tok = rest[i]
        if tok == "r":
            try:
                float(rest[i + 1])
            except (IndexError, ValueError):
                return False
            i += 2
            continue
        if tok not in _UNITS | _PARAMETERS | _FORMATS:
            return False
        i += 1
    return True


def looks_like_touchstone(text: str) -> bool:
    """Whether ``text`` reads as a Touchstone file: its first line that is not a comment is an option line
    (version 1) or ``[Version]`` (version 2)."""
    lines = _data_lines(text)
    return bool(lines) and (is_option_line(lines[0]) or lines[0].lower().startswith("[version]"))


def touchstone_ports(text: str, where: str) -> int:
    """The port count of a Touchstone file from its content: ``[Number of Ports]`` (version 2), else from
    the data. A frequency point starts on a line with an odd number of values (the frequency and
    value pairs) and continues on lines with an even number, so each point holds 1 + 2 N² values
    (the noise data of a 2-port, whose frequencies start over, are left out)."""
    lines = _data_lines(text)
    for line in lines:
        if line.lower().startswith("[number of ports]"):
            try:
                return int(line.split("]", 1)[1].strip())
            except ValueError:
                raise ImportFormatError(f"Touchstone file {where}: '{line}' does not give a port count") from None
    sizes: list[int] = []
    last_freq: float | None = None
    for line in lines:
        if line.startswith(("#", "[")):
            continue
        tokens = line.split()
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            raise ImportFormatError(f"Touchstone file {where}: data line {line[:60]!r} is not numbers") from None
        if len(values) % 2:  # a new frequency point
            if last_freq is not None and values[0] <= last_freq:
                break  # noise parameters follow
            last_freq = values[0]
            sizes.append(len(values))
        elif sizes:
            sizes[-1] += len(values)
        else:
            raise ImportFormatError(f"Touchstone file {where}: the first data line has {len(values)} values; "
                                    "a frequency point starts with the frequency and value pairs")
    if not sizes:
        raise ImportFormatError(f"Touchstone file {where}: no frequency points")
    ports = {round(((n - 1) / 2) ** 0.5) for n in sizes}
    if len(set(sizes)) != 1 or len(ports) != 1 or 1 + 2 * next(iter(ports)) ** 2 != sizes[0]:
        raise ImportFormatError(f"Touchstone file {where}: frequency points of {sorted(set(sizes))} values; cannot tell "
                                "the port count from the data (1 + 2 N^2 values per point): give it (--ports)")
    return next(iter(ports))


def read_touchstone(path: str | Path, *, ports: int | None = None) -> skrf.Network:
    """Read one Touchstone file; a file scikit-rf cannot parse raises ImportFormatError naming it.

    A file named ``.sNp`` has N ports; any other name is read if its content is Touchstone (an
    option line such as ``# Hz S RI R 50``), with the port count from ``[Number of Ports]``, from
    the data, or from ``ports``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Touchstone file {path} does not exist")
    raw = path.read_bytes()
    if b"\0" in raw[:4096]:
        raise ImportFormatError(f"Touchstone file {path}: binary content, not a Touchstone text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    named = _SNP.fullmatch(path.suffix)
    hint = ""
    if ports is not None and (not isinstance(ports, int) or not 1 <= ports <= _MAX_PORTS):
        raise ValueError(f"ports={ports!r}: expected a port count 1..{_MAX_PORTS}")
    if named and ports is not None and int(named[1]) != ports:
        raise ImportFormatError(f"Touchstone file {path}: named for {named[1]} ports, but {ports} were given")
    if not named:
        if not looks_like_touchstone(text):
            raise ImportFormatError(f"{path}: not a Touchstone file: expected an option line such as "
                                    "'# Hz S RI R 50' (or '[Version] 2.0') before the data, or a .sNp name")
        if ports is None:
            ports = touchstone_ports(text, str(path))
            hint = f" ({ports} port(s), inferred from the data; give the port count (--ports) if that is wrong)"
        if not 1 <= ports <= _MAX_PORTS:
            raise ImportFormatError(f"Touchstone file {path}: {ports} ports; this reader takes 1..{_MAX_PORTS}")
    source = io.StringIO(text)
    source.name = path.name if named else f"{path.stem or 'network'}.s{ports}p"  # scikit-rf reads the rank from it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = skrf.Network(source, name=path.stem)
    except Exception as exc:  # noqa: BLE001 - scikit-rf raises ValueError, EOFError, IndexError ... on bad files
        raise ImportFormatError(f"Touchstone file {path}: not readable by scikit-rf ({type(exc).__name__}: "
                                f"{one_line(exc, 200)}){hint}") from None
    s = np.asarray(net.s)
    if s.ndim != 3 or not len(net.f) or s.shape[0] != len(net.f):
        raise ImportFormatError(f"Touchstone file {path}: no frequency points")
    if not np.all(np.isfinite(net.f)) or np.any(np.diff(net.f) <= 0):
        raise ImportFormatError(f"Touchstone file {path}: frequencies must be finite and increasing{hint}")
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
    ports: int | None = None,
) -> Path:
    """Import Touchstone files into a new sweep run, one ``sweeps/<name>/`` each; returns the run folder.

    Every file is read and checked before anything is written; the run is built in a hidden
    sibling folder and renamed into place when complete. A file not named ``.sNp`` is recognised by
    its content (:func:`read_touchstone`); ``ports`` gives the port count where the data cannot.
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
    networks = [read_touchstone(p, ports=ports) for p in paths]
    for path, net in zip(paths, networks, strict=True):
        s = np.asarray(net.s)
        with np.errstate(over="ignore", invalid="ignore"):
            lost = np.isfinite(s) & ~np.isfinite(s.astype(dtype))
        if lost.any():
            raise ImportFormatError(f"Touchstone file {path}: {int(lost.sum())} value(s) beyond the range of {dtype}; "
                                    "import with dtype=complex128")
    with staged_run(out_run_path, source=", ".join(str(p) for p in paths)) as (staging, run_id):
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


__all__ = ["import_touchstone", "looks_like_touchstone", "read_touchstone", "touchstone_ports"]
