"""Reprocessing config files (YAML): which settings to re-run a stored run's pulse finding with.

The ``trigger:`` section has the keys of a station file's ``cryodaq.pipeline.trigger`` and is
validated by the same code (:func:`cryodaq.station.config.parse_trigger`); keys left out keep
the run's own acquisition settings, so an empty file reproduces the acquisition. Every error
names the file and the key (:class:`~cryodaq.errors.StationConfigError`). See
docs/reprocessing.md for the keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cryodaq.errors import StationConfigError
from cryodaq.station.config import (
    ConfigSection,
    TriggerConfig,
    parse_trigger,
    read_yaml_file,
)

_ALIGN = ("none", "peak", "rise")
_BACKENDS = ("numpy", "cupy", "auto")


@dataclass(frozen=True)
class OptimalFilterConfig:
    """The optimal-filter stage: template from the events' records, noise PSD from pulse-free records."""

    min_pulses: int = 20  # clean pulses a channel needs for its own template
    noise_records: int = 200  # pulse-free records per channel for its noise PSD
    noise_period_s: float | None = None  # AutoTrigger period (default: one record length)
    max_delay_s: float | None = None  # arrival-time search half-width (default: half the presamples)
    align: str = "none"  # build_template alignment: none | peak | rise
    template_window: float = 0.06  # template from pulses within this fraction of the dominant peak (0: all)
    energy_lines_ev: tuple[float, ...] = ()  # calibration lines, e.g. (1.55,): the dominant peaks in eV
    noise_run: str | None = None  # records source: a run with noise records (its FORCED ones if any, else all)

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["energy_lines_ev"] = list(self.energy_lines_ev)
        return out


@dataclass(frozen=True)
class ReprocessConfig:
    """A validated reprocessing config. ``trigger_overrides``: only the trigger keys the file gives."""

    trigger_overrides: dict[str, Any] = field(default_factory=dict)
    threshold: float | tuple[float, ...] | None = None  # stream units; replaces threshold_sigma x sigma
    stream: str | None = None  # stream variable (default: the one acquisition triggered on)
    source: str | None = None  # "stream" (re-trigger) or "records" (filter the stored events); default: stream if stored
    chunk_s: float = 10.0  # seconds of stream per parallel task
    noise_estimate_s: float = 0.25  # for runs that stored no thresholds: sigma from this much stream
    backend: str = "numpy"
    optimal_filter: OptimalFilterConfig | None = None
    path: str | None = None  # the file it came from

    def trigger(self, acquisition: TriggerConfig) -> TriggerConfig:
        """The effective trigger: the run's acquisition settings with this config's keys applied."""
        trig = replace(acquisition, **self.trigger_overrides)
        if trig.presamples_s >= trig.record_s:
            key = "presamples_s" if "presamples_s" in self.trigger_overrides else "record_s"
            raise StationConfigError(
                self.path or "(reprocess config)", f"trigger.{key}",
                f"presamples_s ({trig.presamples_s}) less than record_s ({trig.record_s}) with the run's own settings",
                self.trigger_overrides.get(key),
            )
        return trig

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored with the results)."""
        return {
            "path": self.path,
            "trigger": dict(self.trigger_overrides),
            "threshold": list(self.threshold) if isinstance(self.threshold, tuple) else self.threshold,
            "stream": self.stream,
            "source": self.source,
            "chunk_s": self.chunk_s,
            "noise_estimate_s": self.noise_estimate_s,
            "backend": self.backend,
            "optimal_filter": None if self.optimal_filter is None else self.optimal_filter.as_dict(),
        }


def _number_list(file: str, key: str, value: Any, what: str) -> tuple[float, ...]:
    ok = isinstance(value, list) and value and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value)
    if not ok:
        raise StationConfigError(file, key, what, value)
    return tuple(float(v) for v in value)


def _threshold(file: str, value: Any) -> float | tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return _number_list(file, "threshold", value, "a positive number or a list of them (one per channel), in stream units")


def parse_reprocess_config(doc: Any, file: str = "(reprocess config)") -> ReprocessConfig:
    """Validate a reprocessing config document (the parsed YAML mapping)."""
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise StationConfigError(file, "(top level)", "a mapping with keys such as 'trigger' and 'optimal_filter'", doc)
    doc = dict(doc)
    threshold = _threshold(file, doc.pop("threshold", None))
    of_doc = doc.pop("optimal_filter", None)
    top = ConfigSection(file, "", doc)
    trig = top.section("trigger")
    parse_trigger(trig)  # checks types, ranges and unknown keys with the station file's rules
    overrides = {k: trig.data[k] for k in trig.data}
    source = top.get("source", "str", None)
    if source not in (None, "stream", "records"):
        raise StationConfigError(file, "source", "'stream' or 'records'", source)
    backend = top.get("backend", "str", "numpy")
    if backend not in _BACKENDS:
        raise StationConfigError(file, "backend", f"one of {list(_BACKENDS)}", backend)
    cfg = ReprocessConfig(
        trigger_overrides=overrides,
        threshold=threshold,
        stream=top.get("stream", "str", None),
        source=source,
        chunk_s=float(top.get("chunk_s", "posnum", 10.0)),
        noise_estimate_s=float(top.get("noise_estimate_s", "posnum", 0.25)),
        backend=backend,
        optimal_filter=None if of_doc is None else _optimal_filter(file, of_doc),
        path=file,
    )
    top.finish()
    return cfg


def _optimal_filter(file: str, doc: Any) -> OptimalFilterConfig:
    if doc is True or doc == {}:
        return OptimalFilterConfig()
    if not isinstance(doc, dict):
        raise StationConfigError(file, "optimal_filter", "a mapping of optimal-filter settings (or {})", doc)
    doc = dict(doc)
    lines = ()
    if "energy_lines_ev" in doc:
        lines = _number_list(file, "optimal_filter.energy_lines_ev", doc.pop("energy_lines_ev"),
                             "a list of line energies in eV, e.g. [1.55]")
    sec = ConfigSection(file, "optimal_filter", doc)
    d = OptimalFilterConfig()
    align = sec.get("align", "str", d.align)
    if align not in _ALIGN:
        raise StationConfigError(file, "optimal_filter.align", f"one of {list(_ALIGN)}", align)
    cfg = OptimalFilterConfig(
        min_pulses=sec.get("min_pulses", "posint", d.min_pulses),
        noise_records=sec.get("noise_records", "posint", d.noise_records),
        noise_period_s=sec.get("noise_period_s", "posnum", d.noise_period_s),
        max_delay_s=sec.get("max_delay_s", "posnum", d.max_delay_s),
        align=align,
        template_window=float(sec.get("template_window", "nonneg", d.template_window)),
        energy_lines_ev=lines,
        noise_run=sec.get("noise_run", "str", None),
    )
    sec.finish()
    return cfg


def load_reprocess_config(path: str | Path) -> ReprocessConfig:
    """Read and validate a reprocessing config file."""
    path = Path(path)
    return parse_reprocess_config(read_yaml_file(path, "reprocessing config YAML file"), str(path))


def as_config(config: ReprocessConfig | dict[str, Any] | str | Path | None) -> ReprocessConfig:
    """A :class:`ReprocessConfig` from a config object, a document mapping, a YAML path, or None (defaults)."""
    if isinstance(config, ReprocessConfig):
        return config
    if config is None or isinstance(config, dict):
        return parse_reprocess_config(config or {})
    return load_reprocess_config(config)
