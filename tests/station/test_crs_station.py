"""The CRS station file: its simulation plugin, the settings a simulator reports back, limits over channel
lists, and the one-line answer where rfmux cannot run."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from cryodaq.errors import StationConfigError
from cryodaq.station import load_station_config
from cryodaq.station.bringup import station_up

CRS = Path(__file__).resolve().parents[2] / "stations" / "demo_crs.yaml"


def test_demo_crs_station_loads():
    cfg = load_station_config(CRS)
    assert cfg.simulation.plugin == "rfmux_mock" and cfg.simulation.faces == {"crs": "mock_crs"}
    cal = cfg.pipeline.calibration
    assert cal.method == "resonator_fit" and cal.search is not None and cal.search.stop_hz > cal.search.start_hz
    assert cfg.pipeline.store_iq and cfg.safety_limits["crs.channels.amplitude"] == (-0.01, 0.01)
    assert cfg.pipeline.as_dict()["calibration"]["search"]["step_hz"] == cal.search.step_hz


@pytest.mark.parametrize(("edit", "key"), [
    (lambda c: c["pipeline"]["calibration"]["search"].__setitem__("stop_hz", 1.0e9),
     "cryodaq.pipeline.calibration.search.stop_hz"),
    (lambda c: c["pipeline"]["calibration"]["search"].__setitem__("tone", 10),
     "cryodaq.pipeline.calibration.search.tone"),
    (lambda c: c["pipeline"]["calibration"].__setitem__("method", "guess"), "cryodaq.pipeline.calibration.method"),
    (lambda c: c["simulation"].__setitem__("plugin", ""), "cryodaq.simulation.plugin"),
])
def test_bad_crs_settings_name_the_key(tmp_path: Path, edit, key: str):
    doc = yaml.safe_load(CRS.read_text())
    edit(doc["cryodaq"])
    path = tmp_path / "crs.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(StationConfigError, match=rf"{key}: expected"):
        load_station_config(path)


class FakeSimulators:
    """What a launcher returns: settings it chose once started (as rfmux's mock reports its port)."""

    instrument_overrides = {"readout": {"address": "TCPIP0::127.0.0.1::1::SOCKET", "init": {"extra": 1}}}


def test_station_up_merges_what_the_simulator_reports_into_the_instruments(monkeypatch):
    cfg = load_station_config(Path(__file__).resolve().parents[2] / "stations" / "demo_mkid.yaml")
    cfg = replace(cfg, simulation=replace(cfg.simulation, auto_ports=False))  # a plugin that picks its own ports
    seen: dict[str, Any] = {}

    @contextmanager
    def launcher(simulation, *, in_process=False):
        yield FakeSimulators()

    def build(config):
        seen["readout"] = config.instruments["readout"]
        raise RuntimeError("stop here")

    monkeypatch.setattr("cryodaq.station.bringup.build_station", build)
    with pytest.raises(RuntimeError, match="stop here"):
        with station_up(cfg, simulate=True, launcher=launcher):
            pass
    assert seen["readout"]["address"] == "TCPIP0::127.0.0.1::1::SOCKET"
    assert seen["readout"]["init"] == {"extra": 1}
    assert seen["readout"]["parameters"]["dac_attenuation"] == {"initial_value": 10.0}  # the rest kept
    with pytest.raises(StationConfigError, match="simulator reported settings for another"):
        cfg.with_overrides({"nope": {"address": "x"}})


def test_where_rfmux_cannot_run_the_crs_station_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    import sys

    from cryodaq.cli import main

    monkeypatch.setenv("RFMUX_PYTHON", sys.executable)  # a Python without rfmux
    assert main(["run", str(CRS), "--duration", "1", "--out", str(tmp_path), "-q"]) == 2
    err = " ".join(capsys.readouterr().err.split())  # the console wraps long lines
    assert "error: the rfmux mock CRS is unavailable" in err and "pip install rfmux==1.7.0" in err
    assert "Traceback" not in err and not list(tmp_path.glob("*.zarr"))
