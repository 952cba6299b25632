"""Import NIST LJH pulse-record files (DASTARD, MATTER; LJH 2.1 and 2.2) as the ``events/`` of a run.

An LJH file is a text header ending with the line ``#End of Header``, then fixed-size binary
records: a prefix plus ``Total Samples`` little-endian uint16 samples. Hand-written here because
no maintained Python package reads LJH without pulling in a full analysis stack (NIST ``mass``).

Record prefix and what the import derives from it (``t`` is int64 ns UTC, ``sample_index`` is a
frame number: one frame = one sample = ``Timebase`` seconds):

- **LJH 2.2** (16 bytes): int64 subframe count, int64 POSIX time in µs.
  ``t = posix_us * 1000``. The subframe count is stored as the extra column ``subframe_count``;
  ``sample_index`` is the frame count: ``(subframe - Subframe offset) // Subframe divisions`` when
  the header has those keys (DASTARD since 2024), else ``(subframe - row) // Number of rows`` when
  it has ``Number of rows`` / ``Row number`` (DASTARD before 2024 writes
  ``frame * rows + row``, also for µMUX), else the subframe count itself.
- **LJH 2.1** (6 bytes): uint8 count of 4 µs ticks past the millisecond, one unused byte,
  uint32 millisecond counter of the digitizing computer. The header's ``Timestamp offset (s)``
  is that counter's zero in POSIX seconds (DASTARD writes its start time there), so
  ``t = round(offset * 1e9) + ms * 1_000_000 + ticks * 4000`` (offset parsed as a decimal, no float
  rounding), with 4 µs resolution. ``sample_index = floor((ms * 1e-3 + ticks * 4e-6) / Timebase)``,
  the frame count since that zero (as NIST mass derives it), good to about one frame.
  ``subframe_count`` is -1. How well the counter's zero matches UTC depends on the writer: the
  run's ``clock`` says so (``uncertainty_s`` null).

Other columns: ``channel`` from the header's ``Channel`` (else ``Channel name: chanN`` or the file
name's ``chanN``), ``baseline`` = mean of the presamples, ``amplitude`` = record maximum minus that
baseline (a quick estimate, raw ADC units), ``records`` the raw samples as float32,
``source_record`` the record's number in its file. Files not written by DASTARD get
``Presamples + 3``, as mass does (MATTER/XCALDAQ wrote a value 3 below the true one).

Several files (channels) go into one run, events sorted by ``t``; they must share record length,
presamples and timebase. Nothing is written unless every file is valid.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np

from cryodaq.errors import ImportFormatError, one_line
from cryodaq.storage._importing import run_folder, staged_run, update_run_meta
from cryodaq.storage.catalog import update_catalog
from cryodaq.storage.writer import RunWriter

log = logging.getLogger(__name__)

LJH_FIRST_LINE = "#LJH Memorial File Format"
END_OF_HEADER = b"#End of Header"
_MAX_HEADER_BYTES = 1024**2
_PREFIX_BYTES = {(2, 1): 6, (2, 2): 16}
_TICK_NS, _MS_NS = 4_000, 1_000_000
_BLOCK_RECORDS = 4096  # records per write batch: bounds memory (4096 x 1024 samples x 4 B = 16 MiB)


@dataclass
class LJHFile:
    """One LJH file: its parsed header and a read-only view of its records (see the module doc)."""

    path: Path
    version: str
    header: dict[str, str]
    header_bytes: int
    n_samples: int
    presamples: int
    timebase_s: float
    channel: int
    n_records: int
    _raw: np.ndarray = field(repr=False)

    @property
    def version_tuple(self) -> tuple[int, int]:
        return _version(self.version, self.path)

    @property
    def samples(self) -> np.ndarray:
        """Raw samples (record, sample), uint16, memory-mapped."""
        return self._raw["data"]

    @property
    def t_ns(self) -> np.ndarray:
        """Record times, int64 ns since the Unix epoch (UTC)."""
        if self.version_tuple == (2, 2):
            us = self._raw["posix_us"].astype(np.int64)
            bad = np.flatnonzero((us < 0) | (us > _INT64.max // 1000))
            if bad.size:  # would wrap around in int64 ns: a wrong time, never silently
                raise _fail(self.path, f"record {int(bad[0])} has POSIX time {int(us[bad[0]])} us, not a time "
                                       "int64 nanoseconds since 1970 can hold")
            return us * 1000
        return _offset_ns(self.header, self.path) + self._elapsed_ns()

    @property
    def subframe_count(self) -> np.ndarray:
        """The LJH 2.2 subframe (row) count of each record; -1 for LJH 2.1."""
        if self.version_tuple == (2, 2):
            return self._raw["subframe"].astype(np.int64)
        return np.full(self.n_records, -1, np.int64)

    @property
    def sample_index(self) -> np.ndarray:
        """Frame count of each record (see the module doc for how it is derived)."""
        if self.version_tuple == (2, 1):
            return np.floor(self._elapsed_ns() / (self.timebase_s * 1e9)).astype(np.int64)
        sub = self.subframe_count
        divisions, offset = _get(self.header, "Subframe divisions"), _get(self.header, "Subframe offset")
        small = (-(2**31), 2**31 - 1)  # divisions, rows and offsets of real readouts are far inside this
        if divisions is not None:
            div = _int(self, "Subframe divisions", divisions, *small)
            return (sub - (_int(self, "Subframe offset", offset, *small) if offset is not None else 0)) // max(div, 1)
        rows, row = _get(self.header, "Number of rows"), _get(self.header, "Row number", prefix=True)
        if rows is not None and _int(self, "Number of rows", rows, *small) > 0:
            first = _int(self, "Row number", row, *small) if row is not None else 0
            return (sub - first) // _int(self, "Number of rows", rows, *small)
        return sub

    def _elapsed_ns(self) -> np.ndarray:
        return self._raw["ms"].astype(np.int64) * _MS_NS + self._raw["tick"].astype(np.int64) * _TICK_NS


# --------------------------------------------------------------------- parsing
def _fail(path: Path, problem: str) -> ImportFormatError:
    return ImportFormatError(f"LJH file {path}: {one_line(problem)}")


def _get(header: dict[str, str], key: str, *, prefix: bool = False) -> str | None:
    """Header value by key, ignoring case (LJH writers differ: 'Size In Bytes' / 'Size in bytes')."""
    want = key.lower()
    for k, v in header.items():
        if k.lower() == want or (prefix and k.lower().startswith(want)):
            return v
    return None


_INT64 = np.iinfo(np.int64)
_INT32 = np.iinfo(np.int32)


def _int(ljh: LJHFile | Path, key: str, value: str, lo: int = int(_INT64.min), hi: int = int(_INT64.max)) -> int:
    """A header value as an integer in [lo, hi] (written as an integer, or as a float with an integral value)."""
    path = ljh.path if isinstance(ljh, LJHFile) else ljh
    try:
        number = Decimal(value.strip())
        if not number.is_finite() or number != number.to_integral_value():
            raise InvalidOperation
        out = int(number)
    except (InvalidOperation, ValueError):
        raise _fail(path, f"header key {key!r} = {value[:40]!r} is not an integer") from None
    if not lo <= out <= hi:
        raise _fail(path, f"header key {key!r} = {value[:40]!r} is outside {lo}..{hi}")
    return out


def _version(text: str, path: Path) -> tuple[int, int]:
    m = re.match(r"^\s*(\d+)\.(\d+)(?:\.\d+)?\s*$", text)
    if not m or (int(m[1]), int(m[2])) not in _PREFIX_BYTES:
        raise _fail(path, f"'Save File Format Version: {text}' is not supported; this reader knows LJH 2.1 and 2.2")
    return int(m[1]), int(m[2])


def _offset_ns(header: dict[str, str], path: Path) -> int:
    value = _get(header, "Timestamp offset (s)")
    if value is None:
        raise _fail(path, "LJH 2.1 needs the header key 'Timestamp offset (s)' to date its records; it is missing")
    try:
        number = Decimal(value.strip())
        if not number.is_finite():
            raise InvalidOperation
        ns = int((number * 10**9).to_integral_value())
    except (InvalidOperation, ValueError):
        raise _fail(path, f"header key 'Timestamp offset (s)' = {value[:40]!r} is not a number") from None
    if not 0 <= ns < 2**62:  # the records add at most 2^32 ms to it; times must fit int64 ns
        raise _fail(path, f"header key 'Timestamp offset (s)' = {value[:40]!r} is not a time after 1970 that int64 "
                          "nanoseconds can hold")
    return ns


def _parse_header(path: Path) -> tuple[dict[str, str], int]:
    with open(path, "rb") as f:
        head = f.read(_MAX_HEADER_BYTES)
    end = head.find(END_OF_HEADER)
    if not head.startswith(LJH_FIRST_LINE.encode()):
        raise _fail(path, f"does not begin with {LJH_FIRST_LINE!r}; not an LJH file")
    if end < 0:
        raise _fail(path, "no '#End of Header' line: the header is cut short or this is not an LJH file")
    stop = end + len(END_OF_HEADER)
    stop += 2 if head[stop:stop + 2] == b"\r\n" else 1 if head[stop:stop + 1] in (b"\n", b"\r") else 0
    header: dict[str, str] = {}
    for line in head[:end].decode("latin-1").splitlines()[1:]:
        if line.startswith("#") or ":" not in line:
            continue  # comments and free-text description lines
        key, _, value = line.partition(":")
        header[key.strip()] = value.strip()
    return header, stop


def read_ljh(path: str | Path) -> LJHFile:
    """Parse and check one LJH file; raises :class:`~cryodaq.errors.ImportFormatError` naming the file and problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LJH file {path} does not exist")
    header, header_bytes = _parse_header(path)
    required = ("Save File Format Version", "Timebase", "Total Samples", "Presamples")
    missing = [k for k in required if _get(header, k) is None]
    if missing:
        raise _fail(path, f"header lacks required key(s) {missing}")
    version = _get(header, "Save File Format Version") or ""
    prefix = _PREFIX_BYTES[_version(version, path)]
    word = _get(header, "Digitized Word Size In Bytes")
    if word is not None and _int(path, "Digitized Word Size In Bytes", word) != 2:
        raise _fail(path, f"'Digitized Word Size In Bytes: {word}': only 2-byte (uint16) samples are supported")
    n_samples = _int(path, "Total Samples", _get(header, "Total Samples") or "", 1, 2**31 - 1)
    presamples = _int(path, "Presamples", _get(header, "Presamples") or "", 0, 2**31 - 1)
    if "DASTARD" not in (_get(header, "Software Version") or "").upper():
        presamples += 3  # as NIST mass does: MATTER/XCALDAQ headers state 3 fewer presamples than recorded
    try:
        timebase = float(_get(header, "Timebase") or "")
    except ValueError:
        raise _fail(path, f"header key 'Timebase' = {_get(header, 'Timebase')!r} is not a number") from None
    if n_samples <= 0 or not 0 <= presamples <= n_samples or not (np.isfinite(timebase) and timebase > 0):
        raise _fail(path, f"implausible header: Total Samples {n_samples}, Presamples {presamples}, Timebase {timebase}")
    channel = _channel(header, path)
    record_bytes = prefix + 2 * n_samples
    size = path.stat().st_size
    n_records, left = divmod(size - header_bytes, record_bytes)
    if left:
        raise _fail(path, f"{size - header_bytes} bytes follow the {header_bytes}-byte header, not a whole number of "
                          f"{record_bytes}-byte records ({n_records} records + {left} bytes): truncated or corrupt")
    if _version(version, path) == (2, 1):
        _offset_ns(header, path)  # fail now, not half-way through an import
        dtype = np.dtype([("tick", "u1"), ("unused", "u1"), ("ms", "<u4"), ("data", "<u2", (n_samples,))])
    else:
        dtype = np.dtype([("subframe", "<i8"), ("posix_us", "<i8"), ("data", "<u2", (n_samples,))])
    raw = (np.memmap(path, dtype=dtype, mode="r", offset=header_bytes, shape=(n_records,)) if n_records
           else np.zeros(0, dtype))
    return LJHFile(path, version, header, header_bytes, n_samples, presamples, timebase, channel, n_records, raw)


