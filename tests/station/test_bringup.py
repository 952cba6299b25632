"""Station bring-up on simulators: with ``auto_ports`` the simulators bind port 0 and the instruments are
pointed at the ports they report (no port is chosen, released and bound again, so none can be taken in
between), in every address form; without it, a port taken after the pre-flight check is named in the
same one line as the check would have, by the in-process and the child-process launcher alike."""

from __future__ import annotations

import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from cryodaq.errors import PortInUseError
from cryodaq.station import load_station_config
from cryodaq.station.bringup import station_up

# one instrument per address form: VISA socket, http://host:port, a bare host with a separate port
STATION = """\
instruments:
  thermometer:
    type: qcodes.instrument_drivers.Lakeshore.LakeshoreModel372
    address: TCPIP0::127.0.0.1::{visa}::SOCKET
    init: {{visalib: "@py", terminator: "\\r\\n"}}
  bluefors:
    type: cryodaq.instruments.BlueforsControlUnit
    address: http://127.0.0.1:{http}
    init: {{timeout: 2.0}}
  triton:
    type: qcodes.instrument_drivers.oxford.OxfordTriton
    address: 127.0.0.1
    port: {raw}
    init: {{timeout: 2.0}}
cryodaq:
  readout: {{instrument: thermometer}}
  publish: {{enabled: false}}
  simulation:
    auto_ports: {auto}
    instruments: {{thermometer: lakeshore372, bluefors: bluefors, triton: oxford_triton}}
"""


@pytest.fixture
def taken() -> Iterator[list[int]]:
    """Three TCP ports other programs listen on."""
    socks = []
    for _ in range(3):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        socks.append(s)
    yield [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()


def write(tmp_path: Path, ports: list[int], auto: bool) -> Path:
    path = tmp_path / "station.yaml"
    path.write_text(textwrap.dedent(STATION).format(visa=ports[0], http=ports[1], raw=ports[2],
                                                    auto=str(auto).lower()))
    return path


def test_auto_ports_point_every_address_form_at_the_ports_the_simulators_report(tmp_path, taken):
    # the file's own ports are taken by other programs: the simulators must not need them
    config = load_station_config(write(tmp_path, taken, auto=True))
    with station_up(config, in_process=True) as live:
        ports = live.simulators.ports
        assert set(ports) == {"thermometer", "bluefors", "triton"} and not set(ports.values()) & set(taken)
        inst = live.config.instruments
        assert inst["thermometer"]["address"] == f"TCPIP0::127.0.0.1::{ports['thermometer']}::SOCKET"
        assert inst["bluefors"]["address"] == f"http://127.0.0.1:{ports['bluefors']}"
        assert (inst["triton"]["address"], inst["triton"]["port"]) == ("127.0.0.1", ports["triton"])
        # and each driver talks to its simulator there
        components = live.station.components
        assert components["thermometer"].IDN()["vendor"] == "LSCI"
        assert components["bluefors"].url == f"http://127.0.0.1:{ports['bluefors']}"
        assert 2.0 < components["triton"].T2() < 4.0  # the 4 K plate, read over the raw socket
    assert config.instruments["thermometer"]["address"].endswith(f"::{taken[0]}::SOCKET")  # the file's config as read


@pytest.mark.parametrize("in_process", [True, False], ids=["in-process", "child-process"])
def test_a_fixed_port_taken_at_bind_time_is_named_in_one_line(tmp_path, taken, in_process):
    path = write(tmp_path, [0, 0, taken[2]], auto=False)
    with pytest.raises(PortInUseError) as info:
        with station_up(load_station_config(path), in_process=in_process):
            pass
    msg = str(info.value)
    assert "\n" not in msg
    assert msg == (f"{path}: instruments.triton.port: simulated instrument 'triton' cannot listen on TCP port "
                   f"{taken[2]} of 127.0.0.1: in use by another program; free it, or let the simulators choose free "
                   "ports (cryodaq.simulation.auto_ports: true)")
