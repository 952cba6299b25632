"""sim_instruments.world: the simulated physics, no protocol or socket code (docs/sim-instruments.md).

- :class:`World` (``world.py``) holds one of each component, behind one lock, on one clock and seed:
  the fridge (:class:`FridgeModel`), the MKID feedline (:class:`FeedlineModel`), the paramp
  (:class:`ParampModel`) and the TES array (:class:`TESArrayModel`); it makes the readout ADC streams
  (:class:`AdcStream`: tones through the feedline, photons, noise); detector arrays with their own
  board clocks (:class:`DetectorArrayModel`, :class:`BoardClock`) and the muons, glitches and photons
  that hit them (:class:`ParticleSource`).
- What several faces share and is physics lives here too: the heater PID loop (:class:`PidLoop`),
  the thermometer curve (:func:`ruox_ohm`) and what a VNA measures (:class:`VnaModel`).
"""

from typing import TYPE_CHECKING

from cryodaq._lazy import lazy_exports

if TYPE_CHECKING:  # the public names (explicit re-exports); lazy_exports imports each on first use
    from sim_instruments.world.adc_stream import (
        AdcChainConfig as AdcChainConfig,
        AdcStream as AdcStream,
        ReadoutState as ReadoutState,
    )
    from sim_instruments.world.board_clock import BoardClock as BoardClock, BoardClockConfig as BoardClockConfig
    from sim_instruments.world.detector_array import (
        DetectorArrayConfig as DetectorArrayConfig,
        DetectorArrayModel as DetectorArrayModel,
        DetectorArrayStream as DetectorArrayStream,
    )
    from sim_instruments.world.feedline import FeedlineConfig as FeedlineConfig, FeedlineModel as FeedlineModel
    from sim_instruments.world.fridge import FridgeConfig as FridgeConfig, FridgeModel as FridgeModel
    from sim_instruments.world.heater_control import PidLoop as PidLoop, heater_power_w as heater_power_w
    from sim_instruments.world.noise import NoiseConfig as NoiseConfig, TLSNoise as TLSNoise, WhiteNoise as WhiteNoise
    from sim_instruments.world.paramp import (
        ParampConfig as ParampConfig,
        ParampModel as ParampModel,
        ParampState as ParampState,
        effective_temperature_k as effective_temperature_k,
    )
    from sim_instruments.world.particles import (
        EVENT_DTYPE as EVENT_DTYPE,
        HIT_DTYPE as HIT_DTYPE,
        ArrayGeometry as ArrayGeometry,
        CosmicsConfig as CosmicsConfig,
        ParticleSource as ParticleSource,
    )
    from sim_instruments.world.photons import (
        PhotonConfig as PhotonConfig,
        PhotonTrains as PhotonTrains,
        TRUTH_DTYPE as TRUTH_DTYPE,
    )
    from sim_instruments.world.tes_array import (
        OperatingPoint as OperatingPoint,
        SquidState as SquidState,
        TESArrayModel as TESArrayModel,
        TESConfig as TESConfig,
        TESStream as TESStream,
    )
    from sim_instruments.world.thermometer import ruox_ohm as ruox_ohm
    from sim_instruments.world.vna import VnaFrontEnd as VnaFrontEnd, VnaModel as VnaModel
    from sim_instruments.world.world import World as World, WorldConfig as WorldConfig

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
