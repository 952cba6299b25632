"""Run summaries for ``cryodaq info RUN``: what a run holds, counted up to its committed lengths."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cryodaq.errors import RunDamagedError
from cryodaq.storage.guarded import GuardedArray
from cryodaq.storage._liveness import parse_iso
from cryodaq.storage.catalog import size_on_disk
from cryodaq.storage.format import (
    EVENTS,
    GAPS,
    HOUSEKEEPING,
    REPROCESSED,
    SPECTRA,
    STREAM,
    SWEEP_DONE,
    SWEEPS,
    RunStatus,
    append_dim,
)
from cryodaq.storage.integrity import Damage
from cryodaq.storage.reader import Run, open_run
from cryodaq.timing.clock import ClockModel

_SCAN_ROWS = 1 << 20  # rows read at a time when counting events per channel


@dataclass
class StoredStream:
    """One stored timestream group of a run: its committed samples, channels, rate and units."""

    name: str
    samples: int
    n_channels: int
    sample_rate_hz: float
    units: str

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate_hz if self.sample_rate_hz else 0.0


@dataclass
class HousekeepingInfo:
    name: str
    samples: int
    unit: str
    last_value: float | None
    last_t_ns: int | None


@dataclass
class RunInfo:
    """Summary of one run; ``render()`` gives the text ``cryodaq info`` prints."""

    path: Path
    run_id: str
    station: str
    kind: str
    status: RunStatus
    stored_status: RunStatus
    interrupted: bool
    end_reason: str
    started: str | None
    ended: str | None
    duration_s: float | None
    size_bytes: int
    streams: dict[str, StoredStream] = field(default_factory=dict)
    n_events: int = 0
    events_per_channel: dict[int, int] = field(default_factory=dict)
    n_gaps: int = 0
    samples_lost_by_cause: dict[str, int] = field(default_factory=dict)
    housekeeping: dict[str, HousekeepingInfo] = field(default_factory=dict)
    n_spectra: int = 0
    sweeps: dict[str, tuple[tuple[int, ...], int]] = field(default_factory=dict)  # name -> (grid shape, points done)
    reprocessed: dict[str, int] = field(default_factory=dict)  # label -> committed rows
    damage: list[Damage] = field(default_factory=list)  # missing / damaged data (empty: intact)
    recovered: list[dict[str, Any]] = field(default_factory=list)  # attrs["recovered"]: what recoveries rebuilt
    clock: str = ""  # time source, its uncertainty and the fitted clock model, in one line
    run_group: str = ""  # the run group and its other runs (a station with several readouts)
    notes: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """Whether every chunk the run's committed lengths cover is there and its metadata readable."""
        return not self.damage

    @property
    def samples_lost(self) -> int:
        return sum(self.samples_lost_by_cause.values())

    def render(self) -> str:
        """Human-readable multi-line summary."""
        status = self.status.value + (" (interrupted)" if self.interrupted else "")
        if self.status is not self.stored_status:
            status += f" (stored as {self.stored_status.value}; writer gone)"
        lines = [
            f"run           {self.run_id}",
            f"path          {self.path}",
            f"station       {self.station}   kind {self.kind}",
            f"status        {status}",
        ]
        if self.end_reason:
            lines.append(f"end reason    {self.end_reason}")
        for entry in self.recovered:
            rebuilt = ", ".join(str(r.get("node", "?")) for r in entry.get("rebuilt", []))
            lines.append(f"recovered     {entry.get('at', '?')}: rebuilt the metadata of {rebuilt or 'nothing'}")
        if self.damage:
            lines.append(f"integrity     DAMAGED: {len(self.damage)} finding(s); lost data are not counted below")
            lines += [f"damaged       {d.describe()}" for d in self.damage]
        dur = f"{self.duration_s:.3f} s" if self.duration_s is not None else "?"
        lines.append(f"time          {self.started} .. {self.ended or '(open)'}   duration {dur}")
        lines.append(f"size on disk  {_human_bytes(self.size_bytes)}")
        if self.clock:
            lines.append(f"clock         {self.clock}")
        if self.run_group:
            lines.append(f"run group     {self.run_group}")
        for s in self.streams.values():
            lines.append(
                f"stream        {s.name}: {s.samples} samples x {s.n_channels} channels at {s.sample_rate_hz:g} Hz "
                f"({s.duration_s:.3f} s) [{s.units}]"
            )
        per_ch = ", ".join(f"{ch}: {n}" for ch, n in list(self.events_per_channel.items())[:16])
        more = ", ..." if len(self.events_per_channel) > 16 else ""
        lines.append(f"events        {self.n_events}" + (f"   per channel {{{per_ch}{more}}}" if per_ch else ""))
        causes = ", ".join(f"{c}: {n}" for c, n in self.samples_lost_by_cause.items())
        lines.append(f"gaps          {self.n_gaps}, {self.samples_lost} samples lost" + (f" ({causes})" if causes else ""))
        for h in self.housekeeping.values():
            last = f"{h.last_value:.6g} {h.unit}" if h.last_value is not None else "(empty)"
            lines.append(f"housekeeping  {h.name} = {last}   ({h.samples} samples)")
        if self.n_spectra:
            lines.append(f"spectra       {self.n_spectra} snapshots")
        for name, (shape, done) in self.sweeps.items():
            total = int(np.prod(shape)) if shape else 1
            grid = " x ".join(str(n) for n in shape)
            lines.append(f"sweep         {name}: {done}/{total} points done (grid {grid})")
        for label, rows in self.reprocessed.items():
            lines.append(f"reprocessed   {label}: {rows} rows")
        lines += [f"note          {n}" for n in self.notes]
        return "\n".join(lines)


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{n} B"


