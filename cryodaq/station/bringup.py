"""Bring a station up for the length of a ``with`` block: its simulators (when simulated), then
the qcodes Station; on leaving, close the instruments, then stop the simulators."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from qcodes.station import Station

from cryodaq.station.config import StationConfig
from cryodaq.station.loader import build_station, close_station
from cryodaq.station.simulators import SimulatorLauncher, find_simulator_launcher

__all__ = ["LiveStation", "free_port", "station_up", "with_simulator_ports"]


def free_port() -> int:
    """A TCP port nobody listens on right now (for simulators on loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_simulator_ports(config: StationConfig) -> StationConfig:
    """Give every simulated instrument a free loopback port (``simulation.auto_ports``)."""
    instruments = {name: dict(entry) for name, entry in config.instruments.items()}
    for name in config.simulation.faces:
        address = instruments[name].get("address", "")
        parts = address.split("::")
        if len(parts) == 4 and parts[0].upper().startswith("TCPIP") and parts[3].upper() == "SOCKET":
            parts[1], parts[2] = "127.0.0.1", str(free_port())
            instruments[name]["address"] = "::".join(parts)
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

    The simulators come from ``launcher``, by default the plugin the station names
    (``simulation.plugin``, registered in the ``cryodaq.simulators`` entry-point group,
    :mod:`cryodaq.station.simulators`). They run in a child process that exits with its parent,
    or with ``in_process`` as threads of this process (tests reach the simulated world as
    ``live.simulators.world``). With ``simulation.auto_ports`` every simulated instrument gets a
    free loopback port; settings a simulator could only choose once started (its
    ``instrument_overrides``, e.g. the port rfmux's mock took) are merged into the instruments.
    """
    simulate = config.simulation.enabled if simulate is None else bool(simulate)
    if simulate and config.simulation.auto_ports:
        config = with_simulator_ports(config)
    with ExitStack() as stack:
        sims = None
        if simulate:
            launch = launcher or find_simulator_launcher(config.simulation.plugin)
            sims = stack.enter_context(launch(config.simulation_dict(), in_process=in_process))
            overrides = getattr(sims, "instrument_overrides", None)
            if overrides:
                config = config.with_overrides(overrides)
        station = build_station(config)
        stack.callback(close_station, station)
        yield LiveStation(station, config, sims, simulate)
