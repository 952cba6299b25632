"""cryodaq.gui: the pyqtgraph window for live (ZeroMQ) and replayed (Zarr) runs — ``cryodaq gui``.

Qt is imported only by the modules that need it (``app``, ``sources``, ``channels``,
``docks``, ``snapshot``); ``cli``, ``model`` and ``peakfit`` work without the ``gui`` extra.
See docs/gui.md.
"""

from typing import TYPE_CHECKING

from cryodaq._lazy import lazy_exports

if TYPE_CHECKING:  # the public names (explicit re-exports); lazy_exports imports each on first use
    from cryodaq.gui.app import MainWindow as MainWindow, run_gui as run_gui
    from cryodaq.gui.cli import GuiUnavailableError as GuiUnavailableError, require_qt as require_qt
    from cryodaq.gui.model import LiveModel as LiveModel
    from cryodaq.gui.snapshot import save_snapshot as save_snapshot
    from cryodaq.gui.sources import LiveSource as LiveSource, ReplaySource as ReplaySource

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
