"""Simulated MKID readout board: SCPI-like TCP control plus a real-time UDP sample stream.

The stream sends ``cryodaq.wire.packet`` datagrams (real int16, one stream) of
``world.adc_block`` samples, paced by the wall clock; the control server, the common
commands and the stream thread live in :mod:`sim_instruments.servers.streaming_board`. Command set
(replies end with '\\n'):

=========================  ==========================================================
``*IDN?``                  ``cryodaq-sim,MKID-RB1,SIM0001,0.1``
``*RST`` / ``*CLS``        defaults and stream off / clear the error queue
``SYST:ERR?``              oldest queued error, ``0,"No error"`` when empty
``ADC:RATE?``              sample rate (Hz)
``STRM:PKTS[?] <n>``       samples per packet (settable while the stream is off)
``STRM:DEST[?] <h>,<p>``   UDP destination, e.g. ``127.0.0.1,50000``
``STRM:STAT[?] ON|OFF``    stream on (sequence and sample index restart at 0) / off
``LO:FREQ[?] <Hz>``        LO frequency
``TONE:COUN?``             number of tones
``TONE:FREQ[?] f1,...``    tone RF frequencies (Hz); a new count resets amplitudes and phases
``TONE:AMPL[?] a1,...``    tone amplitudes, fraction of DAC full scale (0..1)
``TONE:PHAS[?] p1,...``    tone phases (rad)
``ATT:DAC[?] <dB>``        0..31.75 dB, rounded to 0.25 dB
``ATT:ADC[?] <dB>``        0..31.75 dB, rounded to 0.25 dB
``SIM:FAULT:SKIP <n>``     next packet jumps n sequence numbers and n packets of samples
``SIM:FAULT:LOSS[?] <p>``  drop each packet with probability p
``SIM:TRUTH:RES?``         resonance frequencies at the current temperature (Hz)
``SIM:TRUTH:TEMP?``        true MXC temperature (K)
=========================  ==========================================================

A bad command or value is queued for ``SYST:ERR?`` and changes nothing; an unknown or
failed query sends no reply (the client times out), as a real SCPI instrument does.
"""

from __future__ import annotations

import numpy as np

from sim_instruments.servers.scpi_parsing import ScpiError, fmt_floats, parse_float, parse_floats
from sim_instruments.servers.streaming_board import StreamingBoardFace
from sim_instruments.world.adc_stream import AdcStream
from sim_instruments.world.world import World

IDN = "cryodaq-sim,MKID-RB1,SIM0001,0.1"
ATT_MAX_DB = 31.75
ATT_STEP_DB = 0.25
MAX_TONES = 1024


