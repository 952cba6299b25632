"""Station files: a qcodes Station config plus a ``cryodaq:`` section.

A station file is one YAML document. Its ``instruments:`` part is handed to
``qcodes.Station`` unchanged; its ``cryodaq:`` part (readout pipeline,
housekeeping, safety limits, simulation) is checked here. Everything is
validated before any instrument is touched, and every error names the file,
the key and what was expected (:class:`~cryodaq.errors.StationConfigError`).
"""

from __future__ import annotations

import copy
import importlib
import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from cryodaq.errors import StationConfigError

_UNSET = object()

#: IQ calibration methods of MKID pipelines (``cryodaq.pipeline.calibration.method``)
CALIBRATION_METHODS = ("loop_sweep", "baseline")


class _Section:
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
        """Fetch ``name`` checked against ``kind`` (see :func:`_check`)."""
        self._used.add(name)
        if name not in self.data:
            if default is _UNSET:
                raise StationConfigError(self.file, self.key(name), f"{_KINDS[kind][0]} (the key is missing)")
            return default
        return _check(self.file, self.key(name), kind, self.data[name])

    def section(self, name: str) -> _Section:
        self._used.add(name)
        return _Section(self.file, self.key(name), self.data.get(name))

    def finish(self) -> None:
        """Reject keys nobody asked for: a typo must not be silently ignored."""
        unknown = sorted(set(self.data) - self._used)
        if unknown:
            raise StationConfigError(
                self.file, self.key(unknown[0]), f"one of the known keys {sorted(self._used)}", "unknown key"
            )


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_KINDS: dict[str, tuple[str, Any]] = {
    "str": ("a string", lambda v: isinstance(v, str) and v != ""),
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
    "zmq_address": ("a ZeroMQ address 'tcp://HOST:PORT' (PORT 0 or auto = any free port), 'ipc://PATH' "
                    "or 'inproc://NAME'",
                    lambda v: isinstance(v, str) and re.fullmatch(r"tcp://[^:/\s]+:(\d{1,5}|\*|auto)|(ipc|inproc)://\S+", v)
                    is not None),
    "channels": ("a list of channel indices (integers >= 0)",
                 lambda v: isinstance(v, list) and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0
                                                       for c in v)),
    "range": ("a [min, max] pair of numbers with min <= max",
              lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_number(x) for x in v)
              and v[0] <= v[1]),
}


def _check(file: str, key: str, kind: str, value: Any) -> Any:
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
class CalibrationConfig:
    """How an MKID pipeline finds each tone's IQ-loop centre and rotation before a run.

    ``loop_sweep``: step every tone over ``±span_hz`` in ``points`` (odd: 0 is one) steps,
    ``settle_s`` after each change then ``dwell_s`` of data each, and fit each loop's circle
    (:mod:`cryodaq.acquisition.loop_sweep`): phase about the loop centre. ``baseline``:
    phase about the IQ origin, rotated to the mean of the first data (no sweep).
    """

    method: str = "loop_sweep"
    span_hz: float = 45e3
    points: int = 21
    dwell_s: float = 0.03
    settle_s: float = 0.01


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
    psd_nperseg: int = 1024
    psd_interval_s: float = 2.0
    trigger: TriggerConfig = field(default_factory=TriggerConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)

    def as_dict(self) -> dict[str, Any]:
        sub = ("trigger", "calibration")
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in sub}
        for name in sub:
            part = getattr(self, name)
            out[name] = {f.name: getattr(part, f.name) for f in fields(part)}
        return out


@dataclass(frozen=True)
class ReadoutConfig:
    """Which instrument streams detector data, and where its UDP packets land."""

    instrument: str
    data_host: str = "127.0.0.1"
    data_port: int = 0


@dataclass(frozen=True)
class HousekeepingConfig:
    """Instrument parameters logged to ``housekeeping/`` every ``interval_s``."""

    interval_s: float = 1.0
    parameters: dict[str, str] = field(default_factory=dict)  # stored name -> "instrument.param.path"


@dataclass(frozen=True)
class SimulationConfig:
    """The simulated hardware that stands in for the instruments (sim_instruments)."""

    enabled: bool = False
    auto_ports: bool = True
    world: dict[str, Any] = field(default_factory=dict)
    faces: dict[str, str] = field(default_factory=dict)  # instrument name -> sim face


@dataclass(frozen=True)
class ReliabilityConfig:
    """Bounded retry for instrument I/O (cryodaq.instruments.reliability): each VISA/IP
    instrument gets ``retries`` more attempts after a timeout or dropped connection,
    reconnecting before each; ``timeout_s`` (None: the driver's) is the per-attempt timeout."""

    retries: int = 2
    backoff_s: float = 0.2
    timeout_s: float | None = None


@dataclass(frozen=True)
class PublishConfig:
    """The live publisher (ZeroMQ PUB) that ``cryodaq gui --connect`` subscribes to; localhost by default."""

    enabled: bool = True
    address: str = "tcp://127.0.0.1:5556"
    channels: tuple[int, ...] | None = None  # channels with live timestreams/IQ (default: the first 16)


