"""Simulated TES readout board: digitises the SQUID FLL outputs of every pixel and streams them.

Each UDP packet (``cryodaq.wire.packet``) carries ``n_streams = n_channels``
demultiplexed real int16 streams, sample-major, at ``world.tes.fs_hz`` per channel
(100 kS/s, 512 samples per packet by default: 8 232-byte datagrams every 5.12 ms
for 8 channels). The samples are ``world.tes`` stream blocks (:mod:`sim_instruments.world.tes_array`).
Common board commands (``*IDN?``, ``*RST``, ``*CLS``, ``SYST:ERR?``, ``ADC:RATE?``,
``STRM:PKTS``, ``STRM:DEST``, ``STRM:STAT``, ``SIM:FAULT:SKIP``, ``SIM:FAULT:LOSS``)
are those of :mod:`sim_instruments.servers.streaming_board`; this board adds:

=========================  ==========================================================
``CHAN:COUN?``             number of channels (streams per packet)
``CHAN:CPA?``              counts per ampere of TES current, per channel (comma list;
                           the FLL gain is read back from the SQUID controller)
``ADC:CPV?``               ADC counts per volt of FLL output
``SIM:TRUTH:BIAS?``        bias current of each pixel (A)
``SIM:TRUTH:ITES?``        steady-state TES current of each pixel (A)
``SIM:TRUTH:RATE?``        particle rate per pixel (Hz)
=========================  ==========================================================
"""

from __future__ import annotations

from sim_instruments.faces.tes_access import require_tes
from sim_instruments.servers.scpi_parsing import fmt_floats
from sim_instruments.servers.streaming_board import StreamingBoardFace
from sim_instruments.world.tes_array import TESStream
from sim_instruments.world.world import World

IDN = "cryodaq-sim,TES-RB1,SIM0002,0.1"


class TesReadoutBoardFace(StreamingBoardFace):
    """The TES board face: control server on ``host:port`` and an ``n_channels``-stream UDP streamer."""

    face = "tes_readout_board"
    idn = IDN

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, name: str = "tes_readout",
                 stream_dest: str = "127.0.0.1,50000", samples_per_packet: int | None = None) -> None:
        self.tes = require_tes(world, name, self.face)
        super().__init__(world, host, port, name, stream_dest,
                         int(samples_per_packet or self.tes.config.samples_per_packet), seed_key=8)
        self._commands.update({
            "CHAN:COUN?": lambda args: str(self.tes.n_channels),
            "CHAN:CPA?": lambda args: fmt_floats(self.tes.counts_per_ampere()),
            "ADC:CPV?": lambda args: repr(float(self.tes.config.adc_counts_per_volt)),
            "SIM:TRUTH:BIAS?": lambda args: fmt_floats(self.tes.bias_current()),
            "SIM:TRUTH:ITES?": lambda args: fmt_floats(self.tes.current_operating_point().i_tes),
            "SIM:TRUTH:RATE?": lambda args: repr(float(self.tes.config.rate_hz)),
        })

    @property
    def sample_rate(self) -> float:
        return float(self.tes.config.fs_hz)

    @property
    def n_streams(self) -> int:
        return self.tes.n_channels

    def _new_source(self, start_ns: int) -> TESStream:
        return self.tes.new_stream()
