"""CRSReceiver on synthetic CRS packets over loopback: frames across modules, per-module gaps, restarts.

The packets are built with :func:`cryodaq.wire.crs.encode` (which reproduces real datagrams byte
for byte, tests/wire/test_crs.py) and sent as unicast datagrams to the receiver's port; the
receiver's multicast join is exercised against rfmux's mock (tests/readout/test_crs_mock.py).
"""

from __future__ import annotations

import queue
import socket
import time

import numpy as np
import pytest

from cryodaq.readout.blocks import CAUSE_PACKET_LOSS, CAUSE_RESTART, Block, Gap
from cryodaq.readout.crs_receiver import CRSReceiver
from cryodaq.wire import crs as wire

STAGE = 6
FS = wire.sample_rate_hz(STAGE)
T0 = 1_796_654_422_194_356_998
CHANNELS = [(1, 1), (1, 3), (2, 2)]


def value(module: int, channel: int, frame: int) -> complex:
    """A distinct, exactly representable IQ value per (module, channel, frame)."""
    return complex(1000 * module + 10 * channel + (frame % 7), -(frame % 1000) - 0.5)


def packet(module: int, seq: int, frame: int, *, stage: int = STAGE, t0: int = T0, source: str = "SMA",
           disciplined: bool = True) -> bytes:
    iq = np.array([value(module, c, frame) for c in range(1, 129)])
    return wire.encode(module=module, seq=seq, stage=stage, iq=iq, t_ns=t0 + int(round(frame * 1e9 / FS)),
                       source=source, disciplined=disciplined)


def collect(receiver: CRSReceiver, timeout: float = 5.0) -> list[Block]:
    receiver.stop(drain_s=0.5)
    blocks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            b = receiver.blocks.get(timeout=0.5)
        except queue.Empty:
            continue
        if b is None:
            return blocks
        blocks.append(b)
    raise AssertionError("no end marker")


