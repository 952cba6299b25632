"""IQ plane: recent IQ points of the selected tones, each tone's operating point, and its resonance loop.

The loop is a circle fitted (``cryodaq.dsp.circle_fit``) to the accumulated
points once they spread along an arc (pulses move a tone along its resonance
circle); noise alone is a blob, and no circle is drawn for it.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtWidgets

from cryodaq.wire import live as lp
from cryodaq.dsp import ResonatorFitError, circle_fit
from cryodaq.gui.docks.base import Dock, channel_color, info_label, make_plot
from cryodaq.gui.model import LiveModel, column_index

_ARC_OVER_NOISE = 6.0  # the spread must exceed the noise blob this much before a circle fit means anything
_FIT_INTERVAL_S = 1.0


class IQDock(Dock):
    title = "IQ plane"
    topics = (lp.IQ,)
    min_interval_s = 0.2

    def __init__(self, model: LiveModel, parent: QtWidgets.QWidget | None = None, *, points_per_tone: int = 1000) -> None:
        super().__init__(model, parent)
        self.points_per_tone = points_per_tone
        self.plot = make_plot(x="I (ADC units)", y="Q (ADC units)")
        self.plot.setAspectLocked(True)
        self.scatter: dict[int, pg.ScatterPlotItem] = {}
        self.ops: dict[int, pg.ScatterPlotItem] = {}
        self.loops: dict[int, pg.PlotDataItem] = {}
        self.fits: dict[int, tuple[complex, float, float]] = {}
        self._last_fit = 0.0
        self.info = info_label("waiting for IQ ...")
        box = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(box)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.info)
        lay.addWidget(self.plot, 1)
        self.setWidget(box)

    def _sync(self, chans: np.ndarray) -> None:
        for ch in list(self.scatter):
            if ch not in chans:
                for items in (self.scatter, self.ops, self.loops):
                    self.plot.removeItem(items.pop(ch))
                self.fits.pop(ch, None)
        for ch in chans.tolist():
            if ch in self.scatter:
                continue
            color = pg.mkColor(channel_color(ch))
            faded = pg.mkColor(color)
            faded.setAlpha(110)
            self.scatter[ch] = pg.ScatterPlotItem(size=3, pen=None, brush=pg.mkBrush(faded), pxMode=True)
            self.ops[ch] = pg.ScatterPlotItem(size=16, symbol="+", pen=pg.mkPen(color, width=2.5), brush=None)
            self.loops[ch] = pg.PlotDataItem(pen=pg.mkPen(color, width=1.5, style=pg.QtCore.Qt.PenStyle.DashLine))
            for item in (self.loops[ch], self.scatter[ch], self.ops[ch]):
                self.plot.addItem(item)

    def draw(self) -> None:
        m = self.model
        chans = self.drawn_channels(m.iq_channels)
        self._sync(chans)
        if not len(chans) or not len(m.iq):
            self.info.setText("waiting for IQ ..." if not len(m.iq) else "no IQ for the selected channels")
            return
        cols = column_index(m.iq_channels, chans)
        pts = m.iq.last(self.points_per_tone)
        refit = time.monotonic() - self._last_fit >= _FIT_INTERVAL_S
        for ch, col in zip(chans.tolist(), cols.tolist()):
            z = pts[:, col]
            self.scatter[ch].setData(z.real, z.imag)
            op = m.iq_op[col]
            self.ops[ch].setData([op.real], [op.imag])
            if refit:
                self._fit(ch, z, op)
            fit = self.fits.get(ch)
            if fit is not None:
                c, r, _ = fit
                phi = np.linspace(0, 2 * np.pi, 181)
                self.loops[ch].setData(c.real + r * np.cos(phi), c.imag + r * np.sin(phi))
            else:
                self.loops[ch].setData([], [])
        if refit:
            self._last_fit = time.monotonic()
        note = "  (rebuilt from stored phase: points lie on the calibration circle)" if m.iq_reconstructed else ""
        n_loops = sum(1 for ch in chans.tolist() if ch in self.fits)
        self.info.setText(f"{len(chans)} tones, {len(pts)} recent points each; + operating point; "
                          f"{n_loops} loop(s) fitted{note}")

    def _fit(self, ch: int, z: np.ndarray, op: complex) -> None:
        d = np.abs(z - op)
        noise = np.median(d)
        if len(z) < 20 or not noise > 0 or d.max() < _ARC_OVER_NOISE * noise:
            self.fits.pop(ch, None)
            return
        try:
            c, r, rms = circle_fit(z.astype(complex))
        except ResonatorFitError:
            self.fits.pop(ch, None)
            return
        # only a circle the points actually follow: residuals small against the arc's extent
        if np.isfinite(r) and rms < 0.25 * d.max() and r < 100 * d.max():
            self.fits[ch] = (complex(c), float(r), float(rms))
        else:
            self.fits.pop(ch, None)

    def has_data(self) -> bool:
        return any(len(s.data) for s in self.scatter.values())

    def snapshot_data(self) -> dict[str, np.ndarray]:
        m = self.model
        chans = np.asarray(sorted(self.scatter), np.int32)
        if not len(chans) or not len(m.iq):
            return {}
        cols = column_index(m.iq_channels, chans)
        out = {"channel": chans, "iq": m.iq.last(self.points_per_tone)[:, cols].copy(), "operating_point": m.iq_op[cols]}
        fitted = [c for c in chans.tolist() if c in self.fits]
        if fitted:
            out["loop_channel"] = np.asarray(fitted, np.int32)
            out["loop_centre"] = np.asarray([self.fits[c][0] for c in fitted], np.complex128)
            out["loop_radius"] = np.asarray([self.fits[c][1] for c in fitted])
        return out
