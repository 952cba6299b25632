"""Thin adapters that give VNAs and spectrum analyzers of different makes one small interface.

The :class:`~cryodaq.instruments.parametric_amplifier.ParametricAmplifier` measures through
these, so it works with whichever qcodes driver the station names:

* :class:`VNA` protocol — ``setup(start, stop, points, power_dbm=, if_bandwidth_hz=, averages=)``,
  ``sweep_s21() -> (frequencies, complex S21)``, ``power_dbm`` (get/set). :class:`QcodesVNA`
  implements it for the Keysight PNA family (``KeysightPNABase``: N5222B, N5245A, ...) and the
  R&S ZNB family (``RohdeSchwarzZNBBase``, e.g. ``cryodaq.instruments.RohdeSchwarzZNBSocket``)
  on top of :func:`cryodaq.instruments.vna.measure_s21`. Settings go through the drivers' own
  parameters, so their validators and any station safety limit on them apply.
* :class:`SpectrumAnalyzer` protocol — ``setup(center, span, points, rbw_hz, sweep_time_s)``,
  ``trace_dbm() -> (frequencies, dBm per point)``. Implemented for the Keysight N9030B
  (Spectrum Analyzer mode, Swept SA; RMS averaging, average detector: true noise power).

:func:`vna_adapter` / :func:`analyzer_adapter` pick the adapter for a driver instance, and pass
through an object that already implements the protocol (e.g. a test double).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
from qcodes.instrument_drivers.Keysight import KeysightN9030B, KeysightPNABase
from qcodes.instrument_drivers.rohde_schwarz import (
    RohdeSchwarzZNBBase,
    RohdeSchwarzZNBChannel,
)

from cryodaq.instruments.vna import measure_s21


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


class QcodesVNA:
    """A Keysight PNA or R&S ZNB qcodes driver (or a ZNB channel) as a :class:`VNA`.

    Sweeps go through :func:`cryodaq.instruments.vna.measure_s21` (the stimulus is set through
    the driver's parameters, power first, on every sweep); ``power_dbm`` reads and sets the
    source power of the S21 measurement directly.
    """

    def __init__(self, vna: Any) -> None:
        self.vna = vna
        self._settings: dict[str, Any] = {"start_hz": 4e9, "stop_hz": 8e9, "points": 201, "power_dbm": None,
                                          "if_bandwidth_hz": 1e3, "averages": 1}

    def setup(self, start_hz: float, stop_hz: float, points: int, *, power_dbm: float | None = None,
              if_bandwidth_hz: float | None = None, averages: int | None = None) -> None:
        s = self._settings
        s.update(start_hz=float(start_hz), stop_hz=float(stop_hz), points=int(points))
        if power_dbm is not None:
            s["power_dbm"] = float(power_dbm)
        if if_bandwidth_hz is not None:
            s["if_bandwidth_hz"] = float(if_bandwidth_hz)
        if averages is not None:
            s["averages"] = int(averages)

    def sweep_s21(self) -> tuple[np.ndarray, np.ndarray]:
        s = self._settings
        power = self.power_dbm if s["power_dbm"] is None else s["power_dbm"]
        sweep = measure_s21(self.vna, s["start_hz"], s["stop_hz"], s["points"], power, s["if_bandwidth_hz"],
                            s["averages"])
        return sweep.freqs, sweep.s21

    def _power_parameter(self) -> Any:
        vna = self.vna
        if hasattr(vna, "if_bandwidth") or hasattr(vna, "trace_mag_phase"):  # a PNA, or a ZNB channel
            return vna.power
        channel = next((ch for ch in vna.channels if ch.vna_parameter() == "S21"), None)
        if channel is None:
            raise ValueError(f"{vna.name}: no channel measures S21 (measure once to add one)")
        return channel.power

    @property
    def power_dbm(self) -> float:
        return float(self._power_parameter()())

    @power_dbm.setter
    def power_dbm(self, value: float) -> None:
        self._power_parameter()(value)
        self._settings["power_dbm"] = float(value)


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
        # span first: a narrow span around the present centre is always valid, and then any centre
        # inside the range is (a wide span could push the start below the range, and the centre is refused)
        sa.span(span_hz)
        sa.center(center_hz)
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
    if isinstance(vna, (KeysightPNABase, RohdeSchwarzZNBBase, RohdeSchwarzZNBChannel)):
        return QcodesVNA(vna)
    raise TypeError(f"no VNA adapter for {type(vna).__name__} (supported: Keysight PNA family, R&S ZNB family, "
                    "or an object with setup/sweep_s21/power_dbm)")


def analyzer_adapter(analyzer: Any) -> SpectrumAnalyzer:
    """The :class:`SpectrumAnalyzer` adapter for a qcodes analyzer driver (or ``analyzer`` if it is one)."""
    if isinstance(analyzer, SpectrumAnalyzer):
        return analyzer
    if isinstance(analyzer, KeysightN9030B):
        return N9030BAdapter(analyzer)
    raise TypeError(f"no spectrum-analyzer adapter for {type(analyzer).__name__} (supported: Keysight N9030B, "
                    "or an object with setup/trace_dbm)")
