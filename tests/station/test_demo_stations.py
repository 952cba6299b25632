"""Every shipped station file loads, comes up on its simulators, and snapshots through qcodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cryodaq.station import load_station_config
from cryodaq.station.bringup import station_up

STATIONS = sorted((Path(__file__).resolve().parents[2] / "stations").glob("demo_*.yaml"))
# demo_crs runs on rfmux's own mock (another plugin, ~20 s a start): tests/readout/test_crs_mock.py brings it
# up the same way, once for all the CRS tests
SIM_STATIONS = [p for p in STATIONS if load_station_config(p).simulation.plugin == "sim_instruments"]


def test_the_three_demo_stations_are_shipped():
    names = {p.stem for p in STATIONS}
    assert {"demo_mkid", "demo_tes", "demo_paramp"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("path", SIM_STATIONS, ids=[p.stem for p in SIM_STATIONS])
def test_station_snapshots_on_its_simulators(path):
    config = load_station_config(path)
    assert config.simulation.enabled, f"{path.name} must run on sim_instruments"
    with station_up(config) as live:
        snap = live.station.snapshot(update=True)
        assert set(config.instruments) <= set(snap["instruments"])
        json.dumps(snap, default=str)  # storable in the run attrs
        readout = live.station.components[config.readout.instrument]
        assert float(readout.sample_rate()) > 0
