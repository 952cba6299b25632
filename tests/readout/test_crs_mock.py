"""cryodaq's CRS support against rfmux's own mock CRS: every test that needs the mock, sharing one.

The mock is started once for this module by station bring-up, as the demo station's ``simulation``
section asks (``rfmux_mock`` plugin: 4 resonators, periodic pulses, streaming to a free multicast port);
each start costs ~10-30 s, mostly ``import rfmux``, and a streaming mock costs CPU, so it lives
only while these tests run.

- the receiver joins the mock's multicast group (source-specific, as a real board needs) and gets
  every sample of the configured channels, at the board's rate, with its time source;
- datagrams dropped on their way (a small UDP relay on loopback between the mock and the
  receiver, dropping chosen sequence numbers of chosen modules) become gap records naming the
  module, with exactly the number of samples dropped; nothing is stitched;
- ``cryodaq run stations/demo_crs.yaml`` end to end: the shipped station, pointed
  (``--no-simulate``) at this mock with the Tuber address and stream port the mock chose filled
  in, as station bring-up did when it started the mock for this module. It finds the resonators, fits them, calibrates, streams with the
  mock's pulses on, and stores IQ and phase at the board's rate with its time source; the GUI's
  replay source plays it with the stored IQ.
"""

from __future__ import annotations

import json
import math
import queue
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from cryodaq.cli import main
from cryodaq.instruments.crs import CRSBoard
from cryodaq.readout.blocks import CAUSE_PACKET_LOSS, Block
from cryodaq.readout.crs_receiver import join_multicast
from cryodaq.readout.receive import receiving
from cryodaq.station import load_station_config
from cryodaq.station.bringup import station_up
from cryodaq.storage import open_run
from cryodaq.wire import crs as wire

pytestmark = pytest.mark.slow

STATION = Path(__file__).resolve().parents[2] / "stations" / "demo_crs.yaml"


@pytest.fixture(scope="module")
def crs_station(rfmux_python: Path):  # noqa: ANN201 - cryodaq.station.bringup.LiveStation
    """The demo station brought up as ``cryodaq run`` does: its ``simulation`` section names the
    ``rfmux_mock`` plugin, which starts the mock and reports the Tuber address and stream port it took
    (merged into ``live.config``). Its board is closed once snapshotted, so that the run below can
    open its own under the same name; the mock stays up for the module."""
    with station_up(load_station_config(STATION)) as live:
        live.snapshot = live.station.snapshot(update=True)
        live.station.components["crs"].close()
        yield live


@pytest.fixture(scope="module")
def rfmux_mock(crs_station):  # noqa: ANN201 - sim_instruments.servers.rfmux_mock.RfmuxMock
    return crs_station.simulators


def test_the_station_comes_up_on_the_mock_and_snapshots(crs_station):
    snap = crs_station.snapshot
    assert set(crs_station.config.instruments) <= set(snap["instruments"])
    json.dumps(snap, default=str)  # storable in the run attrs
    crs = snap["instruments"]["crs"]
    assert crs["parameters"]["decimation"]["value"] == 6 and crs["parameters"]["firmware"]["value"]["version"]
    assert crs["submodules"]["module1"]["parameters"]["nco_frequency"]["value"] == 1.204e9
    assert crs_station.config.instruments["crs"]["address"] == crs_station.simulators.boards["crs"].address

OFF_RESONANCE = 1.1995e9  # below the demo's resonators: a plain carrier


def take(receiver, seconds: float) -> list[Block]:
    blocks, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            b = receiver.blocks.get(timeout=0.2)
        except queue.Empty:
            continue
        if b is None:
            break
        blocks.append(b)
    return blocks


@pytest.fixture
def board(rfmux_mock) -> Iterator[CRSBoard]:
    """The shared mock through cryodaq's driver, modules 1 and 2, stage 6, short packets."""
    mock = rfmux_mock.boards["crs"]
    crs = CRSBoard("crs_mock_test", mock.address, modules=(1, 2), channels_per_module=4, short_packets=True,
                   stream_port=rfmux_mock.stream_ports["crs"], timeout_s=120)
    crs.decimation(6)
    for module in crs.modules:
        module.nco_frequency(1.204e9)
    yield crs
    for line in crs.feedlines():  # leave the mock as the demo station expects it: no tones set here
        crs.set_tones(line, np.empty(0))
    crs.close()


