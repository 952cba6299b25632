"""DastardPublisher: a DASTARD (here FakeDastard, written by the tests) as a records ReadoutSource."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import yaml
from qcodes.instrument import Instrument

from cryodaq.errors import InstrumentError, StationConfigError
from cryodaq.instruments import DastardPublisher
from cryodaq.readout import ReadoutSource, receiving
from cryodaq.station import load_station_config


@pytest.fixture
def dastard(fake_dastard):
    fake = fake_dastard(["chan1", "err1", "chan12043"], nsamples=1000, npresamp=250, period_s=4.096e-6)
    inst = DastardPublisher("dastard_test", fake.address)
    yield fake, inst
    inst.close()


def test_describe_reads_dastards_status_as_a_records_stream(dastard):
    fake, inst = dastard
    assert isinstance(inst, ReadoutSource)
    d = inst.describe()
    assert d.kind == "records" and d.n_channels == 3 and d.sample_dtype == "uint16"
    assert d.sample_rate_hz == pytest.approx(1 / 4.096e-6) and (d.record_length, d.presamples) == (1000, 250)
    assert d.channel_coords["channel_name"].tolist() == ["chan1", "err1", "chan12043"]
    assert d.channel_coords["channel_number"].tolist() == [1, 1, 12043]  # names' numbers, not the indices
    assert "SourceControl.SendAllStatus" in fake.rpc_calls  # asked DASTARD to re-send its status
    snap = inst.snapshot(update=True)["parameters"]
    assert snap["sample_rate"]["value"] == pytest.approx(1 / 4.096e-6) and snap["running"]["value"] is True
    assert snap["record_length"]["value"] == 1000 and snap["source_name"]["value"] == "Replay"


def test_streaming_is_our_subscription(dastard):
    fake, inst = dastard
    inst.configure(subscribed_channels=[2])
    assert not inst.is_streaming()
    with receiving(inst, packets_per_block=4) as rx:
        assert inst.is_streaming()
        assert fake.wait_for_subscription() == [b"\x02\x00"]
        with pytest.raises(InstrumentError, match="already streaming"):
            with receiving(inst):
                pass
        fake.send_record(2, np.arange(1000, dtype=np.uint16), t_ns=5, frame=7)
        status, block = [], rx.blocks.get(timeout=5)
        while not block.n_records:  # the stream begins with DASTARD's status, re-sent on subscribing
            status += [m.topic for m in block.status]
            block = rx.blocks.get(timeout=5)
        assert block.channel.tolist() == [2] and block.samples.tobytes() == np.arange(1000, dtype=np.uint16).tobytes()
        assert {"STATUS", "CHANNELNAMES"} <= set(status + [m.topic for m in block.status])
    assert not inst.is_streaming()
    with pytest.raises(InstrumentError, match="no settable parameter 'channels'"):
        inst.configure(channels=[1])
    inst.configure(subscribed_channels=[5])
    with pytest.raises(InstrumentError, match=r"subscribed channel indices \[5\] do not exist.*3 channels"):
        inst.describe()


def test_a_dastard_without_a_running_source_is_named(fake_dastard):
    fake = fake_dastard(["chan1"], nsamples=10, npresamp=2, period_s=1e-5, running=False)
    inst = DastardPublisher("dastard_idle", fake.address)
    try:
        assert inst.running() is False
        with pytest.raises(InstrumentError, match="dastard_idle.*no running data source"):
            inst.describe()
    finally:
        inst.close()


def test_no_dastard_at_the_address_fails_naming_instrument_and_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens there once closed
    address = f"tcp://127.0.0.1:{port}"
    with pytest.raises(InstrumentError, match=f"'nowhere' at {address}.*control port .* did not answer"):
        DastardPublisher("nowhere", address, timeout_s=1.0)
    Instrument.close_all()


def test_a_bad_address_in_a_station_file_names_the_key(tmp_path):
    station = {"instruments": {"dastard": {"type": "cryodaq.instruments.DastardPublisher",
                                           "address": "tcp://daq-host"}},
               "cryodaq": {"readout": {"instrument": "dastard"}}}
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(station))
    with pytest.raises(StationConfigError, match=r"lab.yaml: instruments.dastard.address: expected DASTARD's base "
                                                 r"address 'tcp://<host>:<port>'.*got 'tcp://daq-host'"):
        load_station_config(path)
    station["instruments"]["dastard"]["address"] = "tcp://daq-host:5500"
    path.write_text(yaml.safe_dump(station))
    assert load_station_config(path).address("dastard") == "tcp://daq-host:5500"
