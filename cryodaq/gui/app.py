"""The cryodaq window: docks around a model fed by a live or a replay source, redrawn by a timer.

Messages are folded into the model as they arrive (cheap numpy appends); the
docks redraw at ``redraw_hz`` from the model, and only those whose data changed.
The GUI runs in its own process: whatever it does, acquisition does not wait.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from cryodaq.wire import live as lp
from cryodaq.gui.channels import ChannelSelector
from cryodaq.gui.docks import (
    Dock,
    HistogramDock,
    HousekeepingDock,
    IQDock,
    RateDock,
    SpectrumDock,
    TimestreamDock,
    WaterfallDock,
)
from cryodaq.gui.docks.status import StatusPanel
from cryodaq.gui.model import LiveModel
from cryodaq.gui.snapshot import save_snapshot
from cryodaq.gui.sources import LiveSource, ReplaySource

log = logging.getLogger(__name__)

SPEEDS = {"0.1×": 0.1, "1×": 1.0, "10×": 10.0, "100×": 100.0, "max": math.inf}


class MainWindow(QtWidgets.QMainWindow):
    """The whole GUI. ``source`` is a :class:`LiveSource` or :class:`ReplaySource` (not yet started)."""

    def __init__(self, source: LiveSource | ReplaySource, *, snapshot_dir: str | Path = "snapshots",
                 redraw_hz: float = 20.0, model: LiveModel | None = None) -> None:
        super().__init__()
        self.source = source
        self.snapshot_dir = Path(snapshot_dir)
        self.model = model or LiveModel()
        self.setWindowTitle(f"cryodaq — {source.description}")
        self.setDockNestingEnabled(True)
        self.messages = 0
        source.message.connect(self._on_message)

        self.channels = ChannelSelector()
        self.channel_dock = QtWidgets.QDockWidget("Channels", self)
        self.channel_dock.setObjectName("ChannelsDock")
        self.channel_dock.setWidget(self.channels)
        self.channel_dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable
                                      | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.channels.selection_changed.connect(self._on_selection)

        m = self.model
        self.spectrum, self.waterfall, self.iq = SpectrumDock(m, self), WaterfallDock(m, self), IQDock(m, self)
        self.timestream, self.histogram, self.rate = TimestreamDock(m, self), HistogramDock(m, self), RateDock(m, self)
        self.housekeeping = HousekeepingDock(m, self)
        self.docks: list[Dock] = [self.spectrum, self.waterfall, self.iq, self.timestream, self.histogram,
                                  self.rate, self.housekeeping]
        self._arrange()
        self.status = StatusPanel(self.statusBar(), m, source.description)
        self._build_toolbar()

        self._listed_for = -1  # the model reset whose channel list is shown
        self._sized = False
        self.redraw_timer = QtCore.QTimer(self)
        self.redraw_timer.setInterval(max(1, int(1000 / redraw_hz)))
        self.redraw_timer.timeout.connect(self.redraw)

    # ------------------------------------------------------------------ layout
    def _arrange(self) -> None:
        area = QtCore.Qt.DockWidgetArea
        orient = QtCore.Qt.Orientation
        self.addDockWidget(area.LeftDockWidgetArea, self.channel_dock)
        self.addDockWidget(area.RightDockWidgetArea, self.spectrum)
        self.splitDockWidget(self.spectrum, self.timestream, orient.Vertical)
        self.splitDockWidget(self.timestream, self.housekeeping, orient.Vertical)
        self.splitDockWidget(self.spectrum, self.waterfall, orient.Horizontal)
        self.splitDockWidget(self.waterfall, self.iq, orient.Horizontal)
        self.splitDockWidget(self.timestream, self.histogram, orient.Horizontal)
        self.splitDockWidget(self.histogram, self.rate, orient.Horizontal)

    def _apply_sizes(self) -> None:
        """Initial dock proportions (Qt applies them only once the window has its size)."""
        orient = QtCore.Qt.Orientation
        w, h = max(self.width(), 800), max(self.height(), 600)
        self.resizeDocks([self.channel_dock], [int(0.14 * w)], orient.Horizontal)
        row = [self.spectrum, self.waterfall, self.iq]
        self.resizeDocks(row, [int(0.28 * w)] * 3, orient.Horizontal)
        self.resizeDocks([self.timestream, self.histogram, self.rate], [int(0.36 * w), int(0.26 * w), int(0.22 * w)],
                         orient.Horizontal)
        self.resizeDocks([self.spectrum, self.timestream, self.housekeeping], [int(0.36 * h), int(0.38 * h),
                                                                               int(0.2 * h)], orient.Vertical)

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if not self._sized:
            self._sized = True
            self._apply_sizes()

    def _build_toolbar(self) -> None:
        bar = self.addToolBar("main")
        bar.setObjectName("MainToolbar")
        self.snapshot_action = QtGui.QAction("Save snapshot", self)
        self.snapshot_action.setShortcut(QtGui.QKeySequence("Ctrl+S"))
        self.snapshot_action.setToolTip("Save every plot as PNG and its data as Zarr (Ctrl+S)")
        self.snapshot_action.triggered.connect(self.save_snapshot)
        bar.addAction(self.snapshot_action)
        if isinstance(self.source, ReplaySource):
            self._build_replay_controls(bar)

    def _build_replay_controls(self, bar: QtWidgets.QToolBar) -> None:
        src = self.source
        assert isinstance(src, ReplaySource)
        bar.addSeparator()
        self.play_action = QtGui.QAction("Pause", self)
        self.play_action.triggered.connect(self._toggle_play)
        bar.addAction(self.play_action)
        self.speed = QtWidgets.QComboBox()
        self.speed.addItems(list(SPEEDS))
        current = next((k for k, v in SPEEDS.items() if v == src.speed), None)
        if current is None:
            current = f"{src.speed:g}×"
            self.speed.addItem(current)
        self.speed.setCurrentText(current)
        self.speed.currentTextChanged.connect(self._set_speed)
        bar.addWidget(QtWidgets.QLabel(" speed "))
        bar.addWidget(self.speed)
        self.position = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.position.setRange(0, max(1, int(src.duration_s * 10)))
        self.position.setMinimumWidth(300)
        self.position.sliderReleased.connect(lambda: self.seek(self.position.value() / 10))
        bar.addWidget(self.position)
        self.jump = QtWidgets.QDoubleSpinBox()
        self.jump.setRange(0.0, src.duration_s)
        self.jump.setDecimals(1)
        self.jump.setSuffix(f" / {src.duration_s:.1f} s")
        self.jump.setKeyboardTracking(False)
        self.jump.editingFinished.connect(lambda: self.seek(self.jump.value()))
        bar.addWidget(QtWidgets.QLabel(" jump to "))
        bar.addWidget(self.jump)
        src.position_changed.connect(self._on_position)
        src.finished.connect(lambda: self.play_action.setText("Play"))

    # ------------------------------------------------------------------ control
    def start(self) -> None:
        """Start the source and the redraw timer."""
        if self.isVisible():
            self._apply_sizes()
        self.source.start()
        self.redraw_timer.start()

    def seek(self, t_s: float) -> None:
        if isinstance(self.source, ReplaySource):
            self.source.seek(t_s)

    def _toggle_play(self) -> None:
        src = self.source
        assert isinstance(src, ReplaySource)
        if src.playing:
            src.pause()
            self.play_action.setText("Play")
        else:
            src.play()
            self.play_action.setText("Pause")

    def _set_speed(self, text: str) -> None:
        assert isinstance(self.source, ReplaySource)
        self.source.set_speed(SPEEDS.get(text) or float(text.rstrip("×")))

    def _on_position(self, t_s: float) -> None:
        if not self.position.isSliderDown():
            self.position.setValue(int(t_s * 10))
        if not self.jump.hasFocus():
            self.jump.blockSignals(True)
            self.jump.setValue(t_s)
            self.jump.blockSignals(False)

    def _on_message(self, msg: lp.Message) -> None:
        self.messages += 1
        self.model.handle(msg)

    def _on_selection(self, channels: np.ndarray, current: int) -> None:
        for dock in self.docks:
            dock.set_selection(channels, None if current < 0 else current)
        self.source.set_channels(channels)

    # ------------------------------------------------------------------ drawing
    def redraw(self) -> None:
        """One timer tick: new channel list if the stream changed, then each dock that has news."""
        m = self.model
        if m.info and self._listed_for != m.versions["reset"]:
            self._listed_for = m.versions["reset"]
            self._new_channel_list()
        for dock in self.docks:
            dock.refresh()
        self.status.refresh()

    def _new_channel_list(self) -> None:
        m = self.model
        chans = np.asarray(m.channel_coords.get("channel", np.arange(m.n_channels)), np.int32)
        live = set(m.stream_channels.tolist())
        labels = [m.channel_label(int(c)) + ("  · live" if int(c) in live else "") for c in chans]
        keep = self.channels.selected()
        keep = keep[np.isin(keep, chans)]
        self.channels.set_channels(chans, labels, keep if len(keep) else None)

    def save_snapshot(self) -> Path:
        """Save the snapshot (see :mod:`cryodaq.gui.snapshot`); says where in the status bar."""
        info = {k: v for k, v in self.model.info.items() if isinstance(v, (str, int, float))}
        folder = save_snapshot(self, self.docks, self.snapshot_dir, info=info)
        self.statusBar().showMessage(f"snapshot saved to {folder}", 10_000)
        log.info("snapshot saved to %s", folder)
        return folder

    def closeEvent(self, event: Any) -> None:
        self.redraw_timer.stop()
        self.source.close()
        super().closeEvent(event)


def make_app() -> QtWidgets.QApplication:
    """The QApplication (created once), with pyqtgraph's antialiasing off for speed."""
    pg.setConfigOptions(antialias=False, useOpenGL=False)
    return pg.mkQApp("cryodaq")


def run_gui(*, connect: str | None = None, replay: str | Path | None = None, speed: float = 1.0,
            start_s: float = 0.0, snapshot_dir: str | Path = "snapshots") -> int:
    """Open the window on a live publisher or a stored run and run the Qt event loop."""
    app = make_app()
    source: LiveSource | ReplaySource
    if replay is not None:
        source = ReplaySource(replay, speed=speed, start_s=start_s)
    else:
        source = LiveSource(connect or "tcp://127.0.0.1:5556")
    window = MainWindow(source, snapshot_dir=snapshot_dir)
    window.resize(1600, 1000)
    window.show()
    window.start()
    return int(app.exec())
