"""DASTARD's wire formats (cryodaq.wire.dastard) against bytes written from DASTARD's documented layout."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from cryodaq.wire import dastard as dw

# The worked example of /work/notes/dastard.md §2.2 (bytes from DASTARD's field order, little-endian):
# channel 3, uint16, 3 presamples, 6 samples, 9.6 µs, 1/65535 V/arb, t = 1700000000123456789 ns, frame 987654321
EXAMPLE_HEADER = bytes.fromhex("03 00 00 03 03 00 00 00 06 00 00 00 b0 0f 21 37 80 00 80 37"
                               "15 cd 85 3d fe 9c 97 17 b1 68 de 3a 00 00 00 00")
EXAMPLE_DATA = bytes.fromhex("64 00 65 00 66 00 88 13 a0 0f b8 0b")


def test_a_record_encodes_to_dastards_bytes_and_back():
    header = dw.RecordHeader(channel_index=3, dtype_code=3, presamples=3, n_samples=6, sample_period_s=9.6e-6,
                             volts_per_arb=1 / 65535, trigger_time_ns=1_700_000_000_123_456_789,
                             trigger_frame=987_654_321)
    samples = np.array([100, 101, 102, 5000, 4000, 3000], np.uint16)
    frames = dw.encode_record(header, samples)
    assert frames == [EXAMPLE_HEADER, EXAMPLE_DATA] and len(frames[0]) == 36
    back, data = dw.decode_record(frames)
    assert back.channel_index == 3 and back.presamples == 3 and back.n_samples == 6 and back.dtype_code == 3
    assert back.trigger_time_ns == 1_700_000_000_123_456_789 and back.trigger_frame == 987_654_321
    assert back.sample_period_s == np.float32(9.6e-6) and back.volts_per_arb == np.float32(1 / 65535)
    assert data.dtype == np.dtype("<u2") and data.tobytes() == EXAMPLE_DATA


@pytest.mark.parametrize("code", range(8))
def test_every_dtype_code_round_trips(code):
    dt = dw.DTYPE_CODES[code]
    assert dw.dtype_code(dt) == code
    samples = np.arange(-3, 5).astype(dt)
    header = dw.RecordHeader(1, code, 2, len(samples), 1e-5, 1.0, 5, 6)
    frames = dw.encode_record(header, samples)
    assert frames[0][3] == code and len(frames[1]) == len(samples) * dt.itemsize
    _, back = dw.decode_record(frames)
    assert back.dtype == dt and np.array_equal(back, samples)


@pytest.mark.parametrize(("frames", "message"), [
    ([EXAMPLE_HEADER], "2 frames"),
    ([EXAMPLE_HEADER[:32], EXAMPLE_DATA], "32 bytes, expected 36"),
    ([EXAMPLE_HEADER[:2] + b"\x01" + EXAMPLE_HEADER[3:], EXAMPLE_DATA], "version 1 is not supported"),
    ([EXAMPLE_HEADER[:3] + b"\x09" + EXAMPLE_HEADER[4:], EXAMPLE_DATA], "unknown sample dtype code 9"),
    ([EXAMPLE_HEADER, EXAMPLE_DATA[:-2]], "6 samples of uint16, the payload has 10 bytes"),
    ([EXAMPLE_HEADER[:4] + struct.pack("<I", 7) + EXAMPLE_HEADER[8:], EXAMPLE_DATA], "7 presamples in a 6-sample"),
])
def test_a_malformed_record_says_what_is_wrong(frames, message):
    with pytest.raises(dw.DastardFormatError, match=message):
        dw.decode_record(frames)


def test_the_subscription_prefix_is_the_2_byte_channel_index():
    assert dw.channel_prefix(1) == b"\x01\x00" and dw.channel_prefix(256) == b"\x00\x01"
    assert EXAMPLE_HEADER.startswith(dw.channel_prefix(3))
    with pytest.raises(ValueError, match="0..65535"):
        dw.channel_prefix(70000)


def test_status_messages_and_go_times():
    frames = dw.encode_status("TRIGGERRATE", {"HiTime": "2024-07-23T10:00:01.5-06:00", "Duration": 10**9,
                                              "CountsSeen": [3, 0, 7]})
    assert frames[0] == b"TRIGGERRATE" and json.loads(frames[1])["CountsSeen"] == [3, 0, 7]
    topic, payload = dw.decode_status(frames)
    assert topic == "TRIGGERRATE"
    t = dw.parse_go_time(payload["HiTime"])
    assert t == 1_721_750_401_500_000_000  # 16:00:01.5 UTC
    assert dw.parse_go_time("2024-07-23T16:00:01.000000001Z") == 1_721_750_401_000_000_001
    assert dw.format_go_time(1_721_750_401_500_000_000) == "2024-07-23T16:00:01.5Z"
    assert dw.parse_go_time(dw.format_go_time(1_721_750_401_123_456_789)) == 1_721_750_401_123_456_789
    with pytest.raises(dw.DastardFormatError, match="RFC 3339"):
        dw.parse_go_time("yesterday")
    with pytest.raises(dw.DastardFormatError, match="not \\[ASCII topic, JSON\\]"):
        dw.decode_status([b"STATUS", b"{not json"])


def test_status_values_are_the_numbers_housekeeping_keeps():
    rate = {"HiTime": "1970-01-01T00:00:10Z", "Duration": 2 * 10**9, "CountsSeen": [4, 6]}
    values = dw.status_values("TRIGGERRATE", rate, 123, ["chan1", "chan 2"])
    assert values == [("dastard_trigger_rate", 10 * 10**9, 5.0, "Hz"), ("trigger_rate_chan1", 10 * 10**9, 2.0, "Hz"),
                      ("trigger_rate_chan_2", 10 * 10**9, 3.0, "Hz")]
    assert len(dw.status_values("TRIGGERRATE", rate, 0, [], per_channel_limit=1)) == 2
    alive = dw.status_values("ALIVE", {"Running": True, "Time": 2.0, "DataMB": 3.0}, 7, [])
    assert alive == [("dastard_running", 7, 1.0, ""), ("dastard_data_rate", 7, 1.5e6, "B/s")]
    assert dw.status_values("NUMBERWRITTEN", {"NumberWritten": [2, 3]}, 7) == [("dastard_records_written", 7, 5.0, "")]
    assert dw.status_values("STATUS", {"Running": True}, 7) == []
    with pytest.raises(dw.DastardFormatError, match="TRIGGERRATE status"):
        dw.status_values("TRIGGERRATE", {"HiTime": "1970-01-01T00:00:10Z"}, 0)


def test_addresses_name_the_base_port():
    assert dw.parse_address("tcp://daq-host:5500") == ("daq-host", 5500)
    assert dw.port_addresses("tcp://10.0.0.2:5500") == {
        "rpc": "tcp://10.0.0.2:5500", "status": "tcp://10.0.0.2:5501", "records": "tcp://10.0.0.2:5502",
        "summaries": "tcp://10.0.0.2:5504"}
    for bad in ("tcp://host", "udp://host:5500", "host:5500", "tcp://host:65534"):
        with pytest.raises(ValueError, match="tcp://"):
            dw.parse_address(bad)


def test_json_rpc_framing_splits_back_to_back_objects():
    request = dw.encode_rpc_request("SourceControl.SendAllStatus", "", 7)
    assert json.loads(request) == {"method": "SourceControl.SendAllStatus", "params": [""], "id": 7}
    stream = dw.JsonStream()
    text = b'{"id": 1, "result": true, "error": null}{"id": 2, "result": {"a": [1, 2]}, "error": null}  {"id": 3'
    assert stream.feed(text[:10]) == []
    values = stream.feed(text[10:])
    assert [v["id"] for v in values] == [1, 2]
    assert stream.feed(b', "result": null, "error": "rpc: can\'t find method X"}')[0]["id"] == 3
    assert dw.decode_rpc_reply(values[1], 2) == {"a": [1, 2]}
    with pytest.raises(dw.DastardFormatError, match="can't find method X"):
        dw.decode_rpc_reply({"id": 3, "result": None, "error": "rpc: can't find method X"}, 3)
    with pytest.raises(dw.DastardFormatError, match="does not answer request 4"):
        dw.decode_rpc_reply(values[0], 4)
