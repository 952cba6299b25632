"""A Tuber client: JSON remote calls over ``HTTP POST /tuber``, the control protocol of CRS boards.

Tuber (the ``tuber`` package rfmux uses) sends one call object, or a list of them, as JSON::

    [{"object": "Dfmux", "method": "set_frequency", "args": [1e6], "kwargs": {"channel": 1, "module": 1}}]

and answers a list in the same order, each ``{"result": ...}`` with an ``"error":
{"message": ...}`` when that call failed. Calls in one list run one after another on the
board, so a list is how a sequence of settings is applied in order (and how a sweep step
costs one round trip). The official client is asyncio-based and comes with rfmux's
dependencies; this one is the standard library's ``http.client``, which is all the protocol
needs (hence written here). It accepts both answer styles seen in the field: the reference
``tuberd`` omits ``"error"`` on success, rfmux's mock sends ``"error": null``.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from cryodaq.errors import InstrumentError

__all__ = ["TuberCall", "TuberClient", "TuberError"]

TuberCall = tuple[str, Sequence[Any], Mapping[str, Any]]  # (method, args, kwargs)


class TuberError(InstrumentError):
    """The board refused a call (its own message), or did not answer as Tuber does."""


class TuberClient:
    """Calls methods of one Tuber object (``obj``, a CRS: ``"Dfmux"``) at ``http://address/tuber``.

    ``address``: ``host`` or ``host:port`` (port 80 by default, as on a board). ``name`` names the instrument in errors. One
    keep-alive connection, reopened when the board closed it; thread-safe.
    """

    def __init__(self, address: str, *, name: str = "crs", obj: str = "Dfmux", timeout_s: float = 30.0) -> None:
        address = address.removeprefix("http://").removesuffix("/tuber").rstrip("/")
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
        self.host, self.port = host, int(port) if port else 80
        self.address, self.name, self.obj, self.timeout_s = address, name, obj, timeout_s
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self.requests = 0  # HTTP requests made (tests count them)

    # --- transport ----------------------------------------------------------
    def post(self, payload: Any, timeout_s: float | None = None) -> Any:
        """POST ``payload`` as JSON to ``/tuber`` and return the decoded answer (one retry on a closed connection)."""
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        with self._lock:
            for attempt in (0, 1):
                try:
                    if self._conn is None:
                        self._conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s or self.timeout_s)
                    elif timeout_s is not None and self._conn.sock is not None:
                        self._conn.sock.settimeout(timeout_s)
                    self.requests += 1
                    self._conn.request("POST", "/tuber", body=body, headers=headers)
                    response = self._conn.getresponse()
                    text = response.read()
                    if self._conn.sock is not None:
                        self._conn.sock.settimeout(self.timeout_s)
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                    self.close_connection()
                    if attempt:
                        raise TuberError(self.name, self.address, f"the connection dropped: {exc}") from exc
                except (OSError, http.client.HTTPException) as exc:
                    self.close_connection()
                    what = "did not answer in time" if isinstance(exc, (TimeoutError, socket.timeout)) else \
                        f"could not be reached ({exc})"
                    raise TuberError(self.name, self.address, f"{what} (Tuber over HTTP at http://{self.address}/tuber)") \
                        from exc
        if response.status != 200:
            raise TuberError(self.name, self.address, f"HTTP {response.status} from /tuber: {text[:200]!r}")
        try:
            return json.loads(text)
        except ValueError as exc:
            raise TuberError(self.name, self.address, f"answered something that is not JSON: {text[:200]!r}") from exc

    def close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- calls --------------------------------------------------------------
    def batch(self, calls: Sequence[TuberCall], timeout_s: float | None = None) -> list[Any]:
        """Run ``calls`` in order in one request; their results. The first failed call raises
        :class:`TuberError` with the board's message (calls before it did take effect)."""
        if not calls:
            return []
        payload = [{"object": self.obj, "method": m, "args": list(a), "kwargs": dict(k)} for m, a, k in calls]
        answer = self.post(payload, timeout_s)
        if isinstance(answer, Mapping) and answer.get("error"):  # the whole request failed
            raise TuberError(self.name, self.address, f"refused the request: {_message(answer['error'])}")
        if not isinstance(answer, list) or len(answer) != len(calls):
            raise TuberError(self.name, self.address, f"answered {len(answer) if isinstance(answer, list) else 'a non-list'}"
                                                      f" for {len(calls)} calls")
        out = []
        for (method, args, kwargs), item in zip(calls, answer):
            if not isinstance(item, Mapping):
                raise TuberError(self.name, self.address, f"{method}: answer is not an object: {item!r}")
            if item.get("error"):
                raise TuberError(self.name, self.address, f"{method}({_signature(args, kwargs)}) failed: "
                                                          f"{_message(item['error'])}")
            if "result" not in item:
                raise TuberError(self.name, self.address, f"{method}: no result in the answer {item!r}")
            out.append(item["result"])
        return out

    def call(self, method: str, *args: Any, timeout_s: float | None = None, **kwargs: Any) -> Any:
        """One remote call; its result."""
        return self.batch([(method, args, kwargs)], timeout_s)[0]

    def describe(self, timeout_s: float | None = None) -> dict[str, Any]:
        """The object's description: ``{"methods": [names], "properties": [names], ...}`` (method names
        as a list, whether the board sends a list or a dict of descriptions)."""
        answer = self.post({"object": self.obj}, timeout_s)
        if not isinstance(answer, Mapping) or answer.get("error") or not isinstance(answer.get("result"), Mapping):
            raise TuberError(self.name, self.address, f"no description of object {self.obj!r}: {answer!r}")
        result = dict(answer["result"])
        for key in ("methods", "properties"):
            value = result.get(key) or []
            result[key] = sorted(value) if isinstance(value, (list, Mapping)) else []
        return result


def _message(error: Any) -> str:
    return str(error.get("message", error)) if isinstance(error, Mapping) else str(error)


def _signature(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    text = ", ".join(parts)
    return text if len(text) < 120 else text[:117] + "..."
