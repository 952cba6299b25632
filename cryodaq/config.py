"""Processing settings shared by station files and reprocessing configs, and their YAML reader.

One home for the pipeline's settings (channelizer, trigger, IQ calibration, optimal filter)
so that a station file (``cryodaq.pipeline`` in :mod:`cryodaq.station.config`) and a
reprocessing config (:mod:`cryodaq.reprocess.config`) describe them with the same dataclasses,
validated by the same code. :class:`ConfigSection` reads typed keys out of one mapping and
every error names the file, the dotted key and what was expected
(:class:`~cryodaq.errors.StationConfigError`); unknown keys are refused, never ignored.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cryodaq.errors import StationConfigError

__all__ = [
    "CALIBRATION_METHODS", "CalibrationConfig", "ConfigSection", "OptimalFilterConfig", "PipelineConfig",
    "SearchConfig", "TimingConfig", "TrackingConfig", "TriggerConfig", "VetoConfig", "check_value", "number_list",
    "parse_calibration", "parse_optimal_filter", "parse_pipeline", "parse_timing", "parse_tracking", "parse_trigger",
    "parse_veto", "read_yaml_file",
]

_UNSET = object()

#: IQ calibration methods of MKID pipelines (``cryodaq.pipeline.calibration.method``)
CALIBRATION_METHODS = ("loop_sweep", "resonator_fit", "baseline")


class ConfigSection:
    """Reads typed keys out of one mapping, reporting errors with their dotted path."""

    def __init__(self, file: str, path: str, data: Any) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise StationConfigError(file, path, "a mapping of keys to values", data)
        self.file, self.path, self.data = file, path, data
        self._used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, kind: str, default: Any = _UNSET) -> Any:
        """Fetch ``name`` checked against ``kind`` (see :func:`check_value`)."""
        self._used.add(name)
        if name not in self.data:
            if default is _UNSET:
                raise StationConfigError(self.file, self.key(name), f"{_KINDS[kind][0]} (the key is missing)")
            return default
        return check_value(self.file, self.key(name), kind, self.data[name])

    def section(self, name: str) -> ConfigSection:
        self._used.add(name)
        return ConfigSection(self.file, self.key(name), self.data.get(name))

    def finish(self) -> None:
        """Reject keys nobody asked for: a typo must not be silently ignored."""
        unknown = sorted(set(self.data) - self._used)
        if unknown:
            raise StationConfigError(
                self.file, self.key(unknown[0]), f"one of the known keys {sorted(self._used)}", "unknown key"
            )


def _is_number(v: Any) -> bool:
    """A finite int or float (YAML's .inf and .nan are no settings; bool is not a number here)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_KINDS: dict[str, tuple[str, Any]] = {
    "str": ("a string", lambda v: isinstance(v, str) and v != ""),
    "names": ("a name or a list of distinct names",
              lambda v: (isinstance(v, str) and v != "") or (isinstance(v, list) and len(v) > 0 and all(
                  isinstance(x, str) and x != "" for x in v) and len(set(v)) == len(v))),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "posint": ("a positive integer", lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0),
    "posnum_or_null": ("a positive number, or null", lambda v: v is None or (_is_number(v) and v > 0)),
    "count": ("an integer >= 0", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0),
    "port": ("a port number 0-65535 (0 = any free port)",
             lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65535),
    "number": ("a number", _is_number),
    "posnum": ("a positive number", lambda v: _is_number(v) and v > 0),
    "nonneg": ("a number >= 0", lambda v: _is_number(v) and v >= 0),
    "calibration_method": (f"one of {', '.join(CALIBRATION_METHODS)}", lambda v: v in CALIBRATION_METHODS),
    "odd_points": ("an odd integer >= 5 (the middle point is the operating tone)",
                   lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 5 and v % 2 == 1),
    "polarity": ("+1 or -1", lambda v: v in (1, -1) and not isinstance(v, bool)),
    "oversampling": ("1 or 2", lambda v: v in (1, 2) and not isinstance(v, bool)),
    "pow2": ("a power of two >= 2", lambda v: isinstance(v, int) and v >= 2 and v & (v - 1) == 0),
    "mapping": ("a mapping", lambda v: isinstance(v, dict)),
    "any": ("a value", lambda v: True),  # checked by the caller
    "of_section": ("a mapping of optimal-filter settings, true ({} = the defaults) or false",
                   lambda v: v is None or isinstance(v, (dict, bool))),
    "zmq_address": ("a ZeroMQ address 'tcp://HOST:PORT' (PORT 0 or auto = any free port), 'ipc://PATH' "
                    "or 'inproc://NAME'",
                    lambda v: isinstance(v, str) and re.fullmatch(r"tcp://[^:/\s]+:(\d{1,5}|\*|auto)|(ipc|inproc)://\S+", v)
                    is not None),
    "channels": ("a list of channel indices (integers >= 0)",
                 lambda v: isinstance(v, list) and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0
                                                       for c in v)),
    "number_list": ("a list of numbers", lambda v: isinstance(v, list) and all(_is_number(x) for x in v)),
    "range": ("a [min, max] pair of numbers with min <= max",
              lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_number(x) for x in v)
              and v[0] <= v[1]),
}


