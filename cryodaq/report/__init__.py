"""cryodaq.report: ``cryodaq report RUN --output DIR`` — a characterisation report a metrology institute
would sign, in one folder (JSON + CSV + PNG) and a versioned schema (docs/report-format.md).

- :func:`write_report` — results with uncertainties and budgets, distributions over time, the
  procedures' plots, and provenance: station snapshot, instruments (IDN), calibrations (reference,
  date, due), software versions and commit, the run's id and the checksum of every file.
- :func:`compare_reports` — two reports point by point (E_n), for round robins.
"""

from typing import TYPE_CHECKING

from cryodaq._lazy import lazy_exports

if TYPE_CHECKING:  # the public names (explicit re-exports); lazy_exports imports each on first use
    from cryodaq.report.compare import compare_reports as compare_reports, load_report as load_report
    from cryodaq.report.schema import (
        SCHEMA_ID as SCHEMA_ID,
        SCHEMA_VERSION as SCHEMA_VERSION,
        report_schema as report_schema,
        validate_report as validate_report,
    )
    from cryodaq.report.sections import Section as Section, result_id as result_id
    from cryodaq.report.writer import ReportError as ReportError, ReportInfo as ReportInfo, write_report as write_report

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
