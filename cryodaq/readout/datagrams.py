"""Batched datagram reads from a bound UDP socket, and a receive buffer sized for bursts.

A receiver thread shares the interpreter with the pipeline and sink threads. Read one datagram
per ``socket.recv_into`` and it gives the GIL up and must win it back for every datagram: while
the pipeline thread runs Python (a block's bookkeeping, its events), each hand-back waits for
the interpreter's switch interval (5 ms), and at thousands of datagrams a second the socket's
buffer overflows although both cores have time to spare (measured with ``benchmarks/ingest.py``:
packets lost at 107 % of 200 % CPU). :class:`DatagramReader` waits and reads a whole batch in
one compiled call that holds no GIL — ``poll`` then ``recv`` until the socket is empty, straight
into the rows of a numpy buffer — so the GIL is taken once per batch, and the receiver decodes
the batch with array operations.

Hand-written because Python's ``socket`` has no batched receive (``recvmmsg``); numba calls the
C library's ``poll`` and ``recv`` by name. Where numba or those symbols are missing (Windows),
the same batch is read with ``select`` and ``recv_into`` per datagram.

:func:`set_receive_buffer` asks the kernel for a buffer that rides out a stall of the reading
thread, and says so when the system's limit (``net.core.rmem_max`` on Linux) cuts it down.
"""

from __future__ import annotations

import functools
import logging
import select
import socket
import sys
from typing import Any, Callable

import numpy as np

__all__ = ["DatagramReader", "set_receive_buffer"]

log = logging.getLogger(__name__)

_POLLIN = 0x001  # the same on Linux and macOS
_POLLFD = np.dtype([("fd", np.int32), ("events", np.int16), ("revents", np.int16)])  # struct pollfd
_SO_RCVBUFFORCE = 33  # Linux: SO_RCVBUF past net.core.rmem_max, for a process with CAP_NET_ADMIN


def _compile_read_batch() -> Callable[..., int] | None:
    """The compiled batch read, or None where it cannot be built (it is compiled once, cached on disk)."""
    if not sys.platform.startswith(("linux", "darwin")):
        return None
    try:
        import numba
        from numba import types

        poll = types.ExternalFunction("poll", types.int32(types.voidptr, types.uint64, types.int32))
        recv = types.ExternalFunction("recv", types.intp(types.int32, types.voidptr, types.uintp, types.int32))

        @numba.njit(nogil=True, cache=True)
        def read_batch(fd: int, data: Any, sizes: Any, pollfd: Any, timeout_ms: int,
                       linger_ms: int) -> int:  # pragma: no cover
            """Wait up to ``timeout_ms`` for a datagram, then read datagrams (non-blocking socket) into
            the rows of ``data`` until it is full or none arrives for ``linger_ms``; returns the
            count, 0 on timeout, -1 when poll failed or flagged the socket without a datagram."""
            pollfd[0].fd = fd
            pollfd[0].events = _POLLIN
            wait = timeout_ms
            n = 0
            while n < data.shape[0]:
                pollfd[0].revents = 0
                if poll(pollfd.ctypes.data, 1, wait) <= 0:
                    break
                before = n
                while n < data.shape[0]:
                    got = recv(fd, data[n].ctypes.data, data.shape[1], 0)
                    if got < 0:
                        break
                    sizes[n] = got
                    n += 1
                if n == before:  # readable but nothing to read: an error for the socket module to name
                    return n if n > 0 else -1
                wait = linger_ms
            return n

        # Compile (or load from the disk cache) here, in the thread that builds the receiver, not on the
        # receiver thread's first read, when datagrams are already arriving.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as idle:
            idle.setblocking(False)
            read_batch(idle.fileno(), np.zeros((1, 1), np.uint8), np.zeros(1, np.int64), np.zeros(1, _POLLFD), 0, 0)
        return read_batch
    except Exception as exc:  # numba missing or unable to link: the portable reads do the same job
        log.info("datagram reads fall back to recv_into per datagram: %s", exc)
        return None


@functools.cache
def _read_batch_kernel() -> Callable[..., int] | None:
    """The compiled batch read, built once per process (None where it cannot be)."""
    return _compile_read_batch()


