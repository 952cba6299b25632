"""cryodaq.gui: the pyqtgraph window for live (ZeroMQ) and replayed (Zarr) runs — ``cryodaq gui``.

Qt is imported only by the modules that need it (``app``, ``sources``, ``channels``,
``docks``, ``snapshot``); ``cli``, ``model`` and ``peakfit`` work without the ``gui`` extra.
See docs/gui.md.
"""
