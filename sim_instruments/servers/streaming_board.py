"""Shared part of the simulated readout boards: SCPI-like TCP control plus a paced UDP stream.

A board face subclasses :class:`StreamingBoardFace` and provides the sample rate,
the number of streams per packet and a source of samples (``_new_source(start_ns)``
returning an object with ``block(first, n)`` -> int16 ``(n,)`` or ``(n, n_streams)``,
and optionally its own ``clock``). The stream sends ``cryodaq.wire.packet`` datagrams
paced by the wall clock, stamped by the board's clock
(:class:`~sim_instruments.world.board_clock.BoardClock`: by default a counter at the
nominal rate set from the host's clock at stream start, ``board_counter``).
Commands every board answers (replies end with '\\n'):

=========================  ==========================================================
``*IDN?``                  the board's identity
``*RST`` / ``*CLS``        defaults and stream off / clear the error queue
``SYST:ERR?``              oldest queued error, ``0,"No error"`` when empty
``ADC:RATE?``              sample rate per stream (Hz)
``TIME:SOUR?``             the packet stamps' time source: ``source,uncertainty_s|UNKNOWN,disciplined``
``STRM:PKTS[?] <n>``       samples per stream per packet (settable while the stream is off)
``STRM:DEST[?] <h>,<p>``   UDP destination, e.g. ``127.0.0.1,50000``
``STRM:STAT[?] ON|OFF``    stream on (sequence and sample index restart at 0) / off
``SIM:FAULT:SKIP <n>``     next packet jumps n sequence numbers and n packets of samples
``SIM:FAULT:LOSS[?] <p>``  drop each packet with probability p
=========================  ==========================================================

A bad command or value is queued for ``SYST:ERR?`` and changes nothing; an unknown or
failed query sends no reply (the client times out), as a real SCPI instrument does.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol

import numpy as np

from cryodaq.wire.addresses import LOOPBACK, is_loopback
from cryodaq.wire.packet import HEADER_SIZE, MAX_DATAGRAM, PacketHeader, encode
from sim_instruments.servers.line_server import LineServer, ServedFace
from sim_instruments.servers.scpi_parsing import (
    ErrorQueue,
    ScpiError,
    no_args,
    parse_bool,
    parse_float,
    split_command,
    undefined_header,
)
from sim_instruments.world.board_clock import BoardClock, BoardClockConfig
from sim_instruments.world.world import World

log = logging.getLogger(__name__)


class SampleSource(Protocol):
    def block(self, first: int, n: int) -> np.ndarray: ...


#: how far (s) a simulated board's stream may fall behind real time before it skips ahead
MAX_LAG_S = 8.0


class StreamingBoardFace(ServedFace, ABC):
    """Control server on ``host:port`` and a UDP streamer; subclasses add their own commands."""

    face = ""
    idn = "cryodaq-sim,BOARD,SIM0000,0.1"

    def __init__(self, world: World, host: str, port: int, name: str, stream_dest: str,
                 samples_per_packet: int, seed_key: int = 7, clock: BoardClockConfig | None = None) -> None:
        self.world = world
        self.name = name
        self.seed_key = seed_key
        self.clock_config = clock or BoardClockConfig()
        self.errors = ErrorQueue()
        self.server = LineServer(self, host, port, reply_termination="\n", name=name)
        try:
            self._default_dest = self._parse_dest(stream_dest)
        except ScpiError as err:
            raise ValueError(f"{name}: stream_dest must be '<host>,<port>', got {stream_dest!r} ({err.message})") from None
        self._default_pkts = int(samples_per_packet)
        if not 1 <= self._default_pkts <= self.max_samples_per_packet:
            raise ValueError(f"{name}: samples_per_packet must be 1..{self.max_samples_per_packet}, "
                             f"got {samples_per_packet}")
        self._lock = threading.RLock()  # command handling
        self._fault_lock = threading.Lock()  # what the stream thread reads each packet
        self._stream_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._loss_rng = np.random.default_rng(np.random.SeedSequence(world.config.seed, spawn_key=(seed_key,)))
        self.stats = {"sent": 0, "dropped": 0, "late": 0, "send_errors": 0}
        self.stream_start_ns = 0
        self._n_stream = 0
        self.dest = self._default_dest
        self.samples_per_packet = self._default_pkts
        self.skip_pending = 0
        self.loss_probability = 0.0
        self._commands: dict[str, Callable[[str], str | None]] = {
            "*IDN?": self._idn, "*RST": self._rst, "*CLS": self._cls, "SYST:ERR?": self._syst_err,
            "ADC:RATE?": self._adc_rate, "TIME:SOUR?": self._time_source,
            "STRM:PKTS?": self._pkts_q, "STRM:PKTS": self._pkts,
            "STRM:DEST?": self._dest_q, "STRM:DEST": self._dest, "STRM:STAT?": self._stat_q,
            "STRM:STAT": self._stat, "SIM:FAULT:SKIP": self._skip, "SIM:FAULT:LOSS?": self._loss_q,
            "SIM:FAULT:LOSS": self._loss,
        }

    # -- what a board provides ----------------------------------------------------------
    @property
    @abstractmethod
    def sample_rate(self) -> float:
        """Samples per second per stream."""

    @property
    def n_streams(self) -> int:
        """Streams per packet (1 for a raw ADC)."""
        return 1

    @property
    def max_samples_per_packet(self) -> int:
        return (MAX_DATAGRAM - HEADER_SIZE) // (2 * self.n_streams)

    @abstractmethod
    def _new_source(self, start_ns: int) -> SampleSource:
        """A fresh sample stream whose sample 0 is taken at UTC ``start_ns``, at each stream start."""

    def _reset_state(self) -> None:
        """Defaults (``*RST``); subclasses extend it with their own settings."""
        self.dest = self._default_dest
        self.samples_per_packet = self._default_pkts
        self.skip_pending = 0
        self.loss_probability = 0.0

    # -- lifecycle ---------------------------------------------------------------------
    def stop(self) -> None:
        self._stream_off()
        super().stop()

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

    # -- common commands ------------------------------------------------------------------
    def _idn(self, args: str) -> str:
        return self.idn

    def _rst(self, args: str) -> None:
        no_args(args, "*RST")
        self._stream_off()
        self._reset_state()

    def _cls(self, args: str) -> None:
        self.errors.clear()

    def _syst_err(self, args: str) -> str:
        return self.errors.pop()

    def _adc_rate(self, args: str) -> str:
        return repr(float(self.sample_rate))

    def _time_source(self, args: str) -> str:
        no_args(args, "TIME:SOUR?")
        return BoardClock(self.clock_config, float(self.sample_rate), 0, 0, ()).describe()

    def _pkts_q(self, args: str) -> str:
        return str(self.samples_per_packet)

    def _pkts(self, args: str) -> None:
        value = parse_float(args, "STRM:PKTS")
        top = self.max_samples_per_packet
        if value != int(value) or not 1 <= value <= top:
            raise ScpiError(-222, f"Data out of range; STRM:PKTS must be an integer 1..{top}")
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

    # -- streaming ------------------------------------------------------------------------
    @property
    def streaming(self) -> bool:
        return self._stream_thread is not None and self._stream_thread.is_alive()

    def _stream_on(self) -> None:
        if self.streaming:
            return
        self._stop.clear()
        self.stream_start_ns = time.time_ns()
        t0 = time.monotonic()
        source = self._new_source(self.stream_start_ns)
        clock = getattr(source, "clock", None)
        if not isinstance(clock, BoardClock):
            clock = BoardClock(self.clock_config, float(self.sample_rate), self.stream_start_ns,
                               self.world.config.seed, (self.seed_key, self._n_stream))
        self._n_stream += 1
        self._stream_thread = threading.Thread(
            target=self._stream_loop,
            args=(source, clock, t0, self.samples_per_packet, self.n_streams),
            name=f"{self.name}-udp", daemon=True)
        self._stream_thread.start()

    def _stream_off(self) -> None:
        thread = self._stream_thread
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=5)
        self._stream_thread = None

    def _stream_loop(self, source: SampleSource, clock: BoardClock, t0: float, n: int, n_streams: int) -> None:
        fs = clock.true_rate_hz  # paced by the ADC's own (slightly off-nominal) crystal
        seq = 0
        first = 0
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if is_loopback(self.dest[0]):
            # sending to this machine: bind loopback, not (implicitly, on the first send) every interface
            sock.bind((LOOPBACK, 0))
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
                elif wait < -MAX_LAG_S:
                    # A real ADC does not slow down when its host is busy: packets it could not send in
                    # time are lost. Falling that far behind (a loaded machine), the simulated board skips
                    # to real time; the receiver sees the skipped packets as a sequence gap (packet loss).
                    behind = int(-wait * fs) // n
                    seq, first = seq + behind, first + behind * n
                    self.stats["late"] += behind
                samples = source.block(first, n)
                header = PacketHeader(sequence=seq, first_sample=first, t_ns=clock.stamp(first), n_samples=n,
                                      n_streams=n_streams)
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
