"""Where a report's numbers come from: the run, the software, the instruments, the calibrations, the files.

Everything is read from the run itself (its root attrs and its sweeps), so a report made a year
later from a copied run says the same; the checksums let a reader check the copy.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryodaq.metrology.calibrations import Calibration
from cryodaq.provenance import software_commit, software_versions

__all__ = ["calibrations_of_run", "file_checksums", "instruments_of_snapshot", "run_provenance",
           "software_provenance"]

_CHUNK = 1 << 20


def file_checksums(root: Path, skip: Iterable[str] = ()) -> list[dict[str, Any]]:
    """SHA-256 and size of every file under ``root`` (paths relative to it, '/' separated, sorted);
    names in ``skip`` (e.g. the heartbeat-carrying ``zarr.json`` of a running run) are listed without a digest."""
    skip = set(skip)
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        row: dict[str, Any] = {"path": rel, "bytes": path.stat().st_size, "sha256": None}
        if rel not in skip:
            digest = hashlib.sha256()
            with path.open("rb") as fh:
                while block := fh.read(_CHUNK):
                    digest.update(block)
            row["sha256"] = digest.hexdigest()
        out.append(row)
    return out


def manifest_digest(files: list[dict[str, Any]]) -> str:
    """One SHA-256 over the manifest lines ``<sha256>  <path>`` (as ``sha256sum`` prints them): the run's fingerprint."""
    text = "".join(f"{f['sha256'] or '-'}  {f['path']}\n" for f in files)
    return hashlib.sha256(text.encode()).hexdigest()


def instruments_of_snapshot(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per instrument of a qcodes station snapshot: name, driver class, vendor, model, serial and
    firmware (its ``IDN``), address."""
    rows = []
    for name, inst in sorted((snapshot.get("instruments") or {}).items()):
        idn = ((inst.get("parameters") or {}).get("IDN") or {}).get("value") or {}
        rows.append({"name": name, "driver": inst.get("__class__", ""), "vendor": idn.get("vendor"),
                     "model": idn.get("model"), "serial": idn.get("serial"), "firmware": idn.get("firmware"),
                     "address": inst.get("address")})
    return rows


def calibrations_of_run(attrs: dict[str, Any], sweep_attrs: Iterable[dict[str, Any]] = ()) -> list[Calibration]:
    """The calibrations the run was taken with: the station's (run config) and those stored with its
    sweeps (a sweep stores the ones its budgets used), by name, the run's first."""
    found: dict[str, Calibration] = {}
    for source in [(attrs.get("config") or {}).get("calibrations") or {}, *[
            a.get("calibrations") or {} for a in sweep_attrs]]:
        for name, data in source.items():
            found.setdefault(name, Calibration.from_dict(data))
    return [found[n] for n in sorted(found)]


def _date_of(iso: str | None) -> dt.date | None:
    if not iso:
        return None
    try:
        return dt.datetime.fromisoformat(str(iso).replace("Z", "+00:00")).date()
    except ValueError:
        return None


def calibration_warnings(calibrations: list[Calibration], started: str | None) -> list[str]:
    """A line for each calibration that was past its due date when the run started."""
    day = _date_of(started)
    return [f"calibration {c.name!r} ({c.reference}) was due on {c.due.isoformat()}, before the run started "
            f"({day.isoformat()})" for c in calibrations if day is not None and c.expired(day)]


def run_provenance(path: Path, attrs: dict[str, Any]) -> dict[str, Any]:
    """The run's identity and how it was taken (its root attrs, docs/run-format.md)."""
    config = attrs.get("config") or {}
    script = config.get("script") or {}
    end_reason = str(attrs.get("end_reason") or "")
    return {"run_id": attrs.get("run_id"), "path": str(path), "kind": attrs.get("kind"),
            "format_version": attrs.get("format_version"), "status": attrs.get("status"),
            "interrupted": bool(attrs.get("interrupted")),
            "end_reason": end_reason.strip().splitlines()[-1] if end_reason.strip() else "",
            "started": attrs.get("started"), "ended": attrs.get("ended"),
            "station": (attrs.get("station") or {}).get("name"), "station_file": config.get("station_file"),
            "simulated": config.get("simulated"), "script": {"path": script.get("path"), "sha256": script.get("sha256")},
            "options": config.get("options") or {}, "resumes": attrs.get("resumes") or [], "host": attrs.get("host"),
            "clock": attrs.get("clock"), "tags": attrs.get("tags") or []}


def software_provenance(attrs: dict[str, Any]) -> dict[str, Any]:
    """What made the data (stored with the run) and what made the report (now)."""
    return {"run": attrs.get("software") or {}, "report": software_versions(), "report_commit": software_commit()}
