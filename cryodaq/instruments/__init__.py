"""QCoDeS drivers and meta-instruments written for cryodaq.

Vendor instruments that QCoDeS already drives (Lakeshore 372, Keysight PNA, ...)
are used through QCoDeS's own drivers, named by their qcodes path in station files.
"""

from cryodaq.instruments.bluefors import BlueforsControlUnit
from cryodaq.instruments.fridge import Fridge, StabilityResult
from cryodaq.instruments.mkid_readout_board import MKIDReadoutBoard
from cryodaq.instruments.noise_load_switch import NoiseLoadSwitch
from cryodaq.instruments.parametric_amplifier import ParametricAmplifier
from cryodaq.instruments.reliability import RetryPolicy, make_reliable
from cryodaq.instruments.rs_znb import RohdeSchwarzZNBSocket
from cryodaq.instruments.squid_controller import SQUIDChannel, SQUIDController
from cryodaq.instruments.streaming_board import StreamingBoard
from cryodaq.instruments.tes_readout_board import TESReadoutBoard
from cryodaq.instruments.vna import VNASweep, measure_s21

__all__ = ["MKIDReadoutBoard", "SQUIDChannel", "SQUIDController", "StreamingBoard", "TESReadoutBoard"]
__all__ += ["BlueforsControlUnit", "Fridge", "RetryPolicy", "StabilityResult", "make_reliable"]
__all__ += ["NoiseLoadSwitch", "ParametricAmplifier"]
__all__ += ["RohdeSchwarzZNBSocket", "VNASweep", "measure_s21"]
