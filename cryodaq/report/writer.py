"""``cryodaq report RUN --output DIR``: a self-contained characterisation report of a run, in one folder.

The folder (docs/report-format.md; schema :mod:`cryodaq.report.schema`, version 1)::

    report.json            everything below, in one document (the schema's)
    report.schema.json     the JSON Schema report.json follows
    results.csv            one row per result: value, standard and expanded uncertainty, k, ν_eff, conditions
    budgets.csv            one row per budget line: the input, its uncertainty and source, c_i, u_i(y), share
    statistics.csv         one row per figure measured again and again: mean, std, Allan deviation, drifts
    timetraces.csv         every repeated figure over time (with the fridge temperature)
    allan.csv              overlapping Allan deviation per figure and τ
    calibrations.csv       the calibrations used: reference, date, due date, stated uncertainty
    instruments.csv        driver, vendor, model, serial, firmware, address of every instrument
    run_files.csv          SHA-256 and size of every file of the run
    station_snapshot.json  the qcodes station snapshot stored with the run
    procedures/            the procedures' own tables and plots (PNG), made by their analyze_*_run

It is built in a hidden sibling folder and renamed into place when complete, so a folder named
like a report is a whole one; an existing, non-empty ``--output`` is refused unless ``force``.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryodaq.errors import CryodaqError
from cryodaq.report.provenance import (
    calibration_warnings,
    calibrations_of_run,
    file_checksums,
    instruments_of_snapshot,
    manifest_digest,
    run_provenance,
    software_provenance,
)
from cryodaq.report.schema import SCHEMA_ID, SCHEMA_VERSION, report_schema, validate_report
from cryodaq.report.sections import Section, jsonable_rows, sections_for_run

__all__ = ["ReportError", "ReportInfo", "write_report"]

log = logging.getLogger(__name__)


class ReportError(CryodaqError, ValueError):
    """A report cannot be written (no such run, an output folder in the way): names the path and the problem."""


@dataclass
class ReportInfo:
    """What :func:`write_report` wrote."""

    path: Path
    report: dict[str, Any]
    n_results: int
    n_budget_rows: int
    warnings: list[str]


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN and infinities become null (JSON has neither); numpy scalars plain numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (ValueError, AttributeError):
            return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _csv(path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> Path:
    import pandas as pd

    frame = pd.DataFrame(jsonable_rows(rows), columns=columns) if rows or columns else pd.DataFrame()
    frame.to_csv(path, index=False)
    return path


def _subject(sections: list[Section], attrs: dict[str, Any]) -> dict[str, Any]:
    config = attrs.get("config") or {}
    return {"kinds": sorted({s.subject for s in sections}), "station": (attrs.get("station") or {}).get("name"),
            "description": f"station file {config.get('station_file')}" if config.get("station_file") else ""}


def write_report(run_path: str | Path, output: str | Path, *, force: bool = False) -> ReportInfo:
    """Write the report of the run at ``run_path`` into the folder ``output`` (module docstring)."""
    from cryodaq.storage import open_run
    from cryodaq.storage.format import RunStatus

    run_path, output = Path(run_path), Path(output)
    if not (run_path / "zarr.json").is_file():
        raise ReportError(f"{run_path}: not a cryodaq run (no zarr.json); give the <run>.zarr folder")
    if output.exists() and (not output.is_dir() or any(output.iterdir())) and not force:
        raise ReportError(f"{output}: exists and is not empty; choose another --output or give --force to replace it")
    run = open_run(run_path)
    attrs = run.attrs
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{secrets.token_hex(3)}.partial")
    try:
        tmp.mkdir()
        info = _build(run_path, run, attrs, tmp, RunStatus)
        if output.exists():
            shutil.rmtree(output) if output.is_dir() else output.unlink()
        tmp.rename(output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    info.path = output
    log.info("report of %s written to %s: %d results, %d budget lines", run_path, output, info.n_results,
             info.n_budget_rows)
    return info


def _build(run_path: Path, run: Any, attrs: dict[str, Any], out: Path, run_status: Any) -> ReportInfo:
    from cryodaq.storage.sweep_store import read_sweep

    warnings: list[str] = []
    status = run.status
    if status is not run_status.COMPLETE:
        warnings.append(f"the run is {status.value}" + (f": {attrs.get('end_reason', '').strip().splitlines()[-1]}"
                                                      if str(attrs.get("end_reason", "")).strip() else ""))
    elif attrs.get("interrupted"):
        warnings.append("the run was interrupted by the operator")
    sections = sections_for_run(run_path, out / "procedures")
    sweep_attrs = [read_sweep(run_path, n).attrs for n in (set(run.root["sweeps"].group_keys()) if "sweeps" in run.root
                                                            else set())]
    calibrations = calibrations_of_run(attrs, sweep_attrs)
    warnings += calibration_warnings(calibrations, attrs.get("started"))
    for sec in sections:
        warnings += [f"{sec.name}: {w}" for w in sec.warnings]
    if not sections:
        warnings.append("the run holds no measurement a report section knows (paramp, resonators, repeats, TWPA, "
                        "tracking)")

    snapshot = (attrs.get("station") or {}).get("snapshot") or {}
    (out / "station_snapshot.json").write_text(json.dumps(_clean(snapshot), indent=1, sort_keys=True))
    files = file_checksums(run_path)
    instruments = instruments_of_snapshot(snapshot)
    results = [r for s in sections for r in s.results]
    budgets = [b for s in sections for b in s.budgets]
    statistics = [r for s in sections for r in s.statistics]
    timetraces = [r for s in sections for r in s.timetraces]
    allan = [r for s in sections for r in s.allan]
    tables = {
        "results": _csv(out / "results.csv", results, list(results[0]) if results else ["id"]),
        "budgets": _csv(out / "budgets.csv", budgets, list(budgets[0]) if budgets else ["result_id"]),
        "statistics": _csv(out / "statistics.csv", statistics, list(statistics[0]) if statistics else ["figure"]),
        "timetraces": _csv(out / "timetraces.csv", timetraces, list(timetraces[0]) if timetraces else ["figure"]),
        "allan": _csv(out / "allan.csv", allan, list(allan[0]) if allan else ["figure"]),
        "calibrations": _csv(out / "calibrations.csv", [c.as_dict() for c in calibrations],
                             ["name", "reference", "date", "due", "instrument", "value", "uncertainty",
                              "coverage_factor", "distribution", "standard_uncertainty", "dof", "unit", "table",
                              "parameters", "notes", "role"]),
        "instruments": _csv(out / "instruments.csv", instruments,
                            ["name", "driver", "vendor", "model", "serial", "firmware", "address"]),
        "run_files": _csv(out / "run_files.csv", files, ["path", "bytes", "sha256"]),
    }
    (out / "report.schema.json").write_text(json.dumps(report_schema(), indent=1))
    report = {
        "schema": SCHEMA_ID, "schema_version": SCHEMA_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "subject": _subject(sections, attrs),
        "run": run_provenance(run_path, attrs),
        "software": software_provenance(attrs),
        "provenance": {"instruments": instruments, "calibrations": [c.as_dict() for c in calibrations],
                       "station_snapshot": "station_snapshot.json",
                       "run_files": {"count": len(files), "bytes": int(sum(f["bytes"] for f in files)),
                                     "manifest_sha256": manifest_digest(files), "manifest": "run_files.csv"}},
        "sections": [{"name": s.name, "subject": s.subject, "description": s.description,
                      "files": sorted(p.relative_to(out).as_posix() for p in s.files if p.exists()),
                      "warnings": s.warnings} for s in sections],
        "results": results, "budgets": budgets,
        "distributions": {"statistics": statistics, "timetraces": timetraces, "allan": allan},
        "files": {name: path.name for name, path in tables.items()} | {"schema": "report.schema.json",
                                                                       "station_snapshot": "station_snapshot.json"},
        "warnings": warnings,
    }
    report = _clean(report)
    validate_report(report)
    (out / "report.json").write_text(json.dumps(report, indent=1, allow_nan=False))
    return ReportInfo(out, report, len(results), len(budgets), warnings)
