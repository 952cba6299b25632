"""Bring a station up for the length of a ``with`` block: its simulators (when simulated), then
the qcodes Station; on leaving, close the instruments, then stop the simulators."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from qcodes.station import Station

from cryodaq.errors import ListenError
from cryodaq.station.config import StationConfig
from cryodaq.station.loader import build_station, close_station
from cryodaq.station.simulators import DEFAULT_PLUGIN, SimulatorLauncher, find_simulator_launcher
from cryodaq.wire.addresses import LOOPBACK, with_endpoint

__all__ = ["LiveStation", "free_port", "station_up", "with_simulator_ports"]


def free_port() -> int:
    """A TCP port nobody listens on right now. Racy (another program may take it before it is
    bound again): prefer binding port 0 and reading the port back, as the simulators do."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def with_simulator_ports(config: StationConfig, ports: Mapping[str, int], host: str = LOOPBACK) -> StationConfig:
    """``config`` with each simulated instrument reaching ``host:ports[name]`` — the ports its
    simulators report after binding port 0 (``simulation.auto_ports``) — written in the
    instrument entry's own address form (VISA socket, ``http://host:port``, host + ``port``)."""
    instruments = {name: dict(entry) for name, entry in config.instruments.items()}
    for name in config.simulation.faces:
        instruments[name] = with_endpoint(instruments[name], host, int(ports[name]))
    return config.with_instruments(instruments)


@dataclass
class LiveStation:
    """A station that is up: the qcodes Station, the config it was built from (simulator ports
    filled in), and what the simulator launcher returned (None for real hardware)."""

    station: Station
    config: StationConfig
    simulators: Any = None
    simulated: bool = False


def _address_key(config: StationConfig, instrument: str) -> str:
    entry = config.instruments.get(instrument, {})
    return f"instruments.{instrument}.{'port' if 'port' in entry else 'address'}"


@contextmanager
def station_up(config: StationConfig, *, simulate: bool | None = None, in_process: bool = False,
               launcher: SimulatorLauncher | None = None) -> Iterator[LiveStation]:
    """Start the station's simulators if it is simulated (``simulate`` overrides the file), then build it.

    The simulators come from ``launcher``, by default the plugin the station names
    (``simulation.plugin``, registered in the ``cryodaq.simulators`` entry-point group,
    :mod:`cryodaq.station.simulators`). They run in a child process that exits with its parent,
    or with ``in_process`` as threads of this process (tests reach the simulated world as
    ``live.simulators.world``). With ``simulation.auto_ports`` every instrument the
    ``sim_instruments`` plugin serves binds port 0 of loopback and the instruments are pointed at
    the ports the simulators report, so no other program can take a port between its choice and
    its use. Settings another plugin could only choose once started (its
    ``instrument_overrides``, e.g. the port rfmux's mock took) are merged into the instruments. A
    simulator that cannot listen (``auto_ports: false`` and its port taken) raises
    :class:`~cryodaq.errors.ListenError` naming the file, the instrument's key and the port.
    """
    simulate = config.simulation.enabled if simulate is None else bool(simulate)
    # free ports for the faces sim_instruments serves; another plugin picks its own and reports them
    auto_ports = simulate and config.simulation.auto_ports and config.simulation.plugin == DEFAULT_PLUGIN
    with ExitStack() as stack:
        sims = None
        if simulate:
            launch = launcher or find_simulator_launcher(config.simulation.plugin)
            try:
                sims = stack.enter_context(launch(config.simulation_dict(free_ports=auto_ports),
                                                  in_process=in_process))
            except ListenError as exc:
                if exc.file or not exc.instrument:
                    raise
                hint = "free it, or let the simulators choose free ports (cryodaq.simulation.auto_ports: true)"
                raise exc.located(str(config.path), _address_key(config, exc.instrument), hint) from None
            if auto_ports:
                config = with_simulator_ports(config, sims.ports)
            overrides = getattr(sims, "instrument_overrides", None)
            if overrides:
                config = config.with_overrides(overrides)
        station = build_station(config)
        stack.callback(close_station, station)
        yield LiveStation(station, config, sims, simulate)
