"""Station files: load, validate, and bring up as a qcodes Station.
"""

from cryodaq._lazy import lazy_getattr

_EXPORTS = {
    "HousekeepingConfig": "cryodaq.station.config",
    "PipelineConfig": "cryodaq.station.config",
    "PublishConfig": "cryodaq.station.config",
    "ReadoutConfig": "cryodaq.station.config",
    "ReliabilityConfig": "cryodaq.station.config",
    "SafetyLimit": "cryodaq.station.limits",
    "SimulationConfig": "cryodaq.station.config",
    "StationConfig": "cryodaq.station.config",
    "TriggerConfig": "cryodaq.station.config",
    "apply_safety_limit": "cryodaq.station.limits",
    "build_station": "cryodaq.station.loader",
    "close_station": "cryodaq.station.loader",
    "load_station_config": "cryodaq.station.config",
    "resolve_parameter": "cryodaq.station.loader",
}

__getattr__ = lazy_getattr(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
