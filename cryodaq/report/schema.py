"""The characterisation report's schema, version 1 (docs/report-format.md), as a JSON Schema.

Written next to every report as ``report.schema.json`` and checked against the report before the
report folder is put in place: a report that does not follow its own schema is never written.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEMA_ID", "SCHEMA_VERSION", "report_schema", "validate_report"]

SCHEMA_ID = "cryodaq.characterisation-report"
SCHEMA_VERSION = 1

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_DOF = {"anyOf": [{"type": "number"}, {"type": "null"}, {"const": "inf"}]}

_RESULT = {
    "type": "object",
    "required": ["id", "section", "quantity", "unit", "value", "standard_uncertainty", "expanded_uncertainty",
                 "coverage_factor", "effective_dof", "method", "conditions", "source"],
    "properties": {
        "id": {"type": "string"}, "section": {"type": "string"}, "quantity": {"type": "string"},
        "unit": {"type": "string"}, "value": _NUMBER_OR_NULL, "standard_uncertainty": _NUMBER_OR_NULL,
        "expanded_uncertainty": _NUMBER_OR_NULL, "coverage_factor": _NUMBER_OR_NULL, "effective_dof": _DOF,
        "method": {"type": "string"}, "conditions": {"type": "object"},
        "dominant_input": {"type": ["string", "null"]}, "source": {"type": "string"},
    },
}

_BUDGET_ROW = {
    "type": "object",
    "required": ["result_id", "input", "value", "unit", "standard_uncertainty", "kind", "distribution", "dof",
                 "source", "sensitivity", "contribution", "share"],
    "properties": {
        "result_id": {"type": "string"}, "input": {"type": "string"}, "value": _NUMBER_OR_NULL,
        "unit": {"type": ["string", "null"]}, "standard_uncertainty": _NUMBER_OR_NULL,
        "kind": {"enum": ["A", "B", ""]},
        "distribution": {"enum": ["normal", "rectangular", "triangular", "u-shaped", "student-t", ""]},
        "dof": _DOF, "source": {"type": ["string", "null"]}, "sensitivity": _NUMBER_OR_NULL,
        "contribution": _NUMBER_OR_NULL, "share": {"type": ["number", "null"], "minimum": 0, "maximum": 1.000001},
    },
}

_CALIBRATION = {
    "type": "object",
    "required": ["name", "reference", "date", "due", "value", "uncertainty", "coverage_factor", "distribution",
                 "standard_uncertainty", "unit"],
    "properties": {"name": {"type": "string"}, "reference": {"type": "string", "minLength": 1},
                   "date": {"type": "string", "format": "date"}, "due": {"type": ["string", "null"]}},
}

_INSTRUMENT = {
    "type": "object",
    "required": ["name", "driver", "vendor", "model", "serial", "firmware", "address"],
}


def report_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``report.json``."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SCHEMA_ID}/v{SCHEMA_VERSION}",
        "title": "cryodaq characterisation report",
        "type": "object",
        "required": ["schema", "schema_version", "created", "subject", "run", "software", "provenance", "sections",
                     "results", "budgets", "distributions", "files", "warnings"],
        "properties": {
            "schema": {"const": SCHEMA_ID},
            "schema_version": {"const": SCHEMA_VERSION},
            "created": {"type": "string"},
            "subject": {"type": "object", "required": ["kinds", "station", "description"]},
            "run": {"type": "object", "required": ["run_id", "path", "kind", "status", "started", "ended", "station"]},
            "software": {"type": "object", "required": ["run", "report", "report_commit"]},
            "provenance": {
                "type": "object",
                "required": ["instruments", "calibrations", "station_snapshot", "run_files"],
                "properties": {
                    "instruments": {"type": "array", "items": _INSTRUMENT},
                    "calibrations": {"type": "array", "items": _CALIBRATION},
                    "station_snapshot": {"type": "string"},
                    "run_files": {"type": "object", "required": ["count", "bytes", "manifest_sha256", "manifest"]},
                },
            },
            "sections": {"type": "array", "items": {"type": "object", "required": ["name", "subject", "description",
                                                                                  "files", "warnings"]}},
            "results": {"type": "array", "items": _RESULT},
            "budgets": {"type": "array", "items": _BUDGET_ROW},
            "distributions": {"type": "object", "required": ["statistics", "timetraces", "allan"]},
            "files": {"type": "object"},
            "warnings": {"type": "array", "items": {"type": "string"}},
        },
    }


def validate_report(report: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``report`` does not follow :func:`report_schema`."""
    import jsonschema

    jsonschema.validate(report, report_schema())
