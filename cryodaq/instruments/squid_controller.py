"""QCoDeS driver for a multi-channel SQUID flux-locked-loop (FLL) controller (TES readout).

Protocol: SCPI-like text over TCP (``TCPIP0::host::port::SOCKET``, LF), channels
numbered from 1 (``CH<n>:LOCK``, ``CH<n>:RESET``, ``CH<n>:FB:GAIN``,
``CH<n>:FLUX:OFFS``, ``CH<n>:MIN?``, ``CHAN:COUN?``, ``SYST:ERR?``);
``sim_instruments.faces.squid_controller`` implements it.

Locked, a channel's output is ``V = feedback_gain · (I_tes / input_current_per_phi0
− k − flux_offset)`` volts, ``k`` an integer fixed when the loop locks: every
lock or :meth:`SQUIDChannel.reset` may land one flux quantum away, so the output
baseline can step by ``feedback_gain`` volts (treat it as a new baseline).
"""

from __future__ import annotations

from typing import Any

from qcodes.instrument import (
    ChannelList,
    ChannelTuple,
    InstrumentChannel,
    VisaInstrument,
)
from qcodes.parameters import Parameter
from qcodes.validators import Bool, Numbers

from cryodaq.instruments.scpi_errors import SCPIErrorQueue


class SQUIDChannel(InstrumentChannel):
    """One SQUID and its FLL (channel ``number``, 1-based; TES pixel ``number − 1``)."""

    def __init__(self, parent: SQUIDController, name: str, number: int) -> None:
        super().__init__(parent, name)
        self.number = number
        prefix = f"CH{number}"
        self.locked: Parameter = self.add_parameter(
            "locked", label=f"SQUID {number} locked", get_cmd=f"{prefix}:LOCK?", set_cmd=f"{prefix}:LOCK {{}}",
            val_mapping={True: 1, False: 0}, vals=Bool(),
            docstring="Whether the flux-locked loop is closed; unlocked, the output follows the periodic "
                      "V-Φ curve and is not a measurement.",
        )
        self.feedback_gain: Parameter = self.add_parameter(
            "feedback_gain", unit="V/Phi0", label=f"SQUID {number} FLL gain", get_cmd=f"{prefix}:FB:GAIN?",
            set_cmd=f"{prefix}:FB:GAIN {{!r}}", get_parser=float, set_parser=float, vals=Numbers(0.01, 5.0),
            docstring="FLL transfer coefficient: output volts per flux quantum of input flux.",
        )
        self.flux_offset: Parameter = self.add_parameter(
            "flux_offset", unit="Phi0", label=f"SQUID {number} flux offset", get_cmd=f"{prefix}:FLUX:OFFS?",
            set_cmd=f"{prefix}:FLUX:OFFS {{!r}}", get_parser=float, set_parser=float, vals=Numbers(-10.0, 10.0),
            docstring="Flux offset; shifts the locked output by -feedback_gain * flux_offset volts.",
        )
        self.input_current_per_phi0: Parameter = self.add_parameter(
            "input_current_per_phi0", unit="A/Phi0", label=f"SQUID {number} input coupling",
            get_cmd=f"{prefix}:MIN?", get_parser=float,
            docstring="Input-coil current per flux quantum (1/M_in), fixed by the SQUID.",
        )

    def reset(self) -> None:
        """Reset the FLL integrator: the loop opens and relocks (possibly one flux quantum away)."""
        self.write(f"CH{self.number}:RESET")

    def volts_per_ampere(self) -> float:
        """FLL output volts per ampere of TES current (feedback_gain / input_current_per_phi0)."""
        return float(self.feedback_gain()) / float(self.input_current_per_phi0())


class SQUIDController(SCPIErrorQueue, VisaInstrument):
    """A multi-channel SQUID FLL controller; ``channels`` (also ``ch1`` ... ``chN``) per SQUID."""

    default_terminator = "\n"
    default_timeout = 5.0

    def __init__(self, name: str, address: str, **kwargs: Any) -> None:
        kwargs.setdefault("visalib", "@py")
        super().__init__(name, address, **kwargs)
        self.n_channels: Parameter = self.add_parameter(
            "n_channels", get_cmd="CHAN:COUN?", get_parser=int, docstring="Number of SQUID channels.",
        )
        count = int(self.n_channels())
        channels = ChannelList(self, "channels", SQUIDChannel)
        for number in range(1, count + 1):
            channel = SQUIDChannel(self, f"ch{number}", number)
            channels.append(channel)
            self.add_submodule(f"ch{number}", channel)
        self.channels: ChannelTuple = self.add_submodule("channels", channels.to_channel_tuple())
        self.connect_message()

    def reset_all(self) -> None:
        """Reset every channel's FLL (e.g. after changing the TES bias)."""
        for channel in self.channels:
            channel.reset()
        self.check_errors()
