"""Compare two characterisation reports point by point, as a round robin does.

Results are matched by their ``id`` (section, quantity and conditions, numbers in ``%.9g``:
docs/report-format.md). For each pair: the difference, its expanded uncertainty
√(U_a² + U_b²) and the normalised error E_n = (x_a − x_b)/√(U_a² + U_b²) of ISO 13528
(§9.7) / ISO/IEC 17043: |E_n| ≤ 1 means the two labs agree within their stated uncertainties.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["compare_reports", "load_report"]


def load_report(path: str | Path) -> dict[str, Any]:
    """A report's ``report.json`` (give the report folder or the file); refuses another schema or version."""
    from cryodaq.report.schema import SCHEMA_ID, SCHEMA_VERSION
    from cryodaq.report.writer import ReportError

    p = Path(path)
    p = p / "report.json" if p.is_dir() else p
    if not p.is_file():
        raise ReportError(f"{path}: no report.json (give a folder written by 'cryodaq report')")
    report = json.loads(p.read_text())
    if report.get("schema") != SCHEMA_ID or report.get("schema_version") != SCHEMA_VERSION:
        raise ReportError(f"{p}: schema {report.get('schema')!r} version {report.get('schema_version')!r}; this "
                          f"cryodaq compares {SCHEMA_ID!r} version {SCHEMA_VERSION}")
    return report


def compare_reports(a: str | Path | dict[str, Any], b: str | Path | dict[str, Any]) -> Any:
    """A pandas DataFrame with one row per result id present in both reports (module docstring)."""
    import pandas as pd

    ra = a if isinstance(a, dict) else load_report(a)
    rb = b if isinstance(b, dict) else load_report(b)
    by_id = {r["id"]: r for r in rb["results"]}
    rows = []
    for x in ra["results"]:
        y = by_id.get(x["id"])
        if y is None or x["value"] is None or y["value"] is None:
            continue
        ua, ub = x.get("expanded_uncertainty"), y.get("expanded_uncertainty")
        combined = math.hypot(ua, ub) if ua is not None and ub is not None else math.nan
        diff = x["value"] - y["value"]
        rows.append({"id": x["id"], "unit": x["unit"], "value_a": x["value"], "U_a": ua, "value_b": y["value"],
                     "U_b": ub, "difference": diff, "U_difference": combined,
                     "E_n": diff / combined if combined and math.isfinite(combined) else math.nan,
                     "unit_mismatch": x["unit"] != y["unit"]})
    return pd.DataFrame(rows, columns=["id", "unit", "value_a", "U_a", "value_b", "U_b", "difference", "U_difference",
                                       "E_n", "unit_mismatch"])
