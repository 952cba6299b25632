"""BlueforsControlUnit (qcodes driver over the HTTP values API) against the simulated unit."""

from __future__ import annotations

import itertools
import time

import pytest

from cryodaq.errors import InstrumentError
from cryodaq.instruments.bluefors import BlueforsControlUnit, base_url
from sim_instruments.faces.bluefors import HEATER, BlueforsControlUnitFace
from sim_instruments.world.thermometer import ruox_ohm
from sim_instruments.world.world import World

_names = itertools.count()


@pytest.fixture
def sim():
    world = World({"fridge": {"tau_s": 0.05}})
    with BlueforsControlUnitFace(world, port=0, api_key="k3y", channels={1: 45.0, 2: "4k", 3: 3.9, 5: "still", 6: "mxc"}) as face:
        yield face


@pytest.fixture
def unit(sim):
    inst = BlueforsControlUnit(f"bf_{next(_names)}", f"TCPIP0::127.0.0.1::{sim.port}::SOCKET", api_key="k3y",
                               timeout=1.0, retries=1, backoff_s=0.05,
                               paths={"magnet.temperature": "mapper/bf/temperatures/t3"})
    yield inst
    inst.close()


def test_address_forms():
    assert base_url("http://10.0.0.5:49099/") == "http://10.0.0.5:49099"
    assert base_url("https://bf.lab:49098/api") == "https://bf.lab:49098/api"
    assert base_url("TCPIP0::127.0.0.1::5000::SOCKET") == "http://127.0.0.1:5000"
    assert base_url("bf.lab:49099") == "http://bf.lab:49099"
    with pytest.raises(ValueError, match="http://host:port"):
        base_url("GPIB0::12::INSTR")


def test_channels_pressures_and_snapshot(unit, sim):
    assert unit.mxc.temperature() == pytest.approx(0.012, rel=0.01)
    assert 0.8 < unit.still.temperature() < 0.9
    assert unit.plate_50k.temperature() == 45.0
    assert unit.plate_50k.resistance() == pytest.approx(ruox_ohm(45.0))
    assert unit.magnet.temperature() == 3.9  # a channel added through the path mapping
    assert unit.mxc.temperature.unit == "K"
    assert unit.p5() == pytest.approx(720.0 * 100)  # mbar on the unit, Pa here
    assert unit.p5.unit == "Pa"
    snap = unit.snapshot(update=True)
    assert snap["submodules"]["mxc_heater"]["parameters"]["mode"]["value"] == "off"
    assert snap["submodules"]["mxc"]["parameters"]["temperature"]["value"] == pytest.approx(0.012, rel=0.01)


def test_heater_settings_round_trip(unit, sim):
    h = unit.mxc_heater
    h.max_power(1.5e-3)
    h.setpoint(0.08)
    h.P(12)
    h.I(0.3)
    h.D(0.01)
    assert (h.max_power(), h.setpoint(), h.P(), h.I(), h.D()) == (1.5e-3, 0.08, 12.0, 0.3, 0.01)
    h.mode("manual")
    h.power(40e-6)
    assert h.mode() == "manual"
    assert sim.heater.active and not sim.heater.pid_mode
    time.sleep(0.5)
    assert h.power() == pytest.approx(40e-6)
    assert unit.mxc.temperature() == pytest.approx(sim.world.fridge.equilibrium_k(40e-6), rel=0.01)
    h.mode("closed_loop")
    assert h.mode() == "closed_loop" and sim.heater.pid_mode
    h.mode("off")
    assert h.mode() == "off" and not sim.heater.active


def test_validators_refuse_before_anything_is_sent(unit, sim):
    seen = []
    original = sim.post_values
    sim.post_values = lambda body: seen.append(body) or original(body)
    with pytest.raises(ValueError):
        unit.mxc_heater.power(-1e-3)
    with pytest.raises(ValueError):
        unit.mxc_heater.mode("turbo")
    assert seen == []
    unit.mxc_heater.power(1e-6)
    assert len(seen) == 1


def test_wrong_api_key_is_a_clear_error_without_retries(sim):
    t0 = time.monotonic()
    with pytest.raises(InstrumentError) as info:
        BlueforsControlUnit(f"bf_{next(_names)}", f"http://127.0.0.1:{sim.port}", api_key="nope", timeout=1.0)
    assert time.monotonic() - t0 < 1.0  # a 401 is not retried
    msg = str(info.value)
    assert "HTTP 401" in msg and "API key" in msg and f"127.0.0.1:{sim.port}/values/" in msg


def test_garbage_and_unknown_paths_are_clear_errors(unit, sim):
    sim.faults.garbage = True
    with pytest.raises(InstrumentError, match="answered garbage") as info:
        unit.mxc.temperature()
    assert unit.name in str(info.value) and f":{sim.port}/values/mapper/bf/temperatures/t6" in str(info.value)
    sim.faults.garbage = False
    bad = BlueforsControlUnit(f"bf_{next(_names)}", sim.url, api_key="k3y",
                              paths={"mxc.temperature": "mapper/bf/temperatures/t7"}, check_connection=False)
    try:
        with pytest.raises(InstrumentError, match="HTTP 404.*t7"):
            bad.mxc.temperature()
    finally:
        bad.close()


def test_bad_path_mapping_is_refused():
    with pytest.raises(ValueError, match="unknown field"):
        BlueforsControlUnit(f"bf_{next(_names)}", "http://127.0.0.1:1", check_connection=False,
                            paths={"mxc.colour": "x/y"})
    with pytest.raises(ValueError, match="neither a channel"):
        BlueforsControlUnit(f"bf_{next(_names)}", "http://127.0.0.1:1", check_connection=False,
                            paths={"flow.rate": "x/y"})


def test_heater_path_is_the_one_the_simulator_serves():
    from cryodaq.instruments.bluefors import DEFAULT_PATHS

    assert DEFAULT_PATHS["mxc_heater.setpoint"] == f"{HEATER}/setpoint"
