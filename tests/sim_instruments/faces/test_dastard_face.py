"""The simulated DASTARD at protocol level: JSON-RPC control, status and triggered TES records over ZeroMQ."""

from __future__ import annotations

import json
import socket
import struct
import time

import numpy as np
import pytest
import zmq

from sim_instruments.faces.dastard import DastardFace
from sim_instruments.faces.registry import FACES
from sim_instruments.world.world import World

HEADER = struct.Struct("<HBBIIffqQ")  # DASTARD's record header, as documented


def _rpc(port: int, method: str, param: object, request_id: int = 1) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(json.dumps({"method": method, "params": [param], "id": request_id}).encode())
        buf = b""
        while True:
            buf += s.recv(4096)
            try:
                return json.loads(buf)
            except json.JSONDecodeError:
                continue


@pytest.fixture(scope="module")
def face():
    world = World({"seed": 3, "tes": {"enabled": True, "n_channels": 2, "rate_hz": 40.0}})
    f = DastardFace(world, record_length=200, presamples=40, edge_level=60)
    f.start()
    yield f
    f.stop()


def test_the_face_needs_the_tes_array_and_is_registered():
    assert FACES["dastard"] is DastardFace
    with pytest.raises(ValueError, match="world.tes.enabled"):
        DastardFace(World(clock=lambda: 0.0))


def test_json_rpc_answers_like_dastards_go_server(face):
    assert _rpc(face.port, "SourceControl.Multiply", {"A": 6, "B": 7}, 5) == {"id": 5, "result": 42, "error": None}
    reply = _rpc(face.port, "SourceControl.Nope", "")
    assert reply["result"] is None and reply["error"] == "rpc: can't find method SourceControl.Nope"
    assert "count >= 0" in _rpc(face.port, "Simulation.DropRecords", -1)["error"]


def test_status_and_records_are_dastards_formats(face):
    ctx = zmq.Context.instance()
    status, records = ctx.socket(zmq.SUB), ctx.socket(zmq.SUB)
    try:
        for sock, offset in ((status, 1), (records, 2)):
            sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.connect(f"tcp://127.0.0.1:{face.port + offset}")
        time.sleep(0.2)
        assert _rpc(face.port, "SourceControl.SendAllStatus", "")["result"] is True
        topics = {}
        while status.poll(1000) and len(topics) < 4:
            topic, payload = status.recv_multipart()
            topics[topic.decode()] = json.loads(payload)
        assert topics["STATUS"]["Nsamples"] == 200 and topics["STATUS"]["Npresamp"] == 40
        assert topics["STATUS"]["SamplePeriod"] == 10_000 and topics["CHANNELNAMES"] == ["chan1", "chan2"]
        got = []
        deadline = time.monotonic() + 10
        while len(got) < 8 and time.monotonic() < deadline:
            if records.poll(200):
                got.append(records.recv_multipart())
    finally:
        status.close(linger=0)
        records.close(linger=0)
    assert len(got) == 8
    last: dict[int, tuple[int, int]] = {}
    for head, data in got:
        ch, version, code, pre, n, period, vpa, t_ns, frame = HEADER.unpack(head)
        x = np.frombuffer(data, "<u2").astype(int)
        assert (version, code, pre, n, len(x)) == (0, 3, 40, 200, 200)
        assert period == np.float32(1e-5) and vpa == np.float32(1 / 32768)
        assert x[pre] - x[pre - 1] <= -60  # a falling edge at the trigger, presamples into the record
        assert x[pre:pre + 60].min() < np.median(x[:pre]) - 1000  # a TES pulse (≈ 3600 counts at 5.9 keV)
        if ch in last:  # frames count samples: trigger times follow them at the sample period
            f0, t0 = last[ch]
            assert frame >= f0 + 200 and t_ns - t0 == pytest.approx((frame - f0) * 10_000, abs=1)
        last[ch] = (frame, t_ns)
