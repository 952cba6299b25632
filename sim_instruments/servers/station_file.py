"""What ``python -m sim_instruments FILE.yaml`` serves: a cryodaq station file, or a plain simulation dict.

A station file (a top-level ``cryodaq:`` section) names its simulated instruments in
``cryodaq.simulation`` (``world`` and ``instruments: {name: face}``) and their addresses in the
qcodes ``instruments:`` part. With ``auto_ports: true`` (the default, as in cryodaq) or port 0
every face listens on a free loopback port, and the ready line reports the real ports. Any other
document is the ``simulation`` dict :func:`~sim_instruments.servers.launcher.serve` takes
(``world`` and ``instruments: {name: {face, address, ...options}}``, optionally under ``simulation``).

Errors are ValueErrors of one line naming the key, e.g. ``cryodaq.simulation.instruments.readout:
unknown face 'vna'; known: [...]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sim_instruments.faces.registry import FACES
from sim_instruments.servers.addresses import is_http_address, is_tcp_url, parse_face_address, socket_address
from sim_instruments.world.world import WorldConfig

__all__ = ["read_simulation", "simulation_from_station"]

SIMULATION_KEYS = ("enabled", "auto_ports", "world", "instruments")
LOOPBACK = "127.0.0.1"


def read_simulation(path: str | Path) -> dict[str, Any]:
    """The simulation dict of the YAML file at ``path`` (a station file or a simulation dict).

    Raises OSError when the file cannot be read and ValueError (one line, naming the key) when
    its content is wrong.
    """
    text = Path(path).read_text()
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"not valid YAML: {problem}{where}") from None
    if not isinstance(document, Mapping):
        raise ValueError(f"expected a mapping at the top level, got {type(document).__name__}")
    if "cryodaq" in document:
        return simulation_from_station(document)
    return dict(document)


def simulation_from_station(station: Mapping[str, Any]) -> dict[str, Any]:
    """The simulation dict (``world``, ``instruments: {name: {face, address[, port]}}``) of a station document."""
    cryodaq = _mapping(station.get("cryodaq"), "cryodaq")
    if "simulation" not in cryodaq:
        raise ValueError("cryodaq.simulation: missing; this station names no simulated instruments")
    sim = _mapping(cryodaq["simulation"], "cryodaq.simulation")
    unknown = sorted(set(sim) - set(SIMULATION_KEYS))
    if unknown:
        raise ValueError(f"cryodaq.simulation: unknown key(s) {unknown}; known: {list(SIMULATION_KEYS)}")
    auto_ports = sim.get("auto_ports", True)
    if not isinstance(auto_ports, bool):
        raise ValueError(f"cryodaq.simulation.auto_ports: expected true or false, got {auto_ports!r}")
    world = _mapping(sim.get("world") or {}, "cryodaq.simulation.world")
    WorldConfig.from_dict(world, where="cryodaq.simulation.world")  # a bad key is named here, before any face starts
    faces = _mapping(sim.get("instruments") or {}, "cryodaq.simulation.instruments")
    if not faces:
        raise ValueError("cryodaq.simulation.instruments: no simulated instruments (expected {name: face})")
    entries = _mapping(station.get("instruments") or {}, "instruments")
    instruments = {}
    for name, face in faces.items():
        key = f"cryodaq.simulation.instruments.{name}"
        if face not in FACES:
            raise ValueError(f"{key}: unknown face {face!r}; known: {sorted(FACES)}")
        if name not in entries:
            raise ValueError(f"{key}: no instrument {name!r} in the station's instruments ({sorted(entries)})")
        entry = _mapping(entries[name], f"instruments.{name}")
        instruments[name] = {"face": face, **_listen_address(entry, f"instruments.{name}", auto_ports)}
    return {"world": dict(world), "instruments": instruments}


def _listen_address(entry: Mapping[str, Any], key: str, auto_ports: bool) -> dict[str, Any]:
    """``address`` (and a raw-socket driver's separate ``port``) a face listens on; free ports with ``auto_ports``."""
    if "address" not in entry:
        raise ValueError(f"{key}.address: missing; a simulated instrument needs an address to listen on")
    address = str(entry["address"])
    if "port" in entry:  # a raw-socket driver (qcodes IPInstrument): a bare host and a separate port
        port = entry["port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"{key}.port: expected a port 0..65535, got {port!r}")
        return {"address": LOOPBACK, "port": 0} if auto_ports else {"address": address, "port": port}
    try:
        host, port = parse_face_address(address)
    except ValueError as err:
        raise ValueError(f"{key}.address: {err}") from None
    if not auto_ports:
        return {"address": address}
    free = (f"http://{LOOPBACK}:0" if is_http_address(address) else f"tcp://{LOOPBACK}:0" if is_tcp_url(address)
            else socket_address(LOOPBACK, 0))
    return {"address": free}


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: expected a mapping, got {value!r}")
    return value
