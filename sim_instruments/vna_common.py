"""What both simulated VNAs (Keysight PNA, R&S ZNB) share: the measurement physics,
sweep settings, averaging, trace formats and the data encodings.

Measured S21 (port 1 -> cryostat -> port 2), for source power ``P`` (dBm)::

    P_in   = P - line_attenuation_db                         (power at the feedline input)
    S21(f) = g · e^{j(φ0 - 2π f τ)} · world.chain_s21(f, P_in)   (feedline x world.amplifiers)
    g      = 10^((output_gain_db - line_attenuation_db)/20)

plus complex Gaussian noise, independent per point and sweep, of variance

    σ² = (k_B T_n G_out + N_rx) · IFBW / P_W / n_avg

(``T_n`` the noise temperature at the input of the first amplifier *after* the world's
amplifiers — a HEMT —, ``G_out`` its gain to port 2, ``N_rx`` the receiver's own noise
density, ``P_W`` the source power in W): noise ∝ √IFBW, ∝ 1/√averages, and relative to
the signal it falls as the source power rises. A paramp in ``world.amplifiers`` raises
the signal (gain, compression at high ``P_in``) but not this noise, as a quantum-limited
preamplifier in front of a HEMT does. With the RF output off the signal is 0 (noise only).

The other S-parameters carry no world physics: reflections S11, S22, ... are a
-20 dB mismatch with twice the cable delay, reverse and cross transmissions a -100 dB
isolation, each with the same noise.

The world's MKID readout (tones, attenuators) is not touched: the VNA only reads the world.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyvisa.util
from scipy import constants

from .scpi import ScpiError, fmt_floats, split_args
from .world import World

#: |S_ii| of the room-temperature reflections, and |S_ij| (i != j, not S21) of the isolation
REFLECTION = 0.1
ISOLATION = 1e-5


@dataclass
class FrontEnd:
    """The setup between the VNA ports and the world; these are the faces' options (all optional)."""

    #: attenuation from port 1 to the feedline input (cryogenic attenuators + cables), dB
    line_attenuation_db: float = 60.0
    #: gain from the output of the world's amplifiers to port 2 (HEMT + room-temperature amplifiers), dB
    output_gain_db: float = 70.0
    #: extra cable delay and phase of the room-temperature cables (on top of the feedline's)
    cable_delay_s: float = 30e-9
    phase_offset_rad: float = 0.0
    #: noise temperature at the HEMT input (after the world's amplifiers), K
    noise_temperature_k: float = 4.0
    #: the VNA receiver's own noise density at port 2, dBm/Hz
    receiver_noise_dbm_per_hz: float = -125.0
    #: sweeps take ``sweep_time_scale`` × their nominal time (0 = instant; 1 = as a real VNA)
    sweep_time_scale: float = 0.0

    def __post_init__(self) -> None:
        for key in ("line_attenuation_db", "output_gain_db", "cable_delay_s", "phase_offset_rad",
                    "noise_temperature_k", "receiver_noise_dbm_per_hz", "sweep_time_scale"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"VNA option {key}: expected a finite number, got {value!r}")
        if self.noise_temperature_k < 0 or self.sweep_time_scale < 0:
            raise ValueError("VNA options noise_temperature_k and sweep_time_scale must be >= 0")


