"""A JSON-RPC 1.0 server framed like Go's ``net/rpc/jsonrpc`` (DASTARD's control port).

Requests and replies are JSON objects written back to back on a TCP stream, no length prefix:
``{"method": "SourceControl.SendAllStatus", "params": [arg], "id": 1}`` ->
``{"id": 1, "result": ..., "error": null}``. Requests of one connection are answered in order
(as DASTARD does); each connection has its own thread. A handler answers ``(method, param)`` with
a result, or raises :class:`RpcError` whose text becomes the reply's ``error``; an unknown method
gets Go's ``rpc: can't find method <name>``.
"""

from __future__ import annotations

import json
import logging
import socketserver
import threading
from collections.abc import Callable
from typing import Any

from cryodaq.wire.dastard import DastardFormatError, JsonStream

__all__ = ["JsonRpcServer", "RpcError"]

log = logging.getLogger(__name__)


class RpcError(Exception):
    """An error a method returns to the client (the reply's ``error`` string)."""


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        stream = JsonStream()
        while True:
            try:
                data = self.request.recv(65536)
            except OSError:
                return
            if not data:
                return
            try:
                requests = stream.feed(data)
            except (DastardFormatError, UnicodeDecodeError) as exc:
                log.warning("%s: closing a connection that sent no JSON: %s", self.server.face_name, exc)
                return
            for request in requests:
                try:
                    self.request.sendall(json.dumps(self.server.answer(request)).encode())
                except OSError:
                    return


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Callable[[str, Any], Any], face_name: str) -> None:
        super().__init__(address, _Handler)
        self.handler = handler
        self.face_name = face_name

    def answer(self, request: Any) -> dict[str, Any]:
        request_id = request.get("id") if isinstance(request, dict) else None
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return {"id": request_id, "result": None, "error": "rpc: request has no method"}
        params = request.get("params")
        if not isinstance(params, list) or len(params) != 1:  # Go's codec takes exactly one argument
            return {"id": request_id, "result": None, "error": "rpc: params must be an array of one value"}
        try:
            return {"id": request_id, "result": self.handler(request["method"], params[0]), "error": None}
        except RpcError as exc:
            return {"id": request_id, "result": None, "error": str(exc)}


class JsonRpcServer:
    """Serves ``handler(method, param)`` on ``host:port`` (0: a free port, see :attr:`port`)."""

    def __init__(self, handler: Callable[[str, Any], Any], host: str = "127.0.0.1", port: int = 0,
                 name: str = "jsonrpc") -> None:
        self._server = _Server((host, port), handler, name)
        self.host, self.port = self._server.server_address[:2]
        self.name = name
        self._thread: threading.Thread | None = None

    def start(self) -> JsonRpcServer:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"{self.name}-rpc", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
