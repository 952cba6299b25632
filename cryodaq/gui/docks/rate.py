"""Event rate per channel (events/s over the last few seconds of run counters), selected channels highlighted."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtWidgets

from cryodaq.wire import live as lp
from cryodaq.gui.docks.base import Dock, info_label, make_plot
from cryodaq.gui.model import LiveModel

_DIM, _BRIGHT = pg.mkBrush(90, 90, 110), pg.mkBrush("#E69F00")


class RateDock(Dock):
    title = "Event rate"
    topics = (lp.STATUS,)
    min_interval_s = 0.2

    def __init__(self, model: LiveModel, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(model, parent)
        self.plot = make_plot(x="channel", y="events / s")
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8)
        self.plot.addItem(self.bars)
        self.info = info_label("waiting for counters ...")
        box = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(box)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.info)
        lay.addWidget(self.plot, 1)
        self.setWidget(box)
        self.rates = np.zeros(0)

    def draw(self) -> None:
        m = self.model
        self.rates = np.asarray(m.rates, float)
        n = len(self.rates)
        if not n:
            self.bars.setOpts(x=[], height=[])
            return
        chans = np.arange(n)
        brushes = np.empty(n, dtype=object)
        brushes[:] = _DIM
        brushes[np.isin(chans, self.selected)] = _BRIGHT
        self.bars.setOpts(x=chans, height=self.rates, width=0.8, brushes=brushes.tolist())
        sel = self.rates[self.selected[self.selected < n]].sum() if len(self.selected) else 0.0
        self.info.setText(f"total {self.rates.sum():.1f} events/s; selected {sel:.1f} events/s; "
                          f"{int(m.events_per_channel.sum())} events so far")

    def has_data(self) -> bool:
        return len(self.rates) > 0 and bool(np.any(self.rates > 0))

    def snapshot_data(self) -> dict[str, np.ndarray]:
        if not len(self.rates):
            return {}
        return {"channel": np.arange(len(self.rates), dtype=np.int32), "events_per_s": self.rates,
                "events": self.model.events_per_channel.copy()}