class VnaPhysics:
    """S-parameters and their noise for one simulated VNA (own seeded noise generator)."""

    def __init__(self, world: World, frontend: FrontEnd, name: str) -> None:
        self.world = world
        self.frontend = frontend
        self.rng = np.random.default_rng([int(world.config.seed), zlib.crc32(name.encode())])

    def gain(self) -> float:
        fe = self.frontend
        return 10.0 ** ((fe.output_gain_db - fe.line_attenuation_db) / 20.0)

    def background(self, freqs_hz: np.ndarray, delay_factor: float = 1.0) -> np.ndarray:
        """Room-temperature cables: e^{j(φ0 - 2π f τ)} (τ scaled by ``delay_factor``)."""
        fe = self.frontend
        turns = np.mod(np.asarray(freqs_hz, dtype=float) * (fe.cable_delay_s * delay_factor), 1.0)
        return np.exp(1j * (fe.phase_offset_rad - 2.0 * np.pi * turns))

    def input_power_dbm(self, source_power_dbm: float) -> float:
        """Power at the feedline input for a source power (dBm)."""
        return source_power_dbm - self.frontend.line_attenuation_db

    def s_parameter(self, name: str, freqs_hz: np.ndarray, source_power_dbm: float) -> np.ndarray:
        """Noise-free ``S<i><j>`` at ``freqs_hz`` (S21 from the world, see the module docstring)."""
        f = np.asarray(freqs_hz, dtype=float)
        out_port, in_port = int(name[1]), int(name[2])
        if (out_port, in_port) == (2, 1):
            chain = self.world.chain_s21(f, self.input_power_dbm(source_power_dbm))
            return self.gain() * self.background(f) * chain
        if out_port == in_port:
            return REFLECTION * self.background(f, 2.0)
        return ISOLATION * self.background(f)

    def noise_rms(self, source_power_dbm: float, ifbw_hz: float, n_avg: int = 1) -> float:
        """RMS of the complex noise on each point of a trace (in S-parameter units)."""
        fe = self.frontend
        density_w = (constants.k * fe.noise_temperature_k * 10.0 ** (fe.output_gain_db / 10.0)
                     + 10.0 ** (fe.receiver_noise_dbm_per_hz / 10.0) * 1e-3)
        source_w = 10.0 ** (source_power_dbm / 10.0) * 1e-3
        return math.sqrt(density_w * ifbw_hz / source_w / max(1, n_avg))

    def measure(self, name: str, freqs_hz: np.ndarray, source_power_dbm: float, ifbw_hz: float,
                n_sweeps: int = 1, rf_on: bool = True) -> np.ndarray:
        """The mean of ``n_sweeps`` noisy sweeps of ``S<i><j>`` (the world is read once, now)."""
        f = np.asarray(freqs_hz, dtype=float)
        signal = self.s_parameter(name, f, source_power_dbm) if rf_on else np.zeros(f.size, complex)
        sigma = self.noise_rms(source_power_dbm, ifbw_hz, n_sweeps) / math.sqrt(2.0)
        noise = self.rng.normal(0.0, sigma, (2, f.size))
        return signal + (noise[0] + 1j * noise[1])


# -- sweep settings -------------------------------------------------------------------------

#: IF bandwidths a VNA offers: 1, 1.5, 2, 3, 5, 7 × 10^k Hz
_IFBW_STEPS = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)


def round_up_bandwidth(value_hz: float, max_hz: float) -> float:
    """The smallest allowed IF bandwidth >= ``value_hz`` (both VNAs round up), at most ``max_hz``."""
    if value_hz <= 1.0:
        return 1.0
    for decade in range(9):
        for step in _IFBW_STEPS:
            candidate = step * 10.0**decade
            if candidate >= value_hz * (1 - 1e-9):
                return min(candidate, max_hz)
    return max_hz


