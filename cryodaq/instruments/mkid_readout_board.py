"""QCoDeS driver for an MKID readout board (tone comb + UDP sample stream).

Control is a SCPI-like text protocol over TCP (``TCPIP0::host::port::SOCKET``);
data are UDP datagrams in the format of :mod:`cryodaq.wire.packet`
(docs/readout-stream.md). ``sim_instruments.faces.mkid_readout_board`` implements the
same protocol, so this driver runs unchanged against the simulator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qcodes.parameters import Parameter
from qcodes.validators import Arrays, Numbers

from cryodaq.instruments.streaming_board import StreamingBoard, parse_list
from cryodaq.readout.source import StreamDescription


class MKIDReadoutBoard(StreamingBoard):
    """A frequency-multiplexed MKID readout board.

    Parameters are in SI units: frequencies in Hz, attenuations in dB, tone
    amplitudes as a fraction of the DAC full scale, phases in rad.
    """

    def __init__(self, name: str, address: str, **kwargs: Any) -> None:
        super().__init__(name, address, **kwargs)
        self.lo_frequency: Parameter = self.add_parameter(
            "lo_frequency", unit="Hz", label="LO frequency", get_cmd="LO:FREQ?", set_cmd="LO:FREQ {!r}",
            get_parser=float, set_parser=float, vals=Numbers(0, 20e9),
            docstring="Local oscillator; a tone at RF frequency f appears at IF f - LO.",
        )
        self.tone_count: Parameter = self.add_parameter(
            "tone_count", get_cmd="TONE:COUN?", get_parser=int, docstring="Number of tones in the comb."
        )
        self.tone_frequencies: Parameter = self.add_parameter(
            "tone_frequencies", unit="Hz", label="tone frequencies", get_cmd="TONE:FREQ?",
            set_cmd=lambda v: self._set_list("TONE:FREQ", v), get_parser=parse_list,
            vals=Arrays(min_value=0, max_value=20e9), snapshot_value=True,
            docstring="RF frequency of each readout tone.",
        )
        self.tone_amplitudes: Parameter = self.add_parameter(
            "tone_amplitudes", label="tone amplitudes", get_cmd="TONE:AMPL?",
            set_cmd=lambda v: self._set_list("TONE:AMPL", v), get_parser=parse_list,
            vals=Arrays(min_value=0, max_value=1), docstring="Tone amplitude, fraction of DAC full scale.",
        )
        self.tone_phases: Parameter = self.add_parameter(
            "tone_phases", unit="rad", label="tone phases", get_cmd="TONE:PHAS?",
            set_cmd=lambda v: self._set_list("TONE:PHAS", v), get_parser=parse_list,
            vals=Arrays(), docstring="Tone phase (chosen to keep the comb's crest factor low).",
        )
        self.dac_attenuation: Parameter = self.add_parameter(
            "dac_attenuation", unit="dB", label="DAC attenuation", get_cmd="ATT:DAC?", set_cmd="ATT:DAC {}",
            get_parser=float, vals=Numbers(0, 31.75), docstring="Output attenuator: sets the readout power.",
        )
        self.adc_attenuation: Parameter = self.add_parameter(
            "adc_attenuation", unit="dB", label="ADC attenuation", get_cmd="ATT:ADC?", set_cmd="ATT:ADC {}",
            get_parser=float, vals=Numbers(0, 31.75), docstring="Input attenuator in front of the ADC.",
        )
        self.connect_message()

    def tone_if_frequencies(self) -> np.ndarray:
        """Tone frequencies as the ADC sees them (RF - LO), in Hz."""
        return np.asarray(self.tone_frequencies(), dtype=float) - float(self.lo_frequency())

    def describe(self) -> StreamDescription:
        """One real int16 ADC stream carrying the tone comb (channels = tones)."""
        tones_rf = np.asarray(self.tone_frequencies(), dtype=float)
        tone_if = tones_rf - float(self.lo_frequency())
        return StreamDescription(kind="adc", sample_rate_hz=float(self.sample_rate()), n_channels=tones_rf.size,
                                 sample_dtype="int16", channel_coords={"tone_frequency_hz": tones_rf,
                                                                       "tone_if_hz": tone_if},
                                 time_base=self.time_base(), source=self.name)
