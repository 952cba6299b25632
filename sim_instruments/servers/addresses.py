"""Instrument addresses as station files write them, parsed to the (host, port) a face listens on."""

from __future__ import annotations

import random
import re
import socket

_VISA_SOCKET = re.compile(r"^TCPIP\d*::(?P<host>[^:]+)::(?P<port>\d+)::SOCKET$", re.IGNORECASE)
_HTTP_URL = re.compile(r"^https?://(?P<host>[^:/]+):(?P<port>\d+)/?$", re.IGNORECASE)
_TCP_URL = re.compile(r"^tcp://(?P<host>[^:/]+):(?P<port>\d+)/?$", re.IGNORECASE)


def parse_visa_address(address: str) -> tuple[str, int]:
    """(host, port) of a ``TCPIP0::host::port::SOCKET`` VISA address."""
    m = _VISA_SOCKET.match(str(address).strip())
    if not m:
        raise ValueError(f"expected a VISA socket address 'TCPIP0::<host>::<port>::SOCKET', got {address!r}")
    port = int(m["port"])
    if port > 65535:
        raise ValueError(f"port {port} in {address!r} is out of range 0..65535")
    return m["host"], port


def parse_face_address(address: str) -> tuple[str, int]:
    """(host, port) of a face address: a VISA socket address, ``http://host:port`` (HTTP faces) or
    ``tcp://host:port`` (a base port with services at fixed offsets, e.g. DASTARD's).

    A face spec may instead give a bare host as ``address`` and a separate ``port``.
    """
    m = _HTTP_URL.match(str(address).strip()) or _TCP_URL.match(str(address).strip())
    if m:
        port = int(m["port"])
        if port > 65535:
            raise ValueError(f"port {port} in {address!r} is out of range 0..65535")
        return m["host"], port
    try:
        return parse_visa_address(address)
    except ValueError:
        raise ValueError(f"expected 'TCPIP0::<host>::<port>::SOCKET', 'http://<host>:<port>' or 'tcp://<host>:<port>' "
                         f"(or a host with a separate 'port'), got {address!r}") from None


def is_http_address(address: str) -> bool:
    """Whether ``address`` is an ``http://host:port`` URL (an HTTP face, e.g. the Bluefors unit)."""
    return _HTTP_URL.match(str(address).strip()) is not None


def is_tcp_url(address: str) -> bool:
    """Whether ``address`` is a ``tcp://host:port`` URL (a face serving fixed offsets from a base port)."""
    return _TCP_URL.match(str(address).strip()) is not None


def socket_address(host: str, port: int) -> str:
    """The VISA address of a face listening on ``host:port``."""
    return f"TCPIP0::{host}::{port}::SOCKET"


def free_base_port(host: str, n: int, *, tries: int = 200) -> int:
    """The first of ``n`` consecutive TCP ports free on ``host`` now (a face serving offsets from a base port)."""
    rng = random.Random()
    for _ in range(tries):
        base = rng.randrange(20000, 60000 - n)
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise OSError(f"found no {n} consecutive free TCP ports on {host} in {tries} tries")
