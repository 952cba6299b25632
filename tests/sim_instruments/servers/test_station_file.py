"""A cryodaq station file read as the simulation dict: faces, addresses, free ports, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cryodaq.wire.addresses import parse_network_address as parse_face_address
from sim_instruments.servers.launcher import serve
from sim_instruments.servers.station_file import read_simulation, simulation_from_station

STATIONS = Path(__file__).resolve().parents[3] / "stations"


def station(auto_ports: bool | None = True, **simulation: object) -> dict:
    sim = {"world": {"seed": 2}, "instruments": {"therm": "lakeshore372", "fridge": "oxford_triton",
                                                  "bf": "bluefors"}, **simulation}
    if auto_ports is not None:
        sim["auto_ports"] = auto_ports
    return {
        "instruments": {
            "therm": {"type": "x.Lakeshore", "address": "TCPIP0::10.0.0.5::47372::SOCKET"},
            "fridge": {"type": "x.Triton", "address": "10.0.0.6", "port": 33576},
            "bf": {"type": "x.Bluefors", "address": "http://10.0.0.7:49098"},
        },
        "cryodaq": {"name": "t", "simulation": sim},
    }


def test_auto_ports_gives_every_face_a_free_loopback_port():
    sim = simulation_from_station(station(auto_ports=True))
    assert sim == {"world": {"seed": 2}, "instruments": {
        "therm": {"face": "lakeshore372", "address": "TCPIP0::127.0.0.1::0::SOCKET"},
        "fridge": {"face": "oxford_triton", "address": "127.0.0.1", "port": 0},
        "bf": {"face": "bluefors", "address": "http://127.0.0.1:0"},
    }}
    # auto_ports defaults to true, as in cryodaq's station files
    assert simulation_from_station(station(auto_ports=None)) == sim


def test_without_auto_ports_the_station_addresses_are_served_as_written():
    sim = simulation_from_station(station(auto_ports=False))
    assert sim["instruments"] == {
        "therm": {"face": "lakeshore372", "address": "TCPIP0::10.0.0.5::47372::SOCKET"},
        "fridge": {"face": "oxford_triton", "address": "10.0.0.6", "port": 33576},
        "bf": {"face": "bluefors", "address": "http://10.0.0.7:49098"},
    }


def test_port_0_serves_on_a_free_port_and_the_ready_line_reports_it(tmp_path, line_client):
    doc = station(auto_ports=False)
    doc["instruments"]["therm"]["address"] = "TCPIP0::127.0.0.1::0::SOCKET"
    doc["instruments"]["fridge"].update(address="127.0.0.1", port=0)
    doc["instruments"]["bf"]["address"] = "http://127.0.0.1:0"
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(doc))
    with serve(read_simulation(path)) as sim:
        assert sim.kinds == {"therm": "lakeshore372", "fridge": "oxford_triton", "bf": "bluefors"}
        assert sim.world.config.seed == 2
        port = sim.ports["therm"]
        assert port > 0 and f"therm=lakeshore372@{port}" in sim.ready_line().split()
        assert line_client(port).ask("*IDN?").startswith("LSCI,MODEL372")


def test_every_shipped_station_reads_as_a_simulation():
    for path in sorted(STATIONS.glob("*.yaml")):
        sim = read_simulation(path)
        assert sim["instruments"], path.name
        if sim.get("plugin") == "rfmux_mock":  # rfmux's mock picks its own port (test_rfmux_mock.py)
            continue
        assert all(spec["address"].endswith(("::0::SOCKET", "tcp://127.0.0.1:0")) for spec in sim["instruments"].values()), path.name


def test_a_plain_simulation_dict_is_passed_through(tmp_path):
    plain = {"simulation": {"world": {"seed": 3}, "instruments": {
        "readout": {"face": "mkid_readout_board", "address": "TCPIP0::127.0.0.1::0::SOCKET", "samples_per_packet": 512}}}}
    path = tmp_path / "sim.yaml"
    path.write_text(yaml.safe_dump(plain))
    assert read_simulation(path) == plain


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["cryodaq"].pop("simulation"), "cryodaq.simulation: missing"),
    (lambda d: d["cryodaq"]["simulation"].update(colour=1), r"cryodaq.simulation: unknown key\(s\) \['colour'\]"),
    (lambda d: d["cryodaq"]["simulation"].update(auto_ports="yes"), "cryodaq.simulation.auto_ports: expected true"),
    (lambda d: d["cryodaq"]["simulation"].update(instruments={}), "cryodaq.simulation.instruments: no simulated"),
    (lambda d: d["cryodaq"]["simulation"]["instruments"].update(therm="ls"),
     "cryodaq.simulation.instruments.therm: unknown face 'ls'"),
    (lambda d: d["cryodaq"]["simulation"]["instruments"].update(ghost="lakeshore372"),
     "cryodaq.simulation.instruments.ghost: no instrument 'ghost'"),
    (lambda d: d["cryodaq"]["simulation"]["world"].update(fridge={"tau": 1}), r"cryodaq.simulation.world.fridge: unknown"),
    (lambda d: d["instruments"]["therm"].pop("address"), "instruments.therm.address: missing"),
    (lambda d: d["instruments"]["therm"].update(address="GPIB0::3::INSTR"), "instruments.therm.address: expected"),
    (lambda d: d["instruments"]["fridge"].update(port=70000), "instruments.fridge.port: expected a port"),
])
def test_bad_station_files_are_refused_naming_the_key(mutate, message):
    doc = station()
    mutate(doc)
    with pytest.raises(ValueError, match=message) as err:
        simulation_from_station(doc)
    assert "\n" not in str(err.value)


def test_bad_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("cryodaq:\n  simulation: [1, 2\n")
    with pytest.raises(ValueError, match=r"not valid YAML: .*\(line 3, column 1\)"):
        read_simulation(path)


def test_a_tcp_base_address_is_served_on_a_free_block_or_as_written():
    doc = {"instruments": {"dastard": {"type": "x.Dastard", "address": "tcp://10.0.0.8:5500"}},
           "cryodaq": {"simulation": {"world": {"tes": {"enabled": True}}, "instruments": {"dastard": "dastard"}}}}
    assert simulation_from_station(doc)["instruments"]["dastard"] == {"face": "dastard", "address": "tcp://127.0.0.1:0"}
    doc["cryodaq"]["simulation"]["auto_ports"] = False
    assert simulation_from_station(doc)["instruments"]["dastard"]["address"] == "tcp://10.0.0.8:5500"
    assert parse_face_address("tcp://10.0.0.8:5500") == ("10.0.0.8", 5500)
