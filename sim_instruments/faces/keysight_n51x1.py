"""Simulated Keysight N51x1 microwave source (N5171B/N5173B/N5181B/N5183B).

It answers what ``qcodes.instrument_drivers.Keysight.KeysightN51x1`` (and its N5173B/N5183B
subclasses) sends on init, on ``snapshot(update=True)`` and when a parameter is set; option
``role`` as in :mod:`sim_instruments.faces.pump_source`.
"""

from __future__ import annotations

from typing import ClassVar

from sim_instruments.faces.pump_source import PumpSourceFace
from sim_instruments.servers.scpi_command_tree import BOOL, choice, number
from sim_instruments.world.world import World


class KeysightN51x1Face(PumpSourceFace):
    """Keysight N51x1 MXG/EXG analog source; ``options`` sets the frequency option (e.g. "520" = 20 GHz)."""

    face = "keysight_n51x1"
    _FREQ_OPTIONS: ClassVar[dict[str, float]] = {"501": 1e9, "503": 3e9, "506": 6e9, "513": 13e9, "520": 20e9, "532": 31.8e9, "540": 40e9}

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, name: str = "n51x1",
                 role: str = "paramp_pump", model: str = "N5183B", options: str = "520,UNW,1E1") -> None:
        fmax = [f for opt, f in self._FREQ_OPTIONS.items() if opt in str(options)]
        if not fmax:
            raise ValueError(f"{name}: options must hold a frequency option {sorted(self._FREQ_OPTIONS)}, "
                             f"got {options!r}")
        self.idn = f"Keysight Technologies,{model},MY00051001,B.01.86"
        self.options = str(options)
        super().__init__(world, host, port, name, role, freq_range=(9e3, max(fmax)), power_range=(-144.0, 19.0))
        s = self.add_setting
        s("phase", "[SOURce]:PHASe[:ADJust]", 0.0, number())
        s("rosc_auto", "[SOURce]:ROSCillator:SOURce:AUTO", True, BOOL)
        s("pulm_state", "[SOURce]:PULM:STATe", False, BOOL)
        s("pulm_source", "[SOURce]:PULM:SOURce", "INT", choice("INTernal", "EXTernal"))
        self._push()
