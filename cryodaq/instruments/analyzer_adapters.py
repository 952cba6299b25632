"""Thin adapters that give VNAs and spectrum analyzers of different makes one small interface.

The :class:`~cryodaq.instruments.parametric_amplifier.ParametricAmplifier` measures through
these, so it works with whichever qcodes driver the station names:

* :class:`VNA` protocol — ``setup(start, stop, points, power_dbm=, if_bandwidth_hz=, averages=)``,
  ``sweep_s21() -> (frequencies, complex S21)``, ``power_dbm`` (get/set). Implemented for the
  Keysight PNA family (``KeysightPNABase``: N5222B, N5245A, ...) and the R&S ZNB family
  (``RohdeSchwarzZNBBase``: ZNB8, ZNB20, ...). Settings go through the drivers' own parameters,
  so their validators and any station safety limit on them apply.
* :class:`SpectrumAnalyzer` protocol — ``setup(center, span, points, rbw_hz, sweep_time_s)``,
  ``trace_dbm() -> (frequencies, dBm per point)``. Implemented for the Keysight N9030B
  (Spectrum Analyzer mode, Swept SA; RMS averaging, average detector: true noise power).

:func:`vna_adapter` / :func:`analyzer_adapter` pick the adapter for a driver instance, and pass
through an object that already implements the protocol (e.g. a test double).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class VNA(Protocol):
    """What the paramp measurements need from a vector network analyzer (S21 only)."""

    def setup(self, start_hz: float, stop_hz: float, points: int, *, power_dbm: float | None = None,
              if_bandwidth_hz: float | None = None, averages: int | None = None) -> None: ...

    def sweep_s21(self) -> tuple[np.ndarray, np.ndarray]: ...

    @property
    def power_dbm(self) -> float: ...

    @power_dbm.setter
    def power_dbm(self, value: float) -> None: ...


@runtime_checkable
class SpectrumAnalyzer(Protocol):
    """What the noise measurements need from a spectrum analyzer."""

    def setup(self, center_hz: float, span_hz: float, points: int, rbw_hz: float,
              sweep_time_s: float | None = None) -> None: ...

    def trace_dbm(self) -> tuple[np.ndarray, np.ndarray]: ...


class PNAAdapter:
    """Keysight PNA (``qcodes.instrument_drivers.Keysight.KeysightPNABase`` subclasses).

    Uses the first measurement of channel 1, switched to S21 if it measures something else;
    the data come from its ``polar`` parameter (runs a sweep, averaging included).
    """

    def __init__(self, vna: Any) -> None:
        self.vna = vna
        traces = list(vna.traces)
        trace = next((t for t in traces if t.trace() == "S21"), None)
        if trace is None:
            trace = traces[0]
            trace.trace("S21")
        self.trace = trace
        vna.output(True)

    def setup(self, start_hz: float, stop_hz: float, points: int, *, power_dbm: float | None = None,
              if_bandwidth_hz: float | None = None, averages: int | None = None) -> None:
        v = self.vna
        v.sweep_type("LIN")
        v.start(start_hz)
        v.stop(stop_hz)
        v.points(int(points))
        if power_dbm is not None:
            v.power(power_dbm)
        if if_bandwidth_hz is not None:
            v.if_bandwidth(if_bandwidth_hz)
        if averages is not None:
            v.averages_enabled(averages > 1)
            if averages > 1:
                v.averages(int(averages))

    def sweep_s21(self) -> tuple[np.ndarray, np.ndarray]:
        data = np.asarray(self.trace.polar(), dtype=complex)
        freqs = np.linspace(self.vna.start(), self.vna.stop(), self.vna.points())
        return freqs, data

    @property
    def power_dbm(self) -> float:
        return float(self.vna.power())

    @power_dbm.setter
    def power_dbm(self, value: float) -> None:
        self.vna.power(value)


class ZNBAdapter:
    """R&S ZNB (``qcodes.instrument_drivers.rohde_schwarz.RohdeSchwarzZNBBase`` subclasses).

    Uses the driver's channel measuring S21 (``vna.channels`` made by ``init_s_params``), or
    adds one; the data come from its ``trace_mag_phase`` (runs ``avg`` sweeps).
    """

    def __init__(self, vna: Any) -> None:
        self.vna = vna
        channel = next((ch for ch in vna.channels if ch.vna_parameter() == "S21"), None)
        if channel is None:
            vna.add_channel("S21")
            channel = vna.channels[-1]
        self.channel = channel
        vna.rf_on()

    @staticmethod
    def _allowed_bandwidth(value: float, allowed: Any) -> float:
        """The smallest IF bandwidth the driver accepts that is >= ``value`` (else the largest)."""
        options = sorted(float(v) for v in allowed)
        return next((v for v in options if v >= value * (1 - 1e-9)), options[-1])

    def setup(self, start_hz: float, stop_hz: float, points: int, *, power_dbm: float | None = None,
              if_bandwidth_hz: float | None = None, averages: int | None = None) -> None:
        ch = self.channel
        if start_hz >= ch.stop():  # the driver refuses start >= stop: move the far edge first
            ch.stop(stop_hz)
            ch.start(start_hz)
        else:
            ch.start(start_hz)
            ch.stop(stop_hz)
        ch.npts(int(points))
        if power_dbm is not None:
            ch.power(power_dbm)
        if if_bandwidth_hz is not None:
            ch.bandwidth(int(self._allowed_bandwidth(if_bandwidth_hz, ch.bandwidth.vals.valid_values)))
        if averages is not None:
            ch.avg(int(averages))

    def sweep_s21(self) -> tuple[np.ndarray, np.ndarray]:
        mag, phase = self.channel.trace_mag_phase()
        freqs = np.linspace(self.channel.start(), self.channel.stop(), self.channel.npts())
        return freqs, np.asarray(mag) * np.exp(1j * np.asarray(phase))

    @property
    def power_dbm(self) -> float:
        return float(self.channel.power())

    @power_dbm.setter
    def power_dbm(self, value: float) -> None:
        self.channel.power(value)


class N9030BAdapter:
    """Keysight N9030B (``qcodes.instrument_drivers.Keysight.KeysightN9030B``), Swept SA.

    Sets RMS averaging with the average detector (a noise power reads true, not the 2.5 dB
    low of log averaging) and a fixed sweep time (longer = more averaging per point).
    """

    def __init__(self, analyzer: Any) -> None:
        self.analyzer = analyzer
        sa = analyzer.sa
        if analyzer.mode() != "SA" or "SAN" not in str(analyzer.measurement()):
            sa.setup_swept_sa_sweep(sa.start(), sa.stop(), sa.npts())
        sa.detector("AVER")
        sa.average_type("RMS")
        self.sa = sa

    def setup(self, center_hz: float, span_hz: float, points: int, rbw_hz: float,
              sweep_time_s: float | None = None) -> None:
        sa = self.sa
        sa.center(center_hz)
        sa.span(span_hz)
        sa.npts(int(points))
        sa.res_bw(rbw_hz)
        if sweep_time_s is None:
            sa.auto_sweep_time_enabled(True)
        else:
            sa.sweep_time(sweep_time_s)

    def trace_dbm(self) -> tuple[np.ndarray, np.ndarray]:
        data = np.asarray(self.sa.trace(), dtype=float)
        return np.linspace(self.sa.start(), self.sa.stop(), data.size), data


def vna_adapter(vna: Any) -> VNA:
    """The :class:`VNA` adapter for a qcodes VNA driver (or ``vna`` itself if it is one)."""
    if isinstance(vna, VNA):
        return vna
    from qcodes.instrument_drivers.Keysight import KeysightPNABase
    from qcodes.instrument_drivers.rohde_schwarz import RohdeSchwarzZNBBase

    if isinstance(vna, KeysightPNABase):
        return PNAAdapter(vna)
    if isinstance(vna, RohdeSchwarzZNBBase):
        return ZNBAdapter(vna)
    raise TypeError(f"no VNA adapter for {type(vna).__name__} (supported: Keysight PNA family, R&S ZNB family, "
                    "or an object with setup/sweep_s21/power_dbm)")


def analyzer_adapter(analyzer: Any) -> SpectrumAnalyzer:
    """The :class:`SpectrumAnalyzer` adapter for a qcodes analyzer driver (or ``analyzer`` if it is one)."""
    if isinstance(analyzer, SpectrumAnalyzer):
        return analyzer
    from qcodes.instrument_drivers.Keysight import KeysightN9030B

    if isinstance(analyzer, KeysightN9030B):
        return N9030BAdapter(analyzer)
    raise TypeError(f"no spectrum-analyzer adapter for {type(analyzer).__name__} (supported: Keysight N9030B, "
                    "or an object with setup/trace_dbm)")
