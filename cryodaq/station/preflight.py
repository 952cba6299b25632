"""Checks before any instrument is touched: can the run be written, can every listener have its port.

A run that cannot be written, or a port another program holds, used to be found after the
instruments were up (or half-way through starting them), with tracebacks that named neither
the key nor the port. :func:`preflight` finds both first, with one line each:

- the output directory exists or can be created, takes a file, and its disk has at least
  ``min_free_bytes`` free (:class:`~cryodaq.errors.OutputDirError`);
- every socket the station will listen on (:func:`station_listeners`: simulated instruments
  at fixed addresses, the readout's UDP data receiver, the live publisher) is bound for a
  moment and released (:class:`~cryodaq.errors.ListenError`, ``PortInUseError`` for a port
  in use, naming the station file, the key, the listener and the port).

Ports can still be taken between the check and the real bind; the listeners then raise the
same one-line error (:meth:`Listener.error`). A listener off loopback is allowed when the
station file asks for it, and :func:`preflight` returns a warning naming its address.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryodaq.errors import ListenError, OutputDirError
from cryodaq.station.config import StationConfig
from cryodaq.wire.addresses import LOOPBACK, entry_endpoint, is_loopback

__all__ = ["DEFAULT_MIN_FREE_BYTES", "Listener", "check_listener", "check_output_dir", "data_listener", "preflight",
           "publisher_listener", "station_listeners"]

#: free space a run's disk must have before it starts (a demo run writes a few MB per second)
DEFAULT_MIN_FREE_BYTES = 500e6

_ALL_INTERFACES = ("", "0.0.0.0", "*", "::")


@dataclass(frozen=True)
class Listener:
    """A socket a station listens on: who listens, the station key that says where, and the address."""

    what: str  # e.g. "simulated instrument 'readout'", "the live publisher"
    key: str  # e.g. "instruments.readout.address", "cryodaq.publish.address"
    protocol: str  # "TCP" or "UDP"
    host: str
    port: int  # 0: any free port
    instrument: str = ""
    hint: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}" if self.port else f"{self.host} (a free port)"

    def error(self, exc: OSError, file: str | Path) -> ListenError:
        """The one-line error for ``exc`` from binding this listener (in use, or an address not of this machine)."""
        return ListenError.from_os_error(exc, self.port, host=self.host, protocol=self.protocol, listener=self.what,
                                         instrument=self.instrument, file=str(file), key=self.key, hint=self.hint)


def data_listener(config: StationConfig) -> Listener:
    """The readout's UDP data receiver (``cryodaq.readout.data_host`` / ``data_port``)."""
    return Listener(f"the UDP data receiver of {config.readout.instrument!r}", "cryodaq.readout.data_port", "UDP",
                    config.readout.data_host, config.readout.data_port, config.readout.instrument,
                    "free it, or set cryodaq.readout.data_port: 0 (any free port; the board is told where to send)")


def publisher_listener(config: StationConfig) -> Listener | None:
    """The live publisher's TCP socket (``cryodaq.publish.address``); None when it publishes elsewhere (ipc, inproc)."""
    address = config.publish.address
    if not address.startswith("tcp://"):
        return None
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    return Listener("the live publisher", "cryodaq.publish.address", "TCP", "0.0.0.0" if host == "*" else host,
                    0 if port in ("*", "auto") else int(port),
                    hint="free it, or publish elsewhere (cryodaq.publish.address, or --publish tcp://127.0.0.1:0: "
                         "any free port) or not at all (--publish off)")


def station_listeners(config: StationConfig, *, simulate: bool, publish: bool) -> list[Listener]:
    """Every socket the station listens on when it runs: simulated instruments (``simulate``), the
    UDP data receiver, and the live publisher (``publish`` and ``cryodaq.publish.enabled``)."""
    listeners = []
    if simulate:
        for name in config.simulation.faces:
            entry = config.instruments[name]
            key = f"instruments.{name}.{'port' if 'port' in entry else 'address'}"
            what = f"simulated instrument {name!r}"
            if config.simulation.auto_ports:
                listeners.append(Listener(what, key, "TCP", LOOPBACK, 0, name))
                continue
            try:
                endpoint = entry_endpoint(entry)
            except ValueError:
                endpoint = None
            if endpoint is not None:  # a non-socket address is the simulator launcher's to refuse
                listeners.append(Listener(what, key, "TCP", endpoint[0], endpoint[1], name,
                                          "free it, or let the simulators choose free ports "
                                          "(cryodaq.simulation.auto_ports: true)"))
    listeners.append(data_listener(config))
    if publish and config.publish.enabled:
        pub = publisher_listener(config)
        if pub is not None:
            listeners.append(pub)
    return listeners


def check_listener(listener: Listener, file: str | Path) -> None:
    """Bind ``listener``'s address for a moment (as its server will: TCP with SO_REUSEADDR, so a port
    in TIME_WAIT is no obstacle); raise its one-line :class:`ListenError` if that fails."""
    kind = socket.SOCK_STREAM if listener.protocol == "TCP" else socket.SOCK_DGRAM
    host = "" if listener.host in _ALL_INTERFACES else listener.host
    try:
        with socket.socket(socket.AF_INET, kind) as sock:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, listener.port))
    except OSError as exc:
        raise listener.error(exc, file) from None


def check_output_dir(out_dir: str | Path, min_free_bytes: float = DEFAULT_MIN_FREE_BYTES) -> Path:
    """Make sure ``out_dir`` can take a run: a directory (created if missing) that takes a file, on a
    disk with ``min_free_bytes`` free. Returns it; raises :class:`OutputDirError` in one line."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"output directory {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out, prefix=".cryodaq-write-check-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        where = f" ({exc.filename})" if exc.filename and Path(exc.filename) != out else ""
        raise OutputDirError(f"output directory {out}: cannot write a run there: {reason}{where}") from None
    free = shutil.disk_usage(out).free
    if free < min_free_bytes:
        raise OutputDirError(f"output directory {out}: only {free / 1e6:.0f} MB free on its disk; a run needs at "
                             f"least {min_free_bytes / 1e6:.0f} MB (free some space, or choose another directory)")
    return out


def preflight(config: StationConfig, out_dir: str | Path | None, *, simulate: bool, publish: bool = False,
              min_free_bytes: float = DEFAULT_MIN_FREE_BYTES) -> list[str]:
    """Check everything a run needs that can be checked before any instrument is touched (module
    docstring): ports first (nothing is created when one is taken), then the output directory
    (``None``: not checked). Returns one warning per listener off loopback, naming its address."""
    file = str(config.path)
    listeners = station_listeners(config, simulate=simulate, publish=publish)
    for listener in listeners:
        check_listener(listener, file)
    if out_dir is not None:
        check_output_dir(out_dir, min_free_bytes)
    warnings = []
    for listener in listeners:
        if not is_loopback(listener.host):
            where = "every network interface" if listener.host in _ALL_INTERFACES else "a network interface"
            warnings.append(f"{file}: {listener.key}: {listener.what} listens on {listener.address}, "
                            f"{where}: reachable from the network, not only from this machine")
    return warnings
