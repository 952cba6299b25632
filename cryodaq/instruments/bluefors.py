"""QCoDeS driver for a Bluefors control unit through its HTTP/JSON values API.

The control software exposes every quantity as a *value* with a slash path
(``mapper/bf/temperatures/t6``); ``GET /values/<path>`` returns
``{"data": {path: {"content": {"latest_value": {"value": "...", "date": ..., "status": ...}}}}}``
and ``POST /values`` with ``{"data": {path: {"content": {"value": v}}}}`` writes.
docs/instruments.md ("Bluefors") describes the protocol as cryodaq uses it.

Which path holds which quantity depends on how a unit is configured, so the driver
takes its paths from a mapping, :data:`DEFAULT_PATHS` updated by the ``paths``
argument (or the station file's ``init: {paths: {...}}``). Keys are
``<channel>.temperature`` / ``<channel>.resistance`` (one temperature channel per
name), ``pressure.<gauge>`` and ``<heater>.<field>``; adding ``magnet.temperature``
adds a ``magnet`` channel.

HTTP goes through the standard library (``urllib.request``): one request per
parameter access, so a unit that went away and came back needs no reconnect. Each
request is retried with backoff on connection errors, timeouts and 5xx replies;
then an :class:`~cryodaq.errors.InstrumentError` names the instrument and the URL.
"""

from __future__ import annotations

import json
import re
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from functools import partial
from http.client import HTTPException
from typing import Any
from urllib.parse import quote

from qcodes.instrument import Instrument, InstrumentChannel
from qcodes.parameters import Parameter
from qcodes.validators import Enum, Numbers

from cryodaq.errors import InstrumentError
from cryodaq.instruments.reliability import RetryPolicy, call_with_retry

#: logical name -> value path on the unit (the sim_instruments Bluefors face serves these)
DEFAULT_PATHS: dict[str, str] = {
    "plate_50k.temperature": "mapper/bf/temperatures/t1",
    "plate_50k.resistance": "mapper/bf/resistances/r1",
    "plate_4k.temperature": "mapper/bf/temperatures/t2",
    "plate_4k.resistance": "mapper/bf/resistances/r2",
    "still.temperature": "mapper/bf/temperatures/t5",
    "still.resistance": "mapper/bf/resistances/r5",
    "mxc.temperature": "mapper/bf/temperatures/t6",
    "mxc.resistance": "mapper/bf/resistances/r6",
    **{f"pressure.p{n}": f"mapper/bf/pressures/p{n}" for n in range(1, 7)},
    "mxc_heater.active": "mapper/heater_mapper_bf/heater_mxc/active",
    "mxc_heater.pid_mode": "mapper/heater_mapper_bf/heater_mxc/pid_mode",
    "mxc_heater.setpoint": "mapper/heater_mapper_bf/heater_mxc/setpoint",
    "mxc_heater.power": "mapper/heater_mapper_bf/heater_mxc/power",
    "mxc_heater.max_power": "mapper/heater_mapper_bf/heater_mxc/max_power",
    "mxc_heater.control_p": "mapper/heater_mapper_bf/heater_mxc/control_p",
    "mxc_heater.control_i": "mapper/heater_mapper_bf/heater_mxc/control_i",
    "mxc_heater.control_d": "mapper/heater_mapper_bf/heater_mxc/control_d",
}
HEATER_FIELDS = ("active", "pid_mode", "setpoint", "power", "max_power", "control_p", "control_i", "control_d")
CHANNEL_FIELDS = ("temperature", "resistance")
MBAR_TO_PA = 100.0

_VISA_SOCKET = re.compile(r"^TCPIP\d*::(?P<host>[^:]+)::(?P<port>\d+)::SOCKET$", re.IGNORECASE)
_URL = re.compile(r"^https?://[^/\s]+(/\S*)?$", re.IGNORECASE)
_HOST_PORT = re.compile(r"^(?P<host>[\w.\-]+):(?P<port>\d+)$")


def base_url(address: str) -> str:
    """``http(s)://host:port[/prefix]`` from a URL, ``host:port``, or ``TCPIP0::host::port::SOCKET``."""
    text = str(address).strip()
    if _URL.match(text):
        return text.rstrip("/")
    m = _VISA_SOCKET.match(text) or _HOST_PORT.match(text)
    if m:
        return f"http://{m['host']}:{int(m['port'])}"
    raise ValueError(f"expected 'http://host:port', 'host:port' or 'TCPIP0::host::port::SOCKET', got {address!r}")


def _float(text: Any) -> float:
    return float(text)


