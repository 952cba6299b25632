"""The Lakeshore 372 face driven by the real QCoDeS driver over pyvisa-py TCP."""

from __future__ import annotations

import itertools
import time

import pytest

from sim_instruments.faces.lakeshore372 import Lakeshore372Face
from sim_instruments.world.thermometer import ruox_ohm
from sim_instruments.world.world import World

qcodes_ls = pytest.importorskip("qcodes.instrument_drivers.Lakeshore")

_names = itertools.count()


@pytest.fixture
def sim():
    world = World({"fridge": {"tau_s": 0.05}})
    with Lakeshore372Face(world, port=0, channels={1: "mxc", 2: "still", 3: "4k", 4: 45.0}) as face:
        yield face


@pytest.fixture
def ls(sim):
    inst = qcodes_ls.LakeshoreModel372(f"ls372_{next(_names)}", f"TCPIP0::127.0.0.1::{sim.port}::SOCKET",
                                      visalib="@py", print_connect_message=False, timeout=2)
    yield inst
    inst.close()


def test_identity_and_full_snapshot(ls):
    idn = ls.get_idn()
    assert idn["vendor"] == "LSCI" and idn["model"] == "372"  # qcodes strips the "MODEL" prefix
    snap = ls.snapshot(update=True)  # every get command of every channel and output
    heater = snap["submodules"]["sample_heater"]["parameters"]
    assert heater["mode"]["value"] == "off"
    assert heater["output_range"]["value"] == "off"
    assert snap["submodules"]["ch01"]["parameters"]["units"]["value"] == "kelvin"


def test_temperatures_follow_the_channel_map(ls, sim):
    assert ls.ch01.temperature() == pytest.approx(0.012, rel=0.01)
    assert 0.5 < ls.ch02.temperature() < 1.2
    assert 2.5 < ls.ch03.temperature() < 4.5
    assert ls.ch04.temperature() == 45.0
    assert ls.ch05.temperature() == 0.0 and ls.ch05.enabled() is False
    assert ls.ch01.sensor_raw() == pytest.approx(ruox_ohm(0.012), rel=0.01)
    # (the driver's validator wants >= 15 characters, Strings(15): write the command directly)
    ls.write('INNAME 1,"MXC RuOx"')
    assert ls.ch01.sensor_name() == "MXC RuOx"


def test_closed_loop_pid_brings_the_mxc_to_the_setpoint(ls, sim):
    h = ls.sample_heater
    h.P(20)
    h.I(0.5)
    h.D(0)
    assert (h.P(), h.I(), h.D()) == (20.0, 0.5, 0.0)
    h.input_channel(1)
    h.mode("closed_loop")
    h.output_range("3.16mA")
    h.setpoint(0.1)  # the driver waits 0.5 s after setting (post_delay)
    deadline = time.monotonic() + 10
    while abs(ls.ch01.temperature() - 0.1) > 0.002 and time.monotonic() < deadline:
        time.sleep(0.05)
    h.wait_until_set_point_reached(wait_cycle_time=0.02, wait_tolerance=0.02, wait_equilibration_time=0.3)
    assert sim.world.temperature_k() == pytest.approx(0.1, rel=0.02)
    # the heater delivers what the fridge needs at 100 mK: P = R (I_range * out%)^2
    power = sim.world.fridge.power_for_k(sim.world.temperature_k())
    expected_pct = 100 * (power / 120.0) ** 0.5 / 3.16e-3
    assert h.output() == pytest.approx(expected_pct, rel=0.05)
    h.output_range("off")
    time.sleep(0.3)
    assert h.output() == 0.0
    assert sim.world.temperature_k() < 0.05


def test_open_loop_manual_output_heats(ls, sim):
    h = ls.sample_heater
    h.mode("open_loop")
    h.output_range("1mA")
    ls.write("MOUT 0,50")
    time.sleep(0.5)
    assert float(ls.ask("MOUT? 0")) == 50.0
    assert h.output() == 50.0
    assert sim.heater_power_w() == pytest.approx(120.0 * (0.5e-3) ** 2)
    assert ls.ch01.temperature() == pytest.approx(sim.world.fridge.equilibrium_k(30e-6), rel=0.02)


def test_setpoint_ramp_limits_how_fast_the_control_moves(ls, sim):
    h = ls.sample_heater
    h.P(20)
    h.I(0.5)
    h.mode("closed_loop")
    h.output_range("10mA")
    h.setpoint_ramp_enabled(True)
    h.setpoint_ramp_rate(6.0)  # K/min = 0.1 K/s: 0.012 -> 0.5 K takes ~5 s
    h.setpoint(0.5)
    assert h.setpoint() == 0.5
    assert h.setpoint_ramp_status() is True
    assert ls.ch01.temperature() < 0.35  # following the ramp, not the final setpoint
    ls.write("RAMP 0,0,6.0")  # ramping off: the setpoint applies at once
    assert h.setpoint_ramp_status() is False


def test_warm_up_fault_shows_on_the_thermometer(ls, sim):
    before = ls.ch01.temperature()
    sim.world.fridge.warm_up(rate_k_per_s=1.0, target_k=0.3)
    time.sleep(0.5)
    assert ls.ch01.temperature() > before + 0.2