def check_value(file: str, key: str, kind: str, value: Any) -> Any:
    what, ok = _KINDS[kind]
    if not ok(value):
        raise StationConfigError(file, key, what, value)
    return tuple(float(x) for x in value) if kind == "range" else value


@dataclass(frozen=True)
class TriggerConfig:
    """Pulse trigger on the phase timestreams."""

    threshold_sigma: float = 6.0
    holdoff_s: float = 0.002
    polarity: int = 1
    baseline_s: float = 0.002
    record_s: float = 0.004
    presamples_s: float = 0.001


@dataclass(frozen=True)
class SearchConfig:
    """Where a board that sweeps its own tones looks for resonators before a run (:mod:`cryodaq.readout.tone_sweep`).

    A comb of up to ``tones`` tones steps over ``[start_hz, stop_hz]`` by ``step_hz`` (well under a
    linewidth); dips at least ``min_depth_db`` deep and ``min_separation_hz`` apart are resonances.
    """

    start_hz: float
    stop_hz: float
    step_hz: float = 5e3
    tones: int = 128
    min_depth_db: float = 3.0
    min_separation_hz: float = 100e3


@dataclass(frozen=True)
class CalibrationConfig:
    """How an MKID pipeline finds each tone's IQ-loop centre and rotation before a run.

    ``loop_sweep``: step every tone over ``±span_hz`` in ``points`` (odd: 0 is one) steps,
    ``settle_s`` after each change then ``dwell_s`` of data each, and fit each loop's circle
    (:mod:`cryodaq.readout.loop_sweep`): phase about the loop centre. ``resonator_fit`` (a board
    that sweeps its own tones, e.g. a CRS): the same sweep, then a resonator fit per tone puts
    the tone on the fitted resonance and gives the loop (:mod:`cryodaq.readout.tone_sweep`).
    ``baseline``: phase about the IQ origin, rotated to the mean of the first data (no sweep).
    ``search``: first find the resonators and put the tones on them (boards that sweep their own
    tones only).
    """

    method: str = "loop_sweep"
    span_hz: float = 45e3
    points: int = 21
    dwell_s: float = 0.03
    settle_s: float = 0.01
    search: SearchConfig | None = None


@dataclass(frozen=True)
class VetoConfig:
    """The online cross-channel coincidence veto (:class:`cryodaq.dsp.coincidence.CoincidenceVeto`).

    Events chained within ``window_s`` of each other form a group; a group on more than
    ``max_channels`` channels (K) is flagged VETOED: a cosmic ray or substrate glitch, not a photon.
    """

    enabled: bool = False
    window_s: float = 50e-6
    max_channels: int = 3


@dataclass(frozen=True)
class TrackingConfig:
    """Resonator tracking during an MKID run (``cryodaq.pipeline.tracking``; :mod:`cryodaq.acquisition.tracking`).

    Every ``interval_s`` of data the median calibrated phase of each tone over the last ``window_s``
    says where its resonance is (through the IQ-loop sweep's phase-versus-detuning curve); a tone
    predicted to be more than ``threshold_linewidths`` off its resonance half an interval ahead is
    moved onto it, in steps of ``step_hz`` (the board's phase-coherent tone grid; 0: sample rate /
    samples per packet), at most ``max_step_linewidths`` per retune. Data stamped before the retune
    plus ``settle_s`` are dropped (a gap of cause ``retune``). ``reference_tones_hz``: extra tones off
    resonance, added to the comb; their phase about the IQ origin is the readout's common-mode phase,
    removed from every resonator's IQ.
    """

    enabled: bool = False
    interval_s: float = 0.1
    window_s: float = 0.05
    threshold_linewidths: float = 0.03
    settle_s: float = 0.005
    step_hz: float = 0.0
    max_step_linewidths: float = 1.5
    predict: bool = True
    reference_tones_hz: tuple[float, ...] = ()


