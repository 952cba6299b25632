"""How a :class:`~cryodaq.instruments.fridge.Fridge` drives the closed-loop heater of each kind
of instrument: Lakeshore 372 (qcodes ``LakeshoreModel372``), Oxford Triton (qcodes
``OxfordTriton``) and the Bluefors control unit (:class:`BlueforsControlUnit`).

Each backend turns "hold the mixing chamber at T, never above P_max" into the
instrument's own settings, and reads back the heater power in W:

* Lakeshore 372: sample-heater output in closed-loop mode on the control input, the
  largest current range whose full-scale power ``R * I_fs**2`` stays within P_max, PID
  if given, then SETP.
* Triton: the control thermometer's loop drives heater H1, the largest heater range
  (mA) within P_max, PID if given, TSET, loop mode ON; power from ``READ:DEV:H1:HTR:SIG:POWR``.
* Bluefors: the heater's ``max_power`` = P_max, PID if given, setpoint, mode closed_loop.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from qcodes.instrument import InstrumentBase, InstrumentModule
from qcodes.parameters import ParameterBase

from cryodaq.errors import InstrumentError

#: Lakeshore 372 sample-heater range index -> full-scale current (A)
LS372_RANGE_CURRENT_A = {1: 31.6e-6, 2: 100e-6, 3: 316e-6, 4: 1e-3, 5: 3.16e-3, 6: 10e-3, 7: 31.6e-3, 8: 100e-3}
#: Triton heater ranges (mA), as the qcodes driver's pid_range accepts them
TRITON_RANGES_MA = (0.316, 1.0, 3.16, 10.0, 31.6, 100.0)
_POWER_UNITS = {"W": 1.0, "mW": 1e-3, "uW": 1e-6, "nW": 1e-9}


class HeaterBackend(ABC):
    """The heater/PID of one instrument, as a Fridge uses it (see the module docstring)."""

    #: what the backend needs besides the instrument: an input thermometer on the instrument
    needs_control_input: ClassVar[bool] = True

    def __init__(self, fridge: str, instrument: InstrumentBase, control: Any, *, output: str | None,
                 heater_resistance_ohm: float | None, pid: Mapping[str, float] | None) -> None:
        self.fridge = fridge
        self.instrument = instrument
        self.control = control
        self.output_name = output
        self.heater_resistance_ohm = heater_resistance_ohm
        self.pid = dict(pid) if pid else {}
        unknown = sorted(set(self.pid) - {"P", "I", "D"})
        if unknown:
            raise ValueError(f"fridge {fridge!r}: pid keys {unknown} unknown; expected P, I, D")
        if self.needs_control_input and control is None:
            raise ValueError(f"fridge {fridge!r}: the heater on {instrument.name!r} needs a control input "
                             f"(the thermometer of its loop): give control_input, a channel path on {instrument.name!r}")

    def _resistance(self) -> float:
        if not self.heater_resistance_ohm or self.heater_resistance_ohm <= 0:
            raise ValueError(f"fridge {self.fridge!r}: heater_resistance_ohm (> 0) is needed to turn "
                             f"max_heater_power_w into a heater range on {self.instrument.name!r}")
        return self.heater_resistance_ohm

    def _largest_within(self, full_scale_w: Mapping[Any, float], max_power_w: float) -> Any:
        fitting = [key for key, p in full_scale_w.items() if p <= max_power_w * (1 + 1e-9)]
        if not fitting:
            smallest = min(full_scale_w.values())
            raise ValueError(f"fridge {self.fridge!r}: max_heater_power_w = {max_power_w:g} W is below the "
                             f"smallest heater range of {self.instrument.name!r} ({smallest:g} W full scale)")
        return max(fitting, key=lambda k: full_scale_w[k])

    @abstractmethod
    def apply_power_limit(self, max_power_w: float) -> float:
        """Cap the heater at ``max_power_w``; returns the full-scale power now configured (W)."""

    @abstractmethod
    def set_setpoint(self, kelvin: float, max_power_w: float) -> None:
        """Closed loop on the control input toward ``kelvin``, heater capped at ``max_power_w``."""

    @abstractmethod
    def setpoint(self) -> float:
        """The loop's setpoint (K) as the instrument reports it."""

    @abstractmethod
    def heater_power(self) -> float:
        """The heater output now (W)."""

    @abstractmethod
    def heater_off(self) -> None:
        """Open the loop and switch the heater off."""


