"""One way to take an S21 sweep with either VNA family on a station.

``measure_s21(vna, ...)`` works with QCoDeS's Keysight PNA drivers
(``KeysightPNABase``: N5222B, N5245A, N5230C, N5232B) and R&S ZNB drivers
(``RohdeSchwarzZNBBase`` incl. :class:`~cryodaq.instruments.rs_znb.RohdeSchwarzZNBSocket`,
or one of its ``RohdeSchwarzZNBChannel`` channels). It sets the stimulus through the
drivers' own parameters (no raw SCPI), runs the sweep the driver's way, and reads the
settings back, so the returned :class:`VNASweep` records what the instrument really did
(a VNA rounds the IF bandwidth up to one it offers).

Driver behaviour this relies on:

* PNA: the trace measuring S21 is used; when there is none, the first trace is switched
  to S21 (a preset PNA measures S11). ``polar`` runs the sweep (``auto_sweep``), with
  ``averages`` group-triggered sweeps when averaging.
* ZNB: the channel measuring S21 is used (added with ``add_channel("S21")`` when there
  is none). The driver refuses a stop at or below the start, so start and stop are set
  in the order that never crosses. ``trace_mag_phase`` reads the complex data (SDAT) at
  full precision; the frequency axis is rebuilt from the read-back start/stop/points
  (the driver's own setpoints are truncated to whole Hz).
* Both: power and IF bandwidth are set first, so that a value refused by a driver
  validator or a station safety limit leaves the instrument untouched; the RF output is
  switched on (the ZNB driver switches it off at init).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyvisa.errors import VisaIOError
from qcodes.instrument_drivers.Keysight import KeysightPNABase
from qcodes.instrument_drivers.rohde_schwarz import (
    RohdeSchwarzZNBBase,
    RohdeSchwarzZNBChannel,
)

from cryodaq.errors import InstrumentError

__all__ = ["VNASweep", "measure_s21"]


@dataclass(frozen=True)
class VNASweep:
    """An S21 sweep: frequencies (Hz), complex S21, and the settings read back from the VNA."""

    freqs: np.ndarray
    s21: np.ndarray
    power_dbm: float
    ifbw_hz: float
    averages: int = 1
    instrument: str = ""

    def __post_init__(self) -> None:
        f, z = np.asarray(self.freqs, dtype=float), np.asarray(self.s21, dtype=complex)
        if f.ndim != 1 or f.shape != z.shape:
            raise ValueError(f"VNASweep: freqs and s21 must be 1-D of equal length, got {f.shape} and {z.shape}")
        object.__setattr__(self, "freqs", f)
        object.__setattr__(self, "s21", z)

    def metadata(self) -> dict[str, Any]:
        """The settings as plain JSON-able values (for run attrs and snapshots; no arrays)."""
        return {
            "instrument": self.instrument,
            "start_hz": float(self.freqs[0]) if self.freqs.size else None,
            "stop_hz": float(self.freqs[-1]) if self.freqs.size else None,
            "points": int(self.freqs.size),
            "power_dbm": float(self.power_dbm),
            "ifbw_hz": float(self.ifbw_hz),
            "averages": int(self.averages),
        }


def measure_s21(vna: Any, start_hz: float, stop_hz: float, points: int, power_dbm: float,
                ifbw_hz: float, averages: int = 1) -> VNASweep:
    """Set a linear sweep on ``vna`` (a PNA or ZNB qcodes driver, or a ZNB channel) and read S21.

    Raises ValueError for an impossible request (before anything is sent), the driver's
    own validation errors (e.g. a power outside the instrument's range or a ZNB IF
    bandwidth it does not offer), and :class:`~cryodaq.errors.InstrumentError` naming
    the instrument and its address when it does not answer.
    """
    if not (math.isfinite(start_hz) and math.isfinite(stop_hz) and 0 < start_hz < stop_hz):
        raise ValueError(f"measure_s21: expected 0 < start_hz < stop_hz, got {start_hz} and {stop_hz}")
    if int(points) != points or points < 2:
        raise ValueError(f"measure_s21: points must be an integer >= 2, got {points!r}")
    if int(averages) != averages or averages < 1:
        raise ValueError(f"measure_s21: averages must be an integer >= 1, got {averages!r}")
    if not (math.isfinite(ifbw_hz) and ifbw_hz > 0) or not math.isfinite(power_dbm):
        raise ValueError(f"measure_s21: expected a finite power and ifbw_hz > 0, got {power_dbm} dBm, {ifbw_hz} Hz")
    if isinstance(vna, KeysightPNABase) or _looks_like_pna(vna):
        run, root = _measure_pna, vna
    elif isinstance(vna, (RohdeSchwarzZNBBase, RohdeSchwarzZNBChannel)) or _looks_like_znb(vna):
        run, root = _measure_znb, getattr(vna, "root_instrument", vna)
    else:
        raise TypeError(f"measure_s21: {type(vna).__name__} is neither a qcodes Keysight PNA "
                        "(KeysightPNABase) nor an R&S ZNB (RohdeSchwarzZNBBase or its channel)")
    try:
        return run(vna, float(start_hz), float(stop_hz), int(points), float(power_dbm), float(ifbw_hz),
                   int(averages))
    except VisaIOError as exc:
        raise InstrumentError(getattr(root, "name", str(root)), getattr(root, "address", None),
                              f"S21 sweep failed: {exc}") from exc


def _looks_like_pna(vna: Any) -> bool:
    return all(hasattr(vna, a) for a in ("if_bandwidth", "polar", "traces", "auto_sweep"))


def _looks_like_znb(vna: Any) -> bool:
    return hasattr(vna, "trace_mag_phase") or (
        hasattr(vna, "channels") and hasattr(vna, "add_channel") and hasattr(vna, "rf_power"))


# -- Keysight PNA ------------------------------------------------------------------------------

def _pna_s21_trace(vna: Any) -> Any:
    traces = list(vna.traces)
    for trace in traces:
        if trace.trace() == "S21":
            return trace
    if not traces:
        raise RuntimeError(f"{vna.name}: the PNA has no measurement to switch to S21")
    traces[0].trace("S21")
    return traces[0]


def _measure_pna(vna: Any, start: float, stop: float, points: int, power: float, ifbw: float,
                 averages: int) -> VNASweep:
    vna.power(power)  # first: a value refused by a safety limit leaves the VNA untouched
    vna.if_bandwidth(ifbw)
    vna.sweep_type("LIN")
    vna.start(start)  # a PNA moves stop along when start passes it, so this order never fails
    vna.stop(stop)
    vna.points(points)
    if averages > 1:
        vna.averages(averages)
        vna.averages_enabled(True)
    else:
        vna.averages_enabled(False)
    vna.output(True)
    trace = _pna_s21_trace(vna)
    with vna.auto_sweep.set_to(True):
        s21 = np.asarray(trace.polar(), dtype=complex)
    freqs = np.linspace(vna.start(), vna.stop(), vna.points())
    return VNASweep(freqs, s21, float(vna.power()), float(vna.if_bandwidth()), averages, vna.full_name)


# -- R&S ZNB -------------------------------------------------------------------------------------

def _znb_s21_channel(vna: Any) -> Any:
    if hasattr(vna, "trace_mag_phase"):  # a channel was given
        measured = vna.vna_parameter()
        if measured != "S21":
            raise ValueError(f"measure_s21: channel {vna.full_name} measures {measured}, not S21")
        return vna
    for channel in vna.channels:
        if channel.vna_parameter() == "S21":
            return channel
    vna.add_channel("S21")
    return vna.channels[-1]


def _measure_znb(vna: Any, start: float, stop: float, points: int, power: float, ifbw: float,
                 averages: int) -> VNASweep:
    ch = _znb_s21_channel(vna)
    ch.power(power)  # first: a value refused by a safety limit leaves the VNA untouched
    ch.bandwidth(ifbw)
    ch.avg(averages)
    ch.sweep_type("Linear")
    if start >= ch.stop():  # the driver refuses stop <= start: never let them cross
        ch.stop(stop)
        ch.start(start)
    else:
        ch.start(start)
        ch.stop(stop)
    ch.npts(points)
    ch.root_instrument.rf_power(True)
    magnitude, phase = ch.trace_mag_phase()
    s21 = np.asarray(magnitude) * np.exp(1j * np.asarray(phase))
    freqs = np.linspace(ch.start(), ch.stop(), ch.npts())
    return VNASweep(freqs, s21, float(ch.power()), float(ch.bandwidth()), averages, ch.full_name)
