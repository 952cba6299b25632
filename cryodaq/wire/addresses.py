"""Network addresses of instruments as station files write them: parsed, and rewritten to another port.

A station's ``instruments:`` entry reaches a networked instrument in one of three forms:

- a VISA socket address, ``address: TCPIP0::<host>::<port>::SOCKET`` (SCPI over raw TCP);
- an HTTP URL, ``address: http://<host>:<port>`` (e.g. the Bluefors control unit's API);
- a TCP URL, ``address: tcp://<host>:<port>``: a base port with services at fixed offsets
  above it (DASTARD's control and ZeroMQ ports);
- a bare host with a separate port, ``address: <host>`` and ``port: <port>`` (qcodes
  ``IPInstrument`` drivers, e.g. the Oxford Triton).

Station bring-up (simulators on free ports, pre-flight port checks) and the simulators'
command line both read and write these forms; this module is the one place that knows them.
Any other address (GPIB, USB, ``TCPIP::...::INSTR``) is not a socket cryodaq listens on.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "LOOPBACK", "entry_endpoint", "is_http_address", "is_loopback", "is_tcp_url", "parse_network_address", "parse_visa_address",
    "socket_address", "with_endpoint",
]

LOOPBACK = "127.0.0.1"

_VISA_SOCKET = re.compile(r"^(?P<board>TCPIP\d*)::(?P<host>[^:]+)::(?P<port>\d+)::SOCKET$", re.IGNORECASE)
_HTTP_URL = re.compile(r"^(?P<scheme>https?|tcp)://(?P<host>[^:/]+):(?P<port>\d+)(?P<path>/?)$", re.IGNORECASE)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (``127.x``, ``::1``, ``localhost``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def _port(text: str, address: str) -> int:
    port = int(text)
    if port > 65535:
        raise ValueError(f"port {port} in {address!r} is out of range 0..65535")
    return port


def parse_visa_address(address: str) -> tuple[str, int]:
    """(host, port) of a ``TCPIP0::host::port::SOCKET`` VISA address."""
    m = _VISA_SOCKET.match(str(address).strip())
    if not m:
        raise ValueError(f"expected a VISA socket address 'TCPIP0::<host>::<port>::SOCKET', got {address!r}")
    return m["host"], _port(m["port"], address)


def is_http_address(address: str) -> bool:
    """Whether ``address`` is an ``http://host:port`` URL."""
    m = _HTTP_URL.match(str(address).strip())
    return m is not None and m["scheme"].lower().startswith("http")


def is_tcp_url(address: str) -> bool:
    """Whether ``address`` is a ``tcp://host:port`` base address (services at fixed offsets above it)."""
    m = _HTTP_URL.match(str(address).strip())
    return m is not None and m["scheme"].lower() == "tcp"


def parse_network_address(address: str) -> tuple[str, int]:
    """(host, port) of a VISA socket address or an ``http://host:port`` or ``tcp://host:port`` URL."""
    m = _HTTP_URL.match(str(address).strip())
    if m:
        return m["host"], _port(m["port"], address)
    try:
        return parse_visa_address(address)
    except ValueError:
        raise ValueError(f"expected 'TCPIP0::<host>::<port>::SOCKET', 'http://<host>:<port>' or "
                         f"'tcp://<host>:<port>' (or a host with a separate 'port'), got {address!r}") from None


def socket_address(host: str, port: int) -> str:
    """The VISA socket address of ``host:port``."""
    return f"TCPIP0::{host}::{port}::SOCKET"


def entry_endpoint(entry: Mapping[str, Any]) -> tuple[str, int] | None:
    """(host, port) an instrument entry's ``address`` (and ``port``) names; None for a non-socket address.

    Raises ValueError for a separate ``port`` that is not a port number.
    """
    address = str(entry.get("address", "")).strip()
    if "port" in entry:
        port = entry["port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"expected a port 0..65535, got {port!r}")
        return address, port
    try:
        return parse_network_address(address)
    except ValueError:
        return None


def with_endpoint(entry: Mapping[str, Any], host: str, port: int) -> dict[str, Any]:
    """A copy of ``entry`` reaching ``host:port``, written in the entry's own form (see the module docstring).

    Raises ValueError when the entry's address is not one of the three socket forms.
    """
    out = dict(entry)
    address = str(entry.get("address", "")).strip()
    if "port" in entry:
        out["address"], out["port"] = host, int(port)
        return out
    m = _HTTP_URL.match(address)
    if m:
        out["address"] = f"{m['scheme']}://{host}:{int(port)}{m['path']}"
        return out
    m = _VISA_SOCKET.match(address)
    if m:
        out["address"] = f"{m['board']}::{host}::{int(port)}::SOCKET"
        return out
    raise ValueError(f"expected 'TCPIP0::<host>::<port>::SOCKET', 'http://<host>:<port>' or 'tcp://<host>:<port>' "
                     f"(or a host with a separate 'port'), got {address!r}")
