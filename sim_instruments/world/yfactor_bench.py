"""The raw readings of one Y-factor measurement, drawn in-process from the world — what the
analyzer, the VNA and the load thermometers of the demo paramp station would return, without
the sockets, so a test or a benchmark can repeat the measurement thousands of times.

It does what ``cryodaq.sweeps.procedures.run_noise_temperature`` does through the instruments:
for the hot and the cold load, pump off and on, one analyzer trace over ``span_hz`` around the
frequency (:mod:`sim_instruments.world.spectrum_analyzer`, RMS averaging, 3 dB RBW), one VNA
trace of ``s21_points`` over 1 kHz at the probe power (:mod:`sim_instruments.world.vna`), and the
selected load's thermometer (:meth:`ParampModel.thermometer_reading_k`). The pump and load are
left as they were. The world's ``paramp.config.bench`` is read live: a caller may replace it
between repeats to draw a new bench.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim_instruments.world.spectrum_analyzer import AnalyzerSettings, measured_trace_dbm

__all__ = ["YFactorReadings", "yfactor_readings"]


@dataclass
class YFactorReadings:
    """Raw readings: analyzer traces (mW per point) by (hot load?, pump on?), complex S21 points by
    (hot load?, pump on?), and the thermometers' mean readings (K)."""

    freq_hz: float
    traces_mw: dict[tuple[bool, bool], np.ndarray] = field(default_factory=dict)
    s21: dict[tuple[bool, bool], np.ndarray] = field(default_factory=dict)
    t_hot_k: float = float("nan")
    t_cold_k: float = float("nan")


def yfactor_readings(world: Any, freq_hz: float, rng: np.random.Generator, vna: Any, *, span_hz: float = 1e6,
                     points: int = 201, rbw_hz: float = 10e3, sweep_time_s: float = 1.0, s21_points: int = 21,
                     probe_power_dbm: float = -70.0, ifbw_hz: float = 100.0) -> YFactorReadings:
    """One Y-factor measurement at ``freq_hz`` (module docstring); ``vna`` is a
    :class:`~sim_instruments.world.vna.VnaModel` (its own noise generator advances)."""
    pa = world.paramp
    state = pa.state
    settings = AnalyzerSettings(rbw_hz=rbw_hz, rbw_type="DB3", avg_type="RMS", sweep_time_s=sweep_time_s)
    trace_f = np.linspace(freq_hz - span_hz / 2, freq_hz + span_hz / 2, points)
    s21_f = np.linspace(freq_hz - 500.0, freq_hz + 500.0, s21_points)
    out = YFactorReadings(float(freq_hz))
    temps: dict[bool, list[float]] = {True: [], False: []}
    try:
        for hot in (True, False):
            pa.select_load("hot" if hot else "cold")
            for pump in (False, True):
                pa.set_pump(on=pump)
                out.traces_mw[hot, pump] = 10 ** (measured_trace_dbm(pa, trace_f, settings, rng) / 10)
                out.s21[hot, pump] = vna.measure("S21", s21_f, probe_power_dbm, ifbw_hz)
                temps[hot].append(pa.thermometer_reading_k("hot" if hot else "cold"))
    finally:
        pa.select_load(state.load)
        pa.set_pump(on=state.pump_on)
    out.t_hot_k, out.t_cold_k = float(np.mean(temps[True])), float(np.mean(temps[False]))
    return out
