"""Simulated MKID readout board: SCPI-like TCP control plus a real-time UDP sample stream.

The stream sends ``cryodaq.acquisition.packet`` datagrams (real int16, one stream) of
``world.adc_block`` samples, paced by the wall clock. Command set (replies end with '\\n'):

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

import logging
import socket
import threading
import time

import numpy as np

from cryodaq.acquisition.packet import HEADER_SIZE, MAX_DATAGRAM, PacketHeader, encode

from .adc import AdcStream
from .scpi import (
    ErrorQueue,
    ScpiError,
    fmt_floats,
    no_args,
    parse_bool,
    parse_float,
    parse_floats,
    split_command,
    undefined_header,
)
from .tcp_server import LineServer
from .world import World

log = logging.getLogger(__name__)

IDN = "cryodaq-sim,MKID-RB1,SIM0001,0.1"
ATT_MAX_DB = 31.75
ATT_STEP_DB = 0.25
MAX_TONES = 1024
MAX_SAMPLES_PER_PACKET = (MAX_DATAGRAM - HEADER_SIZE) // 2


class MkidReadoutBoard:
    """The board face: control server on ``host:port`` and a UDP streamer."""

    face = "mkid_readout_board"

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, name: str = "readout",
                 stream_dest: str = "127.0.0.1,50000", samples_per_packet: int | None = None) -> None:
        self.world = world
        self.name = name
        self.errors = ErrorQueue()
        self.server = LineServer(self, host, port, reply_termination="\n", name=name)
        try:
            self._default_dest = self._parse_dest(stream_dest)
        except ScpiError as err:
            raise ValueError(f"{name}: stream_dest must be '<host>,<port>', got {stream_dest!r} ({err.message})") from None
        self._default_pkts = int(samples_per_packet or world.config.readout.samples_per_packet)
        self._lock = threading.RLock()  # command handling
        self._fault_lock = threading.Lock()  # what the stream thread reads each packet
        self._stream_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._loss_rng = np.random.default_rng(np.random.SeedSequence(world.config.seed, spawn_key=(7,)))
        self.stats = {"sent": 0, "dropped": 0, "late": 0, "send_errors": 0}
        self.stream_start_ns = 0
        self._reset_state()
        self._commands = {
            "*IDN?": self._idn, "*RST": self._rst, "*CLS": self._cls, "SYST:ERR?": self._syst_err,
            "ADC:RATE?": self._adc_rate, "STRM:PKTS?": self._pkts_q, "STRM:PKTS": self._pkts,
            "STRM:DEST?": self._dest_q, "STRM:DEST": self._dest, "STRM:STAT?": self._stat_q,
            "STRM:STAT": self._stat, "LO:FREQ?": self._lo_q, "LO:FREQ": self._lo,
            "TONE:COUN?": self._tone_count, "TONE:FREQ?": self._freq_q, "TONE:FREQ": self._freq,
            "TONE:AMPL?": self._ampl_q, "TONE:AMPL": self._ampl, "TONE:PHAS?": self._phas_q,
            "TONE:PHAS": self._phas, "ATT:DAC?": self._att_dac_q, "ATT:DAC": self._att_dac,
            "ATT:ADC?": self._att_adc_q, "ATT:ADC": self._att_adc, "SIM:FAULT:SKIP": self._skip,
            "SIM:FAULT:LOSS?": self._loss_q, "SIM:FAULT:LOSS": self._loss, "SIM:TRUTH:RES?": self._truth_res,
            "SIM:TRUTH:TEMP?": self._truth_temp,
        }

    # -- lifecycle --------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.server.port

    @property
    def host(self) -> str:
        return self.server.host

    def start(self) -> MkidReadoutBoard:
        self.server.start()
        return self

    def stop(self) -> None:
        self._stream_off()
        self.server.stop()

    def __enter__(self) -> MkidReadoutBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- command dispatch -----------------------------------------------------------------
    def handle(self, command: str) -> str | None:
        header, args = split_command(command)
        try:
            fn = self._commands.get(header)
            if fn is None:
                raise undefined_header(header)
            with self._lock:
                return fn(args)
        except ScpiError as err:
            self.errors.push(err)
            return None

    def _reset_state(self) -> None:
        self.dest = self._default_dest
        self.samples_per_packet = self._default_pkts
        self.skip_pending = 0
        self.loss_probability = 0.0
        self.world.set_readout(self.world.default_readout_state())

    # -- commands -------------------------------------------------------------------------
    def _idn(self, args: str) -> str:
        return IDN

    def _rst(self, args: str) -> None:
        no_args(args, "*RST")
        self._stream_off()
        self._reset_state()

    def _cls(self, args: str) -> None:
        self.errors.clear()

    def _syst_err(self, args: str) -> str:
        return self.errors.pop()

    def _adc_rate(self, args: str) -> str:
        return repr(float(self.world.config.fs_hz))

    def _pkts_q(self, args: str) -> str:
        return str(self.samples_per_packet)

    def _pkts(self, args: str) -> None:
        value = parse_float(args, "STRM:PKTS")
        if value != int(value) or not 1 <= value <= MAX_SAMPLES_PER_PACKET:
            raise ScpiError(-222, f"Data out of range; STRM:PKTS must be an integer 1..{MAX_SAMPLES_PER_PACKET}")
        if self.streaming:
            raise ScpiError(-221, "Settings conflict; STRM:PKTS cannot change while streaming")
        self.samples_per_packet = int(value)

    def _dest_q(self, args: str) -> str:
        return f"{self.dest[0]},{self.dest[1]}"

    def _dest(self, args: str) -> None:
        self.dest = self._parse_dest(args)

    @staticmethod
    def _parse_dest(text: str) -> tuple[str, int]:
        parts = [p.strip().strip('"') for p in text.split(",")]
        if len(parts) != 2 or not parts[0]:
            raise ScpiError(-109, f"Missing parameter; STRM:DEST expects <host>,<port>, got {text!r}")
        port = parse_float(parts[1], "STRM:DEST port")
        if port != int(port) or not 1 <= port <= 65535:
            raise ScpiError(-222, f"Data out of range; STRM:DEST port must be 1..65535, got {parts[1]}")
        return parts[0], int(port)

    def _stat_q(self, args: str) -> str:
        return "1" if self.streaming else "0"

    def _stat(self, args: str) -> None:
        if parse_bool(args, "STRM:STAT"):
            self._stream_on()
        else:
            self._stream_off()

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

    def _skip(self, args: str) -> None:
        value = parse_float(args, "SIM:FAULT:SKIP")
        if value != int(value) or value < 0:
            raise ScpiError(-222, f"Data out of range; SIM:FAULT:SKIP expects a count >= 0, got {args!r}")
        with self._fault_lock:
            self.skip_pending += int(value)

    def _loss_q(self, args: str) -> str:
        return repr(self.loss_probability)

    def _loss(self, args: str) -> None:
        value = parse_float(args, "SIM:FAULT:LOSS")
        if not 0 <= value <= 1:
            raise ScpiError(-222, f"Data out of range; SIM:FAULT:LOSS must be 0..1, got {value}")
        self.loss_probability = value

    def _truth_res(self, args: str) -> str:
        fr, _, _ = self.world.resonator_params()
        return fmt_floats(fr)

    def _truth_temp(self, args: str) -> str:
        return repr(self.world.temperature_k())

    # -- streaming ------------------------------------------------------------------------
    @property
    def streaming(self) -> bool:
        return self._stream_thread is not None and self._stream_thread.is_alive()

    def _stream_on(self) -> None:
        if self.streaming:
            return
        self._stop.clear()
        adc = self.world.new_adc_stream()
        self.stream_start_ns = time.time_ns()
        t0 = time.monotonic()
        self._stream_thread = threading.Thread(
            target=self._stream_loop, args=(adc, t0, self.stream_start_ns, self.samples_per_packet),
            name=f"{self.name}-udp", daemon=True)
        self._stream_thread.start()

    def _stream_off(self) -> None:
        thread = self._stream_thread
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=5)
        self._stream_thread = None

    def _stream_loop(self, adc: AdcStream, t0: float, t0_ns: int, n: int) -> None:
        fs = float(self.world.config.fs_hz)
        seq = 0
        first = 0
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            while not self._stop.is_set():
                with self._fault_lock:
                    skip, self.skip_pending = self.skip_pending, 0
                    loss, dest = self.loss_probability, self.dest
                seq += skip
                first += skip * n
                wait = t0 + (first + n) / fs - time.monotonic()
                if wait > 0:
                    if self._stop.wait(wait):
                        break
                elif wait < -0.5:
                    self.stats["late"] += 1
                samples = adc.block(first, n)
                header = PacketHeader(sequence=seq, first_sample=first,
                                      t_ns=t0_ns + round(first * 1e9 / fs), n_samples=n)
                if loss > 0 and self._loss_rng.random() < loss:
                    self.stats["dropped"] += 1
                else:
                    try:
                        sock.sendto(encode(header, samples), dest)
                        self.stats["sent"] += 1
                    except OSError as exc:  # e.g. unresolvable host: count it, keep the stream's timing
                        self.stats["send_errors"] += 1
                        if self.stats["send_errors"] == 1:
                            log.warning("%s: UDP send to %s failed: %s", self.name, dest, exc)
                seq += 1
                first += n
        except Exception:
            log.exception("%s: stream thread died", self.name)
        finally:
            sock.close()
