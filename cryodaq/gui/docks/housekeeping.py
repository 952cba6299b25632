"""Fridge temperatures, paramp settings and any other housekeeping quantity over time.

One plot per unit (temperatures together on a log axis, dBm together, ...),
their time axes linked, and a line with each quantity's latest value.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtWidgets

from cryodaq.wire import live as lp
from cryodaq.gui.docks.base import Dock, channel_color, info_label
from cryodaq.gui.model import LiveModel

_LOG_UNITS = {"K", "Ohm", "Ω", "mbar", "Pa"}  # quantities that span decades


class _LevelledLogAxis(pg.AxisItem):
    """Log-axis ticks in levels — decades, then 2 and 5, then the rest — so that pyqtgraph labels
    only the levels that fit (its stock log ticks put all nine per decade in one level, which
    collide in a short plot)."""

    def logTickValues(self, minVal: float, maxVal: float, size: float, stdTicks: list) -> list:
        decades = np.arange(np.floor(minVal), np.ceil(maxVal) + 1)
        levels = []
        for mult in ([1], [2, 5], [3, 4, 6, 7, 8, 9]):
            values = (decades[:, None] + np.log10(mult)[None, :]).ravel()
            levels.append((None, values[(values > minVal) & (values < maxVal)].tolist()))
        return levels


class HousekeepingDock(Dock):
    title = "Fridge and housekeeping"
    topics = (lp.HOUSEKEEPING,)
    min_interval_s = 0.5

    def __init__(self, model: LiveModel, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(model, parent)
        self.layout_widget = pg.GraphicsLayoutWidget()
        self.plots: dict[str, pg.PlotItem] = {}
        self._log: dict[str, bool] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.latest = info_label("waiting for housekeeping ...")
        self.latest.setWordWrap(True)
        box = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(box)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.latest)
        lay.addWidget(self.layout_widget, 1)
        self.setWidget(box)

    def _plot_for(self, unit: str) -> pg.PlotItem:
        if unit not in self.plots:
            item = self.layout_widget.addPlot(row=len(self.plots), col=0, axisItems={
                "bottom": pg.DateAxisItem(), "left": _LevelledLogAxis(orientation="left")})
            item.setDownsampling(auto=True, mode="peak")
            item.setClipToView(True)
            item.showGrid(x=True, y=True, alpha=0.25)
            item.addLegend(offset=(-10, 5))
            item.setLabel("left", "temperature" if unit == "K" else "value", units=unit)
            if self.plots:
                item.setXLink(next(iter(self.plots.values())))
            self.plots[unit] = item
        return self.plots[unit]

    def draw(self) -> None:
        m = self.model
        if not m.hk:
            for name in list(self.curves):  # the model was reset
                self.curves.pop(name)
            for item in self.plots.values():
                self.layout_widget.removeItem(item)
            self.plots.clear()
            self._log.clear()
            self.latest.setText("waiting for housekeeping ...")
            return
        parts = []
        span: dict[str, tuple[float, float]] = {}
        for i, (name, (t, v, unit)) in enumerate(sorted(m.hk.items())):
            if name not in self.curves:
                self.curves[name] = self._plot_for(unit).plot(
                    pen=pg.mkPen(channel_color(i), width=1.5), name=name, symbol="o", symbolSize=3,
                    symbolBrush=channel_color(i), symbolPen=None,
                )
            values = v.view()
            self.curves[name].setData(t.view(), values)
            positive = values[values > 0]
            if len(positive):
                lo, hi = span.get(unit, (np.inf, 0.0))
                span[unit] = (min(lo, float(positive.min())), max(hi, float(positive.max())))
            if len(values):
                parts.append(f"{name} = {pg.siFormat(float(values[-1]), precision=4, suffix=unit)}")
        for unit, (lo, hi) in span.items():
            # log scale only where the quantities span decades (e.g. mixing chamber and still);
            # a log axis inside one decade would have no labels at all
            log = unit in _LOG_UNITS and hi > 10 * lo
            if self._log.get(unit, False) != log:
                self.plots[unit].setLogMode(y=log)
                self._log[unit] = log
        self.latest.setText("   ".join(parts))

    def has_data(self) -> bool:
        return any(len(t) for t, _, _ in self.model.hk.values()) and bool(self.curves)

    def snapshot_data(self) -> dict[str, np.ndarray]:
        out = {}
        for name, (t, v, _) in self.model.hk.items():
            out[f"{name}.t_s"] = t.view().copy()
            out[f"{name}.value"] = v.view().copy()
        return out

    def snapshot_attrs(self) -> dict[str, object]:
        return {"title": self.title, "units": {name: unit for name, (_, _, unit) in self.model.hk.items()}}
