"""Constants of the run format (version 2): group names, dimensions, column schemas, codecs, fill values.

One place for everything the writer and the reader must agree on; docs/run-format.md
is the human-readable form of this module. :func:`create_array` applies the conventions that
make damage visible (checksummed chunks, NaN / sentinel fill values, every chunk written).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec
from zarr.errors import ZarrUserWarning

# Version 2 adds, for integrity (docs/run-format.md, "Integrity"): a crc32c checksum at the end of
# every chunk, NaN as the fill value of float arrays and a sentinel for integer columns, and every
# chunk of every array written (write_empty_chunks), so that any chunk file that is absent where
# data belong is damage. Readers use the version to know which arrays they can hold to that.
FORMAT_VERSION = 2
FIRST_FORMAT_VERSION = 1  # runs written before integrity checks; still read (see integrity rules)
ROOT_ATTR = "cryodaq"  # root attrs key holding the run metadata dict
COMMITTED_ATTR = "committed"  # group attr: rows of the append dimension that readers may trust

STREAM, EVENTS, SPECTRA, HOUSEKEEPING, GAPS = "stream", "events", "spectra", "housekeeping", "gaps"
SWEEPS, SWEEP_DONE = "sweeps", "done"  # sweeps/<name>/ groups and their done mask
REPROCESSED = "reprocessed"  # reprocessed/<label>/ derived groups (cryodaq.storage.derived)
CLOCK = "clock"  # clock/: the timestamps the run's clock model was fitted to (cryodaq.timing.clock)
OPTIMAL_FILTER = "optimal_filter"  # the live optimal filters, one row each (dim FILTER)
RETUNES = "retunes"  # tones moved by resonator tracking, one row per tone moved (dim RETUNE)
ANALYSIS = "analysis"  # analysis/<label>/ groups (cryodaq.analysis)
DERIVED_PARENTS = (REPROCESSED, ANALYSIS)  # groups of derived <label>/ groups (cryodaq.storage.derived)
# the top-level groups a run may have
RUN_GROUPS = (STREAM, EVENTS, SPECTRA, HOUSEKEEPING, GAPS, SWEEPS, OPTIMAL_FILTER, RETUNES, CLOCK, REPROCESSED,
              ANALYSIS)

# Dimension names (zarr v3 ``dimension_names``, which xarray reads).
TIME, CHANNEL, EVENT, SAMPLE, UPDATE, FREQ, GAP = "time", "channel", "event", "sample", "update", "freq", "gap"
FILTER = "filter"
RETUNE = "retune"  # also the gap cause of the data dropped while retuned tones settle
ANCHOR = "anchor"
PAUSE = "pause"  # sweeps/<name>/pauses/ rows (cryodaq.storage.sweep_store)
_APPEND_DIMS = {STREAM: TIME, EVENTS: EVENT, GAPS: GAP, SPECTRA: UPDATE, HOUSEKEEPING: TIME, OPTIMAL_FILTER: FILTER,
                RETUNES: RETUNE}

# Seconds without a heartbeat after which a 'running' run written on another host counts as crashed.
HEARTBEAT_STALE_S = 120.0

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


class RunStatus(StrEnum):
    """Life-cycle state of a run, stored in root attrs and reported by readers."""

    RUNNING = "running"
    COMPLETE = "complete"
    ABORTED = "aborted"
    CRASHED = "crashed"


class RunKind(StrEnum):
    """What a run holds: a continuous stream, or a scripted sweep."""

    STREAM = "stream"
    SWEEP = "sweep"


# Event columns: name -> (dtype, fill used when a batch omits the column, or None when required, units).
EVENT_COLUMNS: dict[str, tuple[np.dtype, object, str]] = {
    "t": (np.dtype("int64"), None, "ns"),
    "sample_index": (np.dtype("int64"), None, "sample"),
    "channel": (np.dtype("int32"), None, ""),
    "amplitude": (np.dtype("float32"), None, ""),
    "energy": (np.dtype("float32"), np.nan, "eV"),
    "baseline": (np.dtype("float32"), np.nan, ""),
    "chi2": (np.dtype("float32"), np.nan, ""),
    "flags": (np.dtype("uint16"), 0, ""),
}
RECORDS = "records"

# Gap columns: name -> (dtype, units). Strings are zarr v3 variable-length UTF-8 (xarray reads them).
GAP_COLUMNS: dict[str, tuple[object, str]] = {
    "first_sample": (np.dtype("int64"), "sample"),
    "n_samples": (np.dtype("int64"), "sample"),
    "t": (np.dtype("int64"), "ns"),
    "cause": (str, ""),
    "detail": (str, ""),
}

# Retune columns (resonator tracking, one row per tone moved): name -> (dtype, units).
RETUNE_COLUMNS: dict[str, tuple[object, str]] = {
    "t": (np.dtype("int64"), "ns"),  # when the board was told (UTC)
    "sample_index": (np.dtype("int64"), "sample"),  # the last ADC sample processed with the old tones
    "channel": (np.dtype("int32"), ""),
    "old_frequency_hz": (np.dtype("float64"), "Hz"),
    "new_frequency_hz": (np.dtype("float64"), "Hz"),
    "resonance_hz": (np.dtype("float64"), "Hz"),  # where the tracker estimated the resonance (before prediction)
    "rate_hz_per_s": (np.dtype("float64"), "Hz/s"),  # the drift rate it estimated
    "linewidth_hz": (np.dtype("float64"), "Hz"),  # f_r / Q_l from the IQ-loop sweep
}

T_ATTRS = {"units": "ns", "long_name": "UTC time in integer nanoseconds since the Unix epoch"}


def stream_compressors() -> tuple[BloscCodec, Crc32cCodec]:
    """Fast codec for bulk timestreams: blosc lz4 level 1 with bit shuffle (~1.3-1.5x on ADC/phase noise),
    then the chunk's crc32c checksum (a corrupt or truncated chunk fails to read instead of reading wrong)."""
    return (BloscCodec(cname="lz4", clevel=1, shuffle="bitshuffle"), Crc32cCodec())


