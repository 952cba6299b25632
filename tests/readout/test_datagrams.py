"""DatagramReader: batches of real loopback datagrams, both the compiled (GIL-free) and the portable read."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from cryodaq.readout.datagrams import DatagramReader, _read_batch_kernel, set_receive_buffer

MODES = [pytest.param(True, id="compiled"), pytest.param(False, id="portable")]


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    set_receive_buffer(rx, 4 << 20, "test receiver")
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    yield rx, tx
    rx.close()
    tx.close()


def _reader(rx: socket.socket, compiled: bool, **kw: object) -> DatagramReader:
    if compiled and _read_batch_kernel() is None:
        pytest.skip("no compiled datagram reader on this platform")
    return DatagramReader(rx, 16, 2048, compiled=compiled, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("compiled", MODES)
def test_queued_datagrams_come_in_batches_in_order(pair: tuple[socket.socket, socket.socket], compiled: bool) -> None:
    rx, tx = pair
    reader = _reader(rx, compiled)
    assert reader.compiled is compiled
    sent = [bytes([i]) * (10 + i) for i in range(40)]
    for d in sent:
        tx.send(d)
    got: list[bytes] = []
    while len(got) < len(sent):
        n = reader.read(1.0)
        assert 0 < n <= 16
        got += [reader.data[i, : reader.sizes[i]].tobytes() for i in range(n)]
    assert got == sent
    t0 = time.monotonic()
    assert reader.read(0.05) == 0  # nothing queued: waits the timeout, then says none
    assert 0.04 <= time.monotonic() - t0 < 1.0


@pytest.mark.parametrize("compiled", MODES)
def test_a_paced_stream_arrives_as_one_batch(pair: tuple[socket.socket, socket.socket], compiled: bool) -> None:
    """Datagrams 0.3 ms apart are gathered into one batch (the linger), not read one per call."""
    rx, tx = pair
    reader = _reader(rx, compiled, linger_s=0.02)

    def send() -> None:
        for i in range(16):
            tx.send(bytes([i]) * 100)
            time.sleep(0.0003)

    sender = threading.Thread(target=send)
    sender.start()
    n = reader.read(2.0)
    sender.join()
    assert n == 16
    assert reader.data[:n, 0].tolist() == list(range(16))


@pytest.mark.parametrize("compiled", MODES)
def test_a_long_datagram_is_cut_to_the_row(pair: tuple[socket.socket, socket.socket], compiled: bool) -> None:
    rx, tx = pair
    reader = _reader(rx, compiled)
    tx.send(b"x" * 5000)
    assert reader.read(1.0) == 1
    assert reader.sizes[0] == 2048  # the receiver's size check refuses it


@pytest.mark.parametrize("compiled", MODES)
def test_a_closed_socket_is_an_error_not_a_timeout(compiled: bool) -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    reader = _reader(rx, compiled)
    rx.close()
    with pytest.raises(OSError):
        reader.read(0.05)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one datagram"):
        DatagramReader(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), 0, 100)


def test_receive_buffer_reports_what_it_got(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        got = set_receive_buffer(s, 1 << 16, "small")
        assert got >= 1 << 16  # any system grants 64 kB
        huge = set_receive_buffer(s, 1 << 40, "receiver X")  # no system grants a terabyte
        assert huge < 1 << 31
    assert "receiver X" in caplog.text and "rmem_max" in caplog.text
