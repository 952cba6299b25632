"""The Fridge meta-instrument over each backend (Lakeshore 372, Oxford Triton, Bluefors) on the simulators."""

from __future__ import annotations

import itertools
import textwrap

import pytest
from qcodes.instrument_drivers.Lakeshore import LakeshoreModel372
from qcodes.instrument_drivers.oxford import OxfordTriton

from cryodaq.errors import FridgeNotStableError, SafetyLimitError
from cryodaq.instruments import BlueforsControlUnit, Fridge
from cryodaq.instruments.reliability import is_reliable
from cryodaq.station import build_station, close_station, load_station_config
from sim_instruments.faces.bluefors import BlueforsControlUnitFace
from sim_instruments.faces.lakeshore372 import Lakeshore372Face
from sim_instruments.faces.oxford_triton import OxfordTritonFace
from sim_instruments.world.world import World

_names = itertools.count()
TARGET = 0.1


def world() -> World:
    return World({"fridge": {"tau_s": 0.05}})


def recorder(face, seen: list[str]) -> None:
    """Record every command the line-server face receives."""
    original = face.handle

    def handle(command: str):
        seen.append(command)
        return original(command)

    face.handle = handle


@pytest.fixture
def ls_sim():
    with Lakeshore372Face(world(), port=0) as face:
        yield face


@pytest.fixture
def ls(ls_sim):
    inst = LakeshoreModel372(f"ls_{next(_names)}", f"TCPIP0::127.0.0.1::{ls_sim.port}::SOCKET", visalib="@py",
                             print_connect_message=False, timeout=2)
    yield inst
    inst.close()


@pytest.fixture
def ls_fridge(ls):
    fridge = Fridge(f"fridge_{next(_names)}", thermometry=ls, channels={"mxc": "ch01", "still": "ch02.temperature"},
                    max_heater_power_w=2e-3, pid={"P": 20, "I": 0.5, "D": 0})
    yield fridge
    fridge.close()


def settle_and_check(fridge: Fridge, sim_world: World) -> None:
    fridge.setpoint(TARGET)
    result = fridge.wait_until_stable(tolerance_k=0.002, hold_time_s=0.3, timeout_s=8, poll_s=0.05)
    assert result.channel == "mxc" and result.target_k == pytest.approx(TARGET)
    assert abs(result.value_k - TARGET) <= 0.002 and result.held_s >= 0.3 and result.n_readings >= 2
    assert sim_world.temperature_k() == pytest.approx(TARGET, abs=0.002)
    assert fridge.setpoint() == pytest.approx(TARGET)
    # the heater delivers what the fridge needs to sit at the target
    assert fridge.heater_power() == pytest.approx(sim_world.fridge.power_for_k(sim_world.temperature_k()), rel=0.1)


def test_lakeshore_channels_setpoint_and_stability(ls_fridge, ls, ls_sim):
    assert ls_fridge.mxc() == pytest.approx(0.012, rel=0.01)
    assert 0.8 < ls_fridge.still() < 0.9
    assert ls_fridge.mxc.unit == "K" and ls_fridge.channel_names == ["mxc", "still"]
    assert ls_fridge.heater_power() == 0.0
    settle_and_check(ls_fridge, ls_sim.world)
    h = ls.sample_heater
    assert (h.mode(), h.input_channel(), h.P(), h.I()) == ("closed_loop", 1, 20.0, 0.5)
    # 2 mW limit with 120 Ohm: the largest range within it is 3.16 mA (1.2 mW full scale)
    assert h.output_range() == "3.16mA"
    ls_fridge.heater_off()
    assert h.mode() == "off" and ls_fridge.heater_power() == 0.0


def test_lakeshore_power_limit_picks_the_range_and_refuses_too_small(ls_fridge, ls):
    ls_fridge.setpoint(0.05)
    ls_fridge.max_heater_power(200e-6)  # applies at once while the loop runs
    assert ls.sample_heater.output_range() == "1mA"  # 120 uW full scale
    with pytest.raises(ValueError, match="below the smallest heater range"):
        ls_fridge.max_heater_power(1e-9)


