"""The Oxford Triton face driven by the real QCoDeS driver (IPInstrument, raw TCP socket)."""

from __future__ import annotations

import itertools
import socket
import time

import pytest

from sim_instruments.faces.oxford_triton import OxfordTritonFace
from sim_instruments.servers.launcher import serve
from sim_instruments.world.world import World

oxford = pytest.importorskip("qcodes.instrument_drivers.oxford")

_names = itertools.count()


@pytest.fixture
def sim():
    world = World({"fridge": {"tau_s": 0.05}})
    with OxfordTritonFace(world, port=0) as face:
        yield face


@pytest.fixture
def triton(sim):
    inst = oxford.OxfordTriton(f"triton_{next(_names)}", address="127.0.0.1", port=sim.port, timeout=2)
    yield inst
    inst.close()


def ask(port: int, command: str) -> str:
    """One command on a fresh raw socket, as the Triton protocol answers every line."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall((command + "\r\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
    return buf.decode().strip()


def test_identity_channel_discovery_and_full_snapshot(triton, sim):
    idn = triton.get_idn()
    assert idn["vendor"] == "OXFORD INSTRUMENTS" and idn["serial"] == "SIM0001"
    # the driver discovered the aliases through READ:SYS:DR:CHAN and made them parameters
    assert triton.chan_alias == {"MC": "T8", "STIL": "T5", "PT2": "T2", "PT1": "T1"}
    assert triton.magnet_available is False
    assert triton.MC() == pytest.approx(0.012, rel=0.01)
    assert triton.T8() == pytest.approx(0.012, rel=0.01)
    assert 0.8 < triton.STIL() < 0.9
    assert 3.0 < triton.PT2() < 3.6
    assert triton.PT1() == 45.0
    assert triton.T9() is None  # an empty slot reads NOT_FOUND
    snap = triton.snapshot(update=True)["parameters"]
    assert snap["T8_state"]["value"] == "on" and snap["T9_state"]["value"] == "off"
    assert snap["action"]["value"] == "Circulating"  # ACTN NONE with MC < 2 K
    assert snap["turb1_speed"]["value"] == 820.0
    assert snap["pid_range"]["value"] == 1.0


def test_loop_settings_round_trip_per_thermometer(triton, sim):
    triton.pid_control_channel(8)
    assert ask(sim.port, "READ:DEV:T8:TEMP:LOOP:HTR") == "STAT:DEV:T8:TEMP:LOOP:HTR:H1"
    triton.pid_p(15)
    triton.pid_i(2.5)
    triton.pid_d(0.25)
    triton.pid_range(3.16)
    triton.pid_rate(0.5)
    triton.pid_ramp("on")
    assert (triton.pid_p(), triton.pid_i(), triton.pid_d()) == (15.0, 2.5, 0.25)
    assert triton.pid_range() == 3.16 and triton.pid_rate() == 0.5 and triton.pid_ramp() == "on"
    # a range the heater does not have is refused and changes nothing
    assert ask(sim.port, "SET:DEV:T8:TEMP:LOOP:RANGE:2.5").endswith(":INVALID")
    assert triton.pid_range() == 3.16
    # moving the heater to another loop takes it from this one
    assert ask(sim.port, "SET:DEV:T5:TEMP:LOOP:HTR:H1").endswith(":VALID")
    assert ask(sim.port, "READ:DEV:T8:TEMP:LOOP:HTR").endswith(":NONE")


def test_closed_loop_brings_the_mixing_chamber_to_the_setpoint(triton, sim):
    triton.pid_control_channel(8)
    triton.pid_range(3.16)
    triton.pid_p(20)
    triton.pid_i(0.5)
    triton.pid_d(0)
    triton.pid_setpoint(0.1)
    triton.pid_mode("on")
    assert triton.pid_mode() == "on" and triton.pid_setpoint() == 0.1
    deadline = time.monotonic() + 5
    while abs(sim.world.temperature_k() - 0.1) > 0.001 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert sim.world.temperature_k() == pytest.approx(0.1, abs=0.001)
    assert triton.MC() == pytest.approx(0.1, rel=0.01)
    # the heater delivers what the fridge needs at 100 mK
    reply = triton.ask("READ:DEV:H1:HTR:SIG:POWR")
    assert reply.startswith("STAT:DEV:H1:HTR:SIG:POWR:") and reply.endswith("uW")
    power_w = float(reply.rsplit(":", 1)[1].removesuffix("uW")) * 1e-6
    assert power_w == pytest.approx(sim.world.fridge.power_for_k(0.1), rel=0.05)
    triton.pid_mode("off")
    time.sleep(0.3)
    assert sim.world.temperature_k() < 0.03


def test_manual_heater_power_and_bad_commands(sim):
    assert ask(sim.port, "SET:DEV:H1:HTR:SIG:POWR:100") == "STAT:SET:DEV:H1:HTR:SIG:POWR:100:VALID"
    time.sleep(0.5)  # 10 time constants
    assert sim.world.temperature_k() == pytest.approx(sim.world.fridge.equilibrium_k(100e-6), rel=0.01)
    assert ask(sim.port, "READ:DEV:H1:HTR:SIG:POWR") == "STAT:DEV:H1:HTR:SIG:POWR:100.000000uW"
    assert ask(sim.port, "SET:DEV:H1:HTR:SIG:POWR:-5").endswith(":INVALID")
    assert ask(sim.port, "READ:DEV:T8:TEMP:SIG:BOGUS").endswith(":INVALID")
    assert ask(sim.port, "FROB:NICATE") == "STAT:NICATE:INVALID"
    assert ask(sim.port, "SET:DEV:T9:TEMP:LOOP:TSET:0.1").endswith(":INVALID")


def test_sim_warm_up_fault_command(sim):
    assert ask(sim.port, "SIM:FAULT:WARMUP 1.0,0.3").endswith(":VALID")
    time.sleep(0.5)
    assert float(ask(sim.port, "SIM:TRUTH:TEMP?")) > 0.2
    assert ask(sim.port, "SIM:FAULT:WARMUP:STOP").endswith(":VALID")
    time.sleep(0.5)
    assert sim.world.temperature_k() < 0.02
    assert ask(sim.port, "SIM:FAULT:WARMUP fast").endswith(":INVALID")


def test_face_options_are_checked():
    world = World()
    with pytest.raises(ValueError, match="T17"):
        OxfordTritonFace(world, channels={"T17": "mxc"})
    with pytest.raises(ValueError, match="stage"):
        OxfordTritonFace(world, channels={"T8": "sample"})
    with pytest.raises(ValueError, match="aliases.MC"):
        OxfordTritonFace(world, channels={"T8": "mxc"}, aliases={"MC": "T6"})


def test_launcher_serves_it_with_a_separate_port():
    cfg = {"instruments": {"fridge_ctl": {"face": "oxford_triton", "address": "127.0.0.1", "port": 0,
                                          "channels": {"T8": "mxc", "T3": 4.0}}}}
    with serve(cfg) as servers:
        port = servers.ports["fridge_ctl"]
        assert port > 0
        assert ask(port, "READ:DEV:T3:TEMP:SIG:TEMP") == "STAT:DEV:T3:TEMP:SIG:TEMP:4.000000K"
        assert ask(port, "READ:SYS:DR:CHAN") == "STAT:SYS:DR:CHAN:MC"
