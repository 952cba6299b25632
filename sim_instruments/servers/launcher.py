"""Start the simulated world and its instrument faces in this process (threads).

Config (the ``simulation`` section of a station file as cryodaq hands it over; the outer
``{"simulation": ...}`` wrapper is accepted too)::

    world: {seed: 1, ...}                      # WorldConfig overrides
    instruments:                               # station instrument name -> face
      fridge_thermometer: {face: lakeshore372, address: "TCPIP0::127.0.0.1::47372::SOCKET"}
      readout: {face: mkid_readout_board, address: "TCPIP0::127.0.0.1::47001::SOCKET",
                stream_dest: "127.0.0.1,50000"}    # other keys are the face's options

Port 0 in an address asks for an ephemeral port; the real ports are reported back (``.ports``). A
face that cannot listen raises :class:`cryodaq.errors.ListenError` (``PortInUseError`` for a
port in use) naming the instrument, host and port. The same
world and faces in a child process: :mod:`sim_instruments.servers.simulated_station`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryodaq.errors import ListenError
from cryodaq.wire.addresses import parse_network_address, socket_address
from sim_instruments.faces.registry import FACES, Face
from sim_instruments.world.world import World

__all__ = ["SimServers", "serve"]

log = logging.getLogger(__name__)


def _simulation_section(config: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(config, Mapping):
        raise ValueError(f"simulation config must be a mapping, got {type(config).__name__}")
    if "simulation" in config:
        config = config["simulation"]
    unknown = sorted(set(config) - {"world", "instruments"})
    if unknown:
        raise ValueError(f"simulation: unknown key(s) {unknown}; expected 'world' and 'instruments'")
    return config


@dataclass
class SimServers:
    """The running world and faces of :func:`serve`; stop with ``.stop()`` or as a context manager."""

    world: World
    faces: dict[str, Face] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)

    @property
    def ports(self) -> dict[str, int]:
        return {name: face.port for name, face in self.faces.items()}

    def address(self, name: str) -> str:
        """VISA address of instrument ``name``."""
        return socket_address(getattr(self.faces[name], "host", "127.0.0.1"), self.faces[name].port)

    def ready_line(self) -> str:
        return "sim_instruments ready: " + " ".join(
            f"{name}={self.kinds[name]}@{face.port}" for name, face in self.faces.items())

    def stop(self) -> None:
        for face in reversed(list(self.faces.values())):
            try:
                face.stop()
            except Exception:  # stop the others anyway; the failure is logged with its traceback
                log.exception("stopping a simulated instrument failed")

    def __enter__(self) -> SimServers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(config: Mapping[str, Any], clock: Callable[[], float] | None = None) -> SimServers:
    """Build the world and start every face in this process (threads). Raises ValueError on a bad config."""
    section = _simulation_section(config)
    world = World(section.get("world") or {}, **({"clock": clock} if clock else {}))
    servers = SimServers(world)
    instruments = section.get("instruments") or {}
    if not isinstance(instruments, Mapping):
        raise ValueError("simulation.instruments: expected a mapping of instrument name -> {face, address}")
    try:
        for name, spec in instruments.items():
            where = f"simulation.instruments.{name}"
            if not isinstance(spec, Mapping) or "face" not in spec or "address" not in spec:
                raise ValueError(f"{where}: expected a mapping with 'face' and 'address', got {spec!r}")
            options = dict(spec)
            kind = options.pop("face")
            address = options.pop("address")
            port_option = options.pop("port", None)
            if kind not in FACES:
                raise ValueError(f"{where}.face: unknown face {kind!r}; known: {sorted(FACES)}")
            try:
                # a raw-socket driver (qcodes IPInstrument, e.g. the Oxford Triton) has a
                # bare host as its address and a separate port
                host, port = ((str(address), int(port_option)) if port_option is not None
                              else parse_network_address(address))
            except ValueError as err:
                raise ValueError(f"{where}.address: {err}") from None
            try:
                face = FACES[kind](world, host=host, port=port, name=name, **options)
            except TypeError as err:
                raise ValueError(f"{where}: bad option for face {kind!r}: {err}") from None
            try:
                face.start()
            except OSError as err:  # the port is taken (or the host is not this machine's): say which
                raise ListenError.from_os_error(err, port, host=host, listener=f"simulated instrument {name!r}",
                                                instrument=name) from None
            servers.faces[name] = face
            servers.kinds[name] = kind
    except BaseException:
        servers.stop()
        raise
    return servers
