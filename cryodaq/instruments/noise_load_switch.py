"""QCoDeS driver for a hot/cold load switch in front of a paramp (Y-factor noise measurements).

Protocol (SCPI over TCP, LF terminated; ``sim_instruments.faces.noise_source_switch`` implements it):
``LOAD:SEL HOT|COLD``, ``LOAD:SEL?``, ``LOAD:TEMP:HOT?``, ``LOAD:TEMP:COLD?`` (kelvin),
``SYST:ERR?``. The hot load is a heated or 4 K-plate termination, the cold one sits at the
mixing chamber; each has its own thermometer.
"""

from __future__ import annotations

from typing import Any

from qcodes.instrument import VisaInstrument
from qcodes.parameters import Parameter
from qcodes.validators import Enum

from cryodaq.instruments.scpi_errors import SCPIErrorQueue


class NoiseLoadSwitch(SCPIErrorQueue, VisaInstrument):
    """Switches the paramp input between a hot and a cold matched load and reads their temperatures."""

    default_terminator = "\n"
    default_timeout = 5.0

    def __init__(self, name: str, address: str, **kwargs: Any) -> None:
        kwargs.setdefault("visalib", "@py")
        super().__init__(name, address, **kwargs)
        self.load: Parameter = self.add_parameter(
            "load", label="selected load", get_cmd="LOAD:SEL?", set_cmd="LOAD:SEL {}",
            val_mapping={"hot": "HOT", "cold": "COLD"}, vals=Enum("hot", "cold"),
            docstring="Which load the paramp input sees: 'hot' or 'cold' (the mixing-chamber load).",
        )
        self.hot_temperature: Parameter = self.add_parameter(
            "hot_temperature", unit="K", label="hot load temperature", get_cmd="LOAD:TEMP:HOT?",
            get_parser=float, docstring="Physical temperature of the hot load (its thermometer reading).",
        )
        self.cold_temperature: Parameter = self.add_parameter(
            "cold_temperature", unit="K", label="cold load temperature", get_cmd="LOAD:TEMP:COLD?",
            get_parser=float, docstring="Physical temperature of the cold load (mixing chamber).",
        )
        self.connect_message()

    def temperature(self, load: str) -> float:
        """Temperature (K) of ``load`` ('hot' or 'cold')."""
        if load not in ("hot", "cold"):
            raise ValueError(f"{self.name}: load must be 'hot' or 'cold', got {load!r}")
        return float(self.hot_temperature() if load == "hot" else self.cold_temperature())
