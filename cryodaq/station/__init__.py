"""cryodaq.station: station files — load and validate them, bring a station (and its simulators) up.

- :func:`load_station_config` → :class:`StationConfig` (no instrument touched; errors name file and key)
- :mod:`cryodaq.station.preflight`: before any instrument is touched, the output directory and every port
- :func:`build_station` / :func:`station_up`: the qcodes Station, safety limits as validators
- :func:`find_simulator_launcher`: the simulated hardware, a plugin found by entry point
"""

from typing import TYPE_CHECKING

from cryodaq._lazy import lazy_exports

if TYPE_CHECKING:  # the public names (explicit re-exports); lazy_exports imports each on first use
    from cryodaq.station.bringup import LiveStation as LiveStation, station_up as station_up
    from cryodaq.station.config import (
        HousekeepingConfig as HousekeepingConfig,
        PublishConfig as PublishConfig,
        ReadoutConfig as ReadoutConfig,
        ReliabilityConfig as ReliabilityConfig,
        SimulationConfig as SimulationConfig,
        StationConfig as StationConfig,
        load_station_config as load_station_config,
    )
    from cryodaq.station.limits import SafetyLimit as SafetyLimit, apply_safety_limit as apply_safety_limit
    from cryodaq.station.loader import (
        build_station as build_station,
        close_station as close_station,
        resolve_parameter as resolve_parameter,
    )
    from cryodaq.station.simulators import (
        SimulatorLauncher as SimulatorLauncher,
        find_simulator_launcher as find_simulator_launcher,
    )

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
