"""The live wire format and the display reductions shared by publisher and replay."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryodaq.acquisition import live_protocol as lp
from cryodaq.acquisition.live_reduce import IQReducer, StreamDecimator


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


@pytest.mark.parametrize("factor", [1, 3, 8])
def test_stream_decimator_in_chunks_equals_one_block_mean(factor):
    rng = np.random.default_rng(factor)
    x = rng.normal(size=(1000, 3)).astype(np.float32)
    t = np.arange(1000, dtype=np.int64) * 10
    dec = StreamDecimator(factor)
    cuts = np.sort(rng.choice(np.arange(1, 1000), 20, replace=False))
    parts = [dec.push(tc, xc) for tc, xc in zip(np.split(t, cuts), np.split(x, cuts))]
    got_t = np.concatenate([p[0] for p in parts])
    got_x = np.concatenate([p[1] for p in parts])
    n = (1000 // factor) * factor
    np.testing.assert_allclose(got_x, x[:n].reshape(-1, factor, 3).mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(got_t, t[factor // 2:n:factor])


def test_decimator_reset_drops_the_partial_bin_so_nothing_spans_a_gap():
    dec = StreamDecimator(4)
    t1, _ = dec.push(np.arange(6), np.ones((6, 1), np.float32))  # 4 used, 2 waiting
    dec.reset()  # a gap
    t2, y2 = dec.push(np.arange(100, 104), np.full((4, 1), 5.0, np.float32))
    assert len(t1) == 1 and len(t2) == 1
    assert y2[0, 0] == 5.0  # the two samples before the gap were not mixed in
    assert t2[0] == 102


def test_iq_reducer_keeps_a_fixed_stride_and_each_blocks_excursion():
    rng = np.random.default_rng(1)
    z = (100 + rng.normal(0, 1, (300, 2)) + 1j * rng.normal(0, 1, (300, 2))).astype(np.complex64)
    z[137, 1] = 50 + 80j  # a pulse sample in the second block on tone 1
    red = IQReducer(10)
    blocks = [z[:128], z[128:256], z[256:]]
    out = [red.push(b) for b in blocks]
    uniform = np.concatenate([p[0][:-1] for p in out])
    np.testing.assert_array_equal(uniform, z[::10])  # stride continues across blocks
    assert out[1][0][-1, 1] == z[137, 1]  # the excursion is kept even though 137 is off-stride
    np.testing.assert_allclose(out[2][1], z[256:].mean(axis=0), rtol=1e-5)  # operating point
