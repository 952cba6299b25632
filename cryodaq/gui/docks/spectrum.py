"""Noise spectrum: PSD of the selected channels, log-log, averaged over the latest N snapshots."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtWidgets

from cryodaq.wire import live as lp
from cryodaq.gui.docks.base import Dock, has_points, info_label, make_plot, sync_curves
from cryodaq.gui.model import LiveModel


class SpectrumDock(Dock):
    title = "Noise spectrum"
    topics = (lp.PSD,)

    def __init__(self, model: LiveModel, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(model, parent)
        self.plot = make_plot(x="frequency", y="PSD")
        self.plot.setLogMode(x=True, y=True)
        self.curves: dict[int, pg.PlotDataItem] = {}
        self.average = QtWidgets.QSpinBox()
        self.average.setRange(1, 100)
        self.average.setValue(model.psd_average)
        self.average.setPrefix("average ")
        self.average.setSuffix(" snapshots")
        self.average.valueChanged.connect(self._set_average)
        self.info = info_label("waiting for spectra ...")
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(self.average)
        bar.addWidget(self.info, 1)
        box = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(box)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(bar)
        lay.addWidget(self.plot, 1)
        self.setWidget(box)

    def _set_average(self, n: int) -> None:
        self.model.set_psd_average(n)
        self.invalidate()

    def draw(self) -> None:
        m = self.model
        if not len(m.psd_freq):
            sync_curves(self.plot, self.curves, np.zeros(0, np.int32))
            self.info.setText("waiting for spectra ...")
            return
        have = np.flatnonzero(m.psd_count > 0)
        chans = self.drawn_channels(have)
        sync_curves(self.plot, self.curves, chans)
        f = m.psd_freq[1:]  # no DC on a log axis
        for ch in chans.tolist():
            self.curves[ch].setData(f, np.maximum(m.psd[ch, 1:], np.finfo(np.float32).tiny))
        self.plot.getPlotItem().setLabel("left", "PSD", units=m.psd_units.replace("^2", "²"))
        self.plot.getPlotItem().setLabel("bottom", "frequency", units="Hz")
        shown = f"{len(chans)} of {len(self.selected)} selected" if len(self.selected) > len(chans) else \
            f"{len(chans)} channels"
        self.info.setText(f"{shown}; mean of the last ≤{m.psd_average} snapshots")

    def has_data(self) -> bool:
        return any(has_points(c) for c in self.curves.values())

    def snapshot_data(self) -> dict[str, np.ndarray]:
        chans = np.asarray(sorted(self.curves), np.int32)
        if not len(chans):
            return {}
        return {"freq_hz": self.model.psd_freq.copy(), "channel": chans, "psd": self.model.psd[chans].copy()}
