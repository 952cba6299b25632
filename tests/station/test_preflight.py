"""Pre-flight: before any instrument is touched, the output directory and every port the station
listens on are checked, each failure in one line naming the file, the key, the listener and the port;
listeners off loopback are allowed when the file asks, with a warning naming the address."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cryodaq.errors import ListenError, OutputDirError, PortInUseError
from cryodaq.station import load_station_config
from cryodaq.station.preflight import check_output_dir, preflight, station_listeners

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "stations" / "demo_mkid.yaml"


def station(tmp_path: Path, edit) -> Path:  # noqa: ANN001 - a function editing the document
    doc = yaml.safe_load(DEMO.read_text())
    edit(doc)
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def taken_tcp() -> Iterator[int]:
    """A TCP port another program listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield s.getsockname()[1]


@pytest.fixture
def taken_udp() -> Iterator[int]:
    """A UDP port another program is bound to."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, text
    return text


def test_a_simulated_instrument_port_in_use_is_named_before_anything_starts(tmp_path, taken_tcp):
    def edit(doc):
        doc["cryodaq"]["simulation"]["auto_ports"] = False
        doc["instruments"]["readout"]["address"] = f"TCPIP0::127.0.0.1::{taken_tcp}::SOCKET"
        doc["instruments"]["fridge_thermometer"]["address"] = "TCPIP0::127.0.0.1::0::SOCKET"

    path = station(tmp_path, edit)
    out = tmp_path / "runs"
    with pytest.raises(PortInUseError) as info:
        preflight(load_station_config(path), out, simulate=True)
    msg = one_line(info.value)
    assert msg.startswith(f"{path}: instruments.readout.address: simulated instrument 'readout' cannot listen on "
                          f"TCP port {taken_tcp} of 127.0.0.1: in use by another program"), msg
    assert "auto_ports: true" in msg
    assert not out.exists()  # ports are checked first: nothing was created
    # against real hardware (--no-simulate) nothing listens there: the port is the instrument's
    assert preflight(load_station_config(path), out, simulate=False) == []


def test_a_fixed_udp_data_port_in_use_is_named(tmp_path, taken_udp):
    path = station(tmp_path, lambda doc: doc["cryodaq"]["readout"].update(data_port=taken_udp))
    with pytest.raises(PortInUseError) as info:
        preflight(load_station_config(path), tmp_path / "runs", simulate=True)
    msg = one_line(info.value)
    assert msg.startswith(f"{path}: cryodaq.readout.data_port: the UDP data receiver of 'readout' cannot listen on "
                          f"UDP port {taken_udp} of 127.0.0.1: in use by another program"), msg


def test_the_live_publishers_port_is_checked_when_it_publishes(tmp_path, taken_tcp):
    path = station(tmp_path, lambda doc: doc["cryodaq"]["publish"].update(address=f"tcp://127.0.0.1:{taken_tcp}"))
    config = load_station_config(path)
    with pytest.raises(PortInUseError, match=rf"cryodaq.publish.address: the live publisher cannot listen on TCP "
                                             rf"port {taken_tcp} .*--publish tcp://127.0.0.1:0"):
        preflight(config, None, simulate=True, publish=True)
    assert preflight(config, None, simulate=True, publish=False) == []  # a session without the live view


def test_an_address_not_of_this_machine_is_named(tmp_path):
    path = station(tmp_path, lambda doc: doc["cryodaq"]["readout"].update(data_host="192.0.2.7"))  # TEST-NET-1
    with pytest.raises(ListenError, match=r"cryodaq.readout.data_port: .*UDP port 0 of 192.0.2.7: "):
        preflight(load_station_config(path), None, simulate=True)


def test_listeners_are_on_loopback_unless_the_file_says_otherwise_then_warned(tmp_path):
    config = load_station_config(DEMO)
    listeners = station_listeners(config, simulate=True, publish=True)
    assert {(lst.key, lst.protocol) for lst in listeners} == {
        ("instruments.fridge_thermometer.address", "TCP"), ("instruments.readout.address", "TCP"),
        ("cryodaq.readout.data_port", "UDP"), ("cryodaq.publish.address", "TCP")}
    assert all(lst.host == "127.0.0.1" for lst in listeners)
    assert preflight(config, None, simulate=True, publish=False) == []

    def edit(doc):
        doc["cryodaq"]["readout"]["data_host"] = "0.0.0.0"
        doc["cryodaq"]["publish"]["address"] = "tcp://*:0"

    path = station(tmp_path, edit)
    warnings = preflight(load_station_config(path), None, simulate=True, publish=True)
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith(f"{path}: cryodaq.readout.data_port: the UDP data receiver of 'readout' listens on "
                                  "0.0.0.0 (a free port), every network interface")
    assert "cryodaq.publish.address: the live publisher listens on 0.0.0.0" in warnings[1]


def test_the_output_directory_must_take_a_run(tmp_path):
    made = check_output_dir(tmp_path / "a" / "b")
    assert made.is_dir() and list(made.iterdir()) == []  # created, and the write check left nothing
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(OutputDirError, match=rf"output directory {a_file}: exists and is not a directory"):
        check_output_dir(a_file)
    with pytest.raises(OutputDirError, match=rf"output directory {a_file / 'runs'}: cannot write a run there: "):
        check_output_dir(a_file / "runs")
    with pytest.raises(OutputDirError, match=r"MB free on its disk; a run needs at least"):
        check_output_dir(tmp_path, min_free_bytes=1e18)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory anyway")
def test_a_read_only_output_directory_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputDirError, match=r"cannot write a run there: Permission denied"):
            check_output_dir(ro)
    finally:
        ro.chmod(0o755)
