"""cryodaq.instruments: QCoDeS drivers and meta-instruments written for cryodaq.

Vendor instruments that QCoDeS already drives (Lakeshore 372, Keysight PNA, ...)
are used through QCoDeS's own drivers, named by their qcodes path in station files.
The readout boards here (cryodaq's own MKID and TES boards, CRS boards over Tuber) and
:class:`DastardPublisher` (a running NIST DASTARD) implement the
:class:`~cryodaq.readout.source.ReadoutSource` seam.
"""

from typing import TYPE_CHECKING

from cryodaq._lazy import lazy_exports

if TYPE_CHECKING:  # the public names (explicit re-exports); lazy_exports imports each on first use
    from cryodaq.instruments.bluefors import BlueforsControlUnit as BlueforsControlUnit
    from cryodaq.instruments.crs import CRSBoard as CRSBoard, CRSChannel as CRSChannel, CRSModule as CRSModule
    from cryodaq.instruments.dastard import DastardPublisher as DastardPublisher
    from cryodaq.instruments.fridge import Fridge as Fridge, StabilityResult as StabilityResult
    from cryodaq.instruments.mkid_readout_board import MKIDReadoutBoard as MKIDReadoutBoard
    from cryodaq.instruments.noise_load_switch import NoiseLoadSwitch as NoiseLoadSwitch
    from cryodaq.instruments.parametric_amplifier import ParametricAmplifier as ParametricAmplifier
    from cryodaq.instruments.reliability import RetryPolicy as RetryPolicy, make_reliable as make_reliable
    from cryodaq.instruments.rs_znb import RohdeSchwarzZNBSocket as RohdeSchwarzZNBSocket
    from cryodaq.instruments.squid_controller import (
        SQUIDChannel as SQUIDChannel,
        SQUIDController as SQUIDController,
    )
    from cryodaq.instruments.streaming_board import StreamingBoard as StreamingBoard
    from cryodaq.instruments.tes_readout_board import TESReadoutBoard as TESReadoutBoard
    from cryodaq.instruments.tuber import TuberClient as TuberClient, TuberError as TuberError
    from cryodaq.instruments.vna import VNASweep as VNASweep, measure_s21 as measure_s21

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