def test_receiver_joins_the_group_and_gets_every_sample_with_the_boards_time_source(board):
    board.set_tones(1, np.array([OFF_RESONANCE, OFF_RESONANCE + 0.3e6]))
    board.set_tones(2, np.array([OFF_RESONANCE + 0.6e6]))
    stream = board.describe()
    assert stream.n_channels == 3 and stream.sample_rate_hz == pytest.approx(wire.sample_rate_hz(6))
    expected = board.measure_iq(1, np.array([[OFF_RESONANCE]]))[0, 0]  # get_samples: the same counts
    board.set_tones(1, np.array([OFF_RESONANCE, OFF_RESONANCE + 0.3e6]))
    with receiving(board, packets_per_block=32) as receiver:
        assert receiver.joined.startswith("source-specific join of 239.192.0.2 from 127.0.0.1")
        blocks = take(receiver, 2.0)
    idx = np.concatenate([b.first_sample + np.arange(b.n_samples) for b in blocks])
    assert len(idx) > 300 and np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx)))  # every sample
    assert not any(b.gaps for b in blocks) and all(b.continuous for b in blocks)
    data = np.concatenate([b.samples for b in blocks])
    assert data.dtype == np.complex64 and data.shape[1] == 3
    # a carrier off resonance: |IQ| as get_samples says (ADC counts, noise 11 counts)
    assert abs(np.median(np.abs(data[:, 0])) - abs(expected)) < 0.02 * abs(expected)
    # timestamps 1/fs apart (the mock's stamps run on stream time, not the wall clock; 1 us: datetime's)
    t = np.array([b.t_ns for b in blocks])
    first = np.array([b.first_sample for b in blocks])
    assert np.all(np.abs(np.diff(t) - np.diff(first) * 1e9 / wire.sample_rate_hz(6)) < 1100)
    tb = blocks[0].time_base
    assert tb is not None and (tb.source, tb.reference, tb.disciplined) == ("irig_b", "TEST", True)


class DroppingRelay:
    """Joins the mock's group and forwards every datagram to a loopback port, except the chosen
    ones: ``drop[module]`` lists the module's packet numbers (counted from the relay's start) to drop."""

    def __init__(self, group: str, port: int, drop: dict[int, set[int]]) -> None:
        self.rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.rx.bind(("", port))
        join_multicast(self.rx, group, "127.0.0.1", "127.0.0.1")
        self.rx.settimeout(0.1)
        self.tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # reserve the port the receiver binds
        self.out.bind(("127.0.0.1", 0))
        self.port = self.out.getsockname()[1]
        self.out.close()
        self.drop, self.count, self.dropped = drop, {}, {}  # dropped: module -> sequence numbers
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.rx.recv(65535)
            except TimeoutError:
                continue
            p = wire.decode(data, channels=np.array([0]))
            m, seq = int(p.module[0]), int(p.seq[0])
            k = self.count.get(m, 0)
            self.count[m] = k + 1
            if k in self.drop.get(m, ()):
                self.dropped.setdefault(m, []).append(seq)
                continue
            self.tx.sendto(data, ("127.0.0.1", self.port))

    def __enter__(self) -> DroppingRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self.rx.close()
        self.tx.close()


def test_datagrams_dropped_between_mock_and_receiver_are_gaps_with_the_right_sample_counts(board, rfmux_mock):
    board.set_tones(1, np.array([OFF_RESONANCE]))
    board.set_tones(2, np.array([OFF_RESONANCE + 0.5e6, OFF_RESONANCE + 0.7e6]))
    drop = {1: {150, 151, 152}, 2: {250, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409}}
    with DroppingRelay(wire.GROUP, rfmux_mock.stream_ports["crs"], drop) as relay:
        board.stream_group(None)  # the receiver takes the relay's unicast datagrams
        board.stream_port(relay.port)
        board.stream_interface("127.0.0.1")
        try:
            with receiving(board, packets_per_block=16) as receiver:
                deadline = time.monotonic() + 20
                while min(relay.count.get(1, 0), relay.count.get(2, 0)) < 500 and time.monotonic() < deadline:
                    time.sleep(0.1)
            blocks = [b for b in iter(receiver.blocks.get, None)]
        finally:
            board.stream_group(wire.GROUP)
            board.stream_port(rfmux_mock.stream_ports["crs"])
    assert {m: len(s) for m, s in relay.dropped.items()} == {1: 3, 2: 11}
    gaps = [g for b in blocks for g in b.gaps]
    assert all(g.cause == CAUSE_PACKET_LOSS for g in gaps)
    by_module = {m: sorted((g.n_samples, g.detail) for g in gaps if f"module {m}:" in g.detail) for m in (1, 2)}
    assert [n for n, _ in by_module[1]] == [3]
    assert sorted(n for n, _ in by_module[2]) == [1, 10]
    seq = relay.dropped
    assert f"sequence {seq[1][0]}..{seq[1][-1]} missing (3 packets)" in by_module[1][0][1]
    assert any(f"sequence {seq[2][1]}..{seq[2][-1]} missing (10 packets)" in d for _, d in by_module[2])
    # the samples of every dropped frame are missing from the stream (never stitched), and only those
    idx = np.concatenate([b.first_sample + np.arange(b.n_samples) for b in blocks])
    holes = np.setdiff1d(np.arange(idx[0], idx[-1] + 1), idx)
    assert len(holes) == 14
    for g in gaps:
        assert np.isin(np.arange(g.first_sample, g.first_sample + g.n_samples), holes).all()
        after = [b for b in blocks if b.first_sample == g.first_sample + g.n_samples]
        assert after and not after[0].continuous and g in after[0].gaps
    assert receiver.stats.lost_packets == 14


