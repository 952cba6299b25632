"""Simulated Lakeshore Model 372 AC resistance bridge / temperature controller.

Speaks the subset of the 372's serial/TCP protocol that the QCoDeS driver
``qcodes.instrument_drivers.Lakeshore.LakeshoreModel372`` sends (and MOUT for manual
output), terminated by CR LF. Readings come from the world's fridge through a channel
map (``{1: "mxc", 2: "still", 3: "4k"}`` by default; a number maps a channel to a
constant temperature; unmapped channels are disabled and read 0).

Output 0 (sample heater) heats the mixing chamber: its current is
``I = I_range * output% / 100`` into ``heater_resistance_ohm``, ``P = R I**2``. In
closed-loop (and zone) mode a PID sets the output %:

    e = T_setpoint - T   (K; the setpoint may ramp at RAMP's rate)
    output% = 100 * P * (e + (1/I) ∫e dt - D dT/dt),  clipped to 0..100 (integral anti-windup)

evaluated by the fridge at each integration sub-step (P in %/(0.01 K), I and D in s;
I = 0 switches the integral off). In open-loop mode the output is MOUT's value. Outputs
1 and 2 keep their settings but heat nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from sim_instruments.faces.fridge_faults import sim_fridge_command
from sim_instruments.servers.line_server import LineServer, ServedFace
from sim_instruments.servers.scpi_parsing import ScpiError, split_command, undefined_header
from sim_instruments.world.thermometer import ruox_ohm
from sim_instruments.world.world import World

IDN = "LSCI,MODEL372,SIM0372,1.3"
N_CHANNELS = 16
N_OUTPUTS = 3
#: heater range index -> full-scale current (A) of the sample heater
RANGE_CURRENT_A = {0: 0.0, 1: 31.6e-6, 2: 100e-6, 3: 316e-6, 4: 1e-3, 5: 3.16e-3, 6: 10e-3, 7: 31.6e-3, 8: 100e-3}
MODE_OFF, MODE_OPEN_LOOP, MODE_ZONE, MODE_CLOSED_LOOP = 0, 2, 3, 5
STAGES = ("mxc", "still", "4k")


def _fmt(x: float) -> str:
    return f"{x:+.6E}"


class _Output:
    def __init__(self, index: int) -> None:
        self.index = index
        self.mode = MODE_OFF
        self.input = 1
        self.powerup = 0
        self.polarity = 0
        self.filter = 0
        self.delay = 1
        self.p, self.i, self.d = 10.0, 20.0, 0.0
        self.range = 0
        self.setpoint = 0.0
        self.manual = 0.0
        self.ramp_enabled = 0
        self.ramp_rate = 0.0  # K/min
        self.htrset = [0, 1, 0, 0.0, 2]
        self.output_pct = 0.0
        # setpoint ramp bookkeeping (world clock)
        self.ramp_from = 0.0
        self.ramp_t0 = 0.0
        # PID state
        self.integral = 0.0
        self.t_prev: float | None = None
        self.temp_prev: float | None = None


class Lakeshore372Face(ServedFace):
    """The Lakeshore 372 face: a CR LF line server on ``host:port`` over the world's fridge."""

    face = "lakeshore372"

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, name: str = "lakeshore372",
                 channels: Mapping[Any, Any] | None = None, heater_resistance_ohm: float = 120.0) -> None:
        self.world = world
        self.name = name
        self.heater_resistance_ohm = float(heater_resistance_ohm)
        if self.heater_resistance_ohm <= 0:
            raise ValueError(f"{name}: heater_resistance_ohm must be > 0, got {heater_resistance_ohm}")
        self.channel_map = self._parse_channels(channels if channels is not None else {1: "mxc", 2: "still", 3: "4k"})
        self.server = LineServer(self, host, port, reply_termination="\r\n", name=name)
        self._lock = threading.RLock()
        self._reset()
        world.fridge.set_controller(self._controller)

    def _parse_channels(self, channels: Mapping[Any, Any]) -> dict[int, str | float]:
        out: dict[int, str | float] = {}
        for key, value in channels.items():
            try:
                ch = int(key)
            except (TypeError, ValueError):
                ch = -1
            if not 1 <= ch <= N_CHANNELS:
                raise ValueError(f"{self.name}.channels: channel {key!r} is not 1..{N_CHANNELS}")
            if isinstance(value, str):
                if value not in STAGES:
                    raise ValueError(f"{self.name}.channels.{key}: stage {value!r} unknown; known: {STAGES} or a number (K)")
                out[ch] = value
            elif isinstance(value, (int, float)) and value > 0:
                out[ch] = float(value)
            else:
                raise ValueError(f"{self.name}.channels.{key}: expected a stage name {STAGES} or a temperature in K, got {value!r}")
        return out

    def _reset(self) -> None:
        self.names = {ch: (f"{self.channel_map[ch]}" if isinstance(self.channel_map.get(ch), str) else f"Channel {ch}")
                      for ch in range(1, N_CHANNELS + 1)}
        self.inset = {ch: [1 if ch in self.channel_map else 0, 10, 3, 1 if ch in self.channel_map else 0, 1]
                      for ch in range(1, N_CHANNELS + 1)}
        self.intype = {ch: [0, 2, 0, 12, 0, 1] for ch in range(1, N_CHANNELS + 1)}
        self.tlimit = {ch: 0.0 for ch in range(1, N_CHANNELS + 1)}
        self.outputs = [_Output(i) for i in range(N_OUTPUTS)]
        self.outputs[1].htrset = [0, 1, 0, 0.0, 2]

    # -- physics --------------------------------------------------------------------
    def temperature_k(self, channel: int) -> float:
        """The (noisy) reading of ``channel``; 0 for an unmapped one."""
        source = self.channel_map.get(channel)
        if source is None:
            return 0.0
        if isinstance(source, float):
            return source
        return self.world.fridge.read(source)

    def _true_temperature(self, channel: int, mxc_k: float) -> float:
        source = self.channel_map.get(channel)
        if source == "mxc":
            return mxc_k
        if source is None:
            return 0.0
        if isinstance(source, float):
            return source
        return self.world.fridge.still_k() if source == "still" else self.world.fridge.plate_4k_k()

    def _effective_setpoint(self, out: _Output, t: float) -> float:
        if not (out.ramp_enabled and out.ramp_rate > 0):
            return out.setpoint
        step = out.ramp_rate / 60.0 * max(0.0, t - out.ramp_t0)
        if out.setpoint >= out.ramp_from:
            return min(out.setpoint, out.ramp_from + step)
        return max(out.setpoint, out.ramp_from - step)

    def _controller(self, t: float, mxc_k: float) -> float:
        """Called by the fridge at each sub-step: heater power (W) of the sample heater."""
        with self._lock:
            out = self.outputs[0]
            current_fs = RANGE_CURRENT_A.get(out.range, 0.0)
            if out.mode in (MODE_CLOSED_LOOP, MODE_ZONE) and current_fs > 0:
                temp = self._true_temperature(out.input, mxc_k)
                err = self._effective_setpoint(out, t) - temp
                dt = 0.0 if out.t_prev is None else max(0.0, t - out.t_prev)
                deriv = 0.0 if (out.temp_prev is None or dt == 0) else (temp - out.temp_prev) / dt
                if out.i > 0:
                    out.integral += err * dt / out.i
                pct = 100.0 * out.p * (err + out.integral - out.d * deriv)
                if pct > 100.0 or pct < 0.0:  # anti-windup: undo the integration that pushed past a limit
                    if out.i > 0:
                        out.integral -= err * dt / out.i
                    pct = min(100.0, max(0.0, 100.0 * out.p * (err + out.integral - out.d * deriv)))
                out.t_prev, out.temp_prev = t, temp
            elif out.mode == MODE_OPEN_LOOP and current_fs > 0:
                pct = out.manual
            else:
                pct = 0.0
            out.output_pct = pct
            current = current_fs * pct / 100.0
            return self.heater_resistance_ohm * current * current

    def heater_power_w(self) -> float:
        """Power the sample heater puts into the mixing chamber now."""
        return self.world.fridge.heater_power_w

    # -- protocol ---------------------------------------------------------------------
    def handle(self, command: str) -> str | None:
        header, args = split_command(command)
        if header.startswith("SIM:"):  # simulator-only: SIM:FAULT:WARMUP r[,T], ...:STOP, SIM:TRUTH:TEMP?
            try:
                return sim_fridge_command(self.world, command)
            except ScpiError:
                return None
        fields = [a.strip().strip('"') for a in args.split(",")] if args else []
        try:
            fn = getattr(self, "_cmd_" + header.replace("*", "star_").replace("?", "_q"), None)
            if fn is None:
                raise undefined_header(header)
            # lock order: fridge, then this face (the fridge calls the PID under its own lock)
            with self.world.fridge.lock, self._lock:
                self.world.fridge.mxc_k()  # bring the heater/PID state up to now first
                return fn(fields)
        except ScpiError:
            return None  # the 372 has no error queue: a bad command is ignored

    def _channel(self, fields: list[str]) -> int:
        try:
            ch = int(fields[0])
        except (IndexError, ValueError):
            raise ScpiError(-109, "missing or bad channel") from None
        if not 1 <= ch <= N_CHANNELS:
            raise ScpiError(-222, f"channel {ch} out of range")
        return ch

    def _output(self, fields: list[str]) -> _Output:
        try:
            idx = int(fields[0])
        except (IndexError, ValueError):
            raise ScpiError(-109, "missing or bad output") from None
        if not 0 <= idx < N_OUTPUTS:
            raise ScpiError(-222, f"output {idx} out of range")
        return self.outputs[idx]

    @staticmethod
    def _numbers(fields: list[str], n: int) -> list[float]:
        if len(fields) != n:
            raise ScpiError(-109, f"expected {n} values, got {len(fields)}")
        try:
            return [float(f) for f in fields]
        except ValueError:
            raise ScpiError(-104, f"bad number in {fields}") from None

    def _cmd_star_IDN_q(self, f: list[str]) -> str:
        return IDN

    def _cmd_star_RST(self, f: list[str]) -> None:
        self._reset()

    def _cmd_star_CLS(self, f: list[str]) -> None:
        return None

    def _cmd_KRDG_q(self, f: list[str]) -> str:
        return _fmt(self.temperature_k(self._channel(f)))

    def _cmd_SRDG_q(self, f: list[str]) -> str:
        ch = self._channel(f)
        temp = self.temperature_k(ch)
        return _fmt(ruox_ohm(temp) if temp > 0 else 0.0)

    def _cmd_RDGST_q(self, f: list[str]) -> str:
        self._channel(f)
        return "000"

    def _cmd_INNAME_q(self, f: list[str]) -> str:
        return self.names[self._channel(f)]

    def _cmd_INNAME(self, f: list[str]) -> None:
        ch = self._channel(f)
        self.names[ch] = ",".join(f[1:])[:15]

    def _cmd_TLIMIT_q(self, f: list[str]) -> str:
        return _fmt(self.tlimit[self._channel(f)])

    def _cmd_TLIMIT(self, f: list[str]) -> None:
        ch = self._channel(f)
        self.tlimit[ch] = self._numbers(f[1:], 1)[0]

    def _cmd_INSET_q(self, f: list[str]) -> str:
        e, dwell, pause, curve, tc = self.inset[self._channel(f)]
        return f"{e},{dwell},{pause},{curve},{tc}"

    def _cmd_INSET(self, f: list[str]) -> None:
        ch = self._channel(f)
        self.inset[ch] = [int(v) for v in self._numbers(f[1:], 5)]

    def _cmd_INTYPE_q(self, f: list[str]) -> str:
        return ",".join(str(v) for v in self.intype[self._channel(f)])

    def _cmd_INTYPE(self, f: list[str]) -> None:
        ch = self._channel(f)
        self.intype[ch] = [int(v) for v in self._numbers(f[1:], 6)]

    def _cmd_OUTMODE_q(self, f: list[str]) -> str:
        o = self._output(f)
        return f"{o.mode},{o.input},{o.powerup},{o.polarity},{o.filter},{o.delay}"

    def _cmd_OUTMODE(self, f: list[str]) -> None:
        o = self._output(f)
        mode, inp, powerup, polarity, filt, delay = (int(v) for v in self._numbers(f[1:], 6))
        if mode not in range(7) or not 1 <= inp <= N_CHANNELS:
            raise ScpiError(-222, "OUTMODE value out of range")
        if mode != o.mode:
            o.integral, o.t_prev, o.temp_prev = 0.0, None, None
        o.mode, o.input, o.powerup, o.polarity, o.filter, o.delay = mode, inp, powerup, polarity, filt, delay

    def _cmd_PID_q(self, f: list[str]) -> str:
        o = self._output(f)
        return f"{_fmt(o.p)},{_fmt(o.i)},{_fmt(o.d)}"

    def _cmd_PID(self, f: list[str]) -> None:
        o = self._output(f)
        p, i, d = self._numbers(f[1:], 3)
        if not (0 <= p <= 1000 and 0 <= i <= 10000 and 0 <= d <= 2500):
            raise ScpiError(-222, "PID value out of range")
        if i > 0 and o.i > 0:
            o.integral *= o.i / i  # keep the integral term's output continuous
        o.p, o.i, o.d = p, i, d

    def _cmd_RANGE_q(self, f: list[str]) -> str:
        return str(self._output(f).range)

    def _cmd_RANGE(self, f: list[str]) -> None:
        o = self._output(f)
        r = int(self._numbers(f[1:], 1)[0])
        if r not in RANGE_CURRENT_A:
            raise ScpiError(-222, "RANGE out of range")
        o.range = r

    def _cmd_SETP_q(self, f: list[str]) -> str:
        return _fmt(self._output(f).setpoint)

    def _cmd_SETP(self, f: list[str]) -> None:
        o = self._output(f)
        value = self._numbers(f[1:], 1)[0]
        now = self.world.clock()
        o.ramp_from = self._effective_setpoint(o, now) if o.ramp_enabled else o.setpoint
        if o.ramp_enabled and o.ramp_rate > 0 and o.setpoint == 0.0:
            o.ramp_from = self.world.fridge.mxc_k()  # first setpoint: ramp from where the fridge is
        o.ramp_t0 = now
        o.setpoint = value

    def _cmd_RAMP_q(self, f: list[str]) -> str:
        o = self._output(f)
        return f"{o.ramp_enabled},{_fmt(o.ramp_rate)}"

    def _cmd_RAMP(self, f: list[str]) -> None:
        o = self._output(f)
        enabled, rate = self._numbers(f[1:], 2)
        o.ramp_from = self._effective_setpoint(o, self.world.clock())
        o.ramp_t0 = self.world.clock()
        o.ramp_enabled, o.ramp_rate = int(enabled), rate

    def _cmd_RAMPST_q(self, f: list[str]) -> str:
        o = self._output(f)
        ramping = o.ramp_enabled and o.ramp_rate > 0 and self._effective_setpoint(o, self.world.clock()) != o.setpoint
        return "1" if ramping else "0"

    def _cmd_HTR_q(self, f: list[str]) -> str:
        return _fmt(self._output(f).output_pct)

    def _cmd_MOUT_q(self, f: list[str]) -> str:
        return _fmt(self._output(f).manual)

    def _cmd_MOUT(self, f: list[str]) -> None:
        o = self._output(f)
        value = self._numbers(f[1:], 1)[0]
        if not 0 <= value <= 100:
            raise ScpiError(-222, "MOUT out of range")
        o.manual = value
        if o.mode == MODE_OPEN_LOOP and o.index > 0:
            o.output_pct = value

    def _cmd_HTRSET_q(self, f: list[str]) -> str:
        t, r, imax, iuser, disp = self._output(f).htrset
        return f"{t},{r},{imax},{_fmt(iuser)},{disp}"

    def _cmd_HTRSET(self, f: list[str]) -> None:
        o = self._output(f)
        t, r, imax, iuser, disp = self._numbers(f[1:], 5)
        o.htrset = [int(t), int(r), int(imax), iuser, int(disp)]
