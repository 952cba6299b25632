"""The face registry: the face names of station files (``cryodaq.simulation.instruments``) -> face classes.

A face is built as ``factory(world, host=..., port=..., name=..., **options)`` and served with
``start()`` / ``stop()``; registering one is adding its class here under the name station files use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from sim_instruments.faces.bluefors import BlueforsControlUnitFace
from sim_instruments.faces.dastard import DastardFace
from sim_instruments.faces.detector_array_board import DetectorArrayBoardFace
from sim_instruments.faces.keithley2450 import Keithley2450Face
from sim_instruments.faces.keysight_n51x1 import KeysightN51x1Face
from sim_instruments.faces.keysight_n9030b import KeysightN9030BFace
from sim_instruments.faces.keysight_pna import KeysightPnaFace
from sim_instruments.faces.lakeshore372 import Lakeshore372Face
from sim_instruments.faces.mkid_readout_board import MkidReadoutBoardFace
from sim_instruments.faces.noise_source_switch import NoiseSourceSwitchFace
from sim_instruments.faces.oxford_triton import OxfordTritonFace
from sim_instruments.faces.rs_sgs100a import RohdeSchwarzSGS100AFace
from sim_instruments.faces.rs_znb import RohdeSchwarzZnbFace
from sim_instruments.faces.squid_controller import SquidControllerFace
from sim_instruments.faces.tes_readout_board import TesReadoutBoardFace
from sim_instruments.faces.yokogawa_gs200 import YokogawaGS200Face

__all__ = ["FACES", "Face"]


class Face(Protocol):
    """What a face is: built as ``factory(world, host=, port=, name=, **options)``."""

    port: int

    def start(self) -> Any: ...

    def stop(self) -> None: ...


#: face name (as station files write it) -> factory
FACES: dict[str, Callable[..., Face]] = {
    "lakeshore372": Lakeshore372Face,
    "mkid_readout_board": MkidReadoutBoardFace,
    # fridge controllers (the Lakeshore 372 above is the third)
    "oxford_triton": OxfordTritonFace,
    "bluefors": BlueforsControlUnitFace,
    # paramp: pump sources, flux bias, noise analyzer, hot/cold load switch
    "rs_sgs100a": RohdeSchwarzSGS100AFace,
    "keysight_n51x1": KeysightN51x1Face,
    "yokogawa_gs200": YokogawaGS200Face,
    "keysight_n9030b": KeysightN9030BFace,
    "noise_source_switch": NoiseSourceSwitchFace,
    # TES: bias source, SQUID FLL controller, demultiplexed readout (need world.tes.enabled)
    "keithley2450": Keithley2450Face,
    "squid_controller": SquidControllerFace,
    "tes_readout_board": TesReadoutBoardFace,
    # NIST DASTARD publishing triggered records of the TES array over ZeroMQ (tcp://host:base address)
    "dastard": DastardFace,
    # detector arrays with their own clocks, hit by common muons (world.arrays, world.cosmics)
    "detector_array_board": DetectorArrayBoardFace,
    # vector network analysers (S21 of the world's feedline and amplifier chain)
    "keysight_pna": KeysightPnaFace,
    "rs_znb": RohdeSchwarzZnbFace,
}
