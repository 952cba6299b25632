"""Constants of the run format (version 1): group names, dimensions, column schemas, codecs.

One place for everything the writer and the reader must agree on; docs/run-format.md
is the human-readable form of this module.
"""

from __future__ import annotations

import re
import warnings
from enum import StrEnum
from pathlib import Path

import numpy as np
from zarr.codecs import BloscCodec, ZstdCodec
from zarr.errors import ZarrUserWarning

FORMAT_VERSION = 1
ROOT_ATTR = "cryodaq"  # root attrs key holding the run metadata dict
COMMITTED_ATTR = "committed"  # group attr: rows of the append dimension that readers may trust

STREAM, EVENTS, SPECTRA, HOUSEKEEPING, GAPS = "stream", "events", "spectra", "housekeeping", "gaps"
SWEEPS, SWEEP_DONE = "sweeps", "done"  # sweeps/<name>/ groups and their done mask
REPROCESSED = "reprocessed"  # reprocessed/<label>/ derived groups (cryodaq.storage.derived)
CLOCK = "clock"  # clock/: the timestamps the run's clock model was fitted to (cryodaq.timing.clock)

# Dimension names (zarr v3 ``dimension_names``, which xarray reads).
TIME, CHANNEL, EVENT, SAMPLE, UPDATE, FREQ, GAP = "time", "channel", "event", "sample", "update", "freq", "gap"
ANCHOR = "anchor"

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

T_ATTRS = {"units": "ns", "long_name": "UTC time in integer nanoseconds since the Unix epoch"}


def stream_compressors() -> tuple[BloscCodec]:
    """Fast codec for bulk timestreams: blosc lz4 level 1 with bit shuffle (~1.3-1.5x on ADC/phase noise)."""
    return (BloscCodec(cname="lz4", clevel=1, shuffle="bitshuffle"),)


def column_compressors() -> tuple[ZstdCodec]:
    """Codec for small columns (events, gaps, housekeeping): zstd level 1."""
    return (ZstdCodec(level=1),)


def chunk_rows(row_bytes: int, rows_per_second: float | None = None, *, lo: int = 256 * 1024, hi: int = 8 * 1024**2) -> int:
    """Rows per chunk: about one second of data, kept between ``lo`` and ``hi`` bytes.

    One second per chunk means a ~1 Hz commit rewrites at most one partial chunk, so the
    read-modify-write overhead of committing stays below about 2x.
    """
    row_bytes = max(int(row_bytes), 1)
    target = int(rows_per_second) if rows_per_second else lo // row_bytes
    rows = min(max(target, lo // row_bytes), max(hi // row_bytes, 1))
    return max(rows, 1)


def results_dir_for(run_path: str | Path) -> Path:
    """Where plots and tables made from a run go: ``<run_id>.results/`` beside ``<run_id>.zarr``."""
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
