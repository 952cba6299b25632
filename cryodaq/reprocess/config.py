"""Reprocessing config files (YAML): which settings to re-run a stored run's pulse finding with.

The ``trigger:`` section has the keys of a station file's ``cryodaq.pipeline.trigger`` and is
validated by the same code (:func:`cryodaq.config.parse_trigger`); keys left out keep
the run's own acquisition settings, so an empty file reproduces the acquisition. Every error
names the file and the key (:class:`~cryodaq.errors.StationConfigError`). See
docs/reprocessing.md for the keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryodaq.config import (
    ConfigSection,
    OptimalFilterConfig,
    TriggerConfig,
    number_list,
    parse_optimal_filter,
    parse_trigger,
    read_yaml_file,
)
from cryodaq.errors import StationConfigError

_BACKENDS = ("numpy", "cupy", "auto")


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


def _threshold(file: str, value: Any) -> float | tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return number_list(file, "threshold", value, "a positive number or a list of them (one per channel), in stream units")


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
        optimal_filter=None if of_doc is None else parse_optimal_filter(file, of_doc),
        path=file,
    )
    top.finish()
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
