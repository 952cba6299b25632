"""The simulators' plugin entry point: what cryodaq's ``cryodaq.simulators`` entry point names.

``pyproject.toml`` registers ``sim_instruments:launch`` (``sim_instruments`` exports this
:func:`launch` lazily); cryodaq's station bring-up calls it when a station is simulated
(``cryodaq.station.simulators.SimulatorLauncher``).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from sim_instruments.servers.launcher import serve
from sim_instruments.servers.simulated_station import SimulatedStation

__all__ = ["launch"]


def launch(simulation: Mapping[str, Any], *, in_process: bool = False) -> AbstractContextManager[Any]:
    """cryodaq's simulator launcher (``cryodaq.station.simulators.SimulatorLauncher``).

    ``in_process``: serve every face as threads of this process (the running ``SimServers``,
    whose ``.world`` tests reach); otherwise a ``SimulatedStation`` child process that exits
    with its parent. Either is a context manager that stops the simulators on exit.
    """
    return serve(simulation) if in_process else SimulatedStation(simulation)