class BlueforsTemperatureChannel(InstrumentChannel):
    """One thermometer of the control unit: temperature (K) and sensor resistance (Ohm)."""

    def __init__(self, parent: BlueforsControlUnit, name: str, paths: Mapping[str, str]) -> None:
        super().__init__(parent, name)
        self.temperature: Parameter = self.add_parameter(
            "temperature", unit="K", label=f"{name} temperature",
            get_cmd=partial(parent.read_value, paths["temperature"]), get_parser=_float, set_cmd=False,
            docstring=f"Latest temperature of {name} (value {paths['temperature']}).",
        )
        if "resistance" in paths:
            self.resistance: Parameter = self.add_parameter(
                "resistance", unit="Ohm", label=f"{name} sensor resistance",
                get_cmd=partial(parent.read_value, paths["resistance"]), get_parser=_float, set_cmd=False,
                docstring=f"Latest sensor resistance of {name} (value {paths['resistance']}).",
            )


class BlueforsHeater(InstrumentChannel):
    """A heater of the control unit: mode, closed-loop setpoint, power, PID."""

    MODES = ("off", "manual", "closed_loop")

    def __init__(self, parent: BlueforsControlUnit, name: str, paths: Mapping[str, str]) -> None:
        super().__init__(parent, name)
        missing = [f for f in HEATER_FIELDS if f not in paths]
        if missing:
            raise ValueError(f"{parent.name}: heater {name!r} lacks paths for {missing} "
                             f"(keys '{name}.<field>' in paths)")
        self._paths = dict(paths)
        unit = parent
        self.mode: Parameter = self.add_parameter(
            "mode", label=f"{name} mode", get_cmd=self._get_mode, set_cmd=self._set_mode, vals=Enum(*self.MODES),
            docstring="'off' (inactive), 'manual' (fixed power) or 'closed_loop' (PID on its sensor).",
        )
        self.setpoint: Parameter = self.add_parameter(
            "setpoint", unit="K", label=f"{name} setpoint",
            get_cmd=partial(unit.read_value, paths["setpoint"]), get_parser=_float,
            set_cmd=partial(unit.write_values, paths["setpoint"]), vals=Numbers(0.0, 40.0),
            docstring="Closed-loop target temperature.",
        )
        self.power: Parameter = self.add_parameter(
            "power", unit="W", label=f"{name} power",
            get_cmd=partial(unit.read_value, paths["power"]), get_parser=_float,
            set_cmd=partial(unit.write_values, paths["power"]), vals=Numbers(0.0, 1.0),
            docstring="Read: the heater output now. Set: the power used in 'manual' mode.",
        )
        self.max_power: Parameter = self.add_parameter(
            "max_power", unit="W", label=f"{name} power limit",
            get_cmd=partial(unit.read_value, paths["max_power"]), get_parser=_float,
            set_cmd=partial(unit.write_values, paths["max_power"]), vals=Numbers(0.0, 1.0),
            docstring="Output limit of the heater in every mode.",
        )
        for key, label in (("P", "proportional"), ("I", "integral"), ("D", "derivative")):
            path = paths[f"control_{key.lower()}"]
            self.add_parameter(
                key, label=f"{name} PID {label}", get_cmd=partial(unit.read_value, path), get_parser=_float,
                set_cmd=partial(unit.write_values, path), vals=Numbers(0.0, 1000.0),
                docstring=f"PID {label} term of the closed loop.",
            )

    def _get_mode(self) -> str:
        active = float(self.root_instrument.read_value(self._paths["active"]))
        pid = float(self.root_instrument.read_value(self._paths["pid_mode"]))
        if not active:
            return "off"
        return "closed_loop" if pid else "manual"

    def _set_mode(self, mode: str) -> None:
        p = self._paths
        if mode == "off":
            self.root_instrument.write_values({p["active"]: 0})
        else:
            # one request: the unit switches mode and output together
            self.root_instrument.write_values({p["pid_mode"]: int(mode == "closed_loop"), p["active"]: 1})


