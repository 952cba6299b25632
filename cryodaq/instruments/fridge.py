"""A dilution refrigerator as one qcodes meta-instrument, whatever drives it.

``Fridge`` sits on top of instruments that are already loaded (a Lakeshore 372, an
Oxford Triton, a Bluefors control unit) and gives every fridge the same face:

* one parameter per named temperature channel (``fridge.mxc()``, ``fridge.still()``, K);
* ``setpoint`` (K): closed-loop temperature control with the backing instrument's own
  heater and PID (:mod:`cryodaq.instruments.fridge_backends` knows how, per instrument);
* ``max_heater_power`` (W): the heater is never configured above it;
* ``heater_power`` (W): read-back; ``heater_off()``;
* ``wait_until_stable(...)``: block until a channel has stayed within a tolerance of
  its target for a hold time, or raise :class:`~cryodaq.errors.FridgeNotStableError`.

In a station file (qcodes cannot pass instrument objects through YAML, so the fridge
takes the *names* of instruments and finds them with ``Instrument.find_instrument``;
they must be listed, and so loaded, before the fridge)::

    instruments:
      fridge_thermometer: {type: qcodes.instrument_drivers.Lakeshore.LakeshoreModel372, ...}
      fridge:
        type: cryodaq.instruments.Fridge
        init:
          thermometry: fridge_thermometer
          channels: {mxc: ch01, still: ch02}
          max_heater_power_w: 1.0e-3
    cryodaq:
      safety_limits:
        fridge.setpoint: [0.005, 0.5]
        fridge.max_heater_power: [0.0, 2.0e-3]
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qcodes.instrument import Instrument, InstrumentBase, InstrumentModule
from qcodes.parameters import Parameter, ParameterBase
from qcodes.validators import Numbers

from cryodaq.errors import FridgeNotStableError, InstrumentError
from cryodaq.instruments.fridge_backends import HeaterBackend, backend_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StabilityResult:
    """What :meth:`Fridge.wait_until_stable` saw when the channel was declared stable."""

    channel: str
    target_k: float
    tolerance_k: float
    value_k: float
    waited_s: float
    held_s: float
    n_readings: int


def _lookup_instrument(fridge: str, role: str, ref: Any) -> InstrumentBase:
    if isinstance(ref, InstrumentBase):
        return ref
    if not isinstance(ref, str) or not ref:
        raise ValueError(f"fridge {fridge!r}: {role} must name a loaded instrument, got {ref!r}")
    try:
        return Instrument.find_instrument(ref)
    except KeyError:
        raise ValueError(f"fridge {fridge!r}: {role} instrument {ref!r} is not loaded; in a station file list "
                         f"{ref!r} before the fridge") from None


def resolve_channel(instrument: InstrumentBase, path: str) -> tuple[Any, ParameterBase]:
    """(object the path names, its temperature parameter) for ``path`` on ``instrument``.

    ``path`` is ``ch01`` (a channel: its ``temperature`` parameter), ``ch01.temperature``
    or a parameter (``MC`` on a Triton).
    """
    obj: Any = instrument
    for part in str(path).split("."):
        nxt = None
        if isinstance(obj, InstrumentBase):
            nxt = obj.parameters.get(part) or obj.submodules.get(part)
        if nxt is None:
            raise ValueError(f"{path!r} is not a channel or parameter of {instrument.name!r}")
        obj = nxt
    if isinstance(obj, ParameterBase):
        return obj, obj
    if isinstance(obj, InstrumentModule) and isinstance(obj.parameters.get("temperature"), ParameterBase):
        return obj, obj.parameters["temperature"]
    raise ValueError(f"{path!r} on {instrument.name!r} is neither a parameter nor a channel with a temperature")


class Fridge(Instrument):
    """Temperature channels, closed-loop setpoint, heater power and stability wait of a fridge.

    Args:
        name: instrument name.
        thermometry: the instrument (or its name) that reads the channels.
        channels: fridge channel name -> path on ``thermometry`` (``{mxc: ch01, still: ch02}``);
            each name becomes a parameter (K), so it must be an identifier (``plate_4k``, not ``4k``).
        heater: the instrument (or name) whose heater/PID holds the setpoint; default ``thermometry``.
        control_channel: the channel the loop regulates (default ``mxc``).
        control_input: path of the loop's thermometer on ``heater`` when ``heater`` is not
            ``thermometry`` (Lakeshore, Triton); default: the control channel's path.
        heater_output: the heater on ``heater`` (``sample_heater`` / ``H1`` / ``mxc_heater`` by default).
        heater_resistance_ohm: heater resistance, to turn the power limit into a current range
            (Lakeshore, Triton).
        max_heater_power_w: initial heater power limit (W).
        pid: ``{P:, I:, D:}`` written with each setpoint; None keeps the instrument's own.
    """

    def __init__(self, name: str, *, thermometry: str | InstrumentBase, channels: Mapping[str, str],
                 heater: str | InstrumentBase | None = None, control_channel: str = "mxc",
                 control_input: str | None = None, heater_output: str | None = None,
                 heater_resistance_ohm: float | None = 120.0, max_heater_power_w: float = 1e-3,
                 pid: Mapping[str, float] | None = None, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        try:
            self._setup(thermometry, channels, heater, control_channel, control_input, heater_output,
                        heater_resistance_ohm, max_heater_power_w, pid)
        except BaseException:
            self.close()
            raise

    def _setup(self, thermometry: Any, channels: Mapping[str, str], heater: Any, control_channel: str,
               control_input: str | None, heater_output: str | None, heater_resistance_ohm: float | None,
               max_heater_power_w: float, pid: Mapping[str, float] | None) -> None:
        name = self.name
        self.thermometry = _lookup_instrument(name, "thermometry", thermometry)
        self.heater = self.thermometry if heater is None else _lookup_instrument(name, "heater", heater)
        if not isinstance(channels, Mapping) or not channels:
            raise ValueError(f"fridge {name!r}: channels must map channel names to paths on "
                             f"{self.thermometry.name!r}, got {channels!r}")
        self._channel_params: dict[str, ParameterBase] = {}
        resolved: dict[str, Any] = {}
        for chan, path in channels.items():
            if not str(chan).isidentifier() or hasattr(self, chan):
                raise ValueError(f"fridge {name!r}: channel name {chan!r} must be an identifier that is not "
                                 "already an attribute of the fridge (e.g. 'plate_4k', not '4k')")
            try:
                target, param = resolve_channel(self.thermometry, path)
            except ValueError as err:
                raise ValueError(f"fridge {name!r}: channels.{chan}: {err}") from None
            resolved[chan] = target
            self._channel_params[chan] = param
            self.add_parameter(chan, unit="K", label=f"{chan} temperature", set_cmd=False,
                               get_cmd=lambda c=chan: self._read_channel(c),
                               docstring=f"Temperature of {chan} ({self.thermometry.name}.{path}).")
        if control_channel not in self._channel_params:
            raise ValueError(f"fridge {name!r}: control_channel {control_channel!r} is not one of the channels "
                             f"{sorted(self._channel_params)}")
        self.control_channel = control_channel
        if control_input is not None:
            try:
                control, _ = resolve_channel(self.heater, control_input)
            except ValueError as err:
                raise ValueError(f"fridge {name!r}: control_input: {err}") from None
        else:
            control = resolved[control_channel] if self.heater is self.thermometry else None
        backend_cls = backend_for(self.heater)
        self.backend: HeaterBackend = backend_cls(name, self.heater, control, output=heater_output,
                                                  heater_resistance_ohm=heater_resistance_ohm, pid=pid)
        self._loop_on = False

        self.max_heater_power: Parameter = self.add_parameter(
            "max_heater_power", unit="W", label="heater power limit", vals=Numbers(0.0, 10.0),
            get_cmd=None, set_cmd=self._set_max_power, initial_cache_value=float(max_heater_power_w),
            docstring="The heater is never configured to deliver more than this (W). Applies at once "
                      "while the loop runs, else with the next setpoint.",
        )
        self.max_heater_power.validate(float(max_heater_power_w))
        self.setpoint: Parameter = self.add_parameter(
            "setpoint", unit="K", label=f"{control_channel} setpoint", vals=Numbers(0.0, 40.0),
            get_cmd=self.backend.setpoint, set_cmd=self._set_setpoint,
            docstring=f"Closed-loop target of {control_channel}: setting it switches the heater loop on.",
        )
        self.heater_power: Parameter = self.add_parameter(
            "heater_power", unit="W", label="heater power", get_cmd=self.backend.heater_power, set_cmd=False,
            docstring=f"Heater output now, read back from {self.heater.name!r}.",
        )

    # -- parameters ------------------------------------------------------------------------
    def _read_channel(self, chan: str) -> float:
        value = self._channel_params[chan].get()
        if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InstrumentError(self.thermometry.name, getattr(self.thermometry, "address", None),
                                  f"fridge channel {chan!r} gave no temperature (got {value!r})")
        return float(value)

    def _set_setpoint(self, kelvin: float) -> None:
        limit = float(self.max_heater_power.cache.get())
        self.max_heater_power.validate(limit)  # the station limit may have arrived after init
        self.backend.set_setpoint(float(kelvin), limit)
        self._loop_on = True
        log.info("%s: %s setpoint %.4g K (heater limit %.3g W)", self.name, self.control_channel, kelvin, limit)

    def _set_max_power(self, watts: float) -> None:
        if self._loop_on:
            self.backend.apply_power_limit(float(watts))

    def heater_off(self) -> None:
        """Open the loop and switch the heater off."""
        self.backend.heater_off()
        self._loop_on = False

    @property
    def channel_names(self) -> list[str]:
        return list(self._channel_params)

    # -- waiting -----------------------------------------------------------------------------
    def wait_until_stable(self, tolerance_k: float, hold_time_s: float, timeout_s: float, channel: str | None = None,
                          poll_s: float = 1.0, target_k: float | None = None,
                          log_every_s: float = 10.0) -> StabilityResult:
        """Block until ``channel`` (default: the control channel) stays within ``tolerance_k`` of
        ``target_k`` (default: the setpoint) for ``hold_time_s``, reading every ``poll_s``.

        Raises FridgeNotStableError (a TimeoutError) naming the fridge, channel, target and
        last reading if that does not happen within ``timeout_s``.
        """
        channel = self.control_channel if channel is None else channel
        if channel not in self._channel_params:
            raise ValueError(f"fridge {self.name!r}: unknown channel {channel!r}; known: {self.channel_names}")
        if not (tolerance_k > 0 and hold_time_s >= 0 and timeout_s > 0 and poll_s > 0):
            raise ValueError("wait_until_stable: tolerance_k, timeout_s and poll_s must be > 0, hold_time_s >= 0")
        target = float(self.setpoint() if target_k is None else target_k)
        param = self.parameters[channel]
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        inside_since: float | None = None
        longest = 0.0
        n = 0
        next_log = t0 + log_every_s
        while True:
            value = float(param.get())
            now = time.monotonic()
            n += 1
            if abs(value - target) <= tolerance_k:
                inside_since = now if inside_since is None else inside_since
                held = now - inside_since
                longest = max(longest, held)
                if held >= hold_time_s:
                    result = StabilityResult(channel, target, tolerance_k, value, now - t0, held, n)
                    log.info("%s: %s stable at %.5g K (target %.5g ± %.2g K) after %.1f s", self.name, channel,
                             value, target, tolerance_k, now - t0)
                    return result
            else:
                inside_since = None
            if now >= deadline:
                raise FridgeNotStableError(
                    f"fridge {self.name!r}: {channel} not stable at {target:.5g} K ± {tolerance_k:.2g} K for "
                    f"{hold_time_s:g} s within {timeout_s:g} s; last reading {value:.5g} K "
                    f"(off by {value - target:+.3g} K), longest time inside the band {longest:.3g} s"
                )
            if now >= next_log:
                log.info("%s: waiting for %s: %.5g K, target %.5g ± %.2g K, %.0f s of %.0f s", self.name, channel,
                         value, target, tolerance_k, now - t0, timeout_s)
                next_log = now + log_every_s
            time.sleep(max(0.0, min(poll_s, deadline - now)))

    def get_idn(self) -> dict[str, str | None]:
        return {"vendor": "cryodaq", "model": f"Fridge over {type(self.heater).__name__}", "serial": None,
                "firmware": None}

    def snapshot_base(self, update: bool | None = False,
                      params_to_skip_update: Any = None) -> dict[str, Any]:
        snap = super().snapshot_base(update=update, params_to_skip_update=params_to_skip_update)
        snap["thermometry"] = self.thermometry.name
        snap["heater_instrument"] = self.heater.name
        snap["backend"] = type(self.backend).__name__
        snap["control_channel"] = self.control_channel
        return snap
