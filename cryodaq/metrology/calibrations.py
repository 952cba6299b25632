"""Calibrations a station file states (``cryodaq.calibrations``): what each input of an uncertainty
budget is worth, and on whose authority.

One entry per calibrated quantity, named by its role in the budgets (the names the procedures
look up are :data:`KNOWN_ROLES`; others are kept for the report's provenance)::

    cryodaq:
      calibrations:
        hot_load_temperature:              # the hot load's thermometer
          instrument: load_switch
          uncertainty: 0.020               # expanded, with its coverage factor
          coverage_factor: 2
          unit: K
          reference: "RX-103A SN 12345, certificate LS-2024-117"
          date: 2024-09-12
          due: 2025-09-12
        input_line_loss:                   # switch -> paramp input
          value: 0.5
          uncertainty: 0.1                 # standard (coverage_factor 1, the default)
          unit: dB
          reference: "VNA thru/line at 4 K, run 20240830T1012Z"
          date: 2024-08-30
        analyzer_linearity:
          value: 0.0
          uncertainty: 0.005               # half-width of a rectangular distribution
          distribution: rectangular
          unit: dB/dB
          reference: "Keysight N9030B data sheet, display scale fidelity"
          date: 2023-01-01
        noise_source_enr:
          table: [[4.0e+9, 15.1], [6.0e+9, 15.3]]   # frequency (Hz), ENR (dB)
          uncertainty: 0.1
          unit: dB
          parameters: {t_off_k: 296.0}
          reference: "346C SN MY1234, certificate 2024-55"
          date: 2024-05-02

``uncertainty`` means a standard uncertainty times ``coverage_factor`` (default 1) for a
``normal`` entry, and the half-width a of a ``rectangular`` (u = a/√3), ``triangular``
(a/√6) or ``u-shaped`` (a/√2) one. ``reference`` and ``date`` (ISO) are required: a
budget that cites nothing cannot be signed. Every key is checked; an unknown one, a
missing reference, a date that is not a date, a ``due`` date before ``date`` are errors
naming the file and the key.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cryodaq.errors import StationConfigError
from cryodaq.metrology.gum import DISTRIBUTIONS, Input

__all__ = ["KNOWN_ROLES", "Calibration", "parse_calibrations"]

#: the roles the shipped budgets look up, and what each calibrates
KNOWN_ROLES = {
    "hot_load_temperature": "the hot load's thermometer (K)",
    "cold_load_temperature": "the cold load's thermometer (K)",
    "input_line_loss": "loss of the line from the load switch to the amplifier input (dB)",
    "input_line_temperature": "physical temperature of that line (K)",
    "source_mismatch": "hot/cold source mismatch: ratio of the noise delivered in the hot and the cold state",
    "analyzer_linearity": "spectrum analyzer scale fidelity: error per dB of a measured power ratio (dB/dB)",
    "vna_linearity": "VNA receiver dynamic accuracy: error per dB of a measured S21 ratio (dB/dB)",
    "noise_source_enr": "excess noise ratio of a calibrated noise source vs frequency (dB)",
}

_KEYS = ("value", "uncertainty", "coverage_factor", "distribution", "dof", "unit", "table", "parameters",
         "instrument", "reference", "date", "due", "notes")


@dataclass(frozen=True)
class Calibration:
    """One calibrated quantity of a station (see the module docstring)."""

    name: str
    reference: str
    date: dt.date
    value: float | None = None
    uncertainty: float = 0.0
    coverage_factor: float = 1.0
    distribution: str = "normal"
    dof: float = math.inf
    unit: str = ""
    table: tuple[tuple[float, float], ...] = ()
    parameters: Mapping[str, float] = field(default_factory=dict)
    instrument: str | None = None
    due: dt.date | None = None
    notes: str = ""

    @property
    def standard_uncertainty(self) -> float:
        """u: the stated uncertainty turned into a standard uncertainty (module docstring)."""
        divisor = {"rectangular": math.sqrt(3.0), "triangular": math.sqrt(6.0), "u-shaped": math.sqrt(2.0)}
        if self.distribution in divisor:
            return self.uncertainty / divisor[self.distribution]
        return self.uncertainty / self.coverage_factor

    @property
    def source(self) -> str:
        """"<reference> (<date>)": what a budget row cites."""
        return f"{self.reference} ({self.date.isoformat()})"

    def expired(self, on: dt.date | None = None) -> bool:
        """Whether the calibration was due before ``on`` (default: today)."""
        return self.due is not None and self.due < (on or dt.date.today())

    def value_at(self, x: float) -> float:
        """The table's value at ``x``, linearly interpolated (the ENR at a frequency); ``value`` without a table."""
        if self.table:
            xs, ys = np.array(self.table, dtype=float).T
            if not xs[0] <= x <= xs[-1]:
                raise ValueError(f"calibration {self.name!r} ({self.reference}): {x:g} is outside its table "
                                 f"{xs[0]:g}..{xs[-1]:g}; extend the calibration, do not extrapolate it")
            return float(np.interp(x, xs, ys))
        if self.value is None:
            raise ValueError(f"calibration {self.name!r} ({self.reference}) states no value")
        return float(self.value)

    def as_input(self, name: str, value: float | None = None, *, description: str = "") -> Input:
        """This calibration as a budget input named ``name`` (estimate ``value``, default the stated one)."""
        v = self.value if value is None else value
        if v is None:
            raise ValueError(f"calibration {self.name!r}: a value is needed for budget input {name!r}")
        dist = self.distribution if self.distribution in DISTRIBUTIONS else "normal"
        return Input(name, float(v), self.standard_uncertainty, dof=self.dof, kind="B", distribution=dist,
                     unit=self.unit, source=self.source, description=description or KNOWN_ROLES.get(self.name, ""))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (dates as ISO strings): what the report's provenance lists."""
        return {"name": self.name, "reference": self.reference, "date": self.date.isoformat(),
                "due": self.due.isoformat() if self.due else None, "instrument": self.instrument,
                "value": self.value, "uncertainty": self.uncertainty, "coverage_factor": self.coverage_factor,
                "distribution": self.distribution, "standard_uncertainty": self.standard_uncertainty,
                "dof": "inf" if math.isinf(self.dof) else self.dof, "unit": self.unit,
                "table": [list(p) for p in self.table], "parameters": dict(self.parameters), "notes": self.notes,
                "role": KNOWN_ROLES.get(self.name, "")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """The inverse of :meth:`as_dict` (a calibration stored with a run)."""
        dof = data.get("dof", "inf")
        return cls(name=str(data["name"]), reference=str(data["reference"]),
                   date=dt.date.fromisoformat(str(data["date"])), value=data.get("value"),
                   uncertainty=float(data.get("uncertainty", 0.0)), coverage_factor=float(data.get("coverage_factor", 1)),
                   distribution=str(data.get("distribution", "normal")),
                   dof=math.inf if dof in ("inf", None) else float(dof), unit=str(data.get("unit", "")),
                   table=tuple((float(a), float(b)) for a, b in data.get("table", ())),
                   parameters={k: float(v) for k, v in (data.get("parameters") or {}).items()},
                   instrument=data.get("instrument"),
                   due=dt.date.fromisoformat(data["due"]) if data.get("due") else None, notes=str(data.get("notes", "")))


def _number(file: str, key: str, value: Any, *, positive: bool = False, nonneg: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and positive:
        ok = value > 0
    if ok and nonneg:
        ok = value >= 0
    if not ok:
        what = "a positive number" if positive else "a number >= 0" if nonneg else "a number"
        hint = " (YAML reads 1e9 as text: write 1.0e+9)" if isinstance(value, str) else ""
        raise StationConfigError(file, key, what + hint, value)
    return float(value)


def _date(file: str, key: str, value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise StationConfigError(file, key, "an ISO date YYYY-MM-DD", value) from None


def _entry(file: str, path: str, name: str, data: Any, instruments: Mapping[str, Any]) -> Calibration:
    if not isinstance(data, Mapping):
        raise StationConfigError(file, path, "a mapping with at least 'reference' and 'date'", data)
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise StationConfigError(file, f"{path}.{unknown[0]}", f"one of the known keys {sorted(_KEYS)}", "unknown key")
    for required in ("reference", "date"):
        if required not in data:
            raise StationConfigError(file, f"{path}.{required}",
                                     "a calibration reference (certificate, data sheet, run) and its date "
                                     "(the key is missing)")
    reference = data["reference"]
    if not isinstance(reference, str) or not reference.strip():
        raise StationConfigError(file, f"{path}.reference", "a non-empty text", reference)
    date = _date(file, f"{path}.date", data["date"])
    due = _date(file, f"{path}.due", data["due"]) if data.get("due") is not None else None
    if due is not None and due < date:
        raise StationConfigError(file, f"{path}.due", f"a date on or after the calibration date {date}", str(due))
    distribution = data.get("distribution", "normal")
    allowed = ("normal", "rectangular", "triangular", "u-shaped")
    if distribution not in allowed:
        raise StationConfigError(file, f"{path}.distribution", f"one of {', '.join(allowed)}", distribution)
    value = data.get("value")
    if value is not None:
        value = _number(file, f"{path}.value", value)
    uncertainty = _number(file, f"{path}.uncertainty", data.get("uncertainty", 0.0), nonneg=True)
    k = _number(file, f"{path}.coverage_factor", data.get("coverage_factor", 1.0), positive=True)
    if "coverage_factor" in data and distribution != "normal":
        raise StationConfigError(file, f"{path}.coverage_factor",
                                 f"no coverage factor for a {distribution} distribution (its uncertainty is the "
                                 "half-width)", data["coverage_factor"])
    dof = data.get("dof", math.inf)
    dof = math.inf if dof in (math.inf, "inf") else _number(file, f"{path}.dof", dof, positive=True)
    table_raw = data.get("table", [])
    if not isinstance(table_raw, list) or not all(isinstance(p, list) and len(p) == 2 for p in table_raw):
        raise StationConfigError(file, f"{path}.table", "a list of [x, value] pairs, x increasing", table_raw)
    table = tuple((_number(file, f"{path}.table[{i}]", p[0]), _number(file, f"{path}.table[{i}]", p[1]))
                  for i, p in enumerate(table_raw))
    if any(b[0] <= a[0] for a, b in zip(table, table[1:])):
        raise StationConfigError(file, f"{path}.table", "x values in increasing order", table_raw)
    params_raw = data.get("parameters", {}) or {}
    if not isinstance(params_raw, Mapping):
        raise StationConfigError(file, f"{path}.parameters", "a mapping of names to numbers", params_raw)
    parameters = {str(k2): _number(file, f"{path}.parameters.{k2}", v) for k2, v in params_raw.items()}
    instrument = data.get("instrument")
    if instrument is not None and instrument not in instruments:
        raise StationConfigError(file, f"{path}.instrument", f"one of the instruments {sorted(instruments)}",
                                 instrument)
    unit = data.get("unit", "")
    if not isinstance(unit, str):
        raise StationConfigError(file, f"{path}.unit", "a text", unit)
    notes = data.get("notes", "")
    return Calibration(name=name, reference=reference.strip(), date=date, value=value, uncertainty=uncertainty,
                       coverage_factor=k, distribution=distribution, dof=dof, unit=unit, table=table,
                       parameters=parameters, instrument=instrument, due=due, notes=str(notes))


def parse_calibrations(file: str, data: Any, instruments: Mapping[str, Any],
                       path: str = "cryodaq.calibrations") -> dict[str, Calibration]:
    """The ``cryodaq.calibrations`` section of a station file, checked (module docstring)."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise StationConfigError(file, path, "a mapping of calibration names to entries", data)
    out = {}
    for name, entry in data.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise StationConfigError(file, f"{path}.{name}", "a calibration name made of letters, digits and _", name)
        out[name] = _entry(file, f"{path}.{name}", name, entry, instruments)
    return out
