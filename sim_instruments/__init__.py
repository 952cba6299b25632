"""Simulated hardware for cryodaq: one physical world and the instrument faces it shows.

A plugin of cryodaq, split by job: :mod:`sim_instruments.world` (the physics),
:mod:`sim_instruments.faces` (one module per instrument, speaking its real protocol) and
:mod:`sim_instruments.servers` (TCP/SCPI/UDP serving, the launcher, ``python -m sim_instruments``).
cryodaq finds the simulators through the ``cryodaq.simulators`` entry point, which names
:func:`launch` (and :func:`launch_rfmux_mock`: rfmux's own mock CRS, run in rfmux's environment);
the plugin may import cryodaq's wire formats, cryodaq never imports it.
"""

from typing import TYPE_CHECKING

from cryodaq._lazy import lazy_exports

if TYPE_CHECKING:  # the public names (explicit re-exports); lazy_exports imports each on first use
    from sim_instruments.faces.registry import FACES as FACES
    from sim_instruments.servers.launcher import SimServers as SimServers, serve as serve
    from sim_instruments.servers.plugin import launch as launch
    from sim_instruments.servers.rfmux_mock import launch as launch_rfmux_mock
    from sim_instruments.servers.simulated_station import SimulatedStation as SimulatedStation
    from sim_instruments.world.world import World as World, WorldConfig as WorldConfig

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
