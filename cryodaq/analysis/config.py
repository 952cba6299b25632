"""``analysis.yaml``: what ``cryodaq analyze`` does with a run (docs/analysis.md lists every key).

Validated like station files (:class:`cryodaq.config.ConfigSection`): a wrong type, an unknown key or
an unknown line names the file and the dotted key (:class:`~cryodaq.errors.StationConfigError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryodaq.analysis.calibration import CURVE_KINDS
from cryodaq.analysis.cuts import AUTO_CUT_COLUMNS
from cryodaq.analysis.lines import get_line
from cryodaq.config import ConfigSection, read_yaml_file
from cryodaq.dsp import EventFlag
from cryodaq.errors import StationConfigError

__all__ = ["AnalysisConfig", "CalibrationSettings", "CutSettings", "DriftSettings", "FitSettings", "RangeCut",
           "load_analysis_config", "parse_analysis_config"]

_FLAGS = {f.name: int(f.value) for f in EventFlag}


@dataclass(frozen=True)
class RangeCut:
    """A named cut keeping ``min <= column <= max`` (either side may be open)."""

    name: str
    column: str
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class CutSettings:
    auto: bool = True
    n_sigma: float = 8.0
    auto_columns: tuple[str, ...] = AUTO_CUT_COLUMNS
    flags: tuple[str, ...] = ("PILEUP", "TRUNCATED", "FORCED")
    ranges: tuple[RangeCut, ...] = ()
    states: tuple[str, ...] = ()  # keep only events in these experiment states (empty: all)


@dataclass(frozen=True)
class DriftSettings:
    enabled: bool = True
    indicator: str = "pretrig_mean"
    smooth_sigma: float | None = None  # in feature units; default from the dominant peak's width


@dataclass(frozen=True)
class CalibrationSettings:
    lines: tuple[str | float, ...] = ()  # automatic assignment of the strongest peaks to these lines
    plan: tuple[tuple[float, str | float], ...] = ()  # (approximate feature value, line) anchors
    curve: str = "gain"
    degree: int = 2
    fit_window_ev: float | None = None  # window of the per-line fits that refine the points (default: from lines)
    bin_ev: float | None = None
    states: tuple[str, ...] = ()  # calibrate on events of these experiment states only
    refine: bool = True  # refine each point by a line-shape fit (else the peak's median)

    @property
    def enabled(self) -> bool:
        return bool(self.lines or self.plan)


@dataclass(frozen=True)
class FitSettings:
    line: str | float
    window_ev: tuple[float, float] | None = None
    bin_ev: float | None = None
    tail: bool = False
    per_channel: bool = False


@dataclass(frozen=True)
class AnalysisConfig:
    """A validated analysis config."""

    source: str = "events"  # events | reprocessed/<label>
    feature: str | None = None  # pulse-height column (default: of_amplitude, filt_value, amplitude)
    channels: tuple[int, ...] | None = None
    summaries: bool = True
    experiment_state: str | None = None
    cuts: CutSettings = field(default_factory=CutSettings)
    drift: DriftSettings = field(default_factory=DriftSettings)
    calibration: CalibrationSettings = field(default_factory=CalibrationSettings)
    fits: tuple[FitSettings, ...] = ()
    plots: bool = True
    path: str | None = None
    document: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "document": self.document}


def _line(file: str, key: str, value: Any) -> str | float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        try:
            get_line(value)
        except KeyError as exc:
            raise StationConfigError(file, key, exc.args[0], value) from None
        return value
    raise StationConfigError(file, key, "a line name (e.g. MnKAlpha) or an energy in eV", value)


def _list(file: str, key: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise StationConfigError(file, key, "a list", value)
    return value


def _strings(file: str, key: str, value: Any) -> tuple[str, ...]:
    items = _list(file, key, value)
    if not all(isinstance(v, str) and v for v in items):
        raise StationConfigError(file, key, "a list of names", value)
    return tuple(items)


def _cuts(sec: ConfigSection) -> CutSettings:
    d = CutSettings()
    flags = _strings(sec.file, sec.key("flags"), sec.get("flags", "any", list(d.flags)))
    bad = [f for f in flags if f not in _FLAGS]
    if bad:
        raise StationConfigError(sec.file, sec.key("flags"), f"event flags among {sorted(_FLAGS)}", bad[0])
    ranges = []
    raw = sec.get("ranges", "mapping", {})
    for name, spec in raw.items():
        r = ConfigSection(sec.file, sec.key(f"ranges.{name}"), spec)
        lo, hi = r.get("min", "number", None), r.get("max", "number", None)
        if lo is None and hi is None:
            raise StationConfigError(sec.file, r.key("min"), "min and/or max", None)
        ranges.append(RangeCut(str(name), r.get("column", "str"), lo, hi))
        r.finish()
    cfg = CutSettings(
        auto=sec.get("auto", "bool", d.auto), n_sigma=float(sec.get("n_sigma", "posnum", d.n_sigma)),
        auto_columns=_strings(sec.file, sec.key("auto_columns"), sec.get("auto_columns", "any",
                                                                              list(d.auto_columns))),
        flags=flags, ranges=tuple(ranges), states=_strings(sec.file, sec.key("states"), sec.get("states", "any", [])),
    )
    sec.finish()
    return cfg


def _calibration(sec: ConfigSection) -> CalibrationSettings:
    d = CalibrationSettings()
    lines = tuple(_line(sec.file, sec.key(f"lines[{i}]"), v) for i, v in
                  enumerate(_list(sec.file, sec.key("lines"), sec.get("lines", "any", []))))
    plan = []
    for i, item in enumerate(_list(sec.file, sec.key("plan"), sec.get("plan", "any", []))):
        p = ConfigSection(sec.file, sec.key(f"plan[{i}]"), item)
        plan.append((float(p.get("value", "posnum")), _line(sec.file, p.key("line"), p.get("line", "any"))))
        p.finish()
    if lines and plan:
        raise StationConfigError(sec.file, sec.key("plan"), "either lines (automatic) or plan (given values), not both")
    curve = sec.get("curve", "str", d.curve)
    if curve not in CURVE_KINDS:
        raise StationConfigError(sec.file, sec.key("curve"), f"one of {list(CURVE_KINDS)}", curve)
    cfg = CalibrationSettings(
        lines=lines, plan=tuple(plan), curve=curve, degree=sec.get("degree", "posint", d.degree),
        fit_window_ev=sec.get("fit_window_ev", "posnum", None), bin_ev=sec.get("bin_ev", "posnum", None),
        states=_strings(sec.file, sec.key("states"), sec.get("states", "any", [])),
        refine=sec.get("refine", "bool", d.refine),
    )
    sec.finish()
    return cfg


def _fits(file: str, key: str, value: Any) -> tuple[FitSettings, ...]:
    out = []
    for i, item in enumerate(_list(file, key, value)):
        if isinstance(item, (str, int, float)) and not isinstance(item, bool):
            item = {"line": item}
        f = ConfigSection(file, f"{key}[{i}]", item)
        window = f.get("window_ev", "range", None)
        out.append(FitSettings(
            line=_line(file, f.key("line"), f.get("line", "any")), window_ev=window,
            bin_ev=f.get("bin_ev", "posnum", None), tail=f.get("tail", "bool", False),
            per_channel=f.get("per_channel", "bool", False)))
        f.finish()
    return tuple(out)


def parse_analysis_config(doc: Any, file: str = "(analysis config)") -> AnalysisConfig:
    """Validate an analysis config document (the parsed YAML mapping; None: the defaults)."""
    top = ConfigSection(file, "", doc or {})
    source = top.get("source", "str", "events")
    if source != "events" and not source.startswith("reprocessed/"):
        raise StationConfigError(file, "source", "'events' or 'reprocessed/<label>'", source)
    channels = top.get("channels", "any", None)
    if channels not in (None, "all"):
        if not (isinstance(channels, list) and all(isinstance(c, int) and not isinstance(c, bool) for c in channels)):
            raise StationConfigError(file, "channels", "'all' or a list of channel numbers", channels)
    drift = top.section("drift")
    drift_cfg = DriftSettings(enabled=drift.get("enabled", "bool", True),
                              indicator=drift.get("indicator", "str", "pretrig_mean"),
                              smooth_sigma=drift.get("smooth_sigma", "posnum", None))
    drift.finish()
    cfg = AnalysisConfig(
        source=source, feature=top.get("feature", "str", None),
        channels=None if channels in (None, "all") else tuple(channels),
        summaries=top.get("summaries", "bool", True),
        experiment_state=top.get("experiment_state", "str", None),
        cuts=_cuts(top.section("cuts")), drift=drift_cfg, calibration=_calibration(top.section("calibration")),
        fits=_fits(file, "fits", top.get("fits", "any", [])), plots=top.get("plots", "bool", True),
        path=file, document=dict(doc or {}),
    )
    top.finish()
    return cfg


def load_analysis_config(path: str | Path) -> AnalysisConfig:
    """Read and validate an analysis config file."""
    path = Path(path)
    return parse_analysis_config(read_yaml_file(path, "analysis config YAML file"), str(path))


def as_analysis_config(config: AnalysisConfig | dict[str, Any] | str | Path | None) -> AnalysisConfig:
    """An :class:`AnalysisConfig` from a config object, a document, a YAML path, or None (defaults)."""
    if isinstance(config, AnalysisConfig):
        return config
    if config is None or isinstance(config, dict):
        return parse_analysis_config(config or {})
    return load_analysis_config(config)
