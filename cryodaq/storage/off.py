"""Import NIST DASTARD OFF files (optimal-filter projections of every pulse) as the ``events/`` of a run.

An OFF file (DASTARD ``off/off.go``; read by NIST mass ``mass.off``) is:

1. a JSON header written with 4-space indentation and one ``\\n``, ending at the first line that
   is exactly ``}`` (nested objects close indented; JSON escapes newlines inside strings);
2. from version 0.2.0 on: the projectors (``NumberOfBases × nsamples`` float64, row-major) and
   then the basis (``nsamples × NumberOfBases`` float64, row-major), little-endian; version
   0.1.0 keeps both inside the JSON as ``RowMajorFloat64ValuesBase64``;
3. fixed-size little-endian records until the end of the file (a partly written last record is
   left out): int32 ``recordSamples``, int32 ``recordPreSamples``, int64 ``framecount``, int64
   ``unixnano``, float32 ``pretriggerMean``, [0.3.0: float32 ``pretriggerDelta``], float32
   ``residualStdDev``, float32 ``coefs[NumberOfBases]`` — 36 + 4·N bytes in 0.3.0, 32 + 4·N before.

``coefs = projectors · record`` and the modelled record is ``basis · coefs``. With mass's
projector convention the first three coefficients are the pulse mean, a derivative-like term
and the optimal-filter value (``filtValue``).

Each record becomes an event: ``t`` = ``unixnano``, ``sample_index`` = ``framecount``, ``channel`` =
``ChannelNumberMatchingName``, ``amplitude`` = ``filt_value`` = coefficient 2 (coefficient 0 with
fewer bases), ``baseline`` = ``pretrig_mean`` = ``pretriggerMean``, plus ``pretrig_delta`` (NaN before
0.3.0), ``residual_std``, ``record_samples``, ``record_presamples`` and one column ``off_coef_<i>`` per
basis. The projectors and bases go to the group ``off/`` (``projectors`` (channel, basis, sample),
``basis`` (channel, sample, basis)); the headers to the run attrs ``off``. An experiment-state file
(given, or DASTARD's ``..._experiment_state.txt`` beside the first file) goes to
``experiment_state/`` and gives every event its ``state_index`` (−1: before the first state).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cryodaq.errors import ImportFormatError
from cryodaq.storage._importing import run_folder, staged_run, update_run_meta
from cryodaq.storage.catalog import update_catalog
from cryodaq.storage.experiment_state import (
    ExperimentStates,
    find_experiment_state_file,
    read_experiment_state,
)
from cryodaq.storage.writer import RunWriter

log = logging.getLogger(__name__)

__all__ = ["OFFFile", "import_off", "off_record_dtype", "read_off"]

_MAX_HEADER_BYTES = 16 * 1024**2  # 0.1.0 headers hold base64 matrices
_VERSIONS = ("0.1.0", "0.2.0", "0.3.0")
_BLOCK_RECORDS = 65536


def off_record_dtype(version: str, n_bases: int) -> np.dtype:
    """The packed record layout of an OFF ``version`` with ``n_bases`` coefficients."""
    fields: list[tuple[Any, ...]] = [("recordSamples", "<i4"), ("recordPreSamples", "<i4"), ("framecount", "<i8"),
                                     ("unixnano", "<i8"), ("pretriggerMean", "<f4")]
    if version == "0.3.0":
        fields.append(("pretriggerDelta", "<f4"))
    fields.append(("residualStdDev", "<f4"))
    fields.append(("coefs", "<f4", (n_bases,)))
    return np.dtype(fields)


@dataclass
class OFFFile:
    """One parsed OFF file; ``records`` is a read-only memmap of the whole records."""

    path: Path
    header: dict[str, Any]
    version: str
    header_bytes: int
    n_bases: int
    n_samples: int
    projectors: np.ndarray  # (n_bases, n_samples) float64
    basis: np.ndarray  # (n_samples, n_bases) float64
    records: np.ndarray = field(repr=False)
    partial_bytes: int = 0  # bytes of an incomplete last record, left out

    @property
    def n_records(self) -> int:
        return int(len(self.records))

    @property
    def channel(self) -> int:
        return _as_int(self.path, "ChannelNumberMatchingName",
                       self.header.get("ChannelNumberMatchingName", self.header.get("ChannelIndex")))

    @property
    def frame_period_s(self) -> float:
        try:
            return float(self.header["FramePeriodSeconds"])
        except (KeyError, TypeError, ValueError):
            raise _fail(self.path, "header key 'FramePeriodSeconds' is missing or not a number") from None

    def modeled_records(self, rows: Any = slice(None)) -> np.ndarray:
        """``basis · coefs`` of the selected records: the pulses as the projection saw them (float64)."""
        return np.asarray(self.records["coefs"][rows], dtype=float) @ self.basis.T


def _fail(path: Path, why: str) -> ImportFormatError:
    return ImportFormatError(f"OFF file {path}: {why}")


def _as_int(path: Path, key: str, value: Any) -> int:
    try:
        return int(value)  # DASTARD 0.1.0 wrote some numbers as strings ("8")
    except (TypeError, ValueError):
        raise _fail(path, f"header key {key!r} = {value!r} is not an integer") from None


def _read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The JSON header and its length in bytes (up to and including the line ``}``)."""
    with open(path, "rb") as fh:
        head = fh.read(_MAX_HEADER_BYTES)
    pos = 0
    while True:
        nl = head.find(b"\n", pos)
        if nl < 0:
            raise _fail(path, "no line '}' ends a JSON header (not an OFF file, or truncated)")
        if head[pos:nl].rstrip(b"\r") == b"}":
            end = nl + 1
            break
        pos = nl + 1
    try:
        header = json.loads(head[:end].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"the header is not valid JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("FileFormat") != "OFF":
        raise _fail(path, f"header 'FileFormat' is {header.get('FileFormat') if isinstance(header, dict) else None!r}, "
                          "expected 'OFF'")
    return header, end


def _matrix(path: Path, header: dict[str, Any], key: str, raw: bytes | None) -> np.ndarray:
    info = (header.get("ModelInfo") or {}).get(key)
    if not isinstance(info, dict):
        raise _fail(path, f"header has no ModelInfo.{key}")
    rows, cols = _as_int(path, f"ModelInfo.{key}.Rows", info.get("Rows")), _as_int(path, f"ModelInfo.{key}.Cols",
                                                                                   info.get("Cols"))
    if raw is None:
        text = info.get("RowMajorFloat64ValuesBase64")
        if not isinstance(text, str):
            raise _fail(path, f"version 0.1.0 header lacks ModelInfo.{key}.RowMajorFloat64ValuesBase64")
        raw = base64.b64decode(text)
    if len(raw) != 8 * rows * cols:
        raise _fail(path, f"ModelInfo.{key} says {rows}x{cols} float64 but {len(raw)} bytes hold it")
    return np.frombuffer(raw, "<f8").reshape(rows, cols).astype(float)


def read_off(path: str | Path) -> OFFFile:
    """Parse an OFF file (versions 0.1.0–0.3.0); errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise ImportFormatError(f"OFF file {path}: no such file")
    header, header_bytes = _read_header(path)
    version = str(header.get("FileFormatVersion", ""))
    if version not in _VERSIONS:
        raise _fail(path, f"FileFormatVersion {version!r}; this reader knows {list(_VERSIONS)}")
    n_bases = _as_int(path, "NumberOfBases", header.get("NumberOfBases"))
    size = path.stat().st_size
    offset = header_bytes
    if version == "0.1.0":
        projectors = _matrix(path, header, "Projectors", None)
        basis = _matrix(path, header, "Basis", None)
    else:
        info = header.get("ModelInfo") or {}
        try:
            n_proj = int(info["Projectors"]["Rows"]) * int(info["Projectors"]["Cols"])
            n_basis = int(info["Basis"]["Rows"]) * int(info["Basis"]["Cols"])
        except (KeyError, TypeError, ValueError):
            raise _fail(path, "header ModelInfo.Projectors/Basis lack integer Rows and Cols") from None
        if size < offset + 8 * (n_proj + n_basis):
            raise _fail(path, f"the file ends inside the projectors/basis ({size} bytes)")
        with open(path, "rb") as fh:
            fh.seek(offset)
            blob = fh.read(8 * (n_proj + n_basis))
        projectors = _matrix(path, header, "Projectors", blob[:8 * n_proj])
        basis = _matrix(path, header, "Basis", blob[8 * n_proj:])
        offset += 8 * (n_proj + n_basis)
    if projectors.shape[0] != n_bases or basis.shape != projectors.shape[::-1]:
        raise _fail(path, f"projectors {projectors.shape} and basis {basis.shape} do not fit NumberOfBases {n_bases}")
    dtype = off_record_dtype(version, n_bases)
    n_records, partial = divmod(size - offset, dtype.itemsize)
    if partial:
        log.warning("%s: the last %d bytes are an incomplete record (still being written?); left out", path, partial)
    records = (np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(n_records,)) if n_records
               else np.zeros(0, dtype))
    return OFFFile(path, header, version, header_bytes, n_bases, int(projectors.shape[1]), projectors, basis,
                   records, int(partial))


def _iso(t_ns: int) -> str:
    sec, ns = divmod(int(t_ns), 10**9)
    return datetime.fromtimestamp(sec, UTC).replace(microsecond=ns // 1000).isoformat().replace("+00:00", "Z")


def _header_meta(f: OFFFile) -> dict[str, Any]:
    """The header without 0.1.0's base64 matrices (they are in the ``off/`` arrays)."""
    head = json.loads(json.dumps(f.header))
    for key in ("Projectors", "Basis"):
        (head.get("ModelInfo") or {}).get(key, {}).pop("RowMajorFloat64ValuesBase64", None)
    return {"path": str(f.path.resolve()), "version": f.version, "channel": f.channel, "n_records": f.n_records,
            "n_bases": f.n_bases, "n_samples": f.n_samples, "partial_bytes": f.partial_bytes, "header": head}


def import_off(
    files: str | Path | Iterable[str | Path],
    out_run_path: str | Path,
    *,
    experiment_state: str | Path | None = None,
    station_name: str = "off",
    tags: Iterable[str] = (),
) -> Path:
    """Import OFF files (one per channel) into a new run (module docstring); returns the run folder.

    The files must share the number of bases, samples per record and frame period. Corrupt input
    raises :class:`~cryodaq.errors.ImportFormatError` naming the file; nothing is written then.
    """
    paths = [Path(files)] if isinstance(files, str | Path) else [Path(f) for f in files]
    if not paths:
        raise ValueError("import_off: no OFF files given")
    offs = [read_off(p) for p in paths]
    first = offs[0]
    seen: set[Path] = set()
    for f in offs:
        if f.path.resolve() in seen:
            raise ImportFormatError(f"OFF file {f.path} is given twice")
        seen.add(f.path.resolve())
        for what, a, b in (("NumberOfBases", first.n_bases, f.n_bases), ("samples per record", first.n_samples,
                           f.n_samples), ("FramePeriodSeconds", first.frame_period_s, f.frame_period_s)):
            if a != b:
                raise ImportFormatError(f"OFF file {f.path}: {what} {b} differs from {a} in {first.path}; files "
                                        "imported into one run must share it")
    channels = [f.channel for f in offs]
    if len(set(channels)) != len(channels):
        raise ImportFormatError(f"OFF files {[str(p) for p in paths]} repeat a channel number: {channels}")
    state_file = Path(experiment_state) if experiment_state is not None else find_experiment_state_file(first.path)
    states = read_experiment_state(state_file) if state_file is not None else None

    t_all = np.concatenate([np.asarray(f.records["unixnano"], np.int64) for f in offs])
    which = np.concatenate([np.full(f.n_records, i, np.int64) for i, f in enumerate(offs)])
    record = np.concatenate([np.arange(f.n_records, dtype=np.int64) for f in offs])
    order = np.argsort(t_all, kind="stable")
    with staged_run(out_run_path) as (staging, run_id):
        writer = RunWriter.create(
            staging, kind="stream", station_name=station_name, station_snapshot={}, run_id=run_id,
            config={"import": {"format": "off", "files": [str(p) for p in paths],
                               "experiment_state": None if state_file is None else str(state_file)}},
            clock={"source": "OFF record unixnano, as written by DASTARD", "uncertainty_s": None},
            tags=tags, catalog=False,
        )
        with writer:
            for start in range(0, len(order), _BLOCK_RECORDS):
                idx = order[start:start + _BLOCK_RECORDS]
                writer.append_events(_event_batch(offs, which[idx], record[idx], states))
                writer.commit()
            _write_model(writer, offs, states)
            writer.update_attrs(off={f.path.name: _header_meta(f) for f in offs})
        if len(t_all):
            update_run_meta(writer.path, started=_iso(t_all.min()), ended=_iso(t_all.max()))
    final = run_folder(out_run_path)
    update_catalog(final)
    log.info("imported %d OFF records from %d file(s) into %s", len(t_all), len(offs), final)
    return final


def _event_batch(offs: list[OFFFile], which: np.ndarray, record: np.ndarray,
                 states: ExperimentStates | None) -> dict[str, np.ndarray]:
    n, nb = len(which), offs[0].n_bases
    rec = np.empty(n, off_record_dtype("0.3.0", nb))
    rec["pretriggerDelta"] = np.nan
    for i in np.unique(which):
        rows = np.flatnonzero(which == i)
        src = offs[i].records[record[rows]]
        for name in src.dtype.names:
            rec[name][rows] = src[name]
    coefs = rec["coefs"].reshape(n, nb)
    filt = coefs[:, 2] if nb >= 3 else coefs[:, 0]
    batch = {
        "t": rec["unixnano"].astype(np.int64), "sample_index": rec["framecount"].astype(np.int64),
        "channel": np.asarray([offs[i].channel for i in which], np.int32),
        "amplitude": filt.astype(np.float32), "baseline": rec["pretriggerMean"].astype(np.float32),
        "filt_value": filt.astype(np.float32), "pretrig_mean": rec["pretriggerMean"].astype(np.float32),
        "pretrig_delta": rec["pretriggerDelta"].astype(np.float32),
        "residual_std": rec["residualStdDev"].astype(np.float32),
        "record_samples": rec["recordSamples"].astype(np.int32),
        "record_presamples": rec["recordPreSamples"].astype(np.int32), "source_record": record,
    }
    for k in range(nb):
        batch[f"off_coef_{k}"] = coefs[:, k].astype(np.float32)
    if states is not None:
        batch["state_index"] = states.index_at(batch["t"])
    return batch


def _write_model(writer: RunWriter, offs: list[OFFFile], states: ExperimentStates | None) -> None:
    writer.write_group("off", {
        "channel": (("channel",), np.asarray([f.channel for f in offs], np.int32)),
        "projectors": (("channel", "basis", "sample"), np.stack([f.projectors for f in offs])),
        "basis": (("channel", "sample", "basis"), np.stack([f.basis for f in offs])),
    }, attrs={"sample_rate_hz": 1.0 / offs[0].frame_period_s,
              "description": "coefs = projectors @ record; modelled record = basis @ coefs (DASTARD OFF)"})
    if states is not None:
        writer.write_group("experiment_state", {
            "t": (("state",), states.t_ns), "label": (("state",), np.asarray(states.labels, dtype=str)),
        }, attrs={"source": states.source, "coordinates": ""})
