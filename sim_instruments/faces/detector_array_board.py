"""Simulated readout board of one detector array of a multi-station world (``world.arrays.<name>``).

It speaks the TES readout board's protocol (so cryodaq's ``TESReadoutBoard`` driver runs it):
every UDP packet carries all pixels' demultiplexed int16 streams, ``counts = counts_per_ampere · I``.
Its packets are stamped by the array's own clock (``world.arrays.<name>.clock``: offset, drift,
jitter, steps, disciplined or not), which it reports with ``TIME:SOUR?``. Common board commands
are those of :mod:`sim_instruments.servers.streaming_board`; this board adds:

=========================  ==========================================================
``CHAN:COUN?``             number of pixels (streams per packet)
``CHAN:CPA?``              counts per ampere, per pixel
``ADC:CPV?``               ADC counts per volt (1 V full scale: 32768)
``SIM:TRUTH:CLOCK?``       offset_s,drift_ppm,jitter_s of the board's clock
=========================  ==========================================================
"""

from __future__ import annotations

from sim_instruments.servers.scpi_parsing import fmt_floats
from sim_instruments.servers.streaming_board import StreamingBoardFace
from sim_instruments.world.detector_array import DetectorArrayModel, DetectorArrayStream
from sim_instruments.world.world import World

IDN = "cryodaq-sim,ARRAY-RB1,SIM0003,0.1"


class DetectorArrayBoardFace(StreamingBoardFace):
    """The board of the world's array named like the instrument (``world.arrays.<name>``)."""

    face = "detector_array_board"
    idn = IDN

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, name: str = "array",
                 stream_dest: str = "127.0.0.1,50000", samples_per_packet: int | None = None) -> None:
        array = world.arrays.get(name)
        if array is None:
            raise ValueError(f"{name}: the {self.face} face reads its array in world.arrays.{name}, which is not "
                             f"there (arrays: {sorted(world.arrays) or 'none'})")
        self.array: DetectorArrayModel = array
        cfg = array.config
        super().__init__(world, host, port, name, stream_dest, int(samples_per_packet or cfg.samples_per_packet),
                         seed_key=9, clock=cfg.clock)
        self._commands.update({
            "CHAN:COUN?": lambda args: str(self.array.n_channels),
            "CHAN:CPA?": lambda args: fmt_floats(self.array.counts_per_ampere()),
            "ADC:CPV?": lambda args: repr(32768.0),
            "SIM:TRUTH:CLOCK?": lambda args: fmt_floats([cfg.clock.offset_s, cfg.clock.drift_ppm, cfg.clock.jitter_s]),
        })

    @property
    def sample_rate(self) -> float:
        return float(self.array.config.fs_hz)

    @property
    def n_streams(self) -> int:
        return self.array.n_channels

    def _new_source(self, start_ns: int) -> DetectorArrayStream:
        return self.array.new_stream(start_ns)
