"""Simulated hardware for cryodaq: one physical world and the instrument faces it shows.

cryodaq finds the simulators through the ``cryodaq.simulators`` entry point, which names
:func:`launch`; ``python -m sim_instruments STATION.yaml`` serves them on their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

__all__ = ["launch"]


def launch(simulation: Mapping[str, Any], *, in_process: bool = False) -> AbstractContextManager[Any]:
    """cryodaq's simulator launcher (``cryodaq.station.simulators.SimulatorLauncher``).

    ``in_process``: serve every face as threads of this process (the running ``SimServers``,
    whose ``.world`` tests reach); otherwise a ``SimulatedStation`` child process that exits
    with its parent. Either is a context manager that stops the simulators on exit.
    """
    from .launcher import SimulatedStation, serve

    return serve(simulation) if in_process else SimulatedStation(simulation)