def _keep(n: int, lost: list[tuple[int, int]], start: int, stop: int) -> np.ndarray | slice:
    """Rows start..stop of a column that are data (not in a ``lost`` range), as a mask or all of them."""
    if not any(a < stop and b > start for a, b in lost):
        return slice(None)
    keep = np.ones(stop - start, bool)
    for a, b in lost:
        keep[max(a, start) - start:max(min(b, stop) - start, 0)] = False
    return keep


class _Reader:
    """Reads single arrays of a run for the summary; a chunk that fails to decode is added to ``found``
    (and the value left out) rather than stopping the summary."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.found: list[Damage] = []

    def __call__(self, path: str, sel: Any = slice(None)) -> np.ndarray | None:
        group, _, name = path.rpartition("/")
        arr = GuardedArray(self.run.root[path], run=self.run.path, group=group, name=name,
                           lost=self.run.lost_chunks(group).get(name, ()), along=append_dim(group))
        try:
            return np.asarray(arr[sel])
        except RunDamagedError as exc:
            self.found += [d for d in exc.damage if d not in self.found]
            return None


class _Column:
    """``read`` bound to one array: ``column[a:b]``."""

    def __init__(self, read: _Reader, path: str) -> None:
        self.read, self.path = read, path

    def __getitem__(self, sel: Any) -> np.ndarray | None:
        return self.read(self.path, sel)


def _events_per_channel(run: Run, n: int, read: _Reader) -> dict[int, int]:
    counts: Counter[int] = Counter()
    channel = _Column(read, f"{EVENTS}/channel")
    lost = run.lost_rows(EVENTS, "channel")
    for start in range(0, n, _SCAN_ROWS):
        stop = min(n, start + _SCAN_ROWS)
        rows = channel[start:stop]
        if rows is None:
            continue
        values, number = np.unique(rows[_keep(n, lost, start, stop)], return_counts=True)
        counts.update(dict(zip(values.tolist(), number.tolist(), strict=True)))
    return dict(sorted(counts.items()))


def summarize(run: Run) -> RunInfo:
    """Build the :class:`RunInfo` of an opened run."""
    meta = run.attrs
    started, ended = meta.get("started"), meta.get("ended")
    t0, t1 = parse_iso(started), parse_iso(ended) or parse_iso(meta.get("heartbeat"))
    info = RunInfo(
        path=run.path,
        run_id=run.run_id,
        station=str(meta.get("station", {}).get("name", "")),
        kind=str(meta.get("kind", "")),
        status=run.status,
        stored_status=run.stored_status,
        interrupted=bool(meta.get("interrupted", False)),
        end_reason=str(meta.get("end_reason", "")),
        started=started,
        ended=ended,
        duration_s=(t1 - t0).total_seconds() if t0 and t1 else None,
        size_bytes=size_on_disk(run.path),
    )
    info.clock = ClockModel.from_attrs(meta.get("clock") or {}).describe()
    group = meta.get("run_group")
    if isinstance(group, dict) and len(group.get("runs", [])) > 1:
        others = [r for r in group["runs"] if r != run.run_id]
        info.run_group = f"{group.get('id', '')} (readout {group.get('readout', '?')}; with {', '.join(others)})"
    root = run.root
    read = _Reader(run)
    if STREAM in root:
        grp = root[STREAM]
        n = run.committed(STREAM)
        units = dict(grp.attrs.get("units", {}))
        for name in run.stream_names:
            info.streams[name] = StoredStream(name, n, int(grp.attrs["n_channels"]), float(grp.attrs["sample_rate_hz"]),
                                            str(units.get(name, "")))
    if EVENTS in root:
        info.n_events = run.committed(EVENTS)
        info.events_per_channel = _events_per_channel(run, info.n_events, read)
    if GAPS in root:
        info.n_gaps = n = run.committed(GAPS)
        lost: Counter[str] = Counter()
        if n:
            keep = _keep(n, run.lost_rows(GAPS, "cause") + run.lost_rows(GAPS, "n_samples"), 0, n)
            causes, counts = read(f"{GAPS}/cause", slice(0, n)), read(f"{GAPS}/n_samples", slice(0, n))
            if causes is not None and counts is not None:
                for cause, count in zip(causes[keep].tolist(), counts[keep].tolist(), strict=True):
                    lost[str(cause)] += int(count)
        info.samples_lost_by_cause = dict(lost)
    for name in run.housekeeping_names:
        path = f"{HOUSEKEEPING}/{name}"
        grp = root[path]
        n = run.committed(path)
        last_v = last_t = None
        if n and not any(a <= n - 1 < b for a, b in run.lost_rows(path)):
            value, t = read(f"{path}/value", n - 1), read(f"{path}/t", n - 1)
            if value is not None and t is not None:
                last_v, last_t = float(value), int(t)
        info.housekeeping[name] = HousekeepingInfo(name, n, str(grp.attrs.get("unit", "")), last_v, last_t)
    if SPECTRA in root:
        info.n_spectra = run.committed(SPECTRA)
    if SWEEPS in root:
        for name, grp in root[SWEEPS].groups():
            if SWEEP_DONE in grp and not run.lost_chunks(f"{SWEEPS}/{name}").get(SWEEP_DONE):
                done = read(f"{SWEEPS}/{name}/{SWEEP_DONE}")
                if done is not None:
                    info.sweeps[name] = (tuple(done.shape), int(np.count_nonzero(done)))
    for label in run.reprocessed_labels:
        info.reprocessed[label] = run.committed(f"{REPROCESSED}/{label}")
    info.damage = list(run.damage) + read.found
    info.recovered = [r for r in meta.get("recovered", []) if isinstance(r, dict)]
    return info


def run_info(path: str | Path) -> RunInfo:
    """Summary of the run at ``path`` (read-only; a dead 'running' run shows as crashed). A damaged run is
    summarised too: ``damage`` lists what is lost, and lost data are left out of the counts."""
    return summarize(open_run(path, damaged="mask"))
