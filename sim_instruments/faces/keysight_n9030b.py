"""Simulated Keysight N9030B PXA signal analyzer, Spectrum Analyzer mode, Swept SA measurement.

Answers what ``qcodes.instrument_drivers.Keysight.KeysightN9030B`` sends (its ``sa``
submodule; the catalog offers only ``SA``/``SAN``, so the driver builds no phase-noise
module). ``:READ:SAN1?`` / ``:FETC:SAN1?`` return ``npts`` (frequency, amplitude) pairs
as an IEEE 488.2 definite-length block of REAL,64 (byte order per ``FORM:BORD``;
``FORM ASC`` gives comma-separated text).

Each point is the power in the resolution bandwidth (dBm) of what reaches the input, from
``world.paramp`` with the analyzer's RBW, RBW type, attenuation, preamp, averaging type and
sweep time; the physics (ENBW, DANL, the pump tone, the Gamma scatter of each point, the LOG
averaging's −2.51 dB on noise, the bench's scale error) is in
:mod:`sim_instruments.world.spectrum_analyzer`, so a test can draw thousands of traces
in-process. The sweep takes no wall time unless the face
option ``realtime`` is set.
"""

from __future__ import annotations

import struct
import time

import numpy as np

from sim_instruments.servers.scpi_command_tree import BOOL, Kind, ScpiFace, choice, integer, number
from sim_instruments.servers.scpi_parsing import ScpiError, parse_float
from sim_instruments.world.spectrum_analyzer import (
    LOG_AVERAGE_NOISE_DB as LOG_AVERAGE_NOISE_DB,
    AnalyzerSettings,
    expected_trace_dbm,
    measured_trace_dbm,
)
from sim_instruments.world.world import World

MIN_FREQ, MAX_FREQ = -80e6, 27e9


def _parse_format(text: str, what: str) -> str:
    """FORM ASCii[,8] | REAL[,64] | REAL,32 | INTeger,32 -> "ASC" | "REAL,64" | "REAL,32" | "INT,32"."""
    kind, _, bits = text.replace(" ", "").upper().partition(",")
    if kind in ("ASC", "ASCII") and bits in ("", "8"):
        return "ASC"
    if kind == "REAL" and bits in ("", "64", "32"):
        return f"REAL,{bits or 64}"
    if kind in ("INT", "INTEGER") and bits in ("", "32"):
        return "INT,32"
    raise ScpiError(-224, f"Illegal parameter value; {what} expects ASCii, REAL,64, REAL,32 or INTeger,32, got {text!r}")


