"""What every dock shares: the model, the channel selection, redraw-when-changed, snapshot data."""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtWidgets

from cryodaq.gui.model import LiveModel

MAX_CURVES = 32  # selected channels drawn at most per plot; more is unreadable and slow

# Distinct colours (Okabe-Ito and friends), readable on the dark plot background.
_PALETTE = ["#56B4E9", "#E69F00", "#009E73", "#F0E442", "#CC79A7", "#D55E00", "#0072B2", "#FFFFFF",
            "#88CCEE", "#DDCC77", "#44AA99", "#AA4499", "#117733", "#CC6677", "#999933", "#882255"]


def channel_color(ch: int) -> str:
    """The colour a channel has in every dock."""
    return _PALETTE[int(ch) % len(_PALETTE)]


def make_plot(*, x: str = "", y: str = "", date_axis: bool = False) -> pg.PlotWidget:
    """A plot set up for live data: auto peak downsampling, clip to view, grid."""
    axis = {"bottom": pg.DateAxisItem()} if date_axis else {}
    w = pg.PlotWidget(axisItems=axis)
    item = w.getPlotItem()
    item.setDownsampling(auto=True, mode="peak")
    item.setClipToView(True)
    item.showGrid(x=True, y=True, alpha=0.25)
    if x:
        item.setLabel("bottom", x)
    if y:
        item.setLabel("left", y)
    return w


class Dock(QtWidgets.QDockWidget):
    """A view of the model. Subclasses implement :meth:`draw` (and :meth:`snapshot_data`).

    :meth:`refresh` is called by the window's redraw timer; it calls :meth:`draw`
    only when a topic in ``topics`` changed or the selection did.
    """

    title = ""
    topics: tuple[str, ...] = ()
    min_interval_s = 0.0  # redraw at most this often, however often the data change

    def __init__(self, model: LiveModel, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(self.title, parent)
        self.setObjectName(type(self).__name__)
        self.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.model = model
        self.selected = np.zeros(0, np.int32)
        self.current: int | None = None
        self._seen: tuple[int, ...] = ()
        self._dirty = True
        self._drawn_at = 0.0
        self.draws = 0

    def set_selection(self, channels: Iterable[int], current: int | None) -> None:
        self.selected = np.asarray(sorted(channels), np.int32)
        self.current = current
        self._dirty = True

    def invalidate(self) -> None:
        self._dirty = True

    def refresh(self) -> None:
        now = time.monotonic()
        if not self._dirty and now - self._drawn_at < self.min_interval_s:
            return
        seen = tuple(self.model.versions[t] for t in (*self.topics, "reset"))
        if seen == self._seen and not self._dirty:
            return
        self._seen, self._dirty, self._drawn_at = seen, False, now
        self.draw()
        self.draws += 1

    def draw(self) -> None:
        """Redraw from the model (each dock overrides this)."""

    def drawn_channels(self, available: np.ndarray | None = None) -> np.ndarray:
        """Selected channels to draw (those in ``available`` when given), at most MAX_CURVES."""
        sel = self.selected if available is None else self.selected[np.isin(self.selected, available)]
        return sel[:MAX_CURVES]

    def has_data(self) -> bool:
        """Whether the dock currently shows data (for tests and the screenshot script); docks override it."""
        return False

    def snapshot_data(self) -> dict[str, np.ndarray]:
        """The data behind the current plot, for the snapshot action."""
        return {}

    def snapshot_attrs(self) -> dict[str, object]:
        """Units and settings stored with :meth:`snapshot_data`."""
        return {"title": self.title, "units": self.model.units}


def sync_curves(plot: pg.PlotWidget, curves: dict[int, pg.PlotDataItem], channels: np.ndarray,
                make: type | None = None, **kwargs: object) -> None:
    """Keep exactly one curve per channel in ``channels`` (add the missing, remove the others)."""
    for ch in list(curves):
        if ch not in channels:
            plot.removeItem(curves.pop(ch))
    for ch in channels.tolist():
        if ch not in curves:
            item = (make or pg.PlotDataItem)(pen=pg.mkPen(channel_color(ch), width=1), name=f"ch {ch}", **kwargs)
            plot.addItem(item)
            curves[ch] = item


def has_points(curve: pg.PlotDataItem) -> bool:
    """Whether a curve holds data (its original data, before downsampling and clipping)."""
    x, _ = curve.getOriginalDataset()
    return x is not None and len(x) > 0


def info_label(text: str = "") -> QtWidgets.QLabel:
    """A one-line caption that never forces its dock wider (long text is cut at the dock's edge)."""
    label = QtWidgets.QLabel(text)
    label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
    return label
