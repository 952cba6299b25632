"""Launcher: config parsing, in-process serve, child-process station."""

from __future__ import annotations

import socket
import time

import pytest

from sim_instruments.faces.registry import FACES
from sim_instruments.servers.launcher import serve
from sim_instruments.servers.simulated_station import SimulatedStation


def config(**world) -> dict:
    return {
        "simulation": {
            "world": {"seed": 1, **world},
            "instruments": {
                "fridge_thermometer": {"face": "lakeshore372", "address": "TCPIP0::127.0.0.1::0::SOCKET"},
                "readout": {"face": "mkid_readout_board", "address": "TCPIP0::127.0.0.1::0::SOCKET",
                            "stream_dest": "127.0.0.1,50123"},
            },
        }
    }


def ask(port: int, cmd: str, term: str = "\n") -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall((cmd + term).encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.decode().strip()


def test_registry_has_the_faces():
    assert {"lakeshore372", "mkid_readout_board"} <= set(FACES)


def test_serve_in_process_shares_one_world():
    with serve(config(fridge={"tau_s": 0.01})) as sim:
        assert set(sim.ports) == {"fridge_thermometer", "readout"}
        assert all(p > 0 for p in sim.ports.values())
        assert ask(sim.ports["readout"], "STRM:DEST?") == "127.0.0.1,50123"
        assert sim.faces["readout"].world is sim.faces["fridge_thermometer"].world is sim.world
        assert sim.ready_line().startswith("sim_instruments ready: fridge_thermometer=lakeshore372@")
        assert sim.address("readout") == f"TCPIP0::127.0.0.1::{sim.ports['readout']}::SOCKET"
        # heating the fridge through the thermometer face moves the resonators the board reports
        cold = [float(x) for x in ask(sim.ports["readout"], "SIM:TRUTH:RES?").split(",")]
        sim.world.fridge.warm_up(rate_k_per_s=1e3, target_k=0.3)
        time.sleep(0.2)
        hot = [float(x) for x in ask(sim.ports["readout"], "SIM:TRUTH:RES?").split(",")]
        assert all(h < c - 10e3 for h, c in zip(hot, cold))


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["simulation"]["instruments"]["readout"].update(face="vna"), "unknown face 'vna'"),
    (lambda c: c["simulation"]["instruments"]["readout"].update(address="GPIB::1"), "readout.address"),
    (lambda c: c["simulation"]["instruments"]["readout"].update(colour="red"), "bad option"),
    (lambda c: c["simulation"]["world"].update(sede=2), r"unknown key\(s\) \['sede'\]"),
    (lambda c: c["simulation"].update(extra=1), "unknown key"),
])
def test_serve_rejects_bad_configs_clearly(mutate, message):
    cfg = config()
    mutate(cfg)
    with pytest.raises(ValueError, match=message):
        serve(cfg)


def test_port_in_use_fails_and_releases_the_others():
    with serve(config()) as sim:
        port = sim.ports["readout"]
        cfg = config()
        cfg["simulation"]["instruments"]["readout"]["address"] = f"TCPIP0::127.0.0.1::{port}::SOCKET"
        with pytest.raises(OSError):
            serve(cfg)


@pytest.mark.slow
def test_simulated_station_in_a_child_process():
    with SimulatedStation(config(), timeout_s=60) as station:
        assert station.alive
        assert ask(station.ports["readout"], "*IDN?").startswith("cryodaq-sim,MKID-RB1")
        assert ask(station.ports["fridge_thermometer"], "*IDN?", term="\r\n").startswith("LSCI,MODEL372")
        assert station.address("readout").endswith(f"::{station.ports['readout']}::SOCKET")
    assert not station.alive


@pytest.mark.slow
def test_simulated_station_reports_child_errors():
    cfg = config()
    cfg["simulation"]["instruments"]["readout"]["face"] = "nope"
    with pytest.raises(RuntimeError, match="unknown face 'nope'"):
        SimulatedStation(cfg, timeout_s=60).start()