class KeysightN9030BFace(ScpiFace):
    face = "keysight_n9030b"
    idn = "Keysight Technologies,N9030B,MY00090301,A.33.03"
    options = '"526,B40,EA3,P26"'

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, name: str = "n9030b",
                 realtime: bool = False, seed: int | None = None) -> None:
        super().__init__(world, host, port, name)
        self.realtime = bool(realtime)
        self._rng = np.random.default_rng(np.random.SeedSequence(world.config.seed if seed is None else seed,
                                                                 spawn_key=(9030,)))
        self.start_hz, self.stop_hz = 10e6, 26.5e9
        self.last_trace: np.ndarray | None = None
        s = self.add_setting
        s("mode", "INSTrument[:SELect]", "SA", choice("SA"))
        s("cont", "INITiate:CONTinuous", True, BOOL)
        s("npts", "[SENSe]:SWEep:POINts", 1001, integer(1, 20001))
        s("atten", "[SENSe]:POWer[:RF]:ATTenuation", 10, integer(0, 70))
        s("preamp_band", "[SENSe]:POWer[:RF]:GAIN:BAND", "LOW", choice("LOW", "FULL"))
        s("preamp", "[SENSe]:POWer[:RF]:GAIN[:STATe]", False, BOOL)
        s("rbw", "[SENSe]:BANDwidth[:RESolution]", 3e6, number(1, 8e6), self._rbw_changed)
        s("rbw_auto", "[SENSe]:BANDwidth[:RESolution]:AUTO", True, BOOL)
        s("vbw", "[SENSe]:BANDwidth:VIDeo", 3e6, number(1, 50e6))
        s("rbw_type", "[SENSe]:BANDwidth:TYPE", "DB3", choice("DB3", "DB6", "IMPulse", "NOISe"))
        s("detector", "[SENSe]:DETector:TRACe", "NORM", choice("NORMal", "AVERage", "POSitive", "SAMPle",
                                                               "NEGative"))
        s("avg_type", "[SENSe]:AVERage:TYPE", "LOG", choice("LOG", "RMS", "SCALar"))
        s("sweep_time", "[SENSe]:SWEep:TIME", 0.1, number(1e-6, 4000), lambda v: self._set_auto_time(False))
        s("sweep_time_auto", "[SENSe]:SWEep:TIME:AUTO", True, BOOL, lambda v: self._update_sweep_time())
        s("sweep_type_auto", "[SENSe]:SWEep:TYPE:AUTO", True, BOOL)
        s("sweep_type", "[SENSe]:SWEep:TYPE", "SWE", choice("FFT", "SWEep"))
        s("format", "FORMat[:TRACe][:DATA]", "ASC", Kind(_parse_format, str))
        s("border", "FORMat:BORDer", "NORM", choice("NORMal", "SWAPped"))
        c = self.commands.add
        c("CONFigure:CATalog", query=lambda s, a: '"SAN"')
        c("INSTrument:CATalog", query=lambda s, a: '"SA 1"')
        c("CONFigure", query=lambda s, a: "SAN")
        c("CONFigure:SANalyzer", set=lambda s, a: None)
        c("[SENSe]:FREQuency:STARt", set=lambda s, a: self._set_span_edges(start=parse_float(a, "FREQ:STAR")),
          query=lambda s, a: repr(self.start_hz))
        c("[SENSe]:FREQuency:STOP", set=lambda s, a: self._set_span_edges(stop=parse_float(a, "FREQ:STOP")),
          query=lambda s, a: repr(self.stop_hz))
        c("[SENSe]:FREQuency:CENTer", set=self._set_center,
          query=lambda s, a: repr((self.start_hz + self.stop_hz) / 2))
        c("[SENSe]:FREQuency:SPAN", set=self._set_span, query=lambda s, a: repr(self.stop_hz - self.start_hz))
        c("[SENSe]:FREQuency:TUNE:IMMediate", set=self._autotune)
        c("READ:SANalyzer#", query=lambda s, a: self._trace(s[0], new_sweep=True))
        c("FETCh:SANalyzer#", query=lambda s, a: self._trace(s[0], new_sweep=False))
        c("INITiate[:IMMediate]", set=lambda s, a: self._sweep())
        c("ABORt", set=lambda s, a: None)
        self._update_sweep_time()

    # -- coupled settings ----------------------------------------------------------------
    def after_reset(self) -> None:
        self.start_hz, self.stop_hz = 10e6, 26.5e9
        self.last_trace = None
        self._update_sweep_time()

    def _set_span_edges(self, start: float | None = None, stop: float | None = None) -> None:
        start = self.start_hz if start is None else start
        stop = self.stop_hz if stop is None else stop
        if not (MIN_FREQ <= start <= MAX_FREQ and MIN_FREQ <= stop <= MAX_FREQ):
            raise ScpiError(-222, f"Data out of range; frequencies must lie in [{MIN_FREQ:g}, {MAX_FREQ:g}] Hz")
        if stop <= start:  # like the instrument: moving one edge past the other drags it along
            if start != self.start_hz:
                stop = start + 10.0
            else:
                start = stop - 10.0
        self.start_hz, self.stop_hz = start, stop
        self._update_sweep_time()

    def _set_center(self, suffixes: tuple[int, ...], args: str) -> None:
        center, half = parse_float(args, "FREQ:CENT"), (self.stop_hz - self.start_hz) / 2
        self._set_span_edges(center - half, center + half)

    def _set_span(self, suffixes: tuple[int, ...], args: str) -> None:
        span = parse_float(args, "FREQ:SPAN")
        if span < 10:
            raise ScpiError(-222, "Data out of range; span must be >= 10 Hz")
        center = (self.start_hz + self.stop_hz) / 2
        self._set_span_edges(center - span / 2, center + span / 2)

    def _rbw_changed(self, value: float) -> None:
        self.values["rbw_auto"] = False
        self._update_sweep_time()

    def _set_auto_time(self, auto: bool) -> None:
        self.values["sweep_time_auto"] = auto

    def _update_sweep_time(self) -> None:
        """Auto sweep time of a swept analyzer: k · span / RBW² (k = 2), at least 1 ms."""
        if self.values.get("sweep_time_auto", True):
            rbw = self.values.get("rbw", 3e6)
            self.values["sweep_time"] = max(1e-3, 2.0 * (self.stop_hz - self.start_hz) / rbw ** 2)

    def _autotune(self, suffixes: tuple[int, ...], args: str) -> None:
        tone = self.world.paramp.pump_tone()
        if tone is not None:
            span = self.stop_hz - self.start_hz
            self._set_span_edges(tone[0] - span / 2, tone[0] + span / 2)

    # -- data ------------------------------------------------------------------------------
    def frequencies(self) -> np.ndarray:
        return np.linspace(self.start_hz, self.stop_hz, int(self.values["npts"]))

    def settings(self) -> AnalyzerSettings:
        """The settings the measured power depends on, as they are now."""
        v = self.values
        return AnalyzerSettings(rbw_hz=v["rbw"], rbw_type=v["rbw_type"], atten_db=v["atten"], preamp=v["preamp"],
                                avg_type=v["avg_type"], sweep_time_s=v["sweep_time"])

    def expected_dbm(self, freqs_hz: np.ndarray) -> np.ndarray:
        """Noise-free trace (dBm per point) for the present world and settings."""
        return expected_trace_dbm(self.world.paramp, freqs_hz, self.settings())

    def _sweep(self) -> np.ndarray:
        freqs = self.frequencies()
        dbm = measured_trace_dbm(self.world.paramp, freqs, self.settings(), self._rng)
        if self.realtime:
            time.sleep(min(self.values["sweep_time"], 10.0))
        self.last_trace = np.column_stack([freqs, dbm])
        return self.last_trace

    def _trace(self, number_: int, new_sweep: bool) -> str:
        if number_ != 1:
            raise ScpiError(-114, f"Header suffix out of range; trace {number_} (only trace 1 is simulated)")
        data = self._sweep() if (new_sweep or self.last_trace is None) else self.last_trace
        fmt = self.values["format"]
        if fmt == "ASC":
            return ",".join(repr(float(x)) for x in data.ravel())
        order = "<" if self.values["border"] == "SWAP" else ">"
        code = {"REAL,32": "f", "INT,32": "i"}.get(fmt, "d")
        flat = data.ravel()
        payload = struct.pack(f"{order}{flat.size}{code}", *(flat.astype(int) if code == "i" else flat))
        length = str(len(payload))
        return f"#{len(length)}{length}" + payload.decode("latin-1")