@dataclass
class SweepSettings:
    """One measurement channel's stimulus: frequencies, power, IF bandwidth, averaging."""

    fmin_hz: float
    fmax_hz: float
    start_hz: float
    stop_hz: float
    points: int = 201
    sweep_type: str = "LIN"  # LIN, LOG, CW (ZNB: POIN too)
    cw_hz: float = 1e9
    power_dbm: float = -10.0
    ifbw_hz: float = 1e3
    max_ifbw_hz: float = 15e6
    avg_count: int = 1
    avg_on: bool = False
    electrical_delay_s: float = 0.0

    def frequencies(self) -> np.ndarray:
        """The stimulus frequencies of a sweep (Hz)."""
        if self.sweep_type in ("CW", "POIN"):
            return np.full(self.points, self.cw_hz)
        if self.sweep_type == "LOG":
            return np.geomspace(self.start_hz, self.stop_hz, self.points)
        return np.linspace(self.start_hz, self.stop_hz, self.points)

    def clamp(self, f_hz: float) -> float:
        return min(max(f_hz, self.fmin_hz), self.fmax_hz)

    def set_start(self, f_hz: float) -> None:
        """Start moves stop along when it passes it (what both VNAs do)."""
        self.start_hz = self.clamp(f_hz)
        self.stop_hz = max(self.stop_hz, self.start_hz)

    def set_stop(self, f_hz: float) -> None:
        self.stop_hz = self.clamp(f_hz)
        self.start_hz = min(self.start_hz, self.stop_hz)

    def set_center(self, f_hz: float) -> None:
        c = self.clamp(f_hz)
        half = min((self.stop_hz - self.start_hz) / 2, c - self.fmin_hz, self.fmax_hz - c)
        self.start_hz, self.stop_hz = c - half, c + half

    def set_span(self, span_hz: float) -> None:
        c = (self.start_hz + self.stop_hz) / 2
        half = min(max(span_hz, 0.0) / 2, c - self.fmin_hz, self.fmax_hz - c)
        self.start_hz, self.stop_hz = c - half, c + half

    def set_ifbw(self, value_hz: float) -> None:
        if value_hz <= 0:
            raise ScpiError(-222, f"Data out of range; IF bandwidth must be > 0, got {value_hz}")
        self.ifbw_hz = round_up_bandwidth(value_hz, self.max_ifbw_hz)

    def sweep_time_s(self) -> float:
        """Nominal duration of one sweep: a point per 1/IFBW plus 1 ms retrace."""
        return self.points / self.ifbw_hz + 1e-3

    def signature(self) -> tuple:
        """Changes when stored trace data stops matching the stimulus."""
        return (self.sweep_type, self.start_hz, self.stop_hz, self.points, self.cw_hz)


class Averager:
    """Sweep averaging: the running mean of the sweeps since the last clear, up to
    ``count`` of them; beyond that an exponential average of weight 1/count (as VNAs do)."""

    def __init__(self) -> None:
        self.mean: np.ndarray | None = None
        self.n = 0

    def clear(self) -> None:
        self.mean, self.n = None, 0

    def add(self, batch_mean: np.ndarray, batch_n: int, count: int) -> np.ndarray:
        if self.mean is None or self.mean.shape != batch_mean.shape:
            self.mean, self.n = batch_mean.copy(), batch_n
            return self.mean
        weight = min(1.0, batch_n / min(self.n + batch_n, max(1, count)))
        self.mean = self.mean + weight * (batch_mean - self.mean)
        self.n += batch_n
        return self.mean


def sweep_and_wait(frontend: FrontEnd, settings: SweepSettings, n_sweeps: int) -> None:
    """Sleep as long as ``n_sweeps`` sweeps would take (``sweep_time_scale`` × nominal)."""
    if frontend.sweep_time_scale > 0:
        time.sleep(frontend.sweep_time_scale * n_sweeps * settings.sweep_time_s())


# -- trace formats and data transfer -----------------------------------------------------------

#: formats whose data are (re, im) pairs per point
PAIR_FORMATS = frozenset({"POL", "POLAR", "SMIT", "SMITH", "ISM", "ISMITH", "COMP"})


