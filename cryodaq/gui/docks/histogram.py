"""Histogram of the selected channels' events — trigger amplitude, optimal-filter value or energy —
with a Gaussian fit and its FWHM. Filtered values and energies come from the live optimal filter
(``cryodaq.pipeline.optimal_filter``); without it they are NaN and the dock says so."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtWidgets

from cryodaq.wire import live as lp
from cryodaq.gui.docks.base import Dock, info_label, make_plot
from cryodaq.gui.model import LiveModel
from cryodaq.gui.peakfit import PeakFit, fit_peak, histogram


#: what the quantity box offers -> the model's name for it
QUANTITIES = {"amplitude": "amplitude", "filtered value": "filtered", "energy": "energy"}


class HistogramDock(Dock):
    title = "Pulse-height histogram"
    topics = (lp.EVENTS,)
    min_interval_s = 0.5  # histogramming 200k events and fitting at 2 Hz is plenty for the eye

    def __init__(self, model: LiveModel, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(model, parent)
        self.plot = make_plot(x="amplitude", y="events / bin")
        # a histogram has a few hundred bins: clipping to the view or downsampling only loses them, e.g.
        # when the quantity (and with it the x range: rad, A, eV) changes
        self.plot.getPlotItem().setClipToView(False)
        self.plot.getPlotItem().setDownsampling(auto=False)
        self.hist = pg.PlotDataItem(stepMode="center", fillLevel=0, brush=(86, 180, 233, 110),
                                    pen=pg.mkPen("#56B4E9", width=1))
        self.fit_curve = pg.PlotDataItem(pen=pg.mkPen("#D55E00", width=2))
        self.plot.addItem(self.hist)
        self.plot.addItem(self.fit_curve)
        self.quantity = QtWidgets.QComboBox()
        self.quantity.addItems(list(QUANTITIES))
        self.quantity.currentTextChanged.connect(self._quantity_changed)
        self.bins = QtWidgets.QSpinBox()
        self.bins.setRange(10, 1000)
        self.bins.setValue(80)
        self.bins.setSuffix(" bins")
        self.bins.valueChanged.connect(self.invalidate)
        self.readout = info_label("waiting for events ...")
        self.readout.setStyleSheet("font-weight: bold")
        self.readout.setWordWrap(True)
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(self.quantity)
        bar.addWidget(self.bins)
        bar.addStretch(1)
        box = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(box)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(bar)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.readout)
        self.setWidget(box)
        self.counts = np.zeros(0, np.int64)
        self.edges = np.zeros(1)
        self.fit: PeakFit | None = None

    def _quantity_changed(self) -> None:
        self.plot.getPlotItem().enableAutoRange()  # another quantity, another scale
        self.invalidate()

    def draw(self) -> None:
        m = self.model
        quantity = self.quantity.currentText()
        values = m.event_values(self.selected, QUANTITIES[quantity])
        unit = "eV" if quantity == "energy" else m.units
        self.plot.getPlotItem().setLabel("bottom", quantity, units=unit)
        self.counts, self.edges = histogram(values, self.bins.value())
        if not len(self.counts):
            self.hist.clear()  # setData([], []) is refused by a step-mode item (len(x) must be len(y) + 1)
            self.fit_curve.clear()
            self.fit = None
            hint = "" if quantity == "amplitude" else " (they come from the live optimal filter: cryodaq.pipeline.optimal_filter)"
            self.readout.setText(f"no {quantity}s for the selected channels yet{hint}")
            return
        self.hist.setData(self.edges, self.counts)
        self.fit = fit_peak(self.counts, self.edges)
        n = int(np.isfinite(values).sum())
        if self.fit is None:
            self.fit_curve.setData([], [])
            self.readout.setText(f"{n} events; no peak fit yet")
            return
        f = self.fit
        x = np.linspace(f.mu - 4 * f.sigma, f.mu + 4 * f.sigma, 200)
        self.fit_curve.setData(x, f.curve(x))
        res = f" (ΔE/E = {f.fwhm / abs(f.mu):.1%})" if f.mu else ""
        self.readout.setText(
            f"FWHM = {pg.siFormat(f.fwhm, precision=3, suffix=unit)} ± {pg.siFormat(f.fwhm_err, precision=2, suffix=unit)}"
            f"{res}   peak {pg.siFormat(f.mu, precision=4, suffix=unit)}   {f.n_events} of {n} events in the fit")

    def has_data(self) -> bool:
        return int(self.counts.sum()) > 0

    def snapshot_data(self) -> dict[str, np.ndarray]:
        if not len(self.counts):
            return {}
        out = {"bin_edges": self.edges, "counts": self.counts}
        if self.fit is not None:
            out["fit_height_mu_sigma_fwhm"] = np.array([self.fit.height, self.fit.mu, self.fit.sigma, self.fit.fwhm])
        return out
