"""A threaded TCP server for line-oriented instrument protocols (SCPI and the like).

Each received line (terminated by '\\n'; a trailing '\\r' is dropped) is one command,
passed to ``handler.handle(command) -> str | None``. A command containing '?' is a
query (or whatever the ``is_query`` predicate says): its reply is written back followed
by the reply terminator; a set command gets no answer (whatever the handler returns).
A handler that returns None for a query (an unknown query, as a real SCPI instrument
does) sends nothing: the client times out.

Fault injection (``server.faults``) for reliability tests:

* ``mute``: commands are read and thrown away, nothing is answered or applied;
* ``garbage``: queries are answered with nonsense (commands are still applied);
* ``delay_s``: every command is handled that much later (a slow instrument);
* ``stop()`` then ``start()`` again listens on the same port (SO_REUSEADDR); ``stop()``
  also drops the connected clients, as a power-cycled instrument would.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, Self

log = logging.getLogger(__name__)

GARBAGE_REPLY = "\x7f#?!GARBAGE;;0xDEAD?"


class LineHandler(Protocol):
    def handle(self, command: str) -> str | None: ...


@dataclass
class Faults:
    mute: bool = False
    garbage: bool = False
    delay_s: float = 0.0


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: LineServer) -> None:
        self.owner = owner
        super().__init__(address, _Connection)


class _Connection(socketserver.StreamRequestHandler):
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _quickack(self) -> None:
        # Delayed ACKs stall a client that writes twice in a row (pyvisa-py cannot set
        # TCP_NODELAY on its side) for ~40 ms; acknowledge each command at once instead.
        if hasattr(socket, "TCP_QUICKACK"):
            try:
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            except OSError:
                pass  # not supported on this platform/socket: only slower

    def handle(self) -> None:
        owner = self.server.owner
        owner._register(self.request)
        try:
            while True:
                try:
                    raw = self.rfile.readline()
                    self._quickack()
                except (ConnectionError, OSError):
                    return
                if not raw:
                    return
                command = raw.decode("latin-1").strip()
                if not command:
                    continue
                reply = owner.dispatch(command)
                if reply is None:
                    continue
                try:
                    self.wfile.write((reply + owner.reply_termination).encode("latin-1"))
                    self.wfile.flush()
                except (ConnectionError, OSError):
                    return
        finally:
            owner._unregister(self.request)


class LineServer:
    """Serves ``handler`` on ``host:port`` (port 0 = ephemeral; the real one is ``.port`` after start)."""

    def __init__(self, handler: LineHandler, host: str = "127.0.0.1", port: int = 0,
                 reply_termination: str = "\n", name: str = "instrument",
                 is_query: Callable[[str], bool] | None = None) -> None:
        self.handler = handler
        #: which commands get a reply (default: those containing '?', as in SCPI); a
        #: protocol that acknowledges every command (Oxford Triton) passes ``lambda c: True``
        self.is_query = is_query if is_query is not None else (lambda command: "?" in command)
        self.host = host
        self.port = int(port)
        self.reply_termination = reply_termination
        self.name = name
        self.faults = Faults()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._clients: set[socket.socket] = set()
        self._clients_lock = threading.Lock()
        self._handle_lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> LineServer:
        """Listen (on the same port as before after a stop); returns self."""
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self.name}-tcp-{self.port}", daemon=True)
        self._thread.start()
        log.debug("%s listening on %s:%d", self.name, self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop listening and drop every connected client."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._clients_lock:
            clients = list(self._clients)
        for sock in clients:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> LineServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- dispatch ---------------------------------------------------------------
    def dispatch(self, command: str) -> str | None:
        """Handle one command line; the reply to send (queries only), or None."""
        faults = self.faults
        if faults.mute:
            return None
        if faults.delay_s > 0:
            time.sleep(faults.delay_s)
        is_query = self.is_query(command)
        try:
            with self._handle_lock:  # one command at a time, like a real instrument
                reply = self.handler.handle(command)
        except Exception:  # a bug in a face must not kill the connection; it is logged with its traceback
            log.exception("%s: handler failed on %r", self.name, command)
            reply = None
        if not is_query or reply is None:
            return None
        if faults.garbage:
            return GARBAGE_REPLY
        return reply

    def _register(self, sock: socket.socket) -> None:
        with self._clients_lock:
            self._clients.add(sock)

    def _unregister(self, sock: socket.socket) -> None:
        with self._clients_lock:
            self._clients.discard(sock)


class ServedFace:
    """Lifecycle shared by every simulated instrument served by a :class:`LineServer`.

    Subclasses set ``self.server`` in their ``__init__``; ``start``/``stop`` and the
    context manager then serve and stop it.
    """

    server: LineServer

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def host(self) -> str:
        return self.server.host

    def start(self) -> Self:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
