"""The window's docks: one module per view, each a QDockWidget redrawn from the model by a timer."""

from typing import TYPE_CHECKING

from cryodaq._lazy import lazy_exports

if TYPE_CHECKING:  # the public names (explicit re-exports); lazy_exports imports each on first use
    from cryodaq.gui.docks.base import Dock as Dock
    from cryodaq.gui.docks.histogram import HistogramDock as HistogramDock
    from cryodaq.gui.docks.housekeeping import HousekeepingDock as HousekeepingDock
    from cryodaq.gui.docks.iq import IQDock as IQDock
    from cryodaq.gui.docks.rate import RateDock as RateDock
    from cryodaq.gui.docks.spectrum import SpectrumDock as SpectrumDock
    from cryodaq.gui.docks.timestream import TimestreamDock as TimestreamDock
    from cryodaq.gui.docks.waterfall import WaterfallDock as WaterfallDock

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
