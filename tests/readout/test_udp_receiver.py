"""UDPReceiver against real UDP datagrams on loopback."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from cryodaq.wire import packet as pk
from cryodaq.readout.blocks import CAUSE_OVERFLOW, CAUSE_PACKET_LOSS
from cryodaq.readout.udp_receiver import UDPReceiver

N = 256
FS = 1_000_000.0


def _send(sock, port, seqs, n=N, t0=1_700_000_000_000_000_000):
    for seq in seqs:
        first = seq * n
        samples = (np.arange(first, first + n) % 30000).astype(np.int16)
        hdr = pk.PacketHeader(sequence=seq, first_sample=first, t_ns=t0 + int(first * 1e9 / FS), n_samples=n)
        sock.sendto(pk.encode(hdr, samples), ("127.0.0.1", port))


def _collect(rx):
    blocks = []
    while True:
        b = rx.blocks.get(timeout=5)
        if b is None:
            return blocks
        blocks.append(b)


def test_packet_round_trip():
    hdr = pk.PacketHeader(sequence=7, first_sample=7 * N, t_ns=123, n_samples=N)
    data = np.arange(N, dtype=np.int16)
    h2, s2 = pk.decode(pk.encode(hdr, data))
    assert h2 == hdr
    np.testing.assert_array_equal(s2, data)
    with pytest.raises(pk.PacketError, match="magic"):
        pk.decode(b"XXXX" + pk.encode(hdr, data)[4:])
    with pytest.raises(pk.PacketError, match="payload"):
        pk.decode(pk.encode(hdr, data)[:-2])


def test_gap_is_recorded_and_never_stitched():
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with UDPReceiver(packets_per_block=4) as rx:
        _send(tx, rx.port, [0, 1, 2, 3, 4, 5, 9, 10, 11])  # 6, 7, 8 missing
        time.sleep(0.3)
        rx.stop()
        blocks = _collect(rx)
    tx.close()
    assert rx.stats.packets == 9
    assert rx.stats.lost_packets == 3
    assert rx.stats.lost_samples == 3 * N
    gaps = [g for b in blocks for g in b.gaps]
    assert len(gaps) == 1
    gap = gaps[0]
    assert gap.cause == CAUSE_PACKET_LOSS
    assert (gap.first_sample, gap.n_samples) == (6 * N, 3 * N)
    assert gap.t_ns == 1_700_000_000_000_000_000 + int(6 * N * 1e9 / FS)
    # no block spans the gap, and the block after it is flagged discontinuous
    for b in blocks:
        assert not (b.first_sample < 6 * N < b.first_sample + b.n_samples)
    after = next(b for b in blocks if b.first_sample == 9 * N)
    assert not after.continuous and after.gaps == [gap]
    # every received sample arrived exactly once, in order, with the right value
    got = np.concatenate([b.samples for b in blocks if b.n_samples])
    idx = np.concatenate([np.arange(b.first_sample, b.first_sample + b.n_samples) for b in blocks])
    np.testing.assert_array_equal(got, (idx % 30000).astype(np.int16))
    assert len(idx) == 6 * N + 3 * N


def test_full_queue_drops_blocks_and_records_them():
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with UDPReceiver(packets_per_block=1, queue_blocks=2) as rx:
        _send(tx, rx.port, range(6))  # nobody consumes: 2 fit, the rest overflow
        time.sleep(0.3)
        assert rx.stats.dropped_blocks == 4
        first_two = [rx.blocks.get_nowait(), rx.blocks.get_nowait()]
        _send(tx, rx.port, [6])
        time.sleep(0.3)
        rx.stop()
        rest = _collect(rx)
    tx.close()
    assert [b.first_sample for b in first_two] == [0, N]
    nxt = rest[0]
    assert nxt.first_sample == 6 * N and not nxt.continuous
    assert [(g.first_sample, g.cause) for g in nxt.gaps] == [(k * N, CAUSE_OVERFLOW) for k in range(2, 6)]


def test_bad_datagrams_are_counted_not_fatal():
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with UDPReceiver(packets_per_block=1) as rx:
        tx.sendto(b"garbage", ("127.0.0.1", rx.port))
        _send(tx, rx.port, [0])
        time.sleep(0.2)
        rx.stop()
        blocks = _collect(rx)
    tx.close()
    assert rx.stats.bad_packets == 1
    assert len(blocks) == 1 and blocks[0].n_samples == N


def _datagram(seq: int, first: int, n: int = N, streams: int = 1) -> bytes:
    samples = (np.arange(first * streams, (first + n) * streams) % 30000).astype(np.int16).reshape(n, streams)
    hdr = pk.PacketHeader(sequence=seq, first_sample=first, t_ns=1_700_000_000_000_000_000 + int(first * 1e9 / FS),
                          n_samples=n, n_streams=streams)
    return pk.encode(hdr, samples[:, 0] if streams == 1 else samples)


def _receive_queued(datagrams: list[bytes], batch: int) -> tuple[list, object]:
    """Queue every datagram in the socket first, then start the receiver: with ``batch`` > 1 it reads
    them in batches (each with runs, a bad packet, a loss, a restart and a shape change)."""
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx = UDPReceiver(packets_per_block=4, batch_datagrams=batch)
    for d in datagrams:
        tx.sendto(d, ("127.0.0.1", rx.port))
    time.sleep(0.05)
    rx.start()
    time.sleep(0.3)
    rx.stop()
    blocks = _collect(rx)
    tx.close()
    return blocks, rx.stats


def test_a_batch_gives_the_blocks_and_gaps_packet_by_packet_reading_gives() -> None:
    datagrams = [_datagram(s, s * N) for s in range(5)] + [b"CDQ1 not a packet"]
    datagrams += [_datagram(s, s * N) for s in (5, 6, 9, 10)]  # 7, 8 lost
    datagrams += [_datagram(s, (20 + s) * N) for s in (2, 3)]  # the board restarted its sequence
    datagrams += [_datagram(s, 24 * N + (s - 4) * 64, n=64, streams=3) for s in (4, 5, 6)]  # another shape
    batched, st_b = _receive_queued(datagrams, 64)
    single, st_1 = _receive_queued(datagrams, 1)
    assert st_b == st_1
    assert (st_b.packets, st_b.bad_packets, st_b.lost_packets, st_b.lost_samples) == (14, 1, 2, 2 * N)

    def key(blocks: list) -> list:
        return [(b.first_sample, b.t_ns, b.continuous, b.samples.shape, b.samples.tobytes(),
                 [(g.first_sample, g.n_samples, g.t_ns, g.cause) for g in b.gaps]) for b in blocks]

    assert key(batched) == key(single)
    assert [g.cause for b in batched for g in b.gaps] == [CAUSE_PACKET_LOSS, "stream_restart"]
    assert [b.first_sample for b in batched] == [0, 4 * N, 9 * N, 22 * N, 24 * N]
    assert batched[-1].samples.shape == (3 * 64, 3)