@dataclass(frozen=True)
class StationConfig:
    """A validated station file."""

    path: Path
    name: str
    description: str
    instruments: dict[str, Any]  # the qcodes ``instruments:`` mapping, as written
    readout: ReadoutConfig
    pipeline: PipelineConfig
    housekeeping: HousekeepingConfig
    safety_limits: dict[str, tuple[float, float]]
    simulation: SimulationConfig
    raw: dict[str, Any]
    publish: PublishConfig = field(default_factory=PublishConfig)
    reliability: ReliabilityConfig = field(default_factory=ReliabilityConfig)

    def qcodes_yaml(self) -> str:
        """The document qcodes.Station.load_config takes (only its own keys)."""
        return yaml.safe_dump({"instruments": self.instruments}, sort_keys=False)

    def address(self, instrument: str) -> str | None:
        return self.instruments.get(instrument, {}).get("address")

    def with_instruments(self, instruments: dict[str, Any]) -> StationConfig:
        """A copy with other instrument entries (e.g. simulator ports filled in)."""
        from dataclasses import replace

        return replace(self, instruments=instruments)

    def simulation_dict(self) -> dict[str, Any]:
        """The config ``sim_instruments`` takes: world + each face with its address."""
        return {
            "world": copy.deepcopy(self.simulation.world),
            "instruments": {
                name: {"face": face, "address": self.address(name),
                       # raw-socket drivers (OxfordTriton) give the port separately
                       **({"port": self.instruments[name]["port"]} if "port" in self.instruments[name] else {})}
                for name, face in self.simulation.faces.items()
            },
        }


