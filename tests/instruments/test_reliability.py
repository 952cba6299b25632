"""Bounded retry, reconnect and clear errors: the real qcodes drivers against faulty simulators."""

from __future__ import annotations

import itertools
import time

import pytest
from qcodes.instrument_drivers.Lakeshore import LakeshoreModel372
from qcodes.instrument_drivers.oxford import OxfordTriton

from cryodaq.errors import InstrumentError
from cryodaq.instruments.bluefors import BlueforsControlUnit
from cryodaq.instruments.reliability import RetryPolicy, call_with_retry, is_reliable, make_reliable
from sim_instruments.faces.bluefors import BlueforsControlUnitFace
from sim_instruments.faces.lakeshore372 import Lakeshore372Face
from sim_instruments.faces.oxford_triton import OxfordTritonFace
from sim_instruments.world.world import World

_names = itertools.count()
TIMEOUT_S = 0.3
POLICY = RetryPolicy(retries=2, backoff_s=0.05)


@pytest.fixture
def sim():
    with Lakeshore372Face(World(), port=0) as face:
        yield face


@pytest.fixture
def ls(sim):
    inst = LakeshoreModel372(f"ls_{next(_names)}", f"TCPIP0::127.0.0.1::{sim.port}::SOCKET", visalib="@py",
                             print_connect_message=False, timeout=2)
    make_reliable(inst, POLICY, timeout_s=TIMEOUT_S)
    yield inst
    inst.close()


def test_policy_and_helper():
    with pytest.raises(ValueError, match="retries"):
        RetryPolicy(retries=-1)
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("dropped")
        return "ok"

    reconnects = []
    assert call_with_retry(flaky, policy=RetryPolicy(2, 0.0), instrument="x", address="a", what="q",
                           reconnect=lambda: reconnects.append(1)) == "ok"
    assert len(calls) == 3 and len(reconnects) == 2
    with pytest.raises(ValueError):  # not a transport failure: no retry
        call_with_retry(lambda: int("x"), policy=RetryPolicy(2, 0.0), instrument="x", address="a", what="q")


def test_instrument_that_stops_answering_is_named_after_a_bounded_retry(ls, sim):
    assert is_reliable(ls)
    assert ls.ch01.temperature() > 0
    sim.server.faults.mute = True
    t0 = time.monotonic()
    with pytest.raises(InstrumentError) as info:
        ls.ch01.temperature()
    elapsed = time.monotonic() - t0
    # 3 attempts of 0.3 s plus 0.05 + 0.1 s of backoff; generous bound, no tight timing
    assert elapsed < 5.0
    err = info.value
    assert err.instrument == ls.name and err.address == f"TCPIP0::127.0.0.1::{sim.port}::SOCKET"
    msg = str(err)
    assert ls.name in msg and f"127.0.0.1::{sim.port}" in msg and "after 3 attempt(s)" in msg
    assert "KRDG? 1" in msg and "getting" in msg  # qcodes' own context is kept
    sim.server.faults.mute = False
    assert ls.ch01.temperature() > 0  # it answers again: no manual action needed


def test_garbage_reply_is_a_clear_error_without_hanging(ls, sim):
    sim.server.faults.garbage = True
    t0 = time.monotonic()
    with pytest.raises(InstrumentError) as info:
        ls.ch01.temperature()
    assert time.monotonic() - t0 < 2.0  # not retried, not timed out
    msg = str(info.value)
    assert ls.name in msg and f"127.0.0.1::{sim.port}" in msg
    assert "ch01_temperature" in msg and "KRDG? 1" in msg and "GARBAGE" in msg
    # a grouped parameter's parser fails the same way
    with pytest.raises(InstrumentError, match="sample_heater_mode.*OUTMODE\\? 0"):
        ls.sample_heater.mode()
    sim.server.faults.garbage = False
    assert ls.ch01.temperature() > 0


def test_server_restart_reconnects_on_the_next_call(ls, sim):
    assert ls.ch01.temperature() > 0
    port = sim.port
    sim.stop()
    sim.start()  # power-cycled: same port, the old connection is gone
    assert sim.port == port
    assert ls.ch01.temperature() == pytest.approx(0.012, rel=0.01)
    ls.sample_heater.setpoint_ramp_rate(1.5)  # writes go through the new session too
    assert ls.sample_heater.setpoint_ramp_rate() == 1.5
    assert ls.visa_handle.read_termination == "\r\n" and ls.timeout() == pytest.approx(TIMEOUT_S)


def test_instrument_down_then_back(ls, sim):
    sim.stop()
    with pytest.raises(InstrumentError, match="after 3 attempt"):
        ls.ch01.temperature()
    sim.start()
    assert ls.ch01.temperature() > 0


def test_triton_ip_instrument_reconnects(request):
    face = OxfordTritonFace(World(), port=0).start()
    request.addfinalizer(face.stop)
    tr = OxfordTriton(f"tr_{next(_names)}", address="127.0.0.1", port=face.port, timeout=2)
    request.addfinalizer(tr.close)
    make_reliable(tr, POLICY, timeout_s=TIMEOUT_S)
    assert tr.MC() > 0
    face.stop()
    face.start()
    assert tr.MC() == pytest.approx(0.012, rel=0.01)
    face.server.faults.mute = True
    with pytest.raises(InstrumentError, match=f"127.0.0.1:{face.port}.*after 3 attempt"):
        tr.MC()
    face.server.faults.mute = False
    assert tr.MC() > 0


def test_bluefors_down_names_the_url_and_recovers(request):
    face = BlueforsControlUnitFace(World(), port=0).start()
    request.addfinalizer(face.stop)
    bf = BlueforsControlUnit(f"bf_{next(_names)}", face.url, timeout=TIMEOUT_S, retries=2, backoff_s=0.05)
    request.addfinalizer(bf.close)
    assert bf.mxc.temperature() > 0
    face.stop()
    t0 = time.monotonic()
    with pytest.raises(InstrumentError) as info:
        bf.mxc.temperature()
    assert time.monotonic() - t0 < 5.0
    msg = str(info.value)
    assert bf.name in msg and f"{face.url}/values/mapper/bf/temperatures/t6" in msg and "after 3 attempt" in msg
    face.start()
    assert bf.mxc.temperature() == pytest.approx(0.012, rel=0.01)
    face.faults.mute = True  # accepts the request, never answers: a timeout per attempt
    with pytest.raises(InstrumentError, match="after 3 attempt.*[Tt]imed? ?out"):
        bf.mxc.temperature()
    face.faults.mute = False
    assert bf.mxc.temperature() > 0


def test_station_reliability_section_is_validated(tmp_path):
    from cryodaq.errors import StationConfigError
    from cryodaq.station import load_station_config

    base = ("instruments:\n  t:\n    type: qcodes.instrument_drivers.Lakeshore.LakeshoreModel372\n"
            "    address: TCPIP0::127.0.0.1::1::SOCKET\ncryodaq:\n  readout: {instrument: t}\n")
    path = tmp_path / "s.yaml"
    path.write_text(base)
    assert load_station_config(path).reliability.retries == 2  # defaults
    for section, key in [("{retries: -1}", "retries"), ("{backoff_s: -0.1}", "backoff_s"),
                         ("{timeout_s: 0}", "timeout_s"), ("{retry: 3}", "retry")]:
        path.write_text(base + f"  reliability: {section}\n")
        with pytest.raises(StationConfigError, match=f"cryodaq.reliability.{key}"):
            load_station_config(path)