class MkidReadoutBoardFace(StreamingBoardFace):
    """The board face: control server on ``host:port`` and a UDP streamer (one real ADC stream)."""

    face = "mkid_readout_board"
    idn = IDN

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, name: str = "readout",
                 stream_dest: str = "127.0.0.1,50000", samples_per_packet: int | None = None) -> None:
        super().__init__(world, host, port, name, stream_dest,
                         int(samples_per_packet or world.config.readout.samples_per_packet), seed_key=7)
        self._reset_state()
        self._commands.update({
            "LO:FREQ?": self._lo_q, "LO:FREQ": self._lo,
            "TONE:COUN?": self._tone_count, "TONE:FREQ?": self._freq_q, "TONE:FREQ": self._freq,
            "TONE:AMPL?": self._ampl_q, "TONE:AMPL": self._ampl, "TONE:PHAS?": self._phas_q,
            "TONE:PHAS": self._phas, "ATT:DAC?": self._att_dac_q, "ATT:DAC": self._att_dac,
            "ATT:ADC?": self._att_adc_q, "ATT:ADC": self._att_adc, "SIM:TRUTH:RES?": self._truth_res,
            "SIM:TRUTH:TEMP?": self._truth_temp,
        })

    @property
    def sample_rate(self) -> float:
        return float(self.world.config.fs_hz)

    def _new_source(self, start_ns: int) -> AdcStream:
        return self.world.new_adc_stream()

    def _reset_state(self) -> None:
        super()._reset_state()
        self.world.set_readout(self.world.default_readout_state())

    # -- commands -------------------------------------------------------------------------
    def _lo_q(self, args: str) -> str:
        return repr(self.world.readout_state().lo_hz)

    def _lo(self, args: str) -> None:
        value = parse_float(args, "LO:FREQ")
        if not 0 < value <= 20e9:
            raise ScpiError(-222, f"Data out of range; LO:FREQ must be in (0, 20e9] Hz, got {value}")
        state = self.world.readout_state()
        state.lo_hz = value
        self.world.set_readout(state)

    def _tone_count(self, args: str) -> str:
        return str(self.world.readout_state().tone_freqs_hz.size)

    def _freq_q(self, args: str) -> str:
        return fmt_floats(self.world.readout_state().tone_freqs_hz)

    def _freq(self, args: str) -> None:
        freqs = np.asarray(parse_floats(args, "TONE:FREQ"))
        state = self.world.readout_state()
        if freqs.size > MAX_TONES:
            raise ScpiError(-222, f"Data out of range; at most {MAX_TONES} tones, got {freqs.size}")
        if_hz = freqs - state.lo_hz
        nyquist = self.world.config.fs_hz / 2
        bad = (if_hz <= 0) | (if_hz >= nyquist)
        if bad.any():
            raise ScpiError(-222, f"Data out of range; TONE:FREQ must lie in (LO, LO + fs/2), "
                                  f"got {freqs[bad][0]!r} with LO {state.lo_hz!r}")
        if freqs.size != state.tone_freqs_hz.size:
            n = freqs.size
            state.tone_amps = np.full(n, self.world.config.readout.tone_amplitude)
            state.tone_phases_rad = np.pi * np.arange(n) ** 2 / n  # Schroeder phases: low crest factor
        state.tone_freqs_hz = freqs
        self.world.set_readout(state)

    def _ampl_q(self, args: str) -> str:
        return fmt_floats(self.world.readout_state().tone_amps)

    def _ampl(self, args: str) -> None:
        amps = self._per_tone(args, "TONE:AMPL")
        if np.any((amps < 0) | (amps > 1)):
            raise ScpiError(-222, "Data out of range; TONE:AMPL values must be in 0..1")
        state = self.world.readout_state()
        state.tone_amps = amps
        self.world.set_readout(state)

    def _phas_q(self, args: str) -> str:
        return fmt_floats(self.world.readout_state().tone_phases_rad)

    def _phas(self, args: str) -> None:
        state = self.world.readout_state()
        state.tone_phases_rad = self._per_tone(args, "TONE:PHAS")
        self.world.set_readout(state)

    def _per_tone(self, args: str, what: str) -> np.ndarray:
        values = np.asarray(parse_floats(args, what))
        n = self.world.readout_state().tone_freqs_hz.size
        if values.size != n:
            raise ScpiError(-221, f"Settings conflict; {what} expects {n} values (TONE:COUN), got {values.size}")
        return values

    @staticmethod
    def _attenuation(args: str, what: str) -> float:
        value = parse_float(args, what)
        if not 0 <= value <= ATT_MAX_DB:
            raise ScpiError(-222, f"Data out of range; {what} must be 0..{ATT_MAX_DB} dB, got {value}")
        return round(value / ATT_STEP_DB) * ATT_STEP_DB

    def _att_dac_q(self, args: str) -> str:
        return repr(self.world.readout_state().att_dac_db)

    def _att_dac(self, args: str) -> None:
        state = self.world.readout_state()
        state.att_dac_db = self._attenuation(args, "ATT:DAC")
        self.world.set_readout(state)

    def _att_adc_q(self, args: str) -> str:
        return repr(self.world.readout_state().att_adc_db)

    def _att_adc(self, args: str) -> None:
        state = self.world.readout_state()
        state.att_adc_db = self._attenuation(args, "ATT:ADC")
        self.world.set_readout(state)

    def _truth_res(self, args: str) -> str:
        fr, _, _ = self.world.resonator_params()
        return fmt_floats(fr)

    def _truth_temp(self, args: str) -> str:
        return repr(self.world.temperature_k())