@pytest.fixture(scope="module")
def crs_run(rfmux_mock, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crs_run")
    doc = yaml.safe_load(STATION.read_text())
    crs = doc["instruments"]["crs"]
    crs["address"] = rfmux_mock.instrument_overrides["crs"]["address"]  # what bring-up merged in
    crs["init"]["stream_port"] = rfmux_mock.instrument_overrides["crs"]["init"]["stream_port"]
    doc["cryodaq"]["publish"]["address"] = "tcp://127.0.0.1:0"
    station = out / "demo_crs.yaml"
    station.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert main(["run", str(station), "--no-simulate", "--duration", "4", "--out", str(out / "runs"), "-q"]) == 0
    (run,) = (out / "runs").glob("*.zarr")
    return run


def test_run_finds_the_resonators_and_stores_iq_and_phase_at_the_boards_rate(crs_run: Path):
    run = open_run(crs_run)
    assert run.status == "complete"
    assert run.stream_names == ["i", "phase", "q"] and run.main_stream == "phase"
    stream = run.dataset("stream")
    fs = wire.sample_rate_hz(6)
    assert stream.attrs["sample_rate_hz"] == pytest.approx(fs)
    tones = stream["tone_frequency_hz"].values
    assert len(tones) == 4  # the mock's four resonators, each with a channel of its own
    assert stream["crs_channel"].values.tolist() == [1, 2, 3, 4] and set(stream["module"].values) == {1}
    fits = run.dataset("sweeps/iq_loop").attrs["fits"]
    assert [f["success"] for f in fits] == [True] * 4
    np.testing.assert_allclose(tones, [f["fr_hz"] for f in fits])  # tones on the fitted resonances
    idx = stream["sample_index"].values
    # every sample the board sent (the mock may fall behind real time on a loaded machine: its stamps
    # run on stream time, so the rate is checked on them, not on the wall clock)
    assert len(idx) > fs and np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx)))
    assert len(run.gaps()["first_sample"]) == 0  # zero gaps
    t = stream["t"].values
    # the board's stamps, 1/fs apart: within 2 us, twice the mock's 1-us stamp resolution, since the clock model's
    # refit at a block edge can step the fitted times by about one resolution step (1.2 us seen on a loaded
    # machine, where the pipeline joins queued blocks and so fits fewer anchors)
    assert np.abs(np.diff(t) - 1e9 / fs).max() < 2000
    iq = stream["i"].values + 1j * stream["q"].values
    assert iq.shape == stream["phase"].shape and np.all(np.abs(iq) > 100)  # ADC counts of the tones
    clock = run.attrs["clock"]
    assert (clock["source"], clock["reference"], clock["disciplined"]) == ("irig_b", "TEST", True)


def test_the_mocks_pulses_are_events_on_every_channel(crs_run: Path):
    run = open_run(crs_run)
    events = run.events()
    seconds = run.committed("stream") / wire.sample_rate_hz(6)  # stream time
    counts = np.bincount(events["channel"].values, minlength=4)
    assert np.all(counts >= max(2, int(seconds / 0.5) - 1)), (counts, seconds)  # a pulse per 0.5 s on each
    assert np.all(events["amplitude"].values > 0.3)  # positive (cryodaq.dsp.iqcal), many sigma


def test_gui_replay_plays_the_run_with_its_own_iq(crs_run: Path, qapp, qt_ok):
    from cryodaq.gui.sources import ReplaySource
    from cryodaq.wire import live as lp

    got: list = []
    source = ReplaySource(crs_run, speed=math.inf)
    source.message.connect(got.append)
    source.seek(0.0)
    source.play()
    for _ in range(50):
        source._tick()
        if not source.playing:
            break
    topics = {m.topic for m in got}
    assert {lp.STREAM, lp.IQ, lp.EVENTS, lp.END} <= topics
    iq = [m for m in got if m.topic == lp.IQ]
    assert not any(m.header["reconstructed"] for m in iq)  # the run's own IQ, not rebuilt from the phase
    n_events = sum(len(m.arrays["channel"]) for m in got if m.topic == lp.EVENTS)
    assert n_events == len(open_run(crs_run).events()["t"])
