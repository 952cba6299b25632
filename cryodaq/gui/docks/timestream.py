"""Timestream of the selected channels with trigger marks, and the latest pulse records below it."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtWidgets

from cryodaq.wire import live as lp
from cryodaq.gui.docks.base import (
    Dock,
    channel_color,
    has_points,
    info_label,
    make_plot,
    sync_curves,
)
from cryodaq.gui.model import LiveModel

_MAX_RECORDS_DRAWN = 8


class TimestreamDock(Dock):
    title = "Timestream and pulses"
    topics = (lp.STREAM, lp.EVENTS)

    def __init__(self, model: LiveModel, parent: QtWidgets.QWidget | None = None, *, span_s: float = 10.0) -> None:
        super().__init__(model, parent)
        self.plot = make_plot(y="signal", date_axis=True)
        self.curves: dict[int, pg.PlotDataItem] = {}
        self.marks: dict[int, pg.ScatterPlotItem] = {}  # one per channel: a uniform brush paints fast
        self.records_plot = make_plot(x="time from trigger (ms)", y="pulse")
        self.record_curves: list[pg.PlotDataItem] = []
        for _ in range(_MAX_RECORDS_DRAWN):
            c = pg.PlotDataItem()
            self.records_plot.addItem(c)
            self.record_curves.append(c)
        self.span = QtWidgets.QDoubleSpinBox()
        self.span.setRange(0.5, 3600.0)
        self.span.setValue(span_s)
        self.span.setPrefix("last ")
        self.span.setSuffix(" s")
        self.span.valueChanged.connect(self.invalidate)
        self.info = info_label("waiting for data ...")
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(self.span)
        bar.addWidget(self.info, 1)
        split = QtWidgets.QSplitter(pg.QtCore.Qt.Orientation.Vertical)
        split.addWidget(self.plot)
        split.addWidget(self.records_plot)
        split.setSizes([300, 160])
        box = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(box)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(bar)
        lay.addWidget(split, 1)
        self.setWidget(box)
        self.n_marks = 0
        self.n_records = 0

    def draw(self) -> None:
        self._draw_stream()
        self._draw_records()

    def _draw_stream(self) -> None:
        m = self.model
        chans, cols = m.stream_columns(self.drawn_channels(m.stream_channels))
        sync_curves(self.plot, self.curves, chans)
        self._sync_marks(chans)
        self.plot.getPlotItem().setLabel("left", m.info.get("stream", "signal"), units=m.units)
        if not len(m.stream_t) or not len(chans):
            self.n_marks = 0
            self.info.setText("no live timestream for the selected channels" if len(m.stream_t) else
                              "waiting for data ...")
            return
        t_all = m.stream_t.view()
        t_end = t_all[-1]
        a = int(np.searchsorted(t_all, t_end - self.span.value()))
        t = t_all[a:]
        y = m.stream_y.view()[a:]
        for ch, col in zip(chans.tolist(), cols.tolist()):
            self.curves[ch].setData(t, y[:, col])
        # trigger marks: on the drawn trace at each event's time (works for either pulse polarity)
        ev_t, ev_ch = m.ev_t.view(), m.ev_channel.view()
        keep = (ev_t >= t[0]) & (ev_t <= t_end) & np.isin(ev_ch, chans)
        et, ec = ev_t[keep], ev_ch[keep]
        peak = np.zeros(0)
        if len(et):
            col_of = cols[np.searchsorted(chans, ec)]
            rows = np.clip(np.searchsorted(t, et), 0, len(t) - 1)
            win = max(1, round(0.004 * m.stream_rate_hz))  # the peak within ~4 ms after the trigger
            idx = np.clip(rows[:, None] + np.arange(win)[None, :], 0, len(t) - 1)
            seg = y[idx, col_of[:, None]]
            base = y[np.clip(rows - 1, 0, len(t) - 1), col_of]
            peak = seg[np.arange(len(seg)), np.abs(seg - base[:, None]).argmax(axis=1)]
        for ch, marks in self.marks.items():
            mine = ec == ch
            marks.setData(et[mine], peak[mine])
        self.n_marks = len(et)
        self.plot.setXRange(t_end - self.span.value(), t_end, padding=0)
        self.info.setText(f"{len(chans)} channel(s) at {m.stream_rate_hz:.0f} S/s (decimated); "
                          f"{self.n_marks} triggers in view")

    def _sync_marks(self, chans: np.ndarray) -> None:
        for ch in list(self.marks):
            if ch not in chans:
                self.plot.removeItem(self.marks.pop(ch))
        for ch in chans.tolist():
            if ch not in self.marks:
                self.marks[ch] = pg.ScatterPlotItem(symbol="t", size=7, pen=None, brush=pg.mkBrush(channel_color(ch)))
                self.plot.addItem(self.marks[ch])

    def _draw_records(self) -> None:
        m = self.model
        if m.records is None or not len(m.records):
            self.n_records = 0
            return
        self.records_plot.getPlotItem().setLabel("left", "pulse", units=m.units)
        rec, ch = m.records.view(), m.rec_channel.view()
        keep = np.flatnonzero(np.isin(ch, self.selected))[-_MAX_RECORDS_DRAWN:]
        rate = m.rec_rate_hz or m.info.get("output_rate_hz", 1.0)
        x = (np.arange(rec.shape[1]) - m.rec_presamples) / rate * 1e3
        base = m.rec_baseline.view()
        for i, curve in enumerate(self.record_curves):
            if i < len(keep):
                k = keep[i]
                curve.setData(x, rec[k] - base[k], pen=pg.mkPen(channel_color(int(ch[k])), width=1.2))
            else:
                curve.setData([], [])
        self.n_records = len(keep)

    def has_data(self) -> bool:
        return any(has_points(c) for c in self.curves.values())

    def snapshot_data(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        chans = np.asarray(sorted(self.curves), np.int32)
        if len(chans) and len(self.model.stream_t):
            data = [self.curves[int(c)].getOriginalDataset() for c in chans]
            out["channel"] = chans
            out["t_s"] = np.asarray(data[0][0])
            out["data"] = np.column_stack([d[1] for d in data])
        recs = [c.getOriginalDataset() for c in self.record_curves[:self.n_records]]
        if recs:
            out["record_time_ms"] = np.asarray(recs[0][0])
            out["records"] = np.vstack([r[1] for r in recs])
        return out