def read_yaml_file(path: Path, what: str = "station YAML file") -> Any:
    """The YAML document in ``path``; a missing file or a syntax error names the file (and line)."""
    file = str(path)
    if not path.is_file():
        raise StationConfigError(file, "(file)", f"an existing {what}", "no such file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise StationConfigError(file, where, f"valid YAML ({getattr(exc, 'problem', exc)})") from exc


def _read_yaml(path: Path) -> dict[str, Any]:
    file = str(path)
    doc = read_yaml_file(path)
    if not isinstance(doc, dict):
        raise StationConfigError(file, "(top level)", "a mapping with 'instruments' and 'cryodaq' keys", doc)
    return doc


def _check_instruments(file: str, instruments: Any) -> dict[str, Any]:
    if not isinstance(instruments, dict) or not instruments:
        raise StationConfigError(file, "instruments", "a mapping of instrument names to their config", instruments)
    schema = _qcodes_station_schema()
    for name, entry in instruments.items():
        key = f"instruments.{name}"
        if not isinstance(entry, dict):
            raise StationConfigError(file, key, "a mapping with at least 'type'", entry)
        _validate_with_qcodes_schema(file, key, name, entry, schema)
        type_path = entry["type"]
        module_name, _, class_name = type_path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise StationConfigError(
                file, f"{key}.type", "an importable instrument class 'package.module.Class'", type_path
            ) from exc
        if not isinstance(cls, type):
            raise StationConfigError(file, f"{key}.type", "a class", type_path)
    return instruments


def _qcodes_station_schema() -> dict[str, Any] | None:
    try:
        from qcodes.station import SCHEMA_TEMPLATE_PATH
    except ImportError:  # pragma: no cover - qcodes moved it
        return None
    with open(SCHEMA_TEMPLATE_PATH) as fh:
        return json.load(fh)


def _validate_with_qcodes_schema(
    file: str, key: str, name: str, entry: dict[str, Any], schema: dict[str, Any] | None
) -> None:
    """qcodes only *warns* on a bad station config; we refuse it, naming the key."""
    if schema is None:
        return
    import jsonschema

    try:
        jsonschema.validate({"instruments": {name: entry}}, schema)
    except jsonschema.ValidationError as exc:
        sub = ".".join(str(p) for p in list(exc.absolute_path)[2:])
        raise StationConfigError(file, f"{key}.{sub}" if sub else key, exc.message) from None


def load_station_config(path: str | Path) -> StationConfig:
    """Read and validate a station file; touches no instrument."""
    path = Path(path)
    file = str(path)
    doc = _read_yaml(path)
    unknown = sorted(set(doc) - {"instruments", "cryodaq"})
    if unknown:
        raise StationConfigError(file, unknown[0], "only the top-level keys 'instruments' and 'cryodaq'", "unknown key")
    instruments = _check_instruments(file, doc.get("instruments"))
    top = _Section(file, "cryodaq", doc.get("cryodaq"))

    name = top.get("name", "str", path.stem)
    description = top.get("description", "str", "")

    ro = top.section("readout")
    readout = ReadoutConfig(
        instrument=ro.get("instrument", "str"),
        data_host=ro.get("data_host", "str", "127.0.0.1"),
        data_port=ro.get("data_port", "port", 0),
    )
    ro.finish()
    if readout.instrument not in instruments:
        raise StationConfigError(
            file, "cryodaq.readout.instrument", f"one of the instruments {sorted(instruments)}", readout.instrument
        )

    pipeline = _pipeline(top.section("pipeline"))

    hk = top.section("housekeeping")
    hk_params = hk.get("parameters", "mapping", {})
    for stored, source in hk_params.items():
        _check_parameter_path(file, f"cryodaq.housekeeping.parameters.{stored}", source, instruments)
    housekeeping = HousekeepingConfig(interval_s=hk.get("interval_s", "posnum", 1.0), parameters=dict(hk_params))
    hk.finish()

    limits_raw = top.get("safety_limits", "mapping", {})
    safety_limits = {}
    for target, rng in limits_raw.items():
        key = f"cryodaq.safety_limits.{target}"
        _check_parameter_path(file, key, target, instruments)
        safety_limits[target] = _check(file, key, "range", rng)

    sim = top.section("simulation")
    faces_raw = sim.get("instruments", "mapping", {})
    faces = {}
    for inst, face in faces_raw.items():
        key = f"cryodaq.simulation.instruments.{inst}"
        if inst not in instruments:
            raise StationConfigError(file, key, f"one of the instruments {sorted(instruments)}", inst)
        faces[inst] = _check(file, key, "str", face)
    simulation = SimulationConfig(
        enabled=sim.get("enabled", "bool", bool(faces)),
        auto_ports=sim.get("auto_ports", "bool", True),
        world=sim.get("world", "mapping", {}),
        faces=faces,
    )
    sim.finish()

    rel = top.section("reliability")
    r0 = ReliabilityConfig()
    reliability = ReliabilityConfig(
        retries=rel.get("retries", "count", r0.retries),
        backoff_s=rel.get("backoff_s", "nonneg", r0.backoff_s),
        timeout_s=rel.get("timeout_s", "posnum_or_null", r0.timeout_s),
    )
    rel.finish()

    pub = top.section("publish")
    channels = pub.get("channels", "channels", None)
    publish = PublishConfig(
        enabled=pub.get("enabled", "bool", True),
        address=pub.get("address", "zmq_address", PublishConfig.address),
        channels=None if channels is None else tuple(channels),
    )
    pub.finish()
    top.finish()
    return StationConfig(
        path=path, name=name, description=description, instruments=instruments, readout=readout,
        pipeline=pipeline, housekeeping=housekeeping, safety_limits=safety_limits,
        simulation=simulation, raw=doc, reliability=reliability, publish=publish,
    )


#: The typed-key reader of station files, public for other cryodaq config files validated the
#: same way (e.g. reprocessing configs): ``ConfigSection(file, dotted_path, mapping)``.
ConfigSection = _Section


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


def parse_calibration(cal: ConfigSection, defaults: CalibrationConfig | None = None) -> CalibrationConfig:
    """A ``cryodaq.pipeline.calibration`` section, missing keys from ``defaults``."""
    c0 = defaults or CalibrationConfig()
    out = CalibrationConfig(
        method=cal.get("method", "calibration_method", c0.method),
        span_hz=float(cal.get("span_hz", "posnum", c0.span_hz)),
        points=cal.get("points", "odd_points", c0.points),
        dwell_s=float(cal.get("dwell_s", "posnum", c0.dwell_s)),
        settle_s=float(cal.get("settle_s", "nonneg", c0.settle_s)),
    )
    cal.finish()
    return out


def _pipeline(sec: _Section) -> PipelineConfig:
    d = PipelineConfig()
    trigger = parse_trigger(sec.section("trigger"))
    calibration = parse_calibration(sec.section("calibration"))
    cfg = PipelineConfig(
        n_channels=sec.get("n_channels", "pow2", d.n_channels),
        n_taps=sec.get("n_taps", "posint", d.n_taps),
        oversampling=sec.get("oversampling", "oversampling", d.oversampling),
        window=sec.get("window", "str", d.window),
        decimation=sec.get("decimation", "posint", d.decimation),
        block_packets=sec.get("block_packets", "posint", d.block_packets),
        queue_blocks=sec.get("queue_blocks", "posint", d.queue_blocks),
        store_stream=sec.get("store_stream", "bool", d.store_stream),
        psd_nperseg=sec.get("psd_nperseg", "pow2", d.psd_nperseg),
        psd_interval_s=sec.get("psd_interval_s", "posnum", d.psd_interval_s),
        trigger=trigger,
        calibration=calibration,
    )
    sec.finish()
    return cfg


def _check_parameter_path(file: str, key: str, target: Any, instruments: dict[str, Any]) -> None:
    """``instrument.param`` or ``instrument.channel.param``, naming a known instrument."""
    if not isinstance(target, str) or "." not in target:
        raise StationConfigError(file, key, "a parameter path 'instrument.parameter'", target)
    inst = target.split(".", 1)[0]
    if inst not in instruments:
        raise StationConfigError(file, key, f"a parameter of one of the instruments {sorted(instruments)}", target)