class DatagramReader:
    """Reads datagrams from ``sock`` in batches of up to ``max_datagrams`` into :attr:`data`.

    After :meth:`read` returns ``n``, row ``i < n`` of :attr:`data` holds a datagram of
    :attr:`sizes` ``[i]`` bytes, in arrival order. A datagram longer than ``max_size`` is cut to
    ``max_size`` (the receiver's size check then refuses it). The socket is switched to
    non-blocking mode: :meth:`read` is the one place that waits on it.
    """

    def __init__(self, sock: socket.socket, max_datagrams: int, max_size: int, *, linger_s: float = 0.002,
                 compiled: bool | None = None) -> None:
        if max_datagrams < 1 or max_size < 1:
            raise ValueError(f"DatagramReader needs at least one datagram of at least one byte, got "
                             f"{max_datagrams} x {max_size}")
        self._sock = sock
        self.linger_s = float(linger_s)
        sock.setblocking(False)
        self.data = np.zeros((int(max_datagrams), int(max_size)), np.uint8)
        self.sizes = np.zeros(int(max_datagrams), np.int64)
        self._pollfd = np.zeros(1, _POLLFD)
        kernel = _read_batch_kernel() if compiled in (None, True) else None
        if compiled and kernel is None:
            raise RuntimeError("the compiled datagram reader is unavailable on this platform")
        self._kernel = kernel

    @property
    def compiled(self) -> bool:
        """Whether batches are read by the compiled, GIL-free loop."""
        return self._kernel is not None

    def read(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for a datagram, then take datagrams until the batch is full or
        none arrives for ``linger_s`` (a stream's datagrams come in one batch, not one per call,
        at a latency of at most a batch). Returns how many (0: none arrived in time). Raises
        ``OSError`` when the socket fails or was closed."""
        fd = self._sock.fileno()
        if fd < 0:
            raise OSError("the socket is closed")
        if self._kernel is not None:
            n = self._kernel(fd, self.data, self.sizes, self._pollfd, int(timeout_s * 1000),
                             int(round(self.linger_s * 1000)))
            if n >= 0:
                return int(n)
            return self._read_python(0.0)  # poll failed or flagged an error: let the socket module say which
        return self._read_python(timeout_s)

    def _read_python(self, timeout_s: float) -> int:
        n, wait = 0, timeout_s
        while n < len(self.sizes):
            try:
                ready, _, _ = select.select([self._sock], [], [], wait)
            except InterruptedError:
                break
            if not ready:
                break
            while n < len(self.sizes):
                try:
                    self.sizes[n] = self._sock.recv_into(memoryview(self.data[n]))
                except (BlockingIOError, InterruptedError):
                    break
                n += 1
            wait = self.linger_s
        return n


def set_receive_buffer(sock: socket.socket, size_bytes: int, who: str) -> int:
    """Ask for a receive buffer of ``size_bytes`` on ``sock``; returns what the kernel granted (bytes
    of datagrams it holds). Where the system caps it (Linux: ``net.core.rmem_max``), tries to go past
    the cap (allowed with CAP_NET_ADMIN), else logs a warning naming ``who`` and the setting."""
    size_bytes = min(int(size_bytes), 2**31 - 1)  # the option is a C int
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size_bytes)
    except OSError:
        pass  # a size the system refuses outright (macOS): keep its default, and say so below
    granted = _granted(sock)
    if granted < size_bytes and sys.platform.startswith("linux"):
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, size_bytes)
            granted = _granted(sock)
        except OSError:
            pass  # not privileged: the warning below says what to change
    if granted < size_bytes:
        log.warning("%s: the socket receive buffer is %.1f MB, less than the %.1f MB asked for; a stall of "
                    "the receiver thread then loses datagrams sooner. Raise the system's limit (Linux: "
                    "sysctl -w net.core.rmem_max=%d)", who, granted / 1e6, size_bytes / 1e6, size_bytes)
    else:
        log.debug("%s: socket receive buffer %.1f MB", who, granted / 1e6)
    return granted


def _granted(sock: socket.socket) -> int:
    got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    # Linux reports twice the size asked for (the other half is its bookkeeping): undo that.
    return got // 2 if sys.platform.startswith("linux") else got
