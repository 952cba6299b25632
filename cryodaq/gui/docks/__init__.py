"""The window's docks: one module per view, each a QDockWidget redrawn from the model by a timer."""

from cryodaq.gui.docks.base import Dock
from cryodaq.gui.docks.histogram import HistogramDock
from cryodaq.gui.docks.housekeeping import HousekeepingDock
from cryodaq.gui.docks.iq import IQDock
from cryodaq.gui.docks.rate import RateDock
from cryodaq.gui.docks.spectrum import SpectrumDock
from cryodaq.gui.docks.timestream import TimestreamDock
from cryodaq.gui.docks.waterfall import WaterfallDock

__all__ = ["Dock", "HistogramDock", "HousekeepingDock", "IQDock", "RateDock", "SpectrumDock", "TimestreamDock",
           "WaterfallDock"]
