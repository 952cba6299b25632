"""Station files: load, validate, and bring up as a qcodes Station."""

from cryodaq.station.config import (
    HousekeepingConfig,
    PipelineConfig,
    PublishConfig,
    ReadoutConfig,
    ReliabilityConfig,
    SimulationConfig,
    StationConfig,
    TriggerConfig,
    load_station_config,
)
from cryodaq.station.limits import SafetyLimit, apply_safety_limit
from cryodaq.station.loader import build_station, close_station, resolve_parameter

__all__ = [
    "HousekeepingConfig", "PipelineConfig", "PublishConfig", "ReadoutConfig", "ReliabilityConfig", "SimulationConfig", "StationConfig",
    "TriggerConfig", "load_station_config", "SafetyLimit", "apply_safety_limit", "build_station",
    "close_station", "resolve_parameter",
]
