"""sim_instruments.faces: one module per simulated instrument, each speaking the real instrument's protocol.

A face is built as ``Face(world, host=, port=, name=, **options)`` and served with
``start()``/``stop()``; :data:`FACES` (``registry.py``) maps the face names station files use to
the classes. Helpers several faces share have their own small modules: ``fridge_faults`` (the
simulator-only fridge commands), ``pump_source`` (the pump-source base), ``tes_access`` (reaching
the TES array) and ``vna_settings`` (VNA sweep settings, formats, encodings).
"""

from typing import TYPE_CHECKING

from cryodaq._lazy import lazy_exports

if TYPE_CHECKING:  # the public names (explicit re-exports); lazy_exports imports each on first use
    from sim_instruments.faces.bluefors import BlueforsControlUnitFace as BlueforsControlUnitFace
    from sim_instruments.faces.dastard import DastardFace as DastardFace
    from sim_instruments.faces.detector_array_board import DetectorArrayBoardFace as DetectorArrayBoardFace
    from sim_instruments.faces.fridge_faults import sim_fridge_command as sim_fridge_command
    from sim_instruments.faces.keithley2450 import Keithley2450Face as Keithley2450Face
    from sim_instruments.faces.keysight_n51x1 import KeysightN51x1Face as KeysightN51x1Face
    from sim_instruments.faces.keysight_n9030b import KeysightN9030BFace as KeysightN9030BFace
    from sim_instruments.faces.keysight_pna import KeysightPnaFace as KeysightPnaFace
    from sim_instruments.faces.lakeshore372 import Lakeshore372Face as Lakeshore372Face
    from sim_instruments.faces.mkid_readout_board import MkidReadoutBoardFace as MkidReadoutBoardFace
    from sim_instruments.faces.noise_source_switch import NoiseSourceSwitchFace as NoiseSourceSwitchFace
    from sim_instruments.faces.oxford_triton import OxfordTritonFace as OxfordTritonFace
    from sim_instruments.faces.pump_source import PumpSourceFace as PumpSourceFace
    from sim_instruments.faces.registry import FACES as FACES, Face as Face
    from sim_instruments.faces.rs_sgs100a import RohdeSchwarzSGS100AFace as RohdeSchwarzSGS100AFace
    from sim_instruments.faces.rs_znb import RohdeSchwarzZnbFace as RohdeSchwarzZnbFace
    from sim_instruments.faces.squid_controller import SquidControllerFace as SquidControllerFace
    from sim_instruments.faces.tes_access import require_tes as require_tes
    from sim_instruments.faces.tes_readout_board import TesReadoutBoardFace as TesReadoutBoardFace
    from sim_instruments.faces.yokogawa_gs200 import YokogawaGS200Face as YokogawaGS200Face

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
