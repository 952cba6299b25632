"""LivePublisher: bounded messages, rate limits, never blocking, drops counted; station key and CLI wiring."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import yaml
import zmq

from cryodaq.wire import live as lp
from cryodaq.live.publisher import LivePublisher, PublisherError
from cryodaq.readout.blocks import Gap
from cryodaq.acquisition.sinks import SessionStats
from cryodaq.errors import StationConfigError
from cryodaq.station import load_station_config


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def _sub(ctx: zmq.Context, address: str, **opts: int) -> zmq.Socket:
    s = ctx.socket(zmq.SUB)
    for k, v in opts.items():
        s.setsockopt(getattr(zmq, k), v)
    s.connect(address)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    return s


def _join(pub: LivePublisher, sub: zmq.Socket) -> None:
    """Send probes until the subscriber receives one (a SUB joins asynchronously), then drain."""
    for _ in range(200):
        pub.housekeeping("probe", 0, 0.0, "")
        if sub.poll(20):
            break
    else:
        raise AssertionError("subscriber never joined")
    while sub.poll(50):
        sub.recv_multipart()


def _drain(sub: zmq.Socket, idle_ms: int = 200) -> list[lp.Message]:
    out = []
    while sub.poll(idle_ms):
        out.append(lp.decode(sub.recv_multipart()))
    return out


def _stats(n_channels: int) -> SessionStats:
    st = SessionStats(started=time.monotonic() - 2.0, samples=4_096_000, events=12)
    st.events_per_channel = np.arange(n_channels, dtype=np.int64)
    return st


def test_port_zero_binds_a_free_port_and_a_busy_address_is_refused():
    pub = LivePublisher("tcp://127.0.0.1:0")
    try:
        host, port = pub.address.rsplit(":", 1)
        assert host == "tcp://127.0.0.1" and int(port) > 0
        with pytest.raises(PublisherError, match=pub.address.replace(".", r"\.")):
            LivePublisher(pub.address)
    finally:
        pub.close(interrupted=False, reason="", error=None)


def test_2000_channels_publish_bounded_messages_on_every_topic(ctx, synth, tmp_path):
    n = 2000
    pub = LivePublisher("tcp://127.0.0.1:0")
    sub = _sub(ctx, pub.address)
    _join(pub, sub)
    pub.start(synth.make_info(n, run_path=str(tmp_path / "run.zarr")))
    for k in range(20):
        pub.output(synth.make_output(k, n_channels=n, n_events=20))
        time.sleep(0.003)
    pub.spectrum(synth.T0, np.linspace(0, 8e3, 513), np.ones((n, 513), np.float32), "rad^2/Hz")
    pub.gap(Gap(10, 4096, synth.T0, "packet_loss", "2 packets"))
    pub.housekeeping("mxc_temperature", synth.T0, 0.012, "K")
    pub.status(_stats(n))
    pub.close(interrupted=False, reason="duration reached", error=None)
    msgs = _drain(sub)
    by = {t: [m for m in msgs if m.topic == t] for t in lp.TOPICS}
    assert all(by[t] for t in lp.TOPICS), {t: len(v) for t, v in by.items()}

    info = by[lp.INFO][0]
    assert info["n_channels"] == n and info["stream_rate_hz"] == 2000.0
    np.testing.assert_array_equal(info["stream_channels"], np.arange(16))  # the default subset
    samples = 0
    for m in by[lp.STREAM]:
        assert m["data"].shape[1] == 16 and len(m["t_ns"]) == len(m["data"])
        samples += len(m["data"])
    assert samples == 20 * 256 // 8  # decimated 16 kHz -> 2 kHz, nothing lost in batching
    assert all(m["points"].shape[1] == 16 for m in by[lp.IQ])
    ev_total = sum(m["n"] for m in by[lp.EVENTS])
    assert ev_total == 20 * 20
    assert all(len(m["records"]) <= 32 for m in by[lp.EVENTS])
    psd_rows = np.concatenate([m["channels"] for m in by[lp.PSD]])
    np.testing.assert_array_equal(np.sort(psd_rows), np.arange(n))  # every channel, in chunks
    assert max(m["psd"].nbytes for m in by[lp.PSD]) <= 128 * 513 * 4
    status = by[lp.STATUS][0]
    assert status["disk_free_bytes"] > 0 and status["state"] == "running"
    assert len(status["events_per_channel"]) == n
    assert by[lp.GAP][0]["cause"] == "packet_loss"
    assert by[lp.END][0]["status"] == "complete"
    assert pub.total_drops == 0 and pub.errors == 0


def test_each_topic_sends_at_most_20_messages_a_second(ctx, synth):
    pub = LivePublisher("tcp://127.0.0.1:0", max_message_rate_hz=20.0)
    sub = _sub(ctx, pub.address)
    _join(pub, sub)
    pub.start(synth.make_info(8))
    t0 = time.monotonic()
    for k in range(400):
        pub.output(synth.make_output(k))
    elapsed = time.monotonic() - t0
    pub.close(interrupted=False, reason="", error=None)
    msgs = _drain(sub)
    stream = [m for m in msgs if m.topic == lp.STREAM]
    # batches: one per 50 ms of wall time, plus the flush at close
    assert len(stream) <= elapsed * 20 + 2
    assert sum(len(m["data"]) for m in stream) == 400 * 256 // 8


def test_a_stalled_subscriber_never_blocks_output_and_drops_are_counted(ctx, synth):
    pub = LivePublisher("tcp://127.0.0.1:0", sndhwm=2, sndbuf=4096, stream_rate_hz=16_000, iq_rate_hz=16_000,
                        max_message_rate_hz=1000.0)
    stalled = _sub(ctx, pub.address, RCVHWM=1, RCVBUF=4096)  # connected, never read
    _join(pub, stalled)
    pub.start(synth.make_info(8))
    outputs = [synth.make_output(k) for k in range(50)]
    t0 = time.monotonic()
    for k in range(1500):  # output() only hands over: it returns at once whatever the socket does
        pub.output(outputs[k % 50])
        if k % 100 == 0:
            time.sleep(0.01)  # let the sender thread send (and hit the full queue)
    handed_over = time.monotonic() - t0
    # a blocking send in the sender thread would hang close() for ever (pytest-timeout ends the test)
    pub.close(interrupted=False, reason="", error=None)
    assert pub.drops[lp.STREAM] > 0 and pub.drops[lp.IQ] > 0
    assert pub.sent[lp.STREAM] + pub.drops[lp.STREAM] == pub._seq[lp.STREAM]  # every attempt accounted for
    assert pub.errors == 0
    print(f"1500 output() calls handed over in {handed_over * 1e3:.1f} ms (incl. 150 ms of sleeps); "
          f"dropped {pub.drops}")


def test_a_failing_sink_call_is_logged_not_raised(synth):
    pub = LivePublisher("tcp://127.0.0.1:0")
    try:
        pub.start(synth.make_info(8))
        bad = synth.make_output(0)
        bad.iq = np.zeros(5, np.complex64)  # not (samples, tones): the IQ reduction fails
        pub.output(bad)  # must not raise, here or in the sender thread
        time.sleep(0.2)
        pub.output(synth.make_output(1))
    finally:
        pub.close(interrupted=False, reason="", error=None)
    assert pub.errors == 1
    assert pub.sent[lp.STREAM] >= 2 and pub.sent[lp.END] == 1  # it went on publishing


def _station(tmp_path: Path, synth, publish: object) -> Path:
    doc = yaml.safe_load(synth.DEMO.read_text())
    doc["cryodaq"]["publish"] = publish
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_station_file_publish_key(tmp_path, synth):
    demo = load_station_config(synth.DEMO)
    assert demo.publish.enabled and demo.publish.address == "tcp://127.0.0.1:5556"
    cfg = load_station_config(_station(tmp_path, synth, {"address": "tcp://127.0.0.1:0", "channels": [3, 1]}))
    assert cfg.publish.address == "tcp://127.0.0.1:0" and cfg.publish.channels == (3, 1)
    with pytest.raises(StationConfigError, match=r"cryodaq\.publish\.address: expected a ZeroMQ address"):
        load_station_config(_station(tmp_path, synth, {"address": "localhost:5556"}))
    with pytest.raises(StationConfigError, match=r"cryodaq\.publish\.channels"):
        load_station_config(_station(tmp_path, synth, {"channels": [1, -2]}))
    with pytest.raises(StationConfigError, match=r"cryodaq\.publish\.adress"):
        load_station_config(_station(tmp_path, synth, {"adress": "tcp://127.0.0.1:1"}))


def test_cli_makes_the_publisher_the_station_asks_for(tmp_path, synth, capsys):
    from cryodaq import cli

    cfg = load_station_config(_station(tmp_path, synth, {"address": "tcp://127.0.0.1:0"}))
    sinks = cli._live_publisher(cfg)
    assert len(sinks) == 1 and isinstance(sinks[0], LivePublisher)
    busy = load_station_config(_station(tmp_path, synth, {"address": sinks[0].address}))
    assert cli._live_publisher(busy) == []  # a busy port is a warning: the run goes on without live view
    assert "running without live view" in capsys.readouterr().err
    sinks[0].close(interrupted=False, reason="", error=None)
    off = load_station_config(_station(tmp_path, synth, {"enabled": False}))
    assert cli._live_publisher(off) == []
