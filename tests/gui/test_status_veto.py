"""The status bar shows the coincidence veto's counter and rate (the live protocol's ``vetoed`` field)."""

from __future__ import annotations

import numpy as np

from cryodaq.acquisition.sinks import SessionStats
from cryodaq.gui.model import LiveModel
from cryodaq.live.publisher import LivePublisher
from cryodaq.wire import live as lp


def _info() -> lp.Message:
    return lp.info_message(station="demo_two_arrays", stream="current", units="A", output_rate_hz=5e4,
                           adc_rate_hz=5e4, channel_coords={"channel": np.arange(4, dtype=np.int32)}, run_path="r",
                           stream_channels=[0], stream_rate_hz=1e3, source="live")


def test_model_follows_the_vetoed_counter():
    m = LiveModel()
    m.handle(_info())
    m.handle(lp.status_message(np.zeros(4, np.int64), elapsed_s=1.0, vetoed=10))
    m.handle(lp.status_message(np.full(4, 5, np.int64), elapsed_s=3.0, vetoed=16))
    assert m.vetoed == 16 and m.veto_rate == 3.0


def test_the_publisher_sends_the_counter():
    pub = LivePublisher("tcp://127.0.0.1:0")
    try:
        msg = pub._status_message(SessionStats(vetoed=7, events_per_channel=np.zeros(2, np.int64)), 0.0, "running")
    finally:
        pub.close(interrupted=False, reason="", error=None)
    assert msg.header["vetoed"] == 7


def test_status_bar_shows_the_veto(qapp, qt_ok):
    from pyqtgraph.Qt import QtWidgets

    from cryodaq.gui.docks.status import StatusPanel

    m = LiveModel()
    bar = QtWidgets.QStatusBar()
    panel = StatusPanel(bar, m, "live")
    m.handle(_info())
    m.handle(lp.status_message(np.zeros(4, np.int64), state="running", elapsed_s=2.0, events=40))
    panel.refresh()
    assert "vetoed" not in panel.text()  # a run without the veto stage says nothing about it
    m.handle(lp.status_message(np.zeros(4, np.int64), state="running", elapsed_s=4.0, events=80, vetoed=9))
    panel.refresh()
    assert "vetoed 9" in panel.text()