@dataclass(frozen=True)
class TimingConfig:
    """How a run's clock is modelled (:class:`cryodaq.timing.clock.ClockTracker`) and watched.

    ``jump_threshold_s``: stamps this far off the fitted clock (and 20 jitters) for ``jump_confirm``
    blocks in a row are a clock jump; ``drift_prior_ppm``: the drift a few anchors may show before the
    data say more; ``host_clock_interval_s``: how often the host's chrony/ntpd state is logged as
    housekeeping (0: never).
    """

    jump_threshold_s: float = 1e-3
    jump_confirm: int = 3
    drift_prior_ppm: float = 100.0
    host_clock_interval_s: float = 10.0


@dataclass(frozen=True)
class PipelineConfig:
    """Channelizer, down-conversion and buffering for the readout stream."""

    n_channels: int = 64
    n_taps: int = 8
    oversampling: int = 1
    window: str = "hann"
    decimation: int = 2
    block_packets: int = 8
    queue_blocks: int = 256
    store_stream: bool = True
    store_iq: bool = False  # also keep the IQ (stream variables i and q, in the source's counts)
    psd_nperseg: int = 1024
    psd_interval_s: float = 2.0
    trigger: TriggerConfig = field(default_factory=TriggerConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    optimal_filter: OptimalFilterConfig | None = None  # the live optimal-filter stage (None: off)
    veto: VetoConfig = field(default_factory=VetoConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)  # resonator tracking (live MKID runs)

    def as_dict(self) -> dict[str, Any]:
        sub = ("trigger", "calibration", "veto", "tracking")
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in (*sub, "optimal_filter")}
        for name in sub:
            part = getattr(self, name)
            out[name] = {f.name: getattr(part, f.name) for f in fields(part)}
        search = self.calibration.search
        out["calibration"]["search"] = None if search is None else {f.name: getattr(search, f.name)
                                                                    for f in fields(search)}
        out["optimal_filter"] = None if self.optimal_filter is None else self.optimal_filter.as_dict()
        return out


_ALIGN = ("none", "peak", "rise")


@dataclass(frozen=True)
class OptimalFilterConfig:
    """The optimal-filter stage: template from the events' records, noise PSD from pulse-free records.

    Shared by the live pipeline (``cryodaq.pipeline.optimal_filter`` in a station file) and
    reprocessing (``optimal_filter:`` in a reprocess config); ``learn_pulses`` and ``hold_s`` are
    live-only, ``noise_run`` reprocessing-only.
    """

    min_pulses: int = 20  # clean pulses a channel needs for its own template
    noise_records: int = 200  # pulse-free records per channel for its noise PSD
    noise_period_s: float | None = None  # AutoTrigger period (default: one record length)
    max_delay_s: float | None = None  # arrival-time search half-width (default: half the presamples)
    align: str = "none"  # build_template alignment: none | peak | rise
    template_window: float = 0.06  # template from pulses within this fraction of the dominant peak (0: all)
    energy_lines_ev: tuple[float, ...] = ()  # calibration lines, e.g. (1.55,): the dominant peaks in eV
    noise_run: str | None = None  # records source: a run with noise records (its FORCED ones if any, else all)
    learn_pulses: int = 100  # live: clean pulses per channel collected before its filter is learnt
    hold_s: float = 30.0  # live: events wait at most this long (stream time) for their channel's filter
    load: str | None = None  # use stored filters: a run (its optimal_filter/), RUN/reprocessed/<label>, or online

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["energy_lines_ev"] = list(self.energy_lines_ev)
        return out


def read_yaml_file(path: Path, what: str = "station YAML file") -> Any:
    """The YAML document in ``path``; a missing file or a syntax error names the file (and line)."""
    import yaml  # here, not at the top: the DSP pipelines import this module, and run without PyYAML on a GPU box

    file = str(path)
    if not path.is_file():
        raise StationConfigError(file, "(file)", f"an existing {what}", "no such file")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StationConfigError(file, f"byte {exc.start}", f"UTF-8 text (a {what})", "undecodable bytes") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())  # one line
        raise StationConfigError(file, where, f"valid YAML ({problem})") from exc