def test_warm_up_fault_makes_wait_until_stable_time_out(ls_fridge, ls, ls_sim):
    ls_fridge.setpoint(TARGET)
    ls_fridge.wait_until_stable(0.002, 0.2, 8, poll_s=0.05)
    ls.write("SIM:FAULT:WARMUP 0.5")  # injected through the face's protocol, as scripts do
    with pytest.raises(FridgeNotStableError) as info:
        ls_fridge.wait_until_stable(0.002, 0.3, timeout_s=0.6, poll_s=0.05)
    assert isinstance(info.value, TimeoutError)
    msg = str(info.value)
    assert ls_fridge.name in msg and "mxc" in msg and "0.1 K" in msg and "last reading" in msg
    ls.write("SIM:FAULT:WARMUP:STOP")


def test_triton_backend(request):
    sim = OxfordTritonFace(world(), port=0).start()
    request.addfinalizer(sim.stop)
    tr = OxfordTriton(f"tr_{next(_names)}", address="127.0.0.1", port=sim.port, timeout=2)
    request.addfinalizer(tr.close)
    fridge = Fridge(f"fridge_{next(_names)}", thermometry=tr, channels={"mxc": "MC", "still": "STIL", "plate_4k": "T2"},
                    max_heater_power_w=2e-3, pid={"P": 20, "I": 0.5, "D": 0})
    request.addfinalizer(fridge.close)
    assert 3.0 < fridge.plate_4k() < 3.6
    settle_and_check(fridge, sim.world)
    assert tr.pid_control_channel() == 8 and tr.pid_mode() == "on" and tr.pid_range() == 3.16
    fridge.heater_off()
    assert tr.pid_mode() == "off"


def test_bluefors_backend(request):
    sim = BlueforsControlUnitFace(world(), port=0).start()
    request.addfinalizer(sim.stop)
    bf = BlueforsControlUnit(f"bf_{next(_names)}", sim.url, timeout=2)
    request.addfinalizer(bf.close)
    fridge = Fridge(f"fridge_{next(_names)}", thermometry=bf, channels={"mxc": "mxc", "plate_50k": "plate_50k"},
                    max_heater_power_w=2e-3, pid={"P": 10, "I": 0.2, "D": 0})
    request.addfinalizer(fridge.close)
    assert fridge.plate_50k() == 45.0
    settle_and_check(fridge, sim.world)
    assert bf.mxc_heater.mode() == "closed_loop" and bf.mxc_heater.max_power() == 2e-3
    fridge.heater_off()
    assert bf.mxc_heater.mode() == "off"


def test_bad_configurations_are_clear(ls):
    with pytest.raises(ValueError, match="identifier"):
        Fridge(f"fridge_{next(_names)}", thermometry=ls, channels={"4k": "ch03"})
    with pytest.raises(ValueError, match="channels.mxc.*ch99"):
        Fridge(f"fridge_{next(_names)}", thermometry=ls, channels={"mxc": "ch99"})
    with pytest.raises(ValueError, match="control_channel 'mc'"):
        Fridge(f"fridge_{next(_names)}", thermometry=ls, channels={"mxc": "ch01"}, control_channel="mc")
    with pytest.raises(ValueError, match="'no_such_instrument' is not loaded.*before the fridge"):
        Fridge(f"fridge_{next(_names)}", thermometry="no_such_instrument", channels={"mxc": "ch01"})
    with pytest.raises(ValueError, match="pid keys"):
        Fridge(f"fridge_{next(_names)}", thermometry=ls, channels={"mxc": "ch01"}, pid={"Kp": 1})


STATION = """\
instruments:
  fridge_thermometer:
    type: qcodes.instrument_drivers.Lakeshore.LakeshoreModel372
    address: TCPIP0::127.0.0.1::{port}::SOCKET
    init: {{visalib: "@py", terminator: "\\r\\n", print_connect_message: false}}
  fridge:
    type: cryodaq.instruments.Fridge
    init:
      thermometry: fridge_thermometer
      channels: {{mxc: ch01, still: ch02}}
      max_heater_power_w: 1.0e-3
cryodaq:
  readout: {{instrument: fridge_thermometer}}
  safety_limits:
    fridge.setpoint: [0.005, 0.5]
    fridge.max_heater_power: [0.0, 2.0e-3]
  reliability: {{retries: 1, backoff_s: 0.05, timeout_s: 1.5}}
"""