def _channel(header: dict[str, str], path: Path) -> int:
    value = _get(header, "Channel")
    if value is not None:
        return _int(path, "Channel", value, int(_INT32.min), int(_INT32.max))
    for text in (_get(header, "Channel name") or "", path.stem):
        m = re.search(r"chan(\d+)$", text)
        if m:
            return int(m[1])
    raise _fail(path, "no 'Channel' header key, and neither 'Channel name' nor the file name ends in chanN")


# ---------------------------------------------------------------------- import
def _check_compatible(files: list[LJHFile]) -> None:
    first = files[0]
    seen: dict[Path, Path] = {}
    for f in files:
        if f.path.resolve() in seen:
            raise ImportFormatError(f"LJH file {f.path} is given twice")
        seen[f.path.resolve()] = f.path
        for what, a, b in (("samples per record", first.n_samples, f.n_samples),
                           ("presamples", first.presamples, f.presamples),
                           ("Timebase (s)", first.timebase_s, f.timebase_s)):
            if a != b:
                raise ImportFormatError(f"LJH file {f.path}: {what} {b} differs from {a} in {first.path}; "
                                        "files imported into one run must share them")


def _clock(files: list[LJHFile]) -> dict[str, Any]:
    sources = []
    if any(f.version_tuple == (2, 2) for f in files):
        sources.append("LJH 2.2 record POSIX timestamps in us, as written by the acquisition software")
    if any(f.version_tuple == (2, 1) for f in files):
        sources.append("LJH 2.1 header 'Timestamp offset (s)' + record ms counter + 4 us ticks")
    exact = all(f.version_tuple == (2, 2) for f in files)
    return {"source": "; ".join(sources), "uncertainty_s": 1e-6 if exact else None}