def parse_trigger(trig: ConfigSection, defaults: TriggerConfig | None = None) -> TriggerConfig:
    """A trigger section (the keys of ``cryodaq.pipeline.trigger``), missing keys from ``defaults``.

    Raises :class:`StationConfigError` naming the file and key of a bad or unknown value, or of a
    ``presamples_s`` not below ``record_s``.
    """
    t0 = defaults or TriggerConfig()
    trigger = TriggerConfig(
        threshold_sigma=trig.get("threshold_sigma", "posnum", t0.threshold_sigma),
        holdoff_s=trig.get("holdoff_s", "nonneg", t0.holdoff_s),
        polarity=trig.get("polarity", "polarity", t0.polarity),
        baseline_s=trig.get("baseline_s", "posnum", t0.baseline_s),
        record_s=trig.get("record_s", "posnum", t0.record_s),
        presamples_s=trig.get("presamples_s", "nonneg", t0.presamples_s),
    )
    trig.finish()
    if trigger.presamples_s >= trigger.record_s:
        raise StationConfigError(
            trig.file, trig.key("presamples_s"), f"less than record_s ({trigger.record_s})", trigger.presamples_s,
        )
    return trigger


def parse_search(sec: ConfigSection) -> SearchConfig | None:
    """A ``cryodaq.pipeline.calibration.search`` section (None when absent)."""
    if not sec.data:
        return None
    d = SearchConfig(0.0, 0.0)
    out = SearchConfig(
        start_hz=float(sec.get("start_hz", "posnum")),
        stop_hz=float(sec.get("stop_hz", "posnum")),
        step_hz=float(sec.get("step_hz", "posnum", d.step_hz)),
        tones=sec.get("tones", "posint", d.tones),
        min_depth_db=float(sec.get("min_depth_db", "posnum", d.min_depth_db)),
        min_separation_hz=float(sec.get("min_separation_hz", "posnum", d.min_separation_hz)),
    )
    sec.finish()
    if out.stop_hz <= out.start_hz:
        raise StationConfigError(sec.file, sec.key("stop_hz"), f"more than start_hz ({out.start_hz:g})", out.stop_hz)
    return out


def parse_calibration(cal: ConfigSection, defaults: CalibrationConfig | None = None) -> CalibrationConfig:
    """A ``cryodaq.pipeline.calibration`` section, missing keys from ``defaults``."""
    c0 = defaults or CalibrationConfig()
    out = CalibrationConfig(
        method=cal.get("method", "calibration_method", c0.method),
        span_hz=float(cal.get("span_hz", "posnum", c0.span_hz)),
        points=cal.get("points", "odd_points", c0.points),
        dwell_s=float(cal.get("dwell_s", "posnum", c0.dwell_s)),
        settle_s=float(cal.get("settle_s", "nonneg", c0.settle_s)),
        search=parse_search(cal.section("search")) if "search" in cal.data else c0.search,
    )
    cal.finish()
    if out.method == "resonator_fit" and out.points < 21:
        raise StationConfigError(cal.file, cal.key("points"), "at least 21 points for method resonator_fit "
                                 "(a resonator fit needs them)", out.points)
    return out


def parse_veto(sec: ConfigSection) -> VetoConfig:
    """A ``cryodaq.pipeline.veto`` section (``enabled``, ``window_s``, ``max_channels``)."""
    d = VetoConfig()
    given = bool(sec.data)
    out = VetoConfig(
        enabled=sec.get("enabled", "bool", given),  # writing the section turns the veto on unless it says not
        window_s=float(sec.get("window_s", "posnum", d.window_s)),
        max_channels=sec.get("max_channels", "posint", d.max_channels),
    )
    sec.finish()
    return out


def parse_tracking(sec: ConfigSection) -> TrackingConfig:
    """A ``cryodaq.pipeline.tracking`` section (writing it turns tracking on unless ``enabled: false``)."""
    d = TrackingConfig()
    out = TrackingConfig(
        enabled=sec.get("enabled", "bool", bool(sec.data)),
        interval_s=float(sec.get("interval_s", "posnum", d.interval_s)),
        window_s=float(sec.get("window_s", "posnum", d.window_s)),
        threshold_linewidths=float(sec.get("threshold_linewidths", "posnum", d.threshold_linewidths)),
        settle_s=float(sec.get("settle_s", "nonneg", d.settle_s)),
        step_hz=float(sec.get("step_hz", "nonneg", d.step_hz)),
        max_step_linewidths=float(sec.get("max_step_linewidths", "posnum", d.max_step_linewidths)),
        predict=sec.get("predict", "bool", d.predict),
        reference_tones_hz=tuple(float(f) for f in sec.get("reference_tones_hz", "number_list", [])),
    )
    sec.finish()
    if out.window_s > out.interval_s:
        raise StationConfigError(sec.file, sec.key("window_s"),
                                 f"at most interval_s ({out.interval_s:g} s): each estimate uses fresh data",
                                 out.window_s)
    if any(f <= 0 for f in out.reference_tones_hz):
        raise StationConfigError(sec.file, sec.key("reference_tones_hz"), "RF frequencies in Hz (> 0)",
                                 list(out.reference_tones_hz))
    return out