class BlueforsControlUnit(Instrument):
    """A Bluefors control unit read and driven over its HTTP values API.

    Args:
        name: instrument name.
        address: ``http(s)://host:port``, ``host:port`` or ``TCPIP0::host::port::SOCKET``.
        api_key: sent as the ``X-API-Key`` header (None: no key).
        paths: overrides/additions to :data:`DEFAULT_PATHS`.
        timeout: seconds per HTTP request.
        retries, backoff_s: bounded retry on connection errors, timeouts and 5xx.
        verify_tls: False accepts the unit's self-signed certificate on https.
        check_connection: read the first temperature at init, so a wrong address fails at once.
    """

    def __init__(self, name: str, address: str, *, api_key: str | None = None,
                 paths: Mapping[str, str] | None = None, timeout: float = 5.0, retries: int = 2,
                 backoff_s: float = 0.2, verify_tls: bool = True, check_connection: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        try:
            self.url = base_url(address)
        except ValueError as err:
            raise InstrumentError(name, str(address), str(err)) from None
        self.address = self.url
        self.api_key = api_key
        self.timeout_s = float(timeout)
        self.policy = RetryPolicy(retries, backoff_s)
        self._ssl = None if verify_tls else ssl._create_unverified_context()
        self.paths = dict(DEFAULT_PATHS)
        for key, path in (paths or {}).items():
            if "." not in key or not isinstance(path, str) or not path:
                raise ValueError(f"{name}.paths: expected '<channel>.<field>': '<value path>', got {key!r}: {path!r}")
            self.paths[key] = path.strip("/")

        groups: dict[str, dict[str, str]] = {}
        for key, path in self.paths.items():
            group, _, field = key.partition(".")
            groups.setdefault(group, {})[field] = path
        for group, fields in groups.items():
            if group == "pressure":
                for gauge, path in fields.items():
                    self.add_parameter(
                        gauge, unit="Pa", label=f"pressure {gauge}",
                        get_cmd=partial(self.read_value, path), get_parser=lambda v: float(v) * MBAR_TO_PA,
                        set_cmd=False, docstring=f"Pressure gauge {gauge} (value {path}, mbar on the unit).",
                    )
            elif "temperature" in fields:
                unknown = sorted(set(fields) - set(CHANNEL_FIELDS))
                if unknown:
                    raise ValueError(f"{name}.paths: channel {group!r} has unknown field(s) {unknown}; "
                                     f"known: {CHANNEL_FIELDS}")
                self.add_submodule(group, BlueforsTemperatureChannel(self, group, fields))
            elif set(fields) & set(HEATER_FIELDS):
                self.add_submodule(group, BlueforsHeater(self, group, fields))
            else:
                raise ValueError(f"{name}.paths: {group!r} is neither a channel (needs '{group}.temperature'), "
                                 f"a heater ({HEATER_FIELDS}) nor 'pressure'")
        if check_connection:
            first = next(p for k, p in self.paths.items() if k.endswith(".temperature"))
            self.read_value(first)

    # -- HTTP --------------------------------------------------------------------------------
    def _request(self, method: str, route: str, body: Any = None) -> Any:
        url = f"{self.url}/{route}"
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["X-API-Key"] = self.api_key

        def once() -> bytes:
            request = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s, context=self._ssl) as response:
                    return response.read()
            except urllib.error.HTTPError as err:
                if err.code >= 500:
                    raise ConnectionError(f"HTTP {err.code} from the unit") from err
                raise InstrumentError(self.name, url, f"{method} refused: HTTP {err.code} {self._message(err)}") \
                    from None
            except urllib.error.URLError as err:
                reason = err.reason
                raise (reason if isinstance(reason, OSError) else ConnectionError(str(reason))) from err
            except HTTPException as err:  # e.g. RemoteDisconnected: the unit closed the connection
                raise ConnectionError(f"{type(err).__name__}: {err}") from err

        raw = call_with_retry(once, policy=self.policy, instrument=self.name, address=url, what=f"{method}",
                              retryable=(OSError,))
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InstrumentError(self.name, url, f"answered garbage, not JSON: {raw[:80]!r}") from None

    @staticmethod
    def _message(err: urllib.error.HTTPError) -> str:
        try:
            return str(json.loads(err.read().decode("utf-8"))["error"]["message"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return str(err.reason)

    def _latest(self, reply: Any, path: str, url: str) -> str:
        try:
            return str(reply["data"][path]["content"]["latest_value"]["value"])
        except (KeyError, TypeError):
            raise InstrumentError(self.name, url, f"reply lacks data.{path}.content.latest_value.value: "
                                  f"{str(reply)[:120]}") from None

    def read_value(self, path: str) -> str:
        """The latest value (a string, as the API sends it) at ``path``."""
        reply = self._request("GET", f"values/{quote(path)}")
        return self._latest(reply, path, f"{self.url}/values/{path}")

    def write_values(self, values: Mapping[str, Any] | str, value: Any = None) -> None:
        """Write ``{path: value}`` in one request (or ``write_values(path, value)``)."""
        if isinstance(values, str):
            values = {values: value}
        body = {"data": {path: {"content": {"value": v}} for path, v in values.items()}}
        reply = self._request("POST", "values", body)
        for path in values:
            self._latest(reply, path, f"{self.url}/values")

    def get_idn(self) -> dict[str, str | None]:
        return {"vendor": "Bluefors", "model": "control unit (HTTP API)", "serial": None, "firmware": None}
