"""Base of the simulated microwave sources (SGS100A, N51x1): a source that may pump the paramp.

With the face option ``role: paramp_pump`` (the default) the source is the paramp's pump: its
frequency, power and RF output go to ``world.paramp.set_pump`` on every change (with
several pump faces, the last one set wins); ``role: none`` makes it a plain source.
"""

from __future__ import annotations

from typing import Any

from sim_instruments.servers.scpi_command_tree import BOOL, ScpiFace, number
from sim_instruments.world.world import World

ROLES = ("paramp_pump", "none")


class PumpSourceFace(ScpiFace):
    """Frequency/power/output settings that may drive the paramp pump."""

    freq_pattern = "[SOURce]:FREQuency[:CW]"
    power_pattern = "[SOURce]:POWer[:LEVel][:IMMediate][:AMPLitude]"
    output_pattern = "OUTPut[:STATe]"

    def __init__(self, world: World, host: str, port: int, name: str, role: str,
                 freq_range: tuple[float, float], power_range: tuple[float, float]) -> None:
        super().__init__(world, host, port, name)
        if role not in ROLES:
            raise ValueError(f"{name}: role must be one of {ROLES}, got {role!r}")
        self.role = role
        self.add_setting("frequency", self.freq_pattern, 1.0e9, number(*freq_range), self._push)
        self.add_setting("power", self.power_pattern, -30.0, number(*power_range), self._push)
        self.add_setting("output", self.output_pattern, False, BOOL, self._push)

    def _push(self, _value: Any = None) -> None:
        if self.role == "paramp_pump":
            self.world.paramp.set_pump(frequency_hz=self.values["frequency"], power_dbm=self.values["power"],
                                       on=bool(self.values["output"]))

    def after_reset(self) -> None:
        self._push()
