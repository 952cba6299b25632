"""Station files: a qcodes Station config plus a ``cryodaq:`` section.

A station file is one YAML document. Its ``instruments:`` part is handed to
``qcodes.Station`` unchanged; its ``cryodaq:`` part (readout pipeline,
housekeeping, safety limits, simulation) is checked here. Everything is
validated before any instrument is touched, and every error names the file,
the key and what was expected (:class:`~cryodaq.errors.StationConfigError`).
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cryodaq.config import (
    ConfigSection,
    PipelineConfig,
    TimingConfig,
    check_value,
    parse_pipeline,
    parse_timing,
    read_yaml_file,
)
from cryodaq.errors import StationConfigError
from cryodaq.metrology.calibrations import Calibration, parse_calibrations
from cryodaq.wire.addresses import LOOPBACK, with_endpoint


@dataclass(frozen=True)
class ReadoutConfig:
    """Which instrument streams detector data, and where its UDP packets land.

    ``instruments``: every readout of the station (``cryodaq.readout.instrument`` may list several:
    each streams into a run of its own, the runs sharing a run group); ``instrument`` is the first.
    """

    instrument: str
    data_host: str = "127.0.0.1"
    data_port: int = 0
    instruments: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.instruments or self.instruments[0] != self.instrument:  # ``instrument`` replaced: it alone
            object.__setattr__(self, "instruments", (self.instrument,))


@dataclass(frozen=True)
class HousekeepingConfig:
    """Instrument parameters logged to ``housekeeping/`` every ``interval_s``."""

    interval_s: float = 1.0
    parameters: dict[str, str] = field(default_factory=dict)  # stored name -> "instrument.param.path"


@dataclass(frozen=True)
class SimulationConfig:
    """The simulated hardware that stands in for the instruments: ``plugin`` names the launcher in the
    ``cryodaq.simulators`` entry-point group (``sim_instruments``, or ``rfmux_mock`` for rfmux's mock CRS)."""

    enabled: bool = False
    auto_ports: bool = True
    world: dict[str, Any] = field(default_factory=dict)
    faces: dict[str, str] = field(default_factory=dict)  # instrument name -> sim face
    plugin: str = "sim_instruments"


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
    timing: TimingConfig = field(default_factory=TimingConfig)
    #: calibrated quantities, with their references and dates (``cryodaq.calibrations``; cryodaq.metrology)
    calibrations: dict[str, Calibration] = field(default_factory=dict)

    def qcodes_yaml(self) -> str:
        """The document qcodes.Station.load_config takes (only its own keys)."""
        return yaml.safe_dump({"instruments": self.instruments}, sort_keys=False)

    def address(self, instrument: str) -> str | None:
        return self.instruments.get(instrument, {}).get("address")

    def with_instruments(self, instruments: dict[str, Any]) -> StationConfig:
        """A copy with other instrument entries (e.g. simulator ports filled in)."""
        from dataclasses import replace

        return replace(self, instruments=instruments)

    def with_overrides(self, overrides: dict[str, dict[str, Any]]) -> StationConfig:
        """A copy whose instrument entries have ``overrides`` merged in (mappings key by key, e.g.
        ``{"crs": {"address": "127.0.0.1:40123", "init": {"stream_port": 41000}}}``)."""
        instruments = copy.deepcopy(self.instruments)
        for name, entry in overrides.items():
            if name not in instruments:
                raise StationConfigError(str(self.path), "cryodaq.simulation.instruments",
                                         f"one of the instruments {sorted(instruments)} (the simulator reported "
                                         "settings for another)", name)
            _merge(instruments[name], entry)
        return self.with_instruments(instruments)

    def simulation_dict(self, *, free_ports: bool = False) -> dict[str, Any]:
        """The config a simulator launcher takes: world + each face with the address it listens on.

        ``free_ports``: every face listens on port 0 of loopback instead (the simulators pick
        free ports and report them; :func:`cryodaq.station.bringup.with_simulator_ports` then
        points the instruments there). Raises StationConfigError for a simulated instrument
        whose address is not a socket (VISA socket, ``http://host:port``, host + ``port``).
        """
        instruments = {}
        for name, face in self.simulation.faces.items():
            entry = self.instruments[name]
            if free_ports:
                try:
                    entry = with_endpoint(entry, LOOPBACK, 0)
                except ValueError as exc:
                    raise StationConfigError(str(self.path), f"instruments.{name}.address",
                                             f"a socket address for the simulated instrument ({exc})") from None
            # raw-socket drivers (OxfordTriton) give the port separately
            instruments[name] = {"face": face, "address": entry.get("address"),
                                 **({"port": entry["port"]} if "port" in entry else {})}
        return {"world": copy.deepcopy(self.simulation.world), "instruments": instruments}


def _merge(target: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _read_yaml(path: Path) -> dict[str, Any]:
    file = str(path)
    doc = read_yaml_file(path)
    if not isinstance(doc, dict):
        raise StationConfigError(file, "(top level)", "a mapping with 'instruments' and 'cryodaq' keys", doc)
    return doc


def _check_instruments(file: str, instruments: Any) -> dict[str, Any]:
    if not isinstance(instruments, dict) or not instruments:
        raise StationConfigError(file, "instruments", "a mapping of instrument names to their config", instruments)
    schema = _qcodes_station_validator()
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
        _check_address(file, key, cls, entry)
    return instruments


def _check_address(file: str, key: str, cls: type, entry: dict[str, Any]) -> None:
    """An instrument class with ``check_address(address)`` (raising ValueError that says what is expected)
    has its address checked now, before anything is started (qcodes only sees it when opening)."""
    check = getattr(cls, "check_address", None)
    if not callable(check) or "address" not in entry:
        return
    try:
        check(entry["address"])
    except ValueError as exc:
        raise StationConfigError(file, f"{key}.address", str(exc), entry["address"]) from None


@functools.lru_cache(maxsize=1)
def _qcodes_station_validator() -> Any:
    """A jsonschema validator of qcodes' station schema, made (and the schema checked) once per process."""
    try:
        from qcodes.station import SCHEMA_TEMPLATE_PATH
    except ImportError:  # pragma: no cover - qcodes moved it
        return None
    import jsonschema

    with open(SCHEMA_TEMPLATE_PATH) as fh:
        schema = json.load(fh)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _validate_with_qcodes_schema(file: str, key: str, name: str, entry: dict[str, Any], validator: Any) -> None:
    """qcodes only *warns* on a bad station config; we refuse it, naming the key."""
    if validator is None:
        return
    import jsonschema

    error = jsonschema.exceptions.best_match(validator.iter_errors({"instruments": {name: entry}}))
    if error is not None:  # what jsonschema.validate would raise
        sub = ".".join(str(p) for p in list(error.absolute_path)[2:])
        raise StationConfigError(file, f"{key}.{sub}" if sub else key, error.message)


def load_station_config(path: str | Path) -> StationConfig:
    """Read and validate a station file; touches no instrument."""
    path = Path(path)
    file = str(path)
    doc = _read_yaml(path)
    unknown = sorted(set(doc) - {"instruments", "cryodaq"})
    if unknown:
        raise StationConfigError(file, unknown[0], "only the top-level keys 'instruments' and 'cryodaq'", "unknown key")
    instruments = _check_instruments(file, doc.get("instruments"))
    top = ConfigSection(file, "cryodaq", doc.get("cryodaq"))

    name = top.get("name", "str", path.stem)
    description = top.get("description", "str", "")

    ro = top.section("readout")
    names = ro.get("instrument", "names")
    names = (names,) if isinstance(names, str) else tuple(names)
    readout = ReadoutConfig(
        instrument=names[0],
        data_host=ro.get("data_host", "str", "127.0.0.1"),
        data_port=ro.get("data_port", "port", 0),
        instruments=names,
    )
    ro.finish()
    for readout_name in names:
        if readout_name not in instruments:
            raise StationConfigError(
                file, "cryodaq.readout.instrument", f"one of the instruments {sorted(instruments)}", readout_name
            )
    if len(names) > 1 and readout.data_port != 0:
        raise StationConfigError(file, "cryodaq.readout.data_port",
                                 f"0 (any free port) when several readouts stream ({', '.join(names)})",
                                 readout.data_port)

    pipeline = parse_pipeline(top.section("pipeline"))
    timing = parse_timing(top.section("timing"))

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
        safety_limits[target] = check_value(file, key, "range", rng)

    sim = top.section("simulation")
    faces_raw = sim.get("instruments", "mapping", {})
    faces = {}
    for inst, face in faces_raw.items():
        key = f"cryodaq.simulation.instruments.{inst}"
        if inst not in instruments:
            raise StationConfigError(file, key, f"one of the instruments {sorted(instruments)}", inst)
        faces[inst] = check_value(file, key, "str", face)
    simulation = SimulationConfig(
        enabled=sim.get("enabled", "bool", bool(faces)),
        auto_ports=sim.get("auto_ports", "bool", True),
        world=sim.get("world", "mapping", {}),
        faces=faces,
        plugin=sim.get("plugin", "str", "sim_instruments"),
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
    calibrations = parse_calibrations(file, top.get("calibrations", "mapping", {}), instruments)
    top.finish()
    return StationConfig(
        path=path, name=name, description=description, instruments=instruments, readout=readout,
        pipeline=pipeline, housekeeping=housekeeping, safety_limits=safety_limits,
        simulation=simulation, raw=doc, reliability=reliability, publish=publish, timing=timing,
        calibrations=calibrations,
    )


def _check_parameter_path(file: str, key: str, target: Any, instruments: dict[str, Any]) -> None:
    """``instrument.param`` or ``instrument.channel.param``, naming a known instrument."""
    if not isinstance(target, str) or "." not in target:
        raise StationConfigError(file, key, "a parameter path 'instrument.parameter'", target)
    inst = target.split(".", 1)[0]
    if inst not in instruments:
        raise StationConfigError(file, key, f"a parameter of one of the instruments {sorted(instruments)}", target)
