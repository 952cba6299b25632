"""Simulated Bluefors control unit: an HTTP/JSON API over the world's fridge.

The API is modelled on the Bluefors control software's value tree (faithful in
spirit, not a copy of any version): every quantity is a *value* with a slash
path, read one path (or one subtree) at a time and written in batches::

    GET  /values/<path>            -> {"data": {"<path>": {"content": {"latest_value":
                                        {"value": "0.0123", "date": <ms epoch>, "status": "SYNCHRONIZED"}}}}}
    GET  /values/<prefix>          -> the same, one entry per value under the prefix
    POST /values   {"data": {"<path>": {"content": {"value": <v>}}, ...}}
                                   -> the new latest values of the written paths

Values travel as strings (numbers in ``repr`` precision). With ``api_key`` set every
request needs the header ``X-API-Key: <key>`` (or the query ``?key=<key>``), else
401. Errors are JSON ``{"error": {"code": <http status>, "message": "..."}}``: 404 for
an unknown path, 403 for a read-only one, 400 for a bad body or value.

Value tree (SI units except pressures, which are mbar as on the unit's gauges)::

    mapper/bf/temperatures/t<n>   K      thermometers (``channels``, default t1 50 K flange = 45 K,
    mapper/bf/resistances/r<n>    Ohm    t2 4 K = world 4k, t5 still, t6 mixing chamber)
    mapper/bf/pressures/p<n>      mbar   gauges p1..p6 (``pressures_mbar``)
    mapper/heater_mapper_bf/heater_mxc/active      0|1  heater enabled           (settable)
                                     .../pid_mode    0|1  1 = closed loop on the MXC (settable)
                                     .../setpoint    K    closed-loop target        (settable)
                                     .../power       W    read: output now; write: manual power
                                     .../max_power   W    output limit              (settable)
                                     .../control_p, control_i, control_d   PID      (settable)
                                     .../resistance  Ohm  heater resistance

Closed loop: :class:`~sim_instruments.world.heater_control.PidLoop` on the true MXC
temperature, ``power = max_power * fraction``; manual: ``min(power, max_power)``;
inactive: 0. The face attaches itself as the world fridge's controller when the heater
is first activated.

Simulator-only endpoints (not part of the real API): ``POST /sim/fault/warmup``
``{"rate_k_per_s": r, "target_k": t}``, ``POST /sim/fault/warmup/stop``,
``GET /sim/truth/temperature`` -> ``{"mxc_k": ...}``. Faults: ``face.faults``
(:class:`~sim_instruments.servers.line_server.Faults`): ``mute`` (requests get no answer
until the server stops), ``garbage`` (200 with a non-JSON body), ``delay_s``.
``stop()`` then ``start()`` listens again on the same port.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sim_instruments.servers.line_server import GARBAGE_REPLY, Faults
from sim_instruments.world.heater_control import PidLoop
from sim_instruments.world.thermometer import ruox_ohm
from sim_instruments.world.world import World

log = logging.getLogger(__name__)

STAGES = ("mxc", "still", "4k")
DEFAULT_CHANNELS: dict[int, Any] = {1: 45.0, 2: "4k", 5: "still", 6: "mxc"}
DEFAULT_PRESSURES_MBAR = {1: 3.2e-6, 2: 1.5e-3, 3: 0.41, 4: 180.0, 5: 720.0, 6: 2.1e-2}
HEATER = "mapper/heater_mapper_bf/heater_mxc"


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class _Value:
    get: Callable[[], float]
    set: Callable[[str], None] | None = None


def _as_float(text: Any, path: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ApiError(400, f"{path}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ApiError(400, f"{path}: expected a finite number, got {text!r}")
    return value


def _as_flag(text: Any, path: str) -> bool:
    value = _as_float(text, path)
    if value not in (0.0, 1.0):
        raise ApiError(400, f"{path}: expected 0 or 1, got {text!r}")
    return value == 1.0


class _Heater:
    def __init__(self, resistance_ohm: float, max_power_w: float) -> None:
        self.active = False
        self.pid_mode = False
        self.manual_w = 0.0
        self.max_power_w = max_power_w
        self.resistance_ohm = resistance_ohm
        self.loop = PidLoop()
        self.power_now_w = 0.0


class BlueforsControlUnitFace:
    """The Bluefors face: an HTTP server on ``host:port`` over the world's fridge."""

    face = "bluefors"

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, name: str = "bluefors",
                 api_key: str | None = None, channels: Mapping[Any, Any] | None = None,
                 pressures_mbar: Mapping[Any, float] | None = None, heater_max_power_w: float = 1e-3,
                 heater_resistance_ohm: float = 100.0) -> None:
        self.world = world
        self.host = host
        self.port = int(port)
        self.name = name
        self.api_key = api_key
        self.faults = Faults()
        if not heater_max_power_w > 0 or not heater_resistance_ohm > 0:
            raise ValueError(f"{name}: heater_max_power_w and heater_resistance_ohm must be > 0")
        self.channels = self._parse_channels(DEFAULT_CHANNELS if channels is None else channels)
        self.pressures_mbar = {int(k): float(v) for k, v in
                               (DEFAULT_PRESSURES_MBAR if pressures_mbar is None else pressures_mbar).items()}
        self.heater = _Heater(float(heater_resistance_ohm), float(heater_max_power_w))
        self._lock = threading.RLock()
        self._attached = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.values = self._value_tree()

    def _parse_channels(self, channels: Mapping[Any, Any]) -> dict[int, str | float]:
        out: dict[int, str | float] = {}
        for key, source in channels.items():
            try:
                n = int(str(key).lstrip("tT"))
            except ValueError:
                n = -1
            if not 1 <= n <= 16:
                raise ValueError(f"{self.name}.channels: {key!r} is not a channel 1..16")
            if isinstance(source, str) and source in STAGES:
                out[n] = source
            elif isinstance(source, (int, float)) and not isinstance(source, bool) and source > 0:
                out[n] = float(source)
            else:
                raise ValueError(f"{self.name}.channels.{key}: expected a stage {STAGES} or a temperature in K, "
                                 f"got {source!r}")
        return out

    # -- the value tree ------------------------------------------------------------------
    def _value_tree(self) -> dict[str, _Value]:
        tree: dict[str, _Value] = {}
        for n in self.channels:
            tree[f"mapper/bf/temperatures/t{n}"] = _Value(lambda n=n: self.temperature_k(n))
            tree[f"mapper/bf/resistances/r{n}"] = _Value(lambda n=n: ruox_ohm(self.temperature_k(n)))
        for n, value in self.pressures_mbar.items():
            tree[f"mapper/bf/pressures/p{n}"] = _Value(lambda v=value: v)
        h = self.heater
        tree[f"{HEATER}/active"] = _Value(lambda: float(h.active), self._set_active)
        tree[f"{HEATER}/pid_mode"] = _Value(lambda: float(h.pid_mode), self._set_pid_mode)
        tree[f"{HEATER}/setpoint"] = _Value(lambda: h.loop.setpoint_k, self._set_setpoint)
        tree[f"{HEATER}/power"] = _Value(lambda: h.power_now_w, self._set_power)
        tree[f"{HEATER}/max_power"] = _Value(lambda: h.max_power_w, self._set_max_power)
        tree[f"{HEATER}/resistance"] = _Value(lambda: h.resistance_ohm)
        for key in ("p", "i", "d"):
            tree[f"{HEATER}/control_{key}"] = _Value(lambda k=key: getattr(h.loop, k),
                                                     lambda text, k=key: self._set_pid(k, text))
        return tree

    def temperature_k(self, n: int) -> float:
        source = self.channels[n]
        return source if isinstance(source, float) else self.world.fridge.read(source)

    def _set_active(self, text: str) -> None:
        h = self.heater
        h.active = _as_flag(text, "active")
        h.loop.reset()
        if h.active:
            self._attach()

    def _set_pid_mode(self, text: str) -> None:
        on = _as_flag(text, "pid_mode")
        if on != self.heater.pid_mode:
            self.heater.loop.reset()
        self.heater.pid_mode = on

    def _set_setpoint(self, text: str) -> None:
        value = _as_float(text, "setpoint")
        if not 0 <= value <= 40:
            raise ApiError(400, f"setpoint: {value} K is outside 0..40 K")
        self.heater.loop.set_setpoint(value, self.world.clock(), self.world.fridge.mxc_k())

    def _set_power(self, text: str) -> None:
        value = _as_float(text, "power")
        if value < 0:
            raise ApiError(400, f"power: {value} W is negative")
        self.heater.manual_w = value

    def _set_max_power(self, text: str) -> None:
        value = _as_float(text, "max_power")
        if not 0 <= value <= 1.0:
            raise ApiError(400, f"max_power: {value} W is outside 0..1 W")
        self.heater.max_power_w = value

    def _set_pid(self, key: str, text: str) -> None:
        value = _as_float(text, f"control_{key}")
        if not 0 <= value <= 1000:
            raise ApiError(400, f"control_{key}: {value} is outside 0..1000")
        loop = self.heater.loop
        pid = {"p": loop.p, "i": loop.i, "d": loop.d}
        pid[key] = value
        loop.set_pid(pid["p"], pid["i"], pid["d"])

    def _controller(self, t: float, mxc_k: float) -> float:
        with self._lock:
            h = self.heater
            if not h.active:
                power = 0.0
            elif h.pid_mode:
                power = h.max_power_w * h.loop.output(t, mxc_k)
            else:
                power = min(h.manual_w, h.max_power_w)
            h.power_now_w = power
            return power

    def _attach(self) -> None:
        if not self._attached:
            self.world.fridge.set_controller(self._controller)
            self._attached = True

    # -- API --------------------------------------------------------------------------------
    def _entry(self, path: str) -> dict[str, Any]:
        value = self.values[path].get()
        return {"content": {"latest_value": {"value": repr(float(value)), "date": int(time.time() * 1000),
                                             "status": "SYNCHRONIZED"}}}

    def get_values(self, path: str) -> dict[str, Any]:
        path = path.strip("/")
        with self.world.fridge.lock, self._lock:
            self.world.fridge.mxc_k()  # bring the heater state up to now
            if path in self.values:
                return {"data": {path: self._entry(path)}}
            under = [p for p in self.values if p.startswith(path + "/")] if path else list(self.values)
            if not under:
                raise ApiError(404, f"unknown value path {path!r}")
            return {"data": {p: self._entry(p) for p in under}}

    def post_values(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict) or not body["data"]:
            raise ApiError(400, 'expected {"data": {"<path>": {"content": {"value": ...}}}}')
        writes: list[tuple[str, Any]] = []
        for path, entry in body["data"].items():
            path = str(path).strip("/")
            if path not in self.values:
                raise ApiError(404, f"unknown value path {path!r}")
            if self.values[path].set is None:
                raise ApiError(403, f"value {path!r} is read-only")
            try:
                writes.append((path, entry["content"]["value"]))
            except (TypeError, KeyError):
                raise ApiError(400, f'{path}: expected {{"content": {{"value": ...}}}}, got {entry!r}') from None
        with self.world.fridge.lock, self._lock:
            self.world.fridge.mxc_k()
            # validate every value first: a bad batch changes nothing
            saved = (vars(self.heater).copy(), vars(self.heater.loop).copy())
            try:
                for path, value in writes:
                    setter = self.values[path].set
                    assert setter is not None
                    setter(str(value))
            except ApiError:
                self.heater.__dict__.update(saved[0])
                self.heater.loop.__dict__.update(saved[1])
                raise
            return {"data": {path: self._entry(path) for path, _ in writes}}

    def sim_post(self, path: str, body: Any) -> dict[str, Any]:
        if path == "sim/fault/warmup":
            if not isinstance(body, dict) or "rate_k_per_s" not in body:
                raise ApiError(400, 'expected {"rate_k_per_s": <K/s>, "target_k": <K, optional>}')
            rate = _as_float(body["rate_k_per_s"], "rate_k_per_s")
            target = body.get("target_k")
            self.world.fridge.warm_up(rate, None if target is None else _as_float(target, "target_k"))
            return {"ok": True}
        if path == "sim/fault/warmup/stop":
            self.world.fridge.stop_warm_up()
            return {"ok": True}
        raise ApiError(404, f"unknown simulator endpoint {path!r}")

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> BlueforsControlUnitFace:
        """Listen (on the same port as before after a stop); returns self."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = ThreadingHTTPServer((self.host, self.port), _Handler)
        server.daemon_threads = True
        server.face = self  # type: ignore[attr-defined]
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self.name}-http-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # release requests held by the mute fault
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> BlueforsControlUnitFace:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    server_version = "BlueforsSim/0.1"
    protocol_version = "HTTP/1.1"

    @property
    def face(self) -> BlueforsControlUnitFace:
        return self.server.face  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s: " + format, self.face.name, *args)

    def do_GET(self) -> None:  # http.server names the handlers do_<METHOD>
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        face = self.face
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if face.faults.mute:
            face._stopping.wait(60.0)  # no answer; the connection closes when the server stops
            self.close_connection = True
            return
        if face.faults.delay_s > 0:
            time.sleep(face.faults.delay_s)
        try:
            self._check_key(url.query)
            path = unquote(url.path).strip("/")
            if method == "GET" and path.startswith("values"):
                reply = face.get_values(path[len("values"):])
            elif method == "GET" and path == "sim/truth/temperature":
                reply = {"mxc_k": face.world.fridge.mxc_k()}
            elif method == "POST" and path == "values":
                reply = face.post_values(self._json(raw))
            elif method == "POST" and path.startswith("sim/"):
                reply = face.sim_post(path, self._json(raw) if raw else {})
            else:
                raise ApiError(404, f"no endpoint {method} /{path}")
            status, body = 200, json.dumps(reply).encode()
        except ApiError as err:
            status, body = err.status, json.dumps({"error": {"code": err.status, "message": err.message}}).encode()
        if face.faults.garbage and status == 200:
            body = GARBAGE_REPLY.encode("latin-1")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _check_key(self, query: str) -> None:
        key = self.face.api_key
        if key is None:
            return
        given = self.headers.get("X-API-Key") or (parse_qs(query).get("key") or [None])[0]
        if given != key:
            raise ApiError(401, "missing or wrong API key (header X-API-Key or query key=)")

    @staticmethod
    def _json(raw: bytes) -> Any:
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ApiError(400, f"the body is not JSON: {err}") from None