def send(receiver: CRSReceiver, datagrams: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i, d in enumerate(datagrams):
            s.sendto(d, ("127.0.0.1", receiver.port))
            if i % 50 == 49:
                time.sleep(0.002)  # the loopback buffer is large, but not unbounded
    time.sleep(0.2)


def frames_of(blocks: list[Block]) -> tuple[np.ndarray, np.ndarray]:
    idx = np.concatenate([b.first_sample + np.arange(b.n_samples) for b in blocks])
    data = np.concatenate([b.samples for b in blocks])
    return idx, data


def make_receiver(**kw) -> CRSReceiver:
    return CRSReceiver(CHANNELS, stage=STAGE, port=0, group=None, interface="127.0.0.1",
                       packets_per_block=kw.pop("packets_per_block", 16), **kw).start()


def test_two_modules_assemble_frames_in_channel_order():
    rx = make_receiver()
    datagrams = [packet(m, 100 + f, f) for f in range(200) for m in (1, 2)]
    send(rx, datagrams)
    blocks = collect(rx)
    idx, data = frames_of(blocks)
    assert idx.tolist() == list(range(200))
    assert data.dtype == np.complex64 and data.shape == (200, 3)
    expect = np.array([[value(m, c, f) for m, c in CHANNELS] for f in range(200)])
    np.testing.assert_array_equal(data, expect.astype(np.complex64))
    assert all(b.continuous for b in blocks) and not any(b.gaps for b in blocks)
    t = np.concatenate([b.t_ns + np.round(np.arange(b.n_samples) * 1e9 / FS).astype(np.int64) for b in blocks])
    assert np.abs(t - (T0 + np.round(np.arange(200) * 1e9 / FS))).max() < 10  # ns: 6.4 ns ticks
    tb = blocks[0].time_base
    assert tb is not None and (tb.source, tb.reference, tb.disciplined) == ("irig_b", "SMA", True)
    assert rx.stats.packets == 400 and rx.stats.samples == 200 and rx.stats.gaps == 0


def test_dropped_packets_of_one_module_are_a_gap_naming_it_with_the_right_count():
    rx = make_receiver()
    drop = {(2, 50), (2, 51), (2, 52), (1, 120)}
    datagrams = [packet(m, 7 + f, f) for f in range(200) for m in (1, 2) if (m, f) not in drop]
    send(rx, datagrams)
    blocks = collect(rx)
    gaps: list[Gap] = [g for b in blocks for g in b.gaps]
    assert [(g.first_sample, g.n_samples, g.cause) for g in gaps] == [(50, 3, CAUSE_PACKET_LOSS),
                                                                      (120, 1, CAUSE_PACKET_LOSS)]
    assert "module 2" in gaps[0].detail and "sequence 57..59" in gaps[0].detail
    assert "module 1" in gaps[1].detail
    assert abs(gaps[0].t_ns - (T0 + 50 * 1e9 / FS)) < 1e3
    idx, data = frames_of(blocks)
    assert sorted(set(range(200)) - set(idx.tolist())) == [50, 51, 52, 120]  # never stitched
    after = {b.first_sample: b for b in blocks}
    assert not after[53].continuous and after[53].gaps == [gaps[0]]
    assert not after[121].continuous
    assert rx.stats.lost_packets == 4 and rx.stats.lost_samples == 4


def test_sequence_going_back_is_a_restart_and_indices_follow_the_timestamps():
    rx = make_receiver()
    first = [packet(m, 500 + f, f) for f in range(64) for m in (1, 2)]
    # the board restarts its stream 0.5 s later: sequence from 0 again
    later = int(round(0.5 * FS))
    second = [packet(m, f - later, f) for f in range(later, later + 64) for m in (1, 2)]
    send(rx, first + second)
    blocks = collect(rx)
    gaps = [g for b in blocks for g in b.gaps]
    assert [g.cause for g in gaps] == [CAUSE_RESTART]
    idx, data = frames_of(blocks)
    assert idx.tolist() == list(range(64)) + list(range(later, later + 64))
    np.testing.assert_array_equal(data[64:, 2], np.array([value(2, 2, f) for f in range(later, later + 64)],
                                                         np.complex64))
    assert not [b for b in blocks if b.first_sample == later][0].continuous


def test_late_duplicate_and_foreign_packets_are_not_used():
    rx = make_receiver()
    datagrams = [packet(m, f, f) for f in range(100) for m in (1, 2)]
    datagrams.insert(150, packet(1, 10, 10))  # a late duplicate
    datagrams.insert(60, packet(1, 30, 30, stage=5))  # another decimation stage
    datagrams.insert(20, b"\x00" * 100)  # not a CRS packet
    send(rx, datagrams)
    blocks = collect(rx)
    idx, _ = frames_of(blocks)
    assert idx.tolist() == list(range(100))
    assert not any(b.gaps for b in blocks)
    assert rx.stats.bad_packets == 3


def test_a_silent_module_does_not_hold_the_others_back_for_ever():
    rx = make_receiver(max_skew_s=0.1)
    datagrams = [packet(m, f, f) for f in range(300) for m in (1, 2) if not (m == 2 and f >= 100)]
    send(rx, datagrams)
    blocks = collect(rx)
    gaps = [g for b in blocks for g in b.gaps]
    assert gaps and "module 2" in gaps[0].detail and gaps[0].first_sample == 100
    idx, _ = frames_of(blocks)
    assert idx.tolist() == list(range(100))  # frames without module 2 are never made up


def test_undisciplined_time_source_is_reported():
    rx = make_receiver()
    send(rx, [packet(m, f, f, source="GND", disciplined=False) for f in range(40) for m in (1, 2)])
    blocks = collect(rx)
    tb = blocks[0].time_base
    assert tb is not None and tb.reference == "GND" and not tb.disciplined and "not disciplined" in tb.detail


def test_bad_channel_list_is_refused():
    with pytest.raises(ValueError, match="no channels"):
        CRSReceiver([], stage=6, port=0, group=None)