def format_trace(z: np.ndarray, fmt: str, freqs_hz: np.ndarray) -> np.ndarray:
    """Formatted trace data (``CALC:DATA? FDATA``): one float per point, or (re, im) pairs.

    MLOG dB, MLIN, PHAS (deg, wrapped), UPH (deg, unwrapped), REAL, IMAG, SWR,
    GDEL (group delay -dφ/dω, s), and the complex formats POL/SMIT/ISM/COMP.
    """
    fmt = fmt.upper()
    if fmt in PAIR_FORMATS:
        zz = 1.0 / z if fmt in ("ISM", "ISMITH") else z
        return np.column_stack([zz.real, zz.imag]).ravel()
    with np.errstate(divide="ignore"):
        table: dict[str, Callable[[], np.ndarray]] = {
            "MLOG": lambda: 20.0 * np.log10(np.abs(z)),
            "MLIN": lambda: np.abs(z),
            "PHAS": lambda: np.degrees(np.angle(z)),
            "UPH": lambda: np.degrees(np.unwrap(np.angle(z))),
            "REAL": lambda: z.real,
            "IMAG": lambda: z.imag,
            "SWR": lambda: (1 + np.minimum(np.abs(z), 0.999999)) / (1 - np.minimum(np.abs(z), 0.999999)),
            "GDEL": lambda: _group_delay(z, freqs_hz),
        }
        if fmt not in table:
            raise ScpiError(-224, f"Illegal parameter value; unknown format {fmt!r}")
        return np.asarray(table[fmt](), dtype=float)


def _group_delay(z: np.ndarray, freqs_hz: np.ndarray) -> np.ndarray:
    if z.size < 2 or np.ptp(freqs_hz) == 0:
        return np.zeros(z.size)
    return -np.gradient(np.unwrap(np.angle(z)), 2.0 * np.pi * np.asarray(freqs_hz, dtype=float))


@dataclass
class DataFormat:
    """``FORM`` / ``FORM:BORD``: how trace data go over the wire."""

    kind: str = "ASC"  # ASC or REAL
    bits: int = 64
    big_endian: bool = True  # NORM

    def set_form(self, args: str) -> None:
        parts = [p.upper() for p in split_args(args)]
        if not parts:
            raise ScpiError(-109, "Missing parameter; FORM")
        if parts[0].startswith("ASC"):
            self.kind = "ASC"
        elif parts[0] == "REAL":
            bits = int(float(parts[1])) if len(parts) > 1 else 64
            if bits not in (32, 64):
                raise ScpiError(-224, f"Illegal parameter value; FORM REAL,{bits}")
            self.kind, self.bits = "REAL", bits
        else:
            raise ScpiError(-224, f"Illegal parameter value; FORM {args}")

    def form_query(self) -> str:
        return "ASC,0" if self.kind == "ASC" else f"REAL,{self.bits}"

    def set_order(self, args: str) -> None:
        order = args.strip().upper()
        if order.startswith("NORM"):
            self.big_endian = True
        elif order.startswith("SWAP"):
            self.big_endian = False
        else:
            raise ScpiError(-224, f"Illegal parameter value; FORM:BORD {args}")

    def encode(self, values: np.ndarray) -> str:
        """ASCII comma list (repr precision), or an IEEE 488.2 definite-length block.

        Returned as a latin-1 string: the line server sends it byte for byte.
        """
        if self.kind == "ASC":
            return fmt_floats(values)
        block = pyvisa.util.to_ieee_block(np.asarray(values, dtype=float).tolist(),
                                          "f" if self.bits == 32 else "d", self.big_endian)
        return block.decode("latin-1")


# -- argument checks and replies ------------------------------------------------------------

def s_parameter_name(text: str, n_ports: int, what: str) -> str:
    """Validate ``S21``-style names against the port count; returns the upper-case name."""
    name = text.strip().strip("'\"").upper()
    if len(name) != 3 or name[0] != "S" or not name[1:].isdigit() or not all(
            1 <= int(c) <= n_ports for c in name[1:]):
        raise ScpiError(-224, f"Illegal parameter value; {what} expects S<i><j> with ports 1..{n_ports}, got {text!r}")
    return name


def fmt_number(value: float) -> str:
    """A float reply at repr precision; integral values without a fraction (``1000``)."""
    v = float(value)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
