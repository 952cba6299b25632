"""``python -m sim_instruments FILE.yaml``: a simulation dict or a cryodaq station file, served until a signal."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sim_instruments.servers.command_line import main

PROJECT_ROOT = Path(__file__).resolve().parents[3]
STATIONS = PROJECT_ROOT / "stations"


def config() -> dict:
    return {
        "simulation": {
            "world": {"seed": 1},
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


def start(path: Path | str, *options: str, cwd: Path = PROJECT_ROOT) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    return subprocess.Popen([sys.executable, "-m", "sim_instruments", str(path), *options], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)


def ready_ports(proc: subprocess.Popen) -> dict[str, int]:
    """``name -> port`` from the ready line (the child's stderr when it died before printing it)."""
    line = proc.stdout.readline()
    assert line.startswith("sim_instruments ready: "), proc.stderr.read() if proc.poll() is not None else line
    return {item.split("=")[0]: int(item.rsplit("@", 1)[1]) for item in line.split(": ", 1)[1].split()}


@pytest.mark.slow
def test_python_m_sim_instruments_serves_until_sigterm(tmp_path):
    path = tmp_path / "sim.yaml"
    path.write_text(yaml.safe_dump(config()))
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "sim_instruments", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=PROJECT_ROOT)
    try:
        line = proc.stdout.readline()
        assert line.startswith("sim_instruments ready: "), proc.stderr.read() if proc.poll() is not None else line
        ports = {item.split("=")[0]: int(item.rsplit("@", 1)[1]) for item in line.split(": ", 1)[1].split()}
        assert ask(ports["readout"], "TONE:COUN?") == "8"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_python_m_sim_instruments_bad_config_exits_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("instruments: {x: {face: nope, address: 'TCPIP0::127.0.0.1::0::SOCKET'}}\n")
    from sim_instruments.__main__ import main

    assert main([str(path)]) == 2


def readme_command() -> list[str]:
    """The README's ``python -m sim_instruments ...`` command line (what a reader will type)."""
    lines = [line.split("#")[0].split() for line in (PROJECT_ROOT / "README.md").read_text().splitlines()
             if line.startswith("python -m sim_instruments ")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.slow
def test_the_readme_command_serves_a_station_on_free_ports_and_sigint_stops_it_cleanly(tmp_path):
    """The README's command, from a directory outside the repository (a shipped station by name,
    demo_mkid, auto_ports: true): the Lakeshore face answers over TCP on the port the ready line reports,
    not the station's 47372; Ctrl-C (SIGINT) ends it with status 0 and no traceback."""
    command = readme_command()
    assert command[:3] == ["python", "-m", "sim_instruments"]
    proc = start(*command[3:], cwd=tmp_path)
    try:
        ports = ready_ports(proc)
        assert set(ports) == {"fridge_thermometer", "readout"}
        assert all(p > 0 for p in ports.values()) and ports["fridge_thermometer"] != 47372
        assert ask(ports["fridge_thermometer"], "*IDN?", term="\r\n").startswith("LSCI,MODEL372")
        assert ask(ports["readout"], "TONE:COUN?") == "8"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("edit, key", [
    (("readout: mkid_readout_board", "readout: vna"), "cryodaq.simulation.instruments.readout: unknown face 'vna'"),
    (("      seed: 1", "      sede: 1"), r"cryodaq.simulation.world: unknown key\(s\) \['sede'\]"),
    (("address: TCPIP0::127.0.0.1::47001::SOCKET", "address: GPIB0::1::INSTR"), "instruments.readout.address: "),
    (("      readout: mkid_readout_board", "      reedout: mkid_readout_board"),
     "cryodaq.simulation.instruments.reedout: no instrument 'reedout'"),
])
def test_a_bad_station_file_gives_one_line_naming_the_file_and_the_key(tmp_path, capsys, edit, key):
    text = (STATIONS / "demo_mkid.yaml").read_text()
    assert edit[0] in text
    path = tmp_path / "station.yaml"
    path.write_text(text.replace(edit[0], edit[1]))
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"sim_instruments: {path}: "), err
    assert re.search(key, err), err
