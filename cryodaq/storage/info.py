"""Run summaries for ``cryodaq info RUN``: what a run holds, counted up to its committed lengths."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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
)
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
    clock: str = ""  # time source, its uncertainty and the fitted clock model, in one line
    run_group: str = ""  # the run group and its other runs (a station with several readouts)
    notes: list[str] = field(default_factory=list)

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


def _events_per_channel(run: Run, n: int) -> dict[int, int]:
    counts: Counter[int] = Counter()
    channel = run.root[f"{EVENTS}/channel"]
    for start in range(0, n, _SCAN_ROWS):
        values, number = np.unique(channel[start : min(n, start + _SCAN_ROWS)], return_counts=True)
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
    if STREAM in root:
        grp = root[STREAM]
        n = run.committed(STREAM)
        units = dict(grp.attrs.get("units", {}))
        for name in run.stream_names:
            info.streams[name] = StoredStream(name, n, int(grp.attrs["n_channels"]), float(grp.attrs["sample_rate_hz"]),
                                            str(units.get(name, "")))
    if EVENTS in root:
        info.n_events = run.committed(EVENTS)
        info.events_per_channel = _events_per_channel(run, info.n_events)
    if GAPS in root:
        info.n_gaps = n = run.committed(GAPS)
        lost: Counter[str] = Counter()
        if n:
            causes, counts = root[f"{GAPS}/cause"][:n], root[f"{GAPS}/n_samples"][:n]
            for cause, count in zip(causes.tolist(), counts.tolist(), strict=True):
                lost[str(cause)] += int(count)
        info.samples_lost_by_cause = dict(lost)
    for name in run.housekeeping_names:
        grp = root[f"{HOUSEKEEPING}/{name}"]
        n = run.committed(f"{HOUSEKEEPING}/{name}")
        last_v = float(grp["value"][n - 1]) if n else None
        last_t = int(grp["t"][n - 1]) if n else None
        info.housekeeping[name] = HousekeepingInfo(name, n, str(grp.attrs.get("unit", "")), last_v, last_t)
    if SPECTRA in root:
        info.n_spectra = run.committed(SPECTRA)
    if SWEEPS in root:
        for name, grp in root[SWEEPS].groups():
            if SWEEP_DONE in grp:
                done = grp[SWEEP_DONE][...]
                info.sweeps[name] = (tuple(done.shape), int(np.count_nonzero(done)))
    for label in run.reprocessed_labels:
        info.reprocessed[label] = run.committed(f"{REPROCESSED}/{label}")
    return info


def run_info(path: str | Path) -> RunInfo:
    """Summary of the run at ``path`` (read-only; a dead 'running' run shows as crashed)."""
    return summarize(open_run(path))
