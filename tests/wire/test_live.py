"""The live wire format (cryodaq.wire.live): every topic round-trips; damage is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryodaq.wire import live as lp


def _wire(msg: lp.Message) -> lp.Message:
    """Encode, copy every frame to bytes as a socket would, decode."""
    return lp.decode([bytes(f) for f in lp.encode(msg)])


def test_every_topic_round_trips_with_dtypes_and_shapes():
    rng = np.random.default_rng(0)
    coords = {"channel": np.arange(4, dtype=np.int32), "tone_frequency_hz": np.linspace(5e9, 5.1e9, 4),
              "label": np.array(["a", "b", "c", "d"])}
    messages = [
        lp.info_message(station="s", stream="phase", units="rad", output_rate_hz=16e3, adc_rate_hz=2.048e6,
                        channel_coords=coords, run_path="/x.zarr", stream_channels=[0, 2], stream_rate_hz=2e3,
                        source="live"),
        lp.status_message(np.array([1, 2, 3, 4]), state="running", elapsed_s=1.5, samples=10, disk_free_bytes=7),
        lp.psd_message(5, np.linspace(0, 8e3, 9), rng.random((2, 9)), np.array([1, 3]), "rad^2/Hz"),
        lp.stream_message(np.arange(5), rng.random((5, 2)), np.array([0, 2]), 2e3),
        lp.iq_message(rng.random((6, 2)) + 1j * rng.random((6, 2)), np.array([1 + 1j, 2 - 1j]), np.array([0, 2]), 9),
        lp.events_message({"t": np.arange(3), "channel": np.array([0, 1, 0], np.int32),
                           "amplitude": np.ones(3, np.float32)}, rng.random((2, 64)), np.array([1, 2]),
                          presamples=16, record_rate_hz=16e3, dropped=4),
        lp.housekeeping_message("mxc", np.array([1, 2]), np.array([0.01, 0.011]), "K"),
        lp.gap_message(100, 4096, 123, "packet_loss", "3 packets"),
        lp.end_message("complete", "duration reached", False),
    ]
    assert {m.topic for m in messages} == set(lp.TOPICS)
    for msg in messages:
        back = _wire(msg)
        assert back.topic == msg.topic
        assert back.header == msg.header
        assert back.arrays.keys() == msg.arrays.keys()
        for name, arr in msg.arrays.items():
            got = back.arrays[name]
            assert got.dtype == np.asarray(arr).dtype and got.shape == np.asarray(arr).shape, name
            np.testing.assert_array_equal(got, arr)
    info = _wire(messages[0])
    got = lp.channel_coords_of(info)
    np.testing.assert_array_equal(got["tone_frequency_hz"], coords["tone_frequency_hz"])
    assert got["label"].tolist() == ["a", "b", "c", "d"]  # text coordinates travel in the header


def test_decode_refuses_other_versions_and_damaged_messages():
    frames = [bytes(f) for f in lp.encode(lp.stream_message(np.arange(4), np.ones((4, 2)), np.array([0, 1]), 1.0))]
    header = json.loads(frames[1])
    header["v"] = lp.PROTOCOL_VERSION + 1
    with pytest.raises(lp.LiveProtocolError, match="protocol version"):
        lp.decode([frames[0], json.dumps(header).encode(), *frames[2:]])
    with pytest.raises(lp.LiveProtocolError, match="needs 32 bytes, got 28"):
        lp.decode([*frames[:3], frames[3][:-4], *frames[4:]])
    with pytest.raises(lp.LiveProtocolError, match="3 arrays but 2 buffers"):
        lp.decode(frames[:-1])
    with pytest.raises(lp.LiveProtocolError, match="not a cryodaq live message"):
        lp.decode([b"stream", b"{not json"])


def test_encode_refuses_what_cannot_travel():
    with pytest.raises(lp.LiveProtocolError, match="unknown topic"):
        lp.encode(lp.Message("nope"))
    with pytest.raises(lp.LiveProtocolError, match="reserved"):
        lp.encode(lp.Message(lp.END, {"v": 3}))
    with pytest.raises(lp.LiveProtocolError, match="cannot go on the wire"):
        lp.encode(lp.Message(lp.END, {}, {"names": np.array(["a"])}))
    with pytest.raises(lp.LiveProtocolError, match="unknown field"):
        lp.status_message(np.zeros(2), speed_of_light=3e8)
