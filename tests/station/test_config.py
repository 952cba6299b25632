"""Station files: a bad file fails before any instrument is touched, naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cryodaq.errors import SafetyLimitError, StationConfigError
from cryodaq.station import SafetyLimit, load_station_config

STATIONS = Path(__file__).resolve().parents[2] / "stations"
DEMO = STATIONS / "demo_mkid.yaml"


def _variant(tmp_path: Path, edit) -> Path:
    doc = yaml.safe_load(DEMO.read_text())
    edit(doc)
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_demo_station_loads():
    cfg = load_station_config(DEMO)
    assert cfg.name == "demo_mkid"
    assert cfg.readout.instrument == "readout"
    assert cfg.pipeline.n_channels == 64
    assert cfg.safety_limits["readout.tone_amplitudes"] == (0.0, 0.25)
    assert cfg.simulation.enabled and cfg.simulation.faces["readout"] == "mkid_readout_board"
    assert "instruments" in yaml.safe_load(cfg.qcodes_yaml())


@pytest.mark.parametrize(
    ("edit", "key", "expected"),
    [
        (lambda d: d["cryodaq"]["pipeline"].__setitem__("n_taps", "eight"), "cryodaq.pipeline.n_taps",
         "positive integer"),
        (lambda d: d["cryodaq"]["pipeline"].__setitem__("n_channels", 48), "cryodaq.pipeline.n_channels",
         "power of two"),
        (lambda d: d["cryodaq"]["pipeline"].__setitem__("n_tap", 8), "cryodaq.pipeline.n_tap", "known keys"),
        (lambda d: d["cryodaq"]["readout"].__setitem__("instrument", "nope"), "cryodaq.readout.instrument",
         "one of the instruments"),
        (lambda d: d["cryodaq"]["safety_limits"].__setitem__("readout.dac_attenuation", [5, 1]),
         "cryodaq.safety_limits.readout.dac_attenuation", "min <= max"),
        (lambda d: d["cryodaq"]["housekeeping"]["parameters"].__setitem__("t", "ghost.temperature"),
         "cryodaq.housekeeping.parameters.t", "one of the instruments"),
        (lambda d: d["instruments"]["readout"].__setitem__("type", "cryodaq.instruments.NoSuchBoard"),
         "instruments.readout.type", "importable"),
        (lambda d: d["instruments"]["readout"].__setitem__("adress", "x"), "instruments.readout",
         "adress"),
        (lambda d: d["cryodaq"]["readout"].pop("instrument"), "cryodaq.readout.instrument", "missing"),
        (lambda d: d.__setitem__("extra", 1), "extra", "top-level"),
        (lambda d: d["cryodaq"]["pipeline"].__setitem__("veto", {"max_channels": 0}),
         "cryodaq.pipeline.veto.max_channels", "positive integer"),
        (lambda d: d["cryodaq"]["pipeline"].__setitem__("veto", {"window_s": -1e-6}),
         "cryodaq.pipeline.veto.window_s", "positive number"),
        (lambda d: d["cryodaq"].__setitem__("timing", {"jump_threshold_s": "1 ms"}),
         "cryodaq.timing.jump_threshold_s", "positive number"),
        (lambda d: d["cryodaq"].__setitem__("timing", {"host_clock_every": 5}), "cryodaq.timing.host_clock_every",
         "known keys"),
        (lambda d: d["cryodaq"]["readout"].__setitem__("instrument", ["readout", "ghost"]),
         "cryodaq.readout.instrument", "one of the instruments"),
        (lambda d: d["cryodaq"]["readout"].__setitem__("instrument", ["readout", "readout"]),
         "cryodaq.readout.instrument", "distinct names"),
        (lambda d: (d["cryodaq"]["readout"].update(instrument=["readout", "fridge"], data_port=50000)),
         "cryodaq.readout.data_port", "0 (any free port) when several readouts stream"),
    ],
)
def test_bad_station_names_file_key_and_expectation(tmp_path, edit, key, expected):
    path = _variant(tmp_path, edit)
    with pytest.raises(StationConfigError) as err:
        load_station_config(path)
    msg = str(err.value)
    assert str(path) in msg
    assert key in msg
    assert expected in msg


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("instruments:\n  a: [1, 2\n")
    with pytest.raises(StationConfigError, match=r"broken\.yaml: line \d+"):
        load_station_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(StationConfigError, match="no such file"):
        load_station_config(tmp_path / "absent.yaml")


def test_safety_limit_validator_message():
    lim = SafetyLimit(0.0, 0.25, "readout", "tone_amplitudes")
    lim.validate([0.1, 0.25])
    with pytest.raises(SafetyLimitError) as err:
        lim.validate([0.1, 0.3])
    msg = str(err.value)
    assert "readout.tone_amplitudes" in msg and "[0, 0.25]" in msg and "nothing was sent" in msg
    with pytest.raises(SafetyLimitError):
        lim.validate(float("nan"))


def test_simulated_tcp_base_address_listens_on_a_free_port():
    """A ``tcp://host:port`` base address (DASTARD) asks its simulator for free ports like the others."""
    sim = load_station_config(STATIONS / "demo_dastard.yaml").simulation_dict(free_ports=True)
    assert sim["instruments"]["dastard"]["address"] == "tcp://127.0.0.1:0"
    assert sim["instruments"]["fridge_thermometer"]["address"] == "TCPIP0::127.0.0.1::0::SOCKET"


def test_veto_and_timing_sections(tmp_path):
    def edit(d):
        d["cryodaq"]["pipeline"]["veto"] = {"window_s": 20e-6, "max_channels": 5}
        d["cryodaq"]["timing"] = {"jump_threshold_s": 0.01, "host_clock_interval_s": 0}

    cfg = load_station_config(_variant(tmp_path, edit))
    assert cfg.pipeline.veto.enabled and cfg.pipeline.veto.window_s == 20e-6 and cfg.pipeline.veto.max_channels == 5
    assert cfg.timing.jump_threshold_s == 0.01 and cfg.timing.host_clock_interval_s == 0
    assert cfg.pipeline.as_dict()["veto"] == {"enabled": True, "window_s": 20e-6, "max_channels": 5}
    plain = load_station_config(DEMO)
    assert not plain.pipeline.veto.enabled and plain.readout.instruments == ("readout",)