def test_station_file_builds_the_fridge_and_enforces_its_limits(tmp_path, ls_sim):
    path = tmp_path / "fridge.yaml"
    path.write_text(STATION.format(port=ls_sim.port))
    config = load_station_config(path)
    assert config.reliability.retries == 1 and config.reliability.timeout_s == 1.5
    station = build_station(config)
    try:
        fridge = station.components["fridge"]
        thermometer = station.components["fridge_thermometer"]
        assert isinstance(fridge, Fridge) and fridge.thermometry is thermometer
        assert is_reliable(thermometer) and thermometer.timeout() == 1.5
        assert fridge.mxc() == pytest.approx(0.012, rel=0.01)
        seen: list[str] = []
        recorder(ls_sim, seen)
        with pytest.raises(SafetyLimitError, match=r"fridge\.setpoint.*0\.6.*\[0\.005, 0\.5\]"):
            fridge.setpoint(0.6)
        with pytest.raises(SafetyLimitError, match="max_heater_power"):
            fridge.max_heater_power(5e-3)
        assert seen == []  # nothing reached the instrument
        fridge.setpoint(0.05)
        assert any(c.startswith("SETP 0") for c in seen)
        # 1 mW limit, 120 Ohm: 1 mA (120 uW full scale) fits, 3.16 mA (1.2 mW) does not
        assert thermometer.sample_heater.output_range() == "1mA"
    finally:
        close_station(station)


def test_station_lists_the_fridge_before_its_thermometer(tmp_path, ls_sim):
    text = STATION.format(port=ls_sim.port)
    head, rest = text.split("  fridge:\n", 1)
    fridge_block, tail = rest.split("cryodaq:\n", 1)
    reordered = "instruments:\n  fridge:\n" + fridge_block + head.removeprefix("instruments:\n") + "cryodaq:\n" + tail
    path = tmp_path / "bad_order.yaml"
    path.write_text(textwrap.dedent(reordered))
    with pytest.raises(Exception, match="'fridge_thermometer' is not loaded.*before the fridge"):
        build_station(load_station_config(path))


def test_an_init_power_limit_beyond_the_station_limit_is_refused_before_sending(tmp_path, ls_sim):
    path = tmp_path / "fridge.yaml"
    path.write_text(STATION.format(port=ls_sim.port).replace("max_heater_power_w: 1.0e-3", "max_heater_power_w: 5.0e-3"))
    station = build_station(load_station_config(path))
    try:
        seen: list[str] = []
        recorder(ls_sim, seen)
        with pytest.raises(SafetyLimitError, match="max_heater_power.*0.005"):
            station.components["fridge"].setpoint(0.05)
        assert seen == []
    finally:
        close_station(station)


BLUEFORS_STATION = """\
instruments:
  bluefors:
    type: cryodaq.instruments.BlueforsControlUnit
    address: TCPIP0::127.0.0.1::49099::SOCKET
    init: {api_key: demo-key, timeout: 2.0}
  fridge:
    type: cryodaq.instruments.Fridge
    init: {thermometry: bluefors, channels: {mxc: mxc, still: still}, max_heater_power_w: 1.0e-3}
cryodaq:
  readout: {instrument: bluefors}
  safety_limits:
    bluefors.mxc_heater.max_power: [0.0, 1.0e-3]
  simulation:
    world: {fridge: {tau_s: 0.05}}
    instruments: {bluefors: bluefors}
"""


def test_bluefors_station_on_the_simulator(tmp_path):
    from cryodaq.station.bringup import with_simulator_ports
    from sim_instruments.servers.launcher import serve

    path = tmp_path / "bf.yaml"
    path.write_text(BLUEFORS_STATION)
    config = load_station_config(path)
    sim_cfg = config.simulation_dict(free_ports=True)
    assert sim_cfg["instruments"]["bluefors"]["address"] == "TCPIP0::127.0.0.1::0::SOCKET"
    sim_cfg["instruments"]["bluefors"]["api_key"] = "demo-key"  # a face option
    with serve(sim_cfg) as servers:
        station = build_station(with_simulator_ports(config, servers.ports))
        try:
            fridge = station.components["fridge"]
            assert fridge.mxc() == pytest.approx(0.012, rel=0.01)
            assert 0.8 < fridge.still() < 0.9
            with pytest.raises(SafetyLimitError, match="max_power"):
                station.components["bluefors"].mxc_heater.max_power(2e-3)
            assert servers.faces["bluefors"].heater.max_power_w == 1e-3  # unchanged
        finally:
            close_station(station)
