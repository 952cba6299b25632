"""Waterfall: spectrogram of the current channel's live timestream over the last minute.

Computed in the GUI from the decimated timestream (scipy.signal.spectrogram on the
ring buffer: one vectorised call per redraw), so it scrolls smoothly and shows
pulses as broadband stripes; it covers up to the decimated stream's Nyquist
frequency (the noise-spectrum dock shows the full band).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtWidgets
from scipy.signal import spectrogram

from cryodaq.wire import live as lp
from cryodaq.gui.docks.base import Dock, info_label, make_plot
from cryodaq.gui.model import LiveModel


class WaterfallDock(Dock):
    title = "Waterfall"
    topics = (lp.STREAM,)
    min_interval_s = 0.2

    def __init__(self, model: LiveModel, parent: QtWidgets.QWidget | None = None, *, span_s: float = 60.0, nperseg: int = 256) -> None:
        super().__init__(model, parent)
        self.span_s, self.nperseg = span_s, nperseg
        self.plot = make_plot(x="time before now (s)", y="frequency (Hz)")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(colorMap="viridis", interactive=False, label="log10 PSD")
        self.colorbar.setImageItem(self.image, insert_in=self.plot.getPlotItem())
        self.info = info_label("select a channel")
        box = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(box)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.info)
        lay.addWidget(self.plot, 1)
        self.setWidget(box)
        self.channel: int | None = None
        self.sxx: np.ndarray | None = None
        self.freq = self.times = np.zeros(0)

    def _channel(self) -> int | None:
        avail = self.model.stream_channels
        if self.current is not None and self.current in avail:
            return self.current
        sel = self.selected[np.isin(self.selected, avail)]
        return int(sel[0]) if len(sel) else None

    def draw(self) -> None:
        m = self.model
        ch = self._channel()
        self.channel = ch
        rate = m.stream_rate_hz
        if ch is None or rate <= 0:
            self.info.setText("no live timestream for the selected channels")
            self.image.clear()
            self.sxx = None
            return
        _, col = m.stream_columns(np.array([ch]))
        n = int(min(len(m.stream_t), self.span_s * rate))
        if n < self.nperseg:
            self.info.setText(f"{m.channel_label(ch)}: collecting data ...")
            return
        t = m.stream_t.last(n)
        x = m.stream_y.last(n)[:, col[0]]
        f, tt, sxx = spectrogram(x, fs=rate, nperseg=self.nperseg, noverlap=self.nperseg // 2, detrend="constant")
        img = np.log10(np.maximum(sxx.T, np.finfo(np.float32).tiny))  # (time, freq)
        lo, hi = np.percentile(img[:, 1:], [2, 99.8]) if img.shape[1] > 1 else (img.min(), img.max())
        self.image.setImage(img, autoLevels=False)
        self.colorbar.setLevels((float(lo), float(hi)))
        t_start = t[0] - t[-1]
        self.image.setRect(QtCore.QRectF(t_start, 0.0, -t_start, rate / 2))
        self.sxx, self.freq, self.times = sxx, f, tt + (t[0] - t[-1])
        self.info.setText(f"{m.channel_label(ch)}  ({self.nperseg / rate * 1e3:.0f} ms segments, "
                          f"0–{rate / 2:.0f} Hz of the decimated stream)")

    def has_data(self) -> bool:
        return self.image.image is not None and self.image.image.size > 0 and self.sxx is not None

    def snapshot_data(self) -> dict[str, np.ndarray]:
        if self.sxx is None:
            return {}
        return {"freq_hz": self.freq, "time_s": self.times, "psd": self.sxx.T.astype(np.float32),
                "channel": np.array([self.channel])}