def column_compressors() -> tuple[ZstdCodec, Crc32cCodec]:
    """Codec for small columns (events, gaps, housekeeping) and static arrays: zstd level 1, then crc32c."""
    return (ZstdCodec(level=1), Crc32cCodec())


# Every array cryodaq creates writes all its chunks, even those equal to the fill value: a chunk file
# that is absent where data belong is then always damage, never "all fill" (zarr's default skips them).
ARRAY_CONFIG: dict[str, Any] = {"write_empty_chunks": True}


def fill_value(dtype: Any) -> Any:
    """The fill value of a new array: one no stored datum is mistaken for.

    NaN for float and complex arrays; for integers the most negative value (unsigned: the
    largest), never a plausible sample index, time or channel; False for bool, "" for strings.
    A reader never sees fill values of an intact run: it is what zarr returns for a chunk that
    is missing, which readers report (:mod:`cryodaq.storage.integrity`).
    """
    if dtype is str:
        return ""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return np.nan
    if dt.kind == "c":
        return complex(np.nan, np.nan)
    if dt.kind == "i":
        return int(np.iinfo(dt).min)
    if dt.kind == "u":
        return int(np.iinfo(dt).max)
    if dt.kind == "b":
        return False
    return "" if dt.kind in "OUT" else None


def create_array(
    group: zarr.Group,
    name: str,
    *,
    shape: Sequence[int],
    dtype: Any,
    dimension_names: Sequence[str],
    chunks: Sequence[int] | None = None,
    compressors: Any = None,
    fill: Any = "auto",
    attributes: Mapping[str, Any] | None = None,
) -> zarr.Array:
    """Create an array of a run with the format's conventions: checksummed chunks (``compressors``
    default :func:`column_compressors`), fill value :func:`fill_value` unless ``fill`` is given, and
    every chunk written (:data:`ARRAY_CONFIG`)."""
    dtype = str if dtype is str or np.dtype(dtype).kind in "OUT" else np.dtype(dtype)
    return group.create_array(
        name, shape=tuple(shape), dtype=dtype,
        chunks=tuple(max(int(c), 1) for c in chunks) if chunks is not None else "auto",
        compressors=compressors if compressors is not None else column_compressors(),
        fill_value=fill_value(dtype) if isinstance(fill, str) and fill == "auto" else fill,
        attributes=dict(attributes or {}), dimension_names=tuple(dimension_names), config=dict(ARRAY_CONFIG),
    )


def chunk_rows(row_bytes: int, rows_per_second: float | None = None, *, lo: int = 256 * 1024, hi: int = 8 * 1024**2) -> int:
    """Rows per chunk: about one second of data, kept between ``lo`` and ``hi`` bytes.

    One second per chunk means a ~1 Hz commit rewrites at most one partial chunk, so the
    read-modify-write overhead of committing stays below about 2x.
    """
    row_bytes = max(int(row_bytes), 1)
    target = int(rows_per_second) if rows_per_second else lo // row_bytes
    rows = min(max(target, lo // row_bytes), max(hi // row_bytes, 1))
    return max(rows, 1)


def append_dim(group: str, attrs: Mapping[str, Any] | None = None) -> str | None:
    """The dimension a group grows along (its arrays' first dimension, counted by ``committed``), or None
    for groups written whole. A derived group names its own (attr ``append_dim``, default ``event``)."""
    parts = group.strip("/").split("/")
    if parts[0] in DERIVED_PARENTS and len(parts) > 1:
        return str((attrs or {}).get("append_dim", EVENT))
    if parts[0] == SWEEPS:
        return PAUSE if len(parts) == 3 and parts[2] == "pauses" else None
    return _APPEND_DIMS.get(parts[0])


def results_dir_for(run_path: str | Path) -> Path:
    """Where a run's plots and tables go: ``<run_id>.results/`` beside ``<run_id>.zarr``."""
    p = Path(run_path)
    return p.with_name(p.name.removesuffix(".zarr") + ".results")


def check_name(name: str, what: str) -> str:
    """Refuse names that are not valid single zarr node names (no '/', no leading dot)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"{what} name {name!r} is not valid: use letters, digits, '_', '.', '-' (no '/')")
    return name


# Consolidated metadata (written once, when a run is closed) is not yet part of the
# zarr v3 spec and zarr warns on every use. cryodaq relies on it only as a read
# speed-up of finished runs; the process-wide filter is thread-safe, unlike
# ``warnings.catch_warnings``.
warnings.filterwarnings("ignore", category=ZarrUserWarning, message=".*[Cc]onsolidated metadata.*")
# A sweep run keeps its text log, sweep.log, in the run folder (cryodaq.storage.sweep_store);
# zarr warns about the non-zarr file whenever it lists the root's members.
warnings.filterwarnings("ignore", category=ZarrUserWarning, message=r"Object at sweep\.log is not recognized")
# ``cryodaq recover`` keeps each damaged zarr.json it replaced beside it (cryodaq.storage.rebuild).
warnings.filterwarnings("ignore", category=ZarrUserWarning, message=r"Object at .*zarr\.json\.damaged is not recognized")
