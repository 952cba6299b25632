"""The rfmux_mock launcher: its config checks, and its child's life (stopped by SIGTERM, deaf to the
terminal's Ctrl-C, gone with its parent).

The child's lifecycle is checked with a stand-in ``rfmux`` package (the few names the child uses),
which starts in milliseconds; the real mock runs in tests/readout/test_crs_mock.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from cryodaq.station.simulators import find_simulator_launcher
from sim_instruments.servers.rfmux_mock import CHILD, RfmuxMock

STUB = '''
__version__ = "stub"
class CRS: pass
class _Board:
    hostname = "127.0.0.1:65000"
class _Query:
    def one(self): return _Board()
class _Session:
    def query(self, cls): return _Query()
def load_session(text):
    assert '!flavour "rfmux.mock"' in text and 'serial: "0042"' in text
    return _Session()
'''


def sim(world=None, face="mock_crs") -> dict:
    return {"world": world or {}, "instruments": {"crs": {"face": face, "address": "127.0.0.1:9878"}}}


def test_the_entry_point_names_this_launcher():
    launcher = find_simulator_launcher("rfmux_mock")
    assert isinstance(launcher(sim()), RfmuxMock)


@pytest.mark.parametrize(("config", "message"), [
    (sim({"resonator": {}}), r"unknown key\(s\) \['resonator'\]"),
    (sim({"pulses": {"mode": "periodic", "periode": 0.5}}), r"pulses: unknown key\(s\) \['periode'\]"),
    (sim({"pulses": {"mode": "sometimes"}}), "pulses.mode: expected one of"),
    (sim({"stream_port": -1}), "stream_port: expected a port number"),
    (sim(face="mkid_readout_board"), "has one face, 'mock_crs'"),
    ({"world": {}, "instruments": {}}, "needs one instrument"),
])
def test_bad_simulation_sections_are_refused_before_anything_starts(config, message):
    with pytest.raises(ValueError, match=message):
        RfmuxMock(config)


@pytest.fixture
def stub_python(tmp_path: Path, monkeypatch) -> Path:
    pkg = tmp_path / "rfmux"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(STUB)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return Path(sys.executable)


def test_child_reports_the_address_ignores_ctrl_c_and_stops_on_sigterm(stub_python: Path):
    proc = subprocess.Popen([str(stub_python), str(CHILD), "0042", str(os.getpid())], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("CRYODAQ_MOCK_READY ") and '"address": "127.0.0.1:65000"' in line
        os.kill(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C is the run's, not the mock's
        time.sleep(0.5)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0  # exits through atexit: rfmux stops its server there
    finally:
        if proc.poll() is None:
            proc.kill()


def test_child_exits_when_its_parent_dies(stub_python: Path):
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "import os\n"
        f"c = subprocess.Popen([sys.executable, {str(CHILD)!r}, '0042', str(os.getpid())],"
        " stdout=subprocess.DEVNULL)\n"
        "print(c.pid, flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    child = psutil.Process(int(parent.stdout.readline()))
    try:
        parent.kill()  # a SIGKILLed run, even one killed while the child was still starting
        parent.wait(5)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child)
    finally:
        if _alive(child):
            child.kill()


def _alive(p: psutil.Process) -> bool:
    """Running, not a zombie waiting for whoever adopted it to reap it."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_python_m_sim_instruments_serves_a_crs_station_with_this_plugin(tmp_path: Path):
    from sim_instruments.servers.station_file import read_simulation

    station = Path(__file__).resolve().parents[3] / "stations" / "demo_crs.yaml"
    simulation = read_simulation(station)
    assert simulation["plugin"] == "rfmux_mock" and simulation["instruments"] == {"crs": {"face": "mock_crs"}}
    RfmuxMock({k: v for k, v in simulation.items() if k != "plugin"})  # what it would start: checked
    other = tmp_path / "other.yaml"
    other.write_text(station.read_text().replace("plugin: rfmux_mock", "plugin: qick_mock"))
    with pytest.raises(ValueError, match="cryodaq.simulation.plugin: 'qick_mock' is no plugin"):
        read_simulation(other)
