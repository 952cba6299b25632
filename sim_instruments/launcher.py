"""Start the simulated world and its instrument faces, in-process or in a child process.

Config (the ``simulation`` section of a station file; the outer ``{"simulation": ...}``
wrapper is accepted too)::

    world: {seed: 1, ...}                      # WorldConfig overrides
    instruments:                               # station instrument name -> face
      fridge_thermometer: {face: lakeshore372, address: "TCPIP0::127.0.0.1::47372::SOCKET"}
      readout: {face: mkid_readout_board, address: "TCPIP0::127.0.0.1::47001::SOCKET",
                stream_dest: "127.0.0.1,50000"}    # other keys are the face's options

Port 0 in an address asks for an ephemeral port; the real ports are reported back.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import re
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .bluefors import BlueforsControlUnit
from .lakeshore372 import Lakeshore372
from .triton import OxfordTriton
from .mkid_readout_board import MkidReadoutBoard
from .gs200 import YokogawaGS200
from .n9030b import KeysightN9030B
from .noise_load_switch import NoiseSourceSwitch
from .signal_generators import KeysightN51x1, RohdeSchwarzSGS100A
from .keithley2450 import Keithley2450
from .squid_controller import SquidController
from .tes_readout_board import TesReadoutBoard
from .vna_pna import KeysightPna
from .vna_znb import RohdeSchwarzZnb
from .world import World

log = logging.getLogger(__name__)


class Face(Protocol):
    """What a face is: built as ``factory(world, host=, port=, name=, **options)``."""

    port: int

    def start(self) -> Any: ...

    def stop(self) -> None: ...


#: face name -> factory; later issues register more (VNA, pump source, Bluefors, SQUID ...)
FACES: dict[str, Callable[..., Face]] = {
    "lakeshore372": Lakeshore372,
    "mkid_readout_board": MkidReadoutBoard,
    # fridge controllers (the Lakeshore 372 above is the third)
    "oxford_triton": OxfordTriton,
    "bluefors": BlueforsControlUnit,
    # paramp: pump sources, flux bias, noise analyzer, hot/cold load switch
    "rs_sgs100a": RohdeSchwarzSGS100A,
    "keysight_n51x1": KeysightN51x1,
    "yokogawa_gs200": YokogawaGS200,
    "keysight_n9030b": KeysightN9030B,
    "noise_source_switch": NoiseSourceSwitch,
    # TES: bias source, SQUID FLL controller, demultiplexed readout (need world.tes.enabled)
    "keithley2450": Keithley2450,
    "squid_controller": SquidController,
    "tes_readout_board": TesReadoutBoard,
    # vector network analysers (S21 of the world's feedline and amplifier chain)
    "keysight_pna": KeysightPna,
    "rs_znb": RohdeSchwarzZnb,
}

_VISA_SOCKET = re.compile(r"^TCPIP\d*::(?P<host>[^:]+)::(?P<port>\d+)::SOCKET$", re.IGNORECASE)


def parse_visa_address(address: str) -> tuple[str, int]:
    """(host, port) of a ``TCPIP0::host::port::SOCKET`` VISA address."""
    m = _VISA_SOCKET.match(str(address).strip())
    if not m:
        raise ValueError(f"expected a VISA socket address 'TCPIP0::<host>::<port>::SOCKET', got {address!r}")
    port = int(m["port"])
    if port > 65535:
        raise ValueError(f"port {port} in {address!r} is out of range 0..65535")
    return m["host"], port


_HTTP_URL = re.compile(r"^https?://(?P<host>[^:/]+):(?P<port>\d+)/?$", re.IGNORECASE)


def parse_face_address(address: str) -> tuple[str, int]:
    """(host, port) of a face address: a VISA socket address, or ``http://host:port`` (HTTP faces).

    A face spec may instead give a bare host as ``address`` and a separate ``port``.
    """
    m = _HTTP_URL.match(str(address).strip())
    if m:
        port = int(m["port"])
        if port > 65535:
            raise ValueError(f"port {port} in {address!r} is out of range 0..65535")
        return m["host"], port
    try:
        return parse_visa_address(address)
    except ValueError:
        raise ValueError(f"expected 'TCPIP0::<host>::<port>::SOCKET' or 'http://<host>:<port>' "
                         f"(or a host with a separate 'port'), got {address!r}") from None


def socket_address(host: str, port: int) -> str:
    """The VISA address of a face listening on ``host:port``."""
    return f"TCPIP0::{host}::{port}::SOCKET"


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
                              else parse_face_address(address))
            except ValueError as err:
                raise ValueError(f"{where}.address: {err}") from None
            try:
                face = FACES[kind](world, host=host, port=port, name=name, **options)
            except TypeError as err:
                raise ValueError(f"{where}: bad option for face {kind!r}: {err}") from None
            face.start()
            servers.faces[name] = face
            servers.kinds[name] = kind
    except BaseException:
        servers.stop()
        raise
    return servers


# -- child process -----------------------------------------------------------------------

def _child_main(config: Mapping[str, Any], ready: Any, stop: Any) -> None:
    try:
        servers = serve(config)
    except BaseException as err:
        ready.put({"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()})
        return
    parent = mp.parent_process()
    try:
        ready.put({"ports": servers.ports, "line": servers.ready_line()})
        # Stop when asked, or when the parent died (a SIGKILLed run must not leave
        # an orphan simulator streaming and holding its ports).
        while not stop.wait(0.5):
            if parent is not None and not parent.is_alive():
                break
    finally:
        servers.stop()


class SimulatedStation:
    """The world and all faces in a separate process ('spawn'), for end-to-end tests and demos.

    ``with SimulatedStation(cfg) as sim: sim.ports["readout"]`` — waits until every
    server listens (``timeout_s``), raises RuntimeError with the child's error otherwise;
    on exit asks the child to stop and kills it if it does not.
    """

    def __init__(self, config: Mapping[str, Any], timeout_s: float = 30.0) -> None:
        self.config = dict(config)
        self.timeout_s = timeout_s
        self.ports: dict[str, int] = {}
        self.ready_line = ""
        self._ctx = mp.get_context("spawn")
        self._process: mp.process.BaseProcess | None = None
        self._stop = None

    def start(self) -> SimulatedStation:
        ready = self._ctx.Queue()
        self._stop = self._ctx.Event()
        self._process = self._ctx.Process(target=_child_main, args=(self.config, ready, self._stop),
                                          name="sim_instruments", daemon=True)
        self._process.start()
        deadline = time.monotonic() + self.timeout_s
        msg = None
        while msg is None:
            try:
                msg = ready.get(timeout=0.2)
            except queue.Empty:
                exitcode = self._process.exitcode
                if exitcode is not None or time.monotonic() > deadline:
                    self.stop()
                    why = (f"exited with code {exitcode} before reporting ready (see its stderr)"
                           if exitcode is not None else f"did not report ready within {self.timeout_s} s")
                    raise RuntimeError(f"sim_instruments child process {why}") from None
        if "error" in msg:
            self.stop()
            raise RuntimeError(f"sim_instruments failed to start: {msg['error']}\n{msg['traceback']}")
        self.ports = dict(msg["ports"])
        self.ready_line = msg["line"]
        return self

    def address(self, name: str, host: str = "127.0.0.1") -> str:
        return socket_address(host, self.ports[name])

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def stop(self, timeout_s: float = 5.0) -> None:
        proc = self._process
        if proc is None:
            return
        if self._stop is not None:
            self._stop.set()
        proc.join(timeout_s)
        if proc.is_alive():
            log.warning("sim_instruments process %s did not stop in %.1f s; terminating", proc.pid, timeout_s)
            proc.terminate()
            proc.join(2.0)
        if proc.is_alive():
            proc.kill()
            proc.join(2.0)
        self._process = None

    def __enter__(self) -> SimulatedStation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
