"""Bring a validated station file up as a qcodes Station."""

from __future__ import annotations

import logging
from typing import Any

from qcodes.instrument import ChannelTuple, InstrumentBase, IPInstrument, VisaInstrument
from qcodes.parameters import ParameterBase
from qcodes.station import Station

from cryodaq.errors import InstrumentError, StationConfigError
from cryodaq.instruments.reliability import RetryPolicy, make_reliable
from cryodaq.station.config import StationConfig
from cryodaq.station.limits import SafetyLimit, apply_safety_limit

log = logging.getLogger(__name__)


def resolve_parameter(station: Station, path: str, *, file: str = "", key: str = "") -> ParameterBase:
    """``"instrument.channel.param"`` -> the qcodes parameter, or a StationConfigError."""
    obj = _walk(station, path, file=file, key=key or path)
    if not isinstance(obj, ParameterBase):
        raise StationConfigError(file, key or path, "a path that ends at a qcodes parameter", path)
    return obj


def resolve_parameters(station: Station, path: str, *, file: str = "", key: str = "") -> list[ParameterBase]:
    """Like :func:`resolve_parameter`, but a path through a channel list (``"crs.channels.amplitude"``)
    gives that parameter of every channel in it (so one safety limit covers them all)."""
    head, _, tail = path.rpartition(".")
    if head:
        container = _walk(station, head, file=file, key=key or path)
        if isinstance(container, ChannelTuple):
            params = [ch.parameters.get(tail) for ch in container]
            if not params or any(p is None for p in params):
                raise StationConfigError(file, key or path, f"a parameter every channel of {head!r} has", path)
            return params  # type: ignore[return-value]
    return [resolve_parameter(station, path, file=file, key=key)]


def _walk(station: Station, path: str, *, file: str, key: str) -> Any:
    parts = path.split(".")
    obj: Any = station.components.get(parts[0])
    if obj is None:
        raise StationConfigError(file, key, f"a loaded instrument named {parts[0]!r}", path)
    for part in parts[1:]:
        nxt = None
        if isinstance(obj, InstrumentBase):
            nxt = obj.parameters.get(part) or obj.submodules.get(part)
        obj = nxt if nxt is not None else getattr(obj, part, None)
        if obj is None:
            raise StationConfigError(file, key, f"a parameter path that exists on {parts[0]!r}", path)
    return obj


def build_station(config: StationConfig) -> Station:
    """Load every instrument of ``config`` into a qcodes Station and apply the safety limits.

    Every VISA or IP instrument is made reliable (``cryodaq.reliability``: bounded retry,
    reconnect, clear errors; :func:`cryodaq.instruments.reliability.make_reliable`).
    Instruments load in file order, so a meta-instrument (``cryodaq.instruments.Fridge``)
    that names others must come after them.

    qcodes sets ``initial_value``s inside ``load_instrument``, before limits could
    be attached, so initial values of limited parameters are checked against their
    limit here, before any instrument is opened.
    """
    file = str(config.path)
    for target, (low, high) in config.safety_limits.items():
        inst, _, rel = target.partition(".")
        init = (config.instruments[inst].get("parameters") or {}).get(rel, {}).get("initial_value")
        if init is not None:
            SafetyLimit(low, high, inst, rel).validate(init)

    station = Station()
    station.load_config(config.qcodes_yaml())
    rel = config.reliability
    policy = RetryPolicy(rel.retries, rel.backoff_s)
    for name in config.instruments:
        address = config.address(name)
        try:
            instrument = station.load_instrument(name)
        except StationConfigError:
            raise
        except Exception as exc:
            close_station(station)
            raise InstrumentError(name, address, f"could not be opened: {exc}") from exc
        if isinstance(instrument, (VisaInstrument, IPInstrument)):
            # bounded retry + reconnect, clear errors naming the instrument and its address
            make_reliable(instrument, policy, rel.timeout_s)
        log.info("loaded instrument %s (%s)", name, address)
    for target, (low, high) in config.safety_limits.items():
        for parameter in resolve_parameters(station, target, file=file, key=f"cryodaq.safety_limits.{target}"):
            apply_safety_limit(parameter, low, high)
    return station


def close_station(station: Station) -> None:
    """Close every instrument of the station (errors are logged, not raised)."""
    for name in list(station.components):
        component = station.components[name]
        close = getattr(component, "close", None)
        if close is None:
            continue
        try:
            close()
        except Exception as exc:  # closing must go on for the others
            log.warning("closing %s failed: %s", name, exc)
        station.remove_component(name)
