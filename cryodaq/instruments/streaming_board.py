"""Base qcodes driver for readout boards that stream UDP sample packets.

Control is a SCPI-like text protocol over TCP (``TCPIP0::host::port::SOCKET``);
data are UDP datagrams in the format of :mod:`cryodaq.wire.packet`
(docs/readout-stream.md). The MKID and TES readout boards share this part, and
with it they implement the :class:`~cryodaq.readout.source.ReadoutSource` seam.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qcodes.instrument import VisaInstrument
from qcodes.parameters import Parameter
from qcodes.validators import Enum, Strings

from cryodaq.errors import InstrumentError
from cryodaq.instruments.scpi_errors import SCPIErrorQueue
from cryodaq.readout.source import TimeBase
from cryodaq.readout.udp_receiver import UDPReceiver


def parse_list(text: str) -> np.ndarray:
    text = text.strip()
    if not text:
        return np.zeros(0)
    return np.array([float(v) for v in text.split(",")])


def format_list(values: Any) -> str:
    return ",".join(repr(float(v)) for v in np.atleast_1d(np.asarray(values, dtype=float)))


class StreamingBoard(SCPIErrorQueue, VisaInstrument):
    """Base of readout boards that stream UDP packets (docs/readout-stream.md).

    Holds what every streaming board shares: sample rate, packet size, the UDP
    destination and stream start/stop, the SCPI error queue, and the
    :class:`~cryodaq.readout.source.ReadoutSource` methods but ``describe``, which each
    subclass gives (what its stream carries).
    """

    default_terminator = "\n"
    default_timeout = 5.0

    def __init__(self, name: str, address: str, **kwargs: Any) -> None:
        kwargs.setdefault("visalib", "@py")
        super().__init__(name, address, **kwargs)
        self.sample_rate: Parameter = self.add_parameter(
            "sample_rate", unit="Hz", label="sample rate", get_cmd="ADC:RATE?", get_parser=float,
            docstring="Sample rate of each streamed channel.",
        )
        self.samples_per_packet: Parameter = self.add_parameter(
            "samples_per_packet", get_cmd="STRM:PKTS?", get_parser=int,
            docstring="Samples per stream in each UDP packet.",
        )
        self.stream_destination: Parameter = self.add_parameter(
            "stream_destination", label="UDP destination host,port", get_cmd="STRM:DEST?",
            set_cmd="STRM:DEST {}", vals=Strings(), docstring="Where the board sends its UDP packets.",
        )
        self.time_source: Parameter = self.add_parameter(
            "time_source", label="time source of the packet stamps", get_cmd="TIME:SOUR?",
            docstring="What stamps the packets: 'source,uncertainty_s|UNKNOWN,disciplined' (docs/readout-stream.md).",
        )
        self.streaming: Parameter = self.add_parameter(
            "streaming", get_cmd="STRM:STAT?", set_cmd="STRM:STAT {}",
            val_mapping={True: 1, False: 0}, vals=Enum(True, False), docstring="Whether the board streams.",
        )

    def time_base(self) -> TimeBase:
        """The packet stamps' :class:`~cryodaq.readout.source.TimeBase`, as the board reports it (``TIME:SOUR?``)."""
        reply = str(self.time_source()).strip()
        parts = [p.strip() for p in reply.split(",")]
        try:
            if len(parts) != 3 or not parts[0] or parts[2] not in ("0", "1"):
                raise ValueError("expected 3 fields")
            uncertainty = None if parts[1].upper() == "UNKNOWN" else float(parts[1])
        except ValueError:
            raise InstrumentError(self.name, getattr(self, "address", None),
                                  f"TIME:SOUR? replied {reply!r}; expected 'source,uncertainty_s|UNKNOWN,0|1'") from None
        return TimeBase(parts[0], uncertainty, parts[2] == "1", detail=f"as {self.name} reports it")

    def _set_list(self, command: str, values: Any) -> None:
        self.write(f"{command} {format_list(values)}")

    def start_stream(self, host: str, port: int) -> None:
        """Send the UDP stream to ``host:port`` and start it."""
        self.stream_destination(f"{host},{int(port)}")
        self.streaming(True)
        self.check_errors()

    def stop_stream(self) -> None:
        self.streaming(False)

    # --- ReadoutSource -------------------------------------------------------
    def configure(self, **settings: Any) -> None:
        """Set parameters by name (validators and station safety limits apply), e.g. ``tone_frequencies=...``."""
        for key, value in settings.items():
            param = self.parameters.get(key)
            if param is None or not param.settable:
                settable = sorted(k for k, p in self.parameters.items() if p.settable)
                raise InstrumentError(self.name, getattr(self, "address", None),
                                      f"has no settable parameter {key!r} (settable: {settable})")
            param(value)

    def is_streaming(self) -> bool:
        return bool(self.streaming())

    def open_receiver(self, host: str, port: int, *, packets_per_block: int, queue_blocks: int) -> UDPReceiver:
        """A receiver for this board's packets, bound to ``host:port`` (not started)."""
        return UDPReceiver(host, port, packets_per_block=packets_per_block, queue_blocks=queue_blocks)
