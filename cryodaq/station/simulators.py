"""The simulated hardware is a plugin: found through an entry point, never imported by name.

A simulator package registers a launcher in the ``cryodaq.simulators`` entry-point group
(cryodaq's own, ``sim_instruments``, does so in ``pyproject.toml``). Station bring-up asks
for it only when a station is simulated, so cryodaq runs where no simulator is installed,
and a lab can ship simulators of its own hardware the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from importlib.metadata import entry_points
from typing import Any, Protocol

from cryodaq.errors import CryodaqError

__all__ = ["ENTRY_POINT_GROUP", "SimulatorLauncher", "SimulatorUnavailableError", "find_simulator_launcher"]

ENTRY_POINT_GROUP = "cryodaq.simulators"
DEFAULT_PLUGIN = "sim_instruments"


class SimulatorLauncher(Protocol):
    """Starts the simulated world and instrument faces a station's ``simulation`` section describes.

    Returns a context manager: entering it waits until every simulated instrument listens and
    gives an object whose ``ports`` maps each instrument name to the port it listens on (port 0
    in an address asks for a free one: this is where the real one is reported); leaving it
    stops them. A face that cannot listen raises :class:`~cryodaq.errors.ListenError` naming the
    instrument (``PortInUseError`` when the port is taken). ``in_process`` runs them as threads
    of this process (tests reach the world as ``.world``); otherwise in a child process that
    exits with its parent and ignores the stop signals (the parent decides when it stops).
    What entering returns may also carry ``instrument_overrides`` (``{instrument name: {station
    entry key: value}}``): settings a plugin that picks its own ports chose once started (e.g. the
    port rfmux's mock took), which station bring-up merges into the instruments' entries.
    """

    def __call__(self, simulation: Mapping[str, Any], *, in_process: bool = False) -> AbstractContextManager[Any]: ...


class SimulatorUnavailableError(CryodaqError, RuntimeError):
    """A station asks for simulated hardware and no simulator plugin is installed."""


def find_simulator_launcher(name: str = DEFAULT_PLUGIN) -> SimulatorLauncher:
    """The launcher registered as ``name`` in the ``cryodaq.simulators`` entry-point group."""
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if name not in found:
        have = ", ".join(sorted(found)) or "none"
        raise SimulatorUnavailableError(
            f"this station is simulated, but no simulator plugin {name!r} is installed "
            f"(entry-point group {ENTRY_POINT_GROUP!r}; installed: {have}); install cryodaq with its "
            "simulators ('pip install -e .' from a clone), or run against real hardware with --no-simulate")
    launcher = found[name].load()
    if not callable(launcher):
        raise SimulatorUnavailableError(f"simulator plugin {name!r} ({found[name].value}) is not callable")
    return launcher