def parse_timing(sec: ConfigSection) -> TimingConfig:
    """A station file's ``cryodaq.timing`` section."""
    d = TimingConfig()
    out = TimingConfig(
        jump_threshold_s=float(sec.get("jump_threshold_s", "posnum", d.jump_threshold_s)),
        jump_confirm=sec.get("jump_confirm", "posint", d.jump_confirm),
        drift_prior_ppm=float(sec.get("drift_prior_ppm", "posnum", d.drift_prior_ppm)),
        host_clock_interval_s=float(sec.get("host_clock_interval_s", "nonneg", d.host_clock_interval_s)),
    )
    sec.finish()
    return out


def parse_pipeline(sec: ConfigSection) -> PipelineConfig:
    d = PipelineConfig()
    trigger = parse_trigger(sec.section("trigger"))
    calibration = parse_calibration(sec.section("calibration"))
    of_doc = sec.get("optimal_filter", "of_section", None)
    optimal = None if of_doc in (None, False) else parse_optimal_filter(sec.file, of_doc, sec.key("optimal_filter"))
    veto = parse_veto(sec.section("veto"))
    tracking = parse_tracking(sec.section("tracking"))
    cfg = PipelineConfig(
        n_channels=sec.get("n_channels", "pow2", d.n_channels),
        n_taps=sec.get("n_taps", "posint", d.n_taps),
        oversampling=sec.get("oversampling", "oversampling", d.oversampling),
        window=sec.get("window", "str", d.window),
        decimation=sec.get("decimation", "posint", d.decimation),
        block_packets=sec.get("block_packets", "posint", d.block_packets),
        queue_blocks=sec.get("queue_blocks", "posint", d.queue_blocks),
        store_stream=sec.get("store_stream", "bool", d.store_stream),
        store_iq=sec.get("store_iq", "bool", d.store_iq),
        psd_nperseg=sec.get("psd_nperseg", "pow2", d.psd_nperseg),
        psd_interval_s=sec.get("psd_interval_s", "posnum", d.psd_interval_s),
        trigger=trigger,
        calibration=calibration,
        optimal_filter=optimal,
        veto=veto,
        tracking=tracking,
    )
    sec.finish()
    return cfg


def number_list(file: str, key: str, value: Any, what: str) -> tuple[float, ...]:
    ok = isinstance(value, list) and value and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value)
    if not ok:
        raise StationConfigError(file, key, what, value)
    return tuple(float(v) for v in value)


def parse_optimal_filter(file: str, doc: Any, key: str = "optimal_filter") -> OptimalFilterConfig:
    """An optimal-filter section (``true`` or ``{}``: the defaults); errors name ``file`` and ``key``."""
    if doc is True or doc == {}:
        return OptimalFilterConfig()
    if not isinstance(doc, dict):
        raise StationConfigError(file, key, "a mapping of optimal-filter settings (or {})", doc)
    doc = dict(doc)
    lines = ()
    if "energy_lines_ev" in doc:
        lines = number_list(file, f"{key}.energy_lines_ev", doc.pop("energy_lines_ev"),
                             "a list of line energies in eV, e.g. [1.55]")
    sec = ConfigSection(file, key, doc)
    d = OptimalFilterConfig()
    align = sec.get("align", "str", d.align)
    if align not in _ALIGN:
        raise StationConfigError(file, f"{key}.align", f"one of {list(_ALIGN)}", align)
    cfg = OptimalFilterConfig(
        min_pulses=sec.get("min_pulses", "posint", d.min_pulses),
        noise_records=sec.get("noise_records", "posint", d.noise_records),
        noise_period_s=sec.get("noise_period_s", "posnum", d.noise_period_s),
        max_delay_s=sec.get("max_delay_s", "posnum", d.max_delay_s),
        align=align,
        template_window=float(sec.get("template_window", "nonneg", d.template_window)),
        energy_lines_ev=lines,
        noise_run=sec.get("noise_run", "str", None),
        learn_pulses=sec.get("learn_pulses", "posint", d.learn_pulses),
        hold_s=float(sec.get("hold_s", "nonneg", d.hold_s)),
        load=sec.get("load", "str", None),
    )
    sec.finish()
    if cfg.learn_pulses < cfg.min_pulses:
        raise StationConfigError(file, f"{key}.learn_pulses", f"at least min_pulses ({cfg.min_pulses})",
                                 cfg.learn_pulses)
    return cfg
