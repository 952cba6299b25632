"""DASTARD's experiment-state file: labelled time ranges (which source or target was in the beam).

``<date>_run<NNNN>_experiment_state.txt`` (DASTARD ``writing_state.go``) has one header line
``# unix time in nanoseconds, state label``, then a line ``<int64 ns since 1970 UTC>, <label>`` per
label change (``START`` when writing began, ``STOP`` when it ended). A state lasts from its own
time (inclusive) to the next line's (exclusive); the last one to the end of the data; a record
earlier than the first line has no state. Labels may repeat (the same source used twice).

Parsing follows NIST mass/mass2 (``experiment_state.py``) with two tolerances: a label is split
off at the first comma only, and a last line without its newline (DASTARD is still writing) is
left out. :data:`AUTO_EXCLUDED` are the bookkeeping labels mass drops when any other label exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryodaq.errors import ImportFormatError

__all__ = ["AUTO_EXCLUDED", "ExperimentStates", "find_experiment_state_file", "read_experiment_state"]

AUTO_EXCLUDED = ("START", "STOP", "END", "IGNORE")


@dataclass(frozen=True)
class ExperimentStates:
    """State changes in time order: ``t_ns`` (int64 ns UTC) and ``labels``."""

    t_ns: np.ndarray
    labels: tuple[str, ...]
    source: str = ""

    def index_at(self, t_ns: Any) -> np.ndarray:
        """For each time, the index of the state it falls in (−1 before the first state)."""
        return np.searchsorted(self.t_ns, np.asarray(t_ns, dtype=np.int64), side="right").astype(np.int32) - 1

    def label_at(self, t_ns: Any) -> np.ndarray:
        """The state label at each time (``""`` before the first state)."""
        idx = self.index_at(t_ns)
        names = np.asarray(list(self.labels) + [""], dtype=object)
        return names[np.where(idx >= 0, idx, len(self.labels))].astype(str)

    def analysis_labels(self) -> list[str]:
        """Distinct labels, without START/STOP/END/IGNORE when any other label exists (mass's "auto")."""
        distinct = list(dict.fromkeys(self.labels))
        real = [x for x in distinct if x not in AUTO_EXCLUDED]
        return real if real else [x for x in distinct if x != "IGNORE"]


def read_experiment_state(path: str | Path) -> ExperimentStates:
    """Parse an experiment-state file; a malformed line raises :class:`ImportFormatError` naming file and line."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ImportFormatError(f"experiment-state file {path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ImportFormatError(f"experiment-state file {path}: not UTF-8 text ({exc})") from None
    lines = text.split("\n")
    complete = lines[:-1]  # the piece after the last newline is still being written (or empty)
    if not complete or not complete[0].startswith("#"):
        raise ImportFormatError(f"experiment-state file {path}: expected a first line "
                                "'# unix time in nanoseconds, state label'")
    times: list[int] = []
    labels: list[str] = []
    for number, line in enumerate(complete[1:], start=2):
        if not line.strip() or line.startswith("#"):
            continue
        stamp, sep, label = line.partition(",")
        try:
            t = int(stamp.strip())
        except ValueError:
            t = None
        if not sep or t is None or not label.strip():
            raise ImportFormatError(f"experiment-state file {path}, line {number}: expected '<unix ns>, <label>', "
                                    f"got {line!r}")
        times.append(t)
        labels.append(label.strip())
    t_ns = np.asarray(times, dtype=np.int64)
    if np.any(np.diff(t_ns) < 0):
        k = int(np.flatnonzero(np.diff(t_ns) < 0)[0])
        raise ImportFormatError(f"experiment-state file {path}: times go backwards after state {labels[k]!r}")
    return ExperimentStates(t_ns, tuple(labels), str(path))


def find_experiment_state_file(data_file: str | Path) -> Path | None:
    """DASTARD's state file beside ``data_file`` (``<date>_run<NNNN>_chanX.off`` → ``..._experiment_state.txt``)."""
    p = Path(data_file)
    stem, sep, _ = p.stem.rpartition("_")
    if not sep:
        return None
    candidate = p.with_name(f"{stem}_experiment_state.txt")
    return candidate if candidate.is_file() else None
