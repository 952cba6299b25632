"""What both simulated VNA faces (Keysight PNA, R&S ZNB) share on the instrument side: sweep
settings, averaging, trace formats, the data encodings and argument checks (the physics is
:mod:`sim_instruments.world.vna`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyvisa.util

from sim_instruments.servers.scpi_parsing import ScpiError, fmt_floats, split_args
from sim_instruments.world.vna import VnaFrontEnd

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


def sweep_and_wait(frontend: VnaFrontEnd, settings: SweepSettings, n_sweeps: int) -> None:
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
