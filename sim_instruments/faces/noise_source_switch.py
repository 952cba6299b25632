"""Simulated hot/cold load switch in front of the paramp, for Y-factor noise measurements.

A small SCPI instrument (driver: ``cryodaq.instruments.NoiseLoadSwitch``), LF terminated:

=====================  =========================================================
``*IDN?``              ``cryodaq-sim,NOISE-LOAD-SW,SIM0001,0.1``
``LOAD:SEL HOT|COLD``  connect the paramp input to the hot or the cold load
``LOAD:SEL?``          ``HOT`` or ``COLD``
``LOAD:TEMP:HOT?``     hot-load thermometer reading (K): ``world.paramp.hot_load`` + the bench's offset
``LOAD:TEMP:COLD?``    cold-load thermometer reading (K): the mixing chamber + the bench's offset
``SYST:ERR?``          oldest error, ``0,"No error"`` when none
=====================  =========================================================

The selection goes to ``world.paramp.select_load``; ``*RST`` selects COLD.
"""

from __future__ import annotations

from sim_instruments.servers.scpi_command_tree import ScpiFace, choice
from sim_instruments.world.world import World


class NoiseSourceSwitchFace(ScpiFace):
    face = "noise_source_switch"
    idn = "cryodaq-sim,NOISE-LOAD-SW,SIM0001,0.1"

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, name: str = "load_switch") -> None:
        super().__init__(world, host, port, name)
        self.add_setting("load", "LOAD[:SELect]", "COLD", choice("HOT", "COLD"), self._push)
        self.commands.add("LOAD:TEMPerature:HOT", query=lambda s, a: f"{self._temperature('hot'):.6E}")
        self.commands.add("LOAD:TEMPerature:COLD", query=lambda s, a: f"{self._temperature('cold'):.6E}")
        self._push()

    def _temperature(self, load: str) -> float:
        """The load's thermometer: the truth + the bench's offset (world.paramp.bench); the cold one
        is the mixing chamber's, with its reading noise."""
        return self.world.paramp.thermometer_reading_k(load)

    def _push(self, _value: object = None) -> None:
        self.world.paramp.select_load(self.values["load"].lower())

    def after_reset(self) -> None:
        self._push()