class Lakeshore372Backend(HeaterBackend):
    """Sample heater (or another output) of a qcodes ``LakeshoreModel372``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        name = self.output_name or "sample_heater"
        self.out = self.instrument.submodules.get(name)
        if self.out is None or not hasattr(self.out, "output_range"):
            raise ValueError(f"fridge {self.fridge!r}: {self.instrument.name!r} has no heater output {name!r}")
        module = self.control.instrument if isinstance(self.control, ParameterBase) else self.control
        channel = getattr(module, "_channel", None)
        if channel is None:
            raise ValueError(f"fridge {self.fridge!r}: the control input {self.control!r} is not a "
                             f"Lakeshore sensor channel of {self.instrument.name!r}")
        self.input_channel = int(channel)
        self.range_names = {idx: name for name, idx in self.out.RANGES.items()}
        self.range_current_a = {name: LS372_RANGE_CURRENT_A[idx] for idx, name in self.range_names.items()
                                if idx in LS372_RANGE_CURRENT_A}

    def apply_power_limit(self, max_power_w: float) -> float:
        r = self._resistance()
        full_scale = {name: r * i * i for name, i in self.range_current_a.items()}
        name = self._largest_within(full_scale, max_power_w)
        self.out.output_range(name)
        return full_scale[name]

    def set_setpoint(self, kelvin: float, max_power_w: float) -> None:
        out = self.out
        out.setpoint(kelvin)
        if self.pid:
            for key, value in self.pid.items():
                getattr(out, key).validate(value)  # Group.set_parameters does not run validators
            out.pid_group.update()
            out.pid_group.set_parameters(self.pid)
        out.output_group.update()
        out.output_group.set_parameters({"mode": "closed_loop", "input_channel": self.input_channel})
        self.apply_power_limit(max_power_w)

    def setpoint(self) -> float:
        return float(self.out.setpoint())

    def heater_power(self) -> float:
        current = self.range_current_a.get(self.out.output_range())
        if current is None or self.out.mode() == "off":
            return 0.0
        frac = min(100.0, max(0.0, float(self.out.output()))) / 100.0
        return self._resistance() * (current * frac) ** 2

    def heater_off(self) -> None:
        self.out.output_range("off")
        self.out.mode("off")


class TritonBackend(HeaterBackend):
    """The temperature loop of a qcodes ``OxfordTriton`` driving its mixing-chamber heater."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heater = self.output_name or "H1"
        name = self.control.name if isinstance(self.control, ParameterBase) else str(self.control)
        chan = self.instrument.chan_alias.get(name, name)
        m = re.fullmatch(r"T(\d{1,2})", chan)
        if not m:
            raise ValueError(f"fridge {self.fridge!r}: the control input {name!r} is not a Triton thermometer "
                             f"T1..T16 or one of its aliases {sorted(self.instrument.chan_alias)}")
        self.channel = int(m[1])

    def apply_power_limit(self, max_power_w: float) -> float:
        r = self._resistance()
        full_scale = {ma: r * (ma * 1e-3) ** 2 for ma in TRITON_RANGES_MA}
        range_ma = self._largest_within(full_scale, max_power_w)
        self.instrument.pid_range(range_ma)
        return full_scale[range_ma]

    def set_setpoint(self, kelvin: float, max_power_w: float) -> None:
        inst = self.instrument
        inst.pid_control_channel(self.channel)
        self.apply_power_limit(max_power_w)
        for key, value in self.pid.items():
            getattr(inst, f"pid_{key.lower()}")(value)
        inst.pid_setpoint(kelvin)
        inst.pid_mode("on")

    def setpoint(self) -> float:
        return float(self.instrument.pid_setpoint())

    def heater_power(self) -> float:
        cmd = f"READ:DEV:{self.heater}:HTR:SIG:POWR"
        reply = self.instrument.ask(cmd)
        m = re.search(r":POWR:([-+0-9.eE]+)\s*(W|mW|uW|nW)\s*$", reply)
        if not m:
            raise InstrumentError(self.instrument.name, None, f"unreadable heater power reply {reply!r} to {cmd!r}")
        return float(m[1]) * _POWER_UNITS[m[2]]

    def heater_off(self) -> None:
        self.instrument.pid_mode("off")
        self.instrument.write(f"SET:DEV:{self.heater}:HTR:SIG:POWR:0")


class BlueforsBackend(HeaterBackend):
    """A heater channel (default ``mxc_heater``) of :class:`BlueforsControlUnit`; its control
    sensor is configured on the unit."""

    needs_control_input = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        name = self.output_name or "mxc_heater"
        self.heater = self.instrument.submodules.get(name)
        if not isinstance(self.heater, InstrumentModule) or not hasattr(self.heater, "max_power"):
            raise ValueError(f"fridge {self.fridge!r}: {self.instrument.name!r} has no heater {name!r}")

    def apply_power_limit(self, max_power_w: float) -> float:
        self.heater.max_power(max_power_w)
        return max_power_w

    def set_setpoint(self, kelvin: float, max_power_w: float) -> None:
        self.apply_power_limit(max_power_w)
        for key, value in self.pid.items():
            getattr(self.heater, key)(value)
        self.heater.setpoint(kelvin)
        self.heater.mode("closed_loop")

    def setpoint(self) -> float:
        return float(self.heater.setpoint())

    def heater_power(self) -> float:
        return float(self.heater.power())

    def heater_off(self) -> None:
        self.heater.mode("off")


def backend_for(instrument: InstrumentBase) -> type[HeaterBackend]:
    """The backend class for ``instrument``'s type, or a ValueError listing the supported ones."""
    from qcodes.instrument_drivers.Lakeshore import LakeshoreModel372
    from qcodes.instrument_drivers.oxford import OxfordTriton

    from cryodaq.instruments.bluefors import BlueforsControlUnit

    table: list[tuple[type, type[HeaterBackend]]] = [
        (LakeshoreModel372, Lakeshore372Backend),
        (OxfordTriton, TritonBackend),
        (BlueforsControlUnit, BlueforsBackend),
    ]
    for cls, backend in table:
        if isinstance(instrument, cls):
            return backend
    supported = ", ".join(cls.__name__ for cls, _ in table)
    raise ValueError(f"no fridge heater backend for {instrument.name!r} ({type(instrument).__name__}); "
                     f"supported: {supported}")
