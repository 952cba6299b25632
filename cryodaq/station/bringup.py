"""Bring a station up for the length of a ``with`` block: its simulators (when simulated), then
the qcodes Station; on leaving, close the instruments, then stop the simulators."""

from __future__ import annotations

import random
import re
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from qcodes.station import Station

from cryodaq.station.config import StationConfig
from cryodaq.station.loader import build_station, close_station
from cryodaq.station.simulators import SimulatorLauncher, find_simulator_launcher

__all__ = ["LiveStation", "free_port", "free_port_block", "station_up", "with_simulator_ports"]

_TCP_URL = re.compile(r"^tcp://[^:/]+:\d+/?$", re.IGNORECASE)
#: ports kept free above a ``tcp://host:port`` base address (DASTARD serves base+0 .. base+4)
TCP_BASE_BLOCK = 8


def free_port() -> int:
    """A TCP port nobody listens on right now (for simulators on loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_block(n: int, *, tries: int = 200) -> int:
    """The first of ``n`` consecutive loopback TCP ports nobody listens on right now (for a simulator
    that, like DASTARD, serves fixed offsets from a base port)."""
    rng = random.Random()
    for _ in range(tries):
        base = rng.randrange(20000, 60000 - n)
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise OSError(f"found no {n} consecutive free TCP ports on 127.0.0.1 in {tries} tries")


def with_simulator_ports(config: StationConfig) -> StationConfig:
    """Give every simulated instrument a free loopback port (``simulation.auto_ports``): a VISA socket
    address gets one; a ``tcp://host:port`` base address (ZeroMQ services at fixed offsets, e.g.
    DASTARD) the first of ``TCP_BASE_BLOCK`` consecutive free ones."""
    instruments = {name: dict(entry) for name, entry in config.instruments.items()}
    for name in config.simulation.faces:
        address = instruments[name].get("address", "")
        parts = address.split("::")
        if len(parts) == 4 and parts[0].upper().startswith("TCPIP") and parts[3].upper() == "SOCKET":
            parts[1], parts[2] = "127.0.0.1", str(free_port())
            instruments[name]["address"] = "::".join(parts)
        elif _TCP_URL.match(address):
            instruments[name]["address"] = f"tcp://127.0.0.1:{free_port_block(TCP_BASE_BLOCK)}"
    return config.with_instruments(instruments)


@dataclass
class LiveStation:
    """A station that is up: the qcodes Station, the config it was built from (simulator ports
    filled in), and what the simulator launcher returned (None for real hardware)."""

    station: Station
    config: StationConfig
    simulators: Any = None
    simulated: bool = False


@contextmanager
def station_up(config: StationConfig, *, simulate: bool | None = None, in_process: bool = False,
               launcher: SimulatorLauncher | None = None) -> Iterator[LiveStation]:
    """Start the station's simulators if it is simulated (``simulate`` overrides the file), then build it.

    The simulators come from ``launcher``, by default the plugin registered in the
    ``cryodaq.simulators`` entry-point group (:mod:`cryodaq.station.simulators`). They run in a
    child process that exits with its parent, or with ``in_process`` as threads of this process
    (tests reach the simulated world as ``live.simulators.world``). With
    ``simulation.auto_ports`` every simulated instrument gets a free loopback port.
    """
    simulate = config.simulation.enabled if simulate is None else bool(simulate)
    if simulate and config.simulation.auto_ports:
        config = with_simulator_ports(config)
    with ExitStack() as stack:
        sims = None
        if simulate:
            launch = launcher or find_simulator_launcher()
            sims = stack.enter_context(launch(config.simulation_dict(), in_process=in_process))
        station = build_station(config)
        stack.callback(close_station, station)
        yield LiveStation(station, config, sims, simulate)
