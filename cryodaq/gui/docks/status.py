"""The status bar: run state, throughput, events and the veto, drops and gaps, queue, disk space left, link health."""

from __future__ import annotations

import time

import pyqtgraph as pg
from pyqtgraph.Qt import QtWidgets

from cryodaq.gui.model import LiveModel

_STALE_S = 3.0  # no message for this long: say so


class StatusPanel:
    """Labels in a QStatusBar, refreshed from the model's latest ``status``/``end`` messages."""

    def __init__(self, bar: QtWidgets.QStatusBar, model: LiveModel, source_description: str) -> None:
        self.model = model
        self.source_description = source_description
        self.labels: dict[str, QtWidgets.QLabel] = {}
        for key in ("state", "throughput", "events", "veto", "drops", "queue", "disk", "link"):
            label = QtWidgets.QLabel("")
            label.setObjectName(f"status_{key}")
            label.setContentsMargins(6, 0, 6, 0)
            bar.addPermanentWidget(label)
            self.labels[key] = label
        self.refresh()

    def text(self) -> str:
        """Everything the bar shows, as one line (for tests and logs)."""
        return " | ".join(label.text() for label in self.labels.values() if label.text())

    def refresh(self) -> None:
        m, st = self.model, self.model.status
        station = m.info.get("station", "")
        if m.ended is not None:
            state = f"ended: {m.ended.get('status', '')} ({m.ended.get('reason', '')})"
        elif st:
            state = f"{st.get('state', '')} {st.get('elapsed_s', 0.0):.1f} s"
        else:
            state = "waiting for data"
        self.labels["state"].setText(f"{self.source_description}  {station}  {state}".strip())
        if not st:
            self._link()
            return
        rate = float(st.get("sample_rate_hz", 0.0))
        self.labels["throughput"].setText(f"{pg.siFormat(rate, precision=3, suffix='S/s')} "
                                          f"({pg.siFormat(float(st.get('samples', 0)), precision=4, suffix='S')})")
        self.labels["events"].setText(f"{int(st.get('events', 0))} events ({float(m.rates.sum()):.1f}/s)")
        # the coincidence veto (cosmic rays, substrate glitches): shown once the run reports the counter
        self.labels["veto"].setText(f"vetoed {m.vetoed} ({m.veto_rate:.2f}/s)" if "vetoed" in st else "")
        lost, dropped = int(st.get("lost_packets", 0)), int(st.get("dropped_blocks", 0))
        gaps, missing = int(st.get("gaps", 0)), int(st.get("samples_lost", 0))
        drops = f"drops: {lost} packets, {dropped} blocks; {gaps} gaps ({missing} samples)"
        self.labels["drops"].setText(drops)
        self.labels["drops"].setStyleSheet("color: #D55E00" if (lost or dropped or gaps) else "")
        self.labels["queue"].setText(f"queue {int(st.get('queue_fill', 0))}" if "queue_fill" in st else "")
        free, total = int(st.get("disk_free_bytes", -1)), int(st.get("disk_total_bytes", -1))
        if free >= 0 and total > 0:
            self.labels["disk"].setText(f"disk {pg.siFormat(free, precision=3, suffix='B')} free "
                                        f"({free / total:.0%})")
            self.labels["disk"].setStyleSheet("color: #D55E00" if free / total < 0.05 else "")
        self._link()

    def _link(self) -> None:
        m = self.model
        pub = int(m.status.get("publisher_drops", 0)) if m.status else 0
        missed = int(sum(m.missed.values()))
        age = time.monotonic() - m.last_message if m.last_message else None
        stale = age is not None and age > _STALE_S and m.ended is None and m.info.get("source") == "live"
        text = f"live view: {pub} msgs dropped by publisher, {missed} missed here"
        if stale:
            text += f"; no data for {age:.0f} s"
        self.labels["link"].setText(text if m.info.get("source") == "live" else "")
        self.labels["link"].setStyleSheet("color: #D55E00" if stale else "")
