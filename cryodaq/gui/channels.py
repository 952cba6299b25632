"""The channel list: searchable, multi-select, fine with thousands of channels.

A QListView over a QStringListModel behind a QSortFilterProxyModel: filtering
and scrolling are done by Qt in C++, and only the selected channels' curves are
drawn by the docks.
"""

from __future__ import annotations

import numpy as np
from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from cryodaq.gui.docks.base import channel_color

DEFAULT_SELECTED = 16  # channels selected when a new stream appears


class _ChannelListModel(QtCore.QStringListModel):
    """Channel labels with each channel's plot colour as a swatch (asked only for visible rows)."""

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.channels = np.zeros(0, np.int32)

    def data(self, index: QtCore.QModelIndex, role: int = QtCore.Qt.ItemDataRole.DisplayRole) -> object:
        if role == QtCore.Qt.ItemDataRole.DecorationRole and 0 <= index.row() < len(self.channels):
            return QtGui.QColor(channel_color(int(self.channels[index.row()])))
        return super().data(index, role)


class ChannelSelector(QtWidgets.QWidget):
    """Emits ``selection_changed(channels: ndarray, current: int)`` (current -1: none) when the selection changes."""

    # an int, not None, for "no current channel": PySide6 mishandles None's refcount in object signal arguments
    selection_changed = QtCore.Signal(object, int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.channels = np.zeros(0, np.int32)
        self.filter = QtWidgets.QLineEdit()
        self.filter.setPlaceholderText("filter (e.g. 12, 5.001, live)")
        self.filter.setClearButtonEnabled(True)
        self.strings = _ChannelListModel(self)
        self.proxy = QtCore.QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.strings)
        self.proxy.setFilterCaseSensitivity(QtCore.Qt.CaseSensitivity.CaseInsensitive)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.view = QtWidgets.QListView()
        self.view.setModel(self.proxy)
        self.view.setUniformItemSizes(True)
        self.view.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.selectionModel().selectionChanged.connect(self._changed)
        self.view.selectionModel().currentChanged.connect(self._changed)
        all_shown = QtWidgets.QPushButton("select shown")
        all_shown.clicked.connect(self.view.selectAll)
        none = QtWidgets.QPushButton("clear")
        none.clicked.connect(self.view.clearSelection)
        self.count = QtWidgets.QLabel("no channels")
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(all_shown)
        buttons.addWidget(none)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.filter)
        lay.addWidget(self.view, 1)
        lay.addLayout(buttons)
        lay.addWidget(self.count)
        self._selected = np.zeros(0, np.int32)
        self._current: int | None = None

    def set_channels(self, channels: np.ndarray, labels: list[str], select: np.ndarray | None = None) -> None:
        """Replace the list (a new stream); selects ``select`` (default: the first channels)."""
        self.channels = np.asarray(channels, np.int32)
        self.strings.channels = self.channels
        self.strings.setStringList(labels)
        chosen = self.channels[:DEFAULT_SELECTED] if select is None else np.asarray(select, np.int32)
        self.select(chosen)

    def select(self, channels: np.ndarray) -> None:
        """Select exactly ``channels`` (whether or not the filter shows them)."""
        self.filter.clear()
        rows = np.flatnonzero(np.isin(self.channels, channels))
        selection = QtCore.QItemSelection()
        # contiguous runs of rows become one selection range each (cheap for "first 1000")
        if len(rows):
            breaks = np.flatnonzero(np.diff(rows) > 1)
            starts = np.concatenate([[rows[0]], rows[breaks + 1]])
            ends = np.concatenate([rows[breaks], [rows[-1]]])
            for a, b in zip(starts.tolist(), ends.tolist()):
                selection.select(self.proxy.index(a, 0), self.proxy.index(b, 0))
        sm = self.view.selectionModel()
        sm.select(selection, QtCore.QItemSelectionModel.SelectionFlag.ClearAndSelect)
        if len(rows):
            sm.setCurrentIndex(self.proxy.index(int(rows[0]), 0), QtCore.QItemSelectionModel.SelectionFlag.NoUpdate)
        self._changed()

    def selected(self) -> np.ndarray:
        return self._selected

    def current(self) -> int | None:
        return self._current

    def _changed(self, *args: object) -> None:
        sm = self.view.selectionModel()
        rows = np.asarray([self.proxy.mapToSource(i).row() for i in sm.selectedIndexes()], np.int64)
        self._selected = np.sort(self.channels[rows]) if len(rows) else np.zeros(0, np.int32)
        cur = sm.currentIndex()
        cur_row = self.proxy.mapToSource(cur).row() if cur.isValid() else -1
        self._current = int(self.channels[cur_row]) if 0 <= cur_row < len(self.channels) else None
        if self._current is not None and self._current not in self._selected:
            self._current = int(self._selected[0]) if len(self._selected) else None
        self.count.setText(f"{len(self._selected)} of {len(self.channels)} selected")
        self.selection_changed.emit(self._selected, -1 if self._current is None else self._current)