def _iso(t_ns: int) -> str:
    sec, ns = divmod(int(t_ns), 10**9)
    return datetime.fromtimestamp(sec, UTC).replace(microsecond=ns // 1000).isoformat().replace("+00:00", "Z")


def import_ljh(
    files: str | Path | Iterable[str | Path],
    out_run_path: str | Path,
    *,
    station_name: str = "ljh",
    tags: Iterable[str] = (),
) -> Path:
    """Import one or several LJH files (channels) into a new run's ``events/``; returns the run folder.

    ``started``/``ended`` of the run are its first and last record times; the parsed headers are in
    the run attrs under ``ljh`` (keyed by file name). Corrupt or truncated input raises
    :class:`~cryodaq.errors.ImportFormatError` naming the file, and nothing is written.
    """
    paths = [Path(files)] if isinstance(files, str | Path) else [Path(f) for f in files]
    if not paths:
        raise ValueError("import_ljh: no LJH files given")
    ljhs = [read_ljh(p) for p in paths]
    _check_compatible(ljhs)
    first = ljhs[0]
    t_all = np.concatenate([f.t_ns for f in ljhs])
    which = np.concatenate([np.full(f.n_records, i, np.int64) for i, f in enumerate(ljhs)])
    record = np.concatenate([np.arange(f.n_records, dtype=np.int64) for f in ljhs])
    order = np.argsort(t_all, kind="stable")
    columns = {
        "t": t_all,
        "sample_index": np.concatenate([f.sample_index for f in ljhs]),
        "channel": np.concatenate([np.full(f.n_records, f.channel, np.int32) for f in ljhs]),
        "subframe_count": np.concatenate([f.subframe_count for f in ljhs]),
        "source_record": record,
    }
    meta = {
        f.path.name: {"path": str(f.path.resolve()), "version": f.version, "channel": f.channel,
                      "n_records": f.n_records, "presamples": f.presamples, "header": f.header}
        for f in ljhs
    }
    with staged_run(out_run_path, source=", ".join(str(p) for p in paths)) as (staging, run_id):
        writer = RunWriter.create(
            staging, kind="stream", station_name=station_name, station_snapshot={}, run_id=run_id,
            config={"import": {"format": "ljh", "files": [str(p) for p in paths]}}, clock=_clock(ljhs),
            tags=tags, catalog=False,
        )
        with writer:
            for start in range(0, len(order), _BLOCK_RECORDS):
                idx = order[start:start + _BLOCK_RECORDS]
                data = np.empty((len(idx), first.n_samples), np.float32)
                for i in np.unique(which[idx]):
                    rows = np.flatnonzero(which[idx] == i)
                    data[rows] = ljhs[i].samples[record[idx[rows]]]
                baseline = data[:, :first.presamples].mean(axis=1) if first.presamples else np.full(len(idx), np.nan)
                batch = {k: v[idx] for k, v in columns.items()}
                batch.update(baseline=baseline.astype(np.float32),
                             amplitude=(data.max(axis=1) - baseline).astype(np.float32), records=data)
                writer.append_events(batch, record_presamples=first.presamples,
                                     record_sample_rate_hz=1.0 / first.timebase_s)
                writer.commit()
            writer.update_attrs(ljh=meta)
        if len(t_all):
            update_run_meta(writer.path, started=_iso(t_all.min()), ended=_iso(t_all.max()))
    final = run_folder(out_run_path)
    update_catalog(final)
    log.info("imported %d LJH records from %d file(s) into %s", len(t_all), len(ljhs), final)
    return final


__all__ = ["LJHFile", "import_ljh", "read_ljh"]
