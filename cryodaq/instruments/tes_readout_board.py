"""QCoDeS driver for a TES readout board: digitised SQUID FLL outputs, one UDP stream per pixel.

Control is the streaming-board protocol (:mod:`cryodaq.instruments.streaming_board`,
docs/readout-stream.md) plus ``CHAN:COUN?``, ``CHAN:CPA?`` and ``ADC:CPV?``.
Every packet carries ``n_channels`` demultiplexed real int16 streams
(``n_streams = n_channels``), so there is no channelizer: triggers run on the
channels directly. ``sim_instruments.faces.tes_readout_board`` implements the protocol.

Calibration: while a channel's SQUID is locked, ``counts = counts_per_ampere · I_tes
+ baseline``, with ``counts_per_ampere = counts_per_volt · feedback_gain /
input_current_per_phi0`` (the SQUID controller's settings). Particle pulses lower
the TES current, so they are negative-going in counts at positive bias.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qcodes.parameters import Parameter

from cryodaq.instruments.streaming_board import StreamingBoard, parse_list
from cryodaq.readout.source import StreamDescription


class TESReadoutBoard(StreamingBoard):
    """A demultiplexing TES readout board (SI units: Hz, counts/A, counts/V)."""

    def __init__(self, name: str, address: str, **kwargs: Any) -> None:
        super().__init__(name, address, **kwargs)
        self.n_channels: Parameter = self.add_parameter(
            "n_channels", get_cmd="CHAN:COUN?", get_parser=int,
            docstring="Number of TES channels; each UDP packet carries this many streams.",
        )
        self.counts_per_ampere: Parameter = self.add_parameter(
            "counts_per_ampere", unit="1/A", label="counts per ampere", get_cmd="CHAN:CPA?",
            get_parser=parse_list, snapshot_value=True,
            docstring="ADC counts per ampere of TES current, per channel, while its SQUID is locked "
                      "(divide baseline-subtracted counts by it to get amperes).",
        )
        self.counts_per_volt: Parameter = self.add_parameter(
            "counts_per_volt", unit="1/V", label="ADC counts per volt", get_cmd="ADC:CPV?", get_parser=float,
            docstring="ADC counts per volt of FLL output.",
        )
        self.connect_message()

    def describe(self) -> StreamDescription:
        """``n_channels`` demultiplexed int16 streams; amperes = counts / counts_per_ampere."""
        n = int(self.n_channels())
        cpa = np.broadcast_to(np.asarray(self.counts_per_ampere(), dtype=float), (n,)).copy()
        return StreamDescription(kind="channels", sample_rate_hz=float(self.sample_rate()), n_channels=n,
                                 sample_dtype="int16", units="A", counts_per_unit=cpa, time_base=self.time_base(),
                                 source=self.name)

    def counts_to_amperes(self, counts: np.ndarray) -> np.ndarray:
        """Convert (..., n_channels) counts (baseline-subtracted) to amperes of TES current."""
        return np.asarray(counts, dtype=float) / np.asarray(self.counts_per_ampere(), dtype=float)
