"""Where the GUI's messages come from: a live publisher (ZeroMQ SUB) or a stored run (replay).

Both emit the same :class:`~cryodaq.wire.live.Message` objects
through one Qt signal, so the window and its docks cannot tell them apart.
Both are driven by QTimers in the GUI thread and do bounded work per tick, so
the window stays responsive whatever arrives.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from pyqtgraph.Qt import QtCore

from cryodaq.wire import live as lp
from cryodaq.live.reduce import IQReducer, StreamDecimator
from cryodaq.acquisition.spectra import SpectrumMonitor
from cryodaq.dsp.events import EventFlag
from cryodaq.errors import CryodaqError
from cryodaq.storage import open_run

log = logging.getLogger(__name__)


class LiveSource(QtCore.QObject):
    """Subscribes to a :class:`~cryodaq.live.publisher.LivePublisher` and emits its messages.

    A QTimer drains the socket without blocking, at most ``budget_s`` per tick, so
    a burst never freezes the window. If this GUI stalls, its queue fills and the
    publisher drops (and counts) messages for it; acquisition never waits.
    """

    message = QtCore.Signal(object)

    def __init__(self, address: str, *, poll_ms: int = 10, budget_s: float = 0.025, rcvhwm: int = 1000,
                 rcvbuf: int = 0, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.address = address
        self.budget_s = budget_s
        self.received = 0
        self.bad = 0
        self._sock = zmq.Context.instance().socket(zmq.SUB)
        self._sock.setsockopt(zmq.RCVHWM, int(rcvhwm))
        self._sock.setsockopt(zmq.LINGER, 0)
        if rcvbuf > 0:  # kernel receive buffer (bytes); 0 = the OS default
            self._sock.setsockopt(zmq.RCVBUF, int(rcvbuf))
        self._sock.connect(address)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(int(poll_ms))
        self._timer.timeout.connect(self.poll)

    @property
    def description(self) -> str:
        return f"live {self.address}"

    def start(self) -> None:
        self._timer.start()

    def poll(self) -> int:
        """Emit what has arrived (up to the time budget); returns the number of messages."""
        deadline = time.monotonic() + self.budget_s
        n = 0
        while time.monotonic() < deadline:
            try:
                frames = self._sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            try:
                msg = lp.decode(frames)
            except lp.LiveProtocolError as exc:
                self.bad += 1
                if self.bad <= 3:
                    log.warning("ignoring a message from %s: %s", self.address, exc)
                continue
            n += 1
            self.received += 1
            self.message.emit(msg)
        return n

    def set_channels(self, channels: np.ndarray) -> None:
        """Live timestreams are the publisher's choice (station file ``cryodaq.publish.channels``)."""

    def close(self) -> None:
        self._timer.stop()
        self._sock.close()


def _lazy_searchsorted(arr: Any, value: int) -> int:
    """``searchsorted(arr, value)`` on a sorted lazy (dask) array: bisect on single reads, then one slice."""
    lo, hi = 0, int(arr.shape[0])
    while hi - lo > 4096:
        mid = (lo + hi) // 2
        if int(arr[mid].compute()) < value:
            lo = mid + 1
        else:
            hi = mid
    return lo + int(np.searchsorted(np.asarray(arr[lo:hi].compute()), value))


_VETOED = np.uint16(EventFlag.VETOED)


class ReplaySource(QtCore.QObject):
    """Plays a stored run as live messages at ``speed`` × real time (``math.inf``: as fast as it goes).

    Timestreams are read from ``stream/`` (its main stream, :attr:`Run.main_stream`) and
    decimated like the publisher does; IQ points are the run's own (stream variables ``i`` and
    ``q``, e.g. a CRS run) or, where it kept none, rebuilt from the stored phase with the run's
    calibration (centre, radius, rotation and sign: the loop is then the calibration circle); PSDs come from ``spectra/`` (or are computed from the
    replayed channels when the run has none); events, housekeeping and gaps are
    emitted when the play clock passes them; status counters are synthesised.
    """

    message = QtCore.Signal(object)
    position_changed = QtCore.Signal(float)  # seconds since the run's start
    finished = QtCore.Signal()

    MAX_CHUNK_S = 2.0  # data per tick at "max" speed

    def __init__(self, path: str | Path, *, speed: float = 1.0, start_s: float = 0.0, tick_ms: int = 50,
                 stream_rate_hz: float = 2000.0, iq_rate_hz: float = 250.0, max_channels: int = 16,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.path = Path(path)
        self.run = open_run(self.path)
        self.speed = float(speed)
        self.max_channels = int(max_channels)
        self._stream_rate_target, self._iq_rate = float(stream_rate_hz), float(iq_rate_hz)
        self._epoch = 0
        self._load()
        self.playing = False
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(int(tick_ms))
        self._timer.timeout.connect(self._tick)
        self._start_s = float(start_s)
        self._last_wall = time.monotonic()
        self._last_status = 0.0
        self._rate_ref = (time.monotonic(), 0)
        self._measured_rate = 0.0

    # ---------------------------------------------------------------- loading
    def _load(self) -> None:
        run, attrs = self.run, self.run.attrs
        groups = set(run.groups)
        cfg = attrs.get("config", {})
        self.adc_rate_hz = float(cfg.get("readout", {}).get("sample_rate_hz", 0.0))
        self.stream_name = run.main_stream
        times: list[int] = []
        self._iq_data = None  # the stored IQ (stream variables i and q), when the run kept it
        if self.stream_name is not None:
            ds = run.stream(self.stream_name)
            self._data = ds[self.stream_name].data
            if {"i", "q"} <= set(run.stream_names):
                self._iq_data = (run.stream("i")["i"].data, run.stream("q")["q"].data)
            self._t = ds["t"].data
            self.n_rows = int(self._t.shape[0])
            self.output_rate_hz = float(ds.attrs["sample_rate_hz"])
            self.units = str(ds[self.stream_name].attrs.get("units", ""))
            self.channel_coords = {k: np.asarray(ds[k].values) for k in ds.coords if ds[k].dims == ("channel",)}
            if self.n_rows:
                times += [int(self._t[0].compute()), int(self._t[-1].compute())]
        else:
            self.n_rows, self.output_rate_hz, self.units = 0, 0.0, ""
            self.channel_coords = {}
        self.n_channels = len(self.channel_coords.get("channel", []))
        self._ev: dict[str, np.ndarray] = {}
        self._records = None
        self._ev_order: np.ndarray | None = None  # stored row of each time-sorted event, when not in time order
        self.record_rate_hz, record_presamples = self.output_rate_hz, None
        self._vetoes = False  # a run taken with the coincidence veto: its vetoed counter is replayed from the flags
        if "events" in groups:
            ev = run.events()
            self._vetoes = "multiplicity" in ev
            self._ev = {k: np.asarray(ev[k].values) for k in lp.EVENT_FIELDS if k in ev}
            self._records = ev["records"].data if "records" in ev else None
            if self._records is not None:  # records have their own rate when the run has no stream
                record_presamples = ev["records"].attrs.get("presamples")
                self.record_rate_hz = self.output_rate_hz or float(ev["records"].attrs.get("sample_rate_hz") or 0.0)
            if len(self._ev["t"]) and np.any(np.diff(self._ev["t"]) < 0):
                # a records source (DASTARD) stores events in arrival order, not time order: play them by time
                self._ev_order = np.argsort(self._ev["t"], kind="stable")
                self._ev = {k: v[self._ev_order] for k, v in self._ev.items()}
            if len(self._ev["t"]):
                times += [int(self._ev["t"][0]), int(self._ev["t"][-1])]
            if not self.n_channels and len(self._ev["channel"]):
                self.n_channels = int(self._ev["channel"].max()) + 1
                self.channel_coords = {"channel": np.arange(self.n_channels, dtype=np.int32)}
        trig = cfg.get("pipeline", {}).get("trigger", {})
        self.presamples = (round(trig.get("presamples_s", 0.0) * self.output_rate_hz) if self.output_rate_hz
                           or record_presamples is None else int(record_presamples))
        self._spectra = None
        if "spectra" in groups:
            sp = run.spectra()
            self._spectra = sp
            self._sp_t = np.asarray(sp["t"].values)
            self._sp_freq = np.asarray(sp["freq"].values)
            self._sp_units = str(sp["psd"].attrs.get("units", ""))
        self._hk = {}
        for name in run.housekeeping_names:
            ds = run.housekeeping(name)
            self._hk[name] = (np.asarray(ds["t"].values), np.asarray(ds["value"].values), str(ds.attrs.get("unit", "")))
            if len(self._hk[name][0]):
                times += [int(self._hk[name][0][0]), int(self._hk[name][0][-1])]
        g = run.gaps()
        self._gaps = {k: np.asarray(g[k].values) for k in ("first_sample", "n_samples", "t", "cause", "detail")}
        cal = attrs.get("pipeline_calibration", {})
        n = max(self.n_channels, 1)
        self._radius = np.asarray(cal.get("radius", np.ones(n)), float)
        self._rotation = np.asarray(cal.get("rotation_rad", np.zeros(n)), float)
        self._centre = (np.asarray(cal.get("centre_i", np.zeros(n)), float)
                        + 1j * np.asarray(cal.get("centre_q", np.zeros(n)), float))
        self._sign = np.asarray(cal.get("phase_sign", np.ones(n)), float)
        if not times:
            raise CryodaqError(f"{self.path}: nothing to replay: the run has no stream, events or housekeeping yet")
        self.t0_ns, self.t1_ns = min(times), max(times)
        self._cols = np.arange(min(self.n_channels, self.max_channels), dtype=np.int32)
        self._now_ns, self._row = self.t0_ns, 0
        self._ev_counts = np.zeros(self.n_channels, np.int64)
        self._ev_vetoed = 0
        self._reset_reducers()

    def _reset_reducers(self) -> None:
        factor = max(1, math.ceil(self.output_rate_hz / self._stream_rate_target)) if self.output_rate_hz else 1
        self._decimator = StreamDecimator(factor)
        self.stream_rate_hz = self.output_rate_hz / factor if self.output_rate_hz else 0.0
        self._iqr = IQReducer(max(1, round(self.output_rate_hz / self._iq_rate)) if self.output_rate_hz else 1)
        nperseg = int(self.run.attrs.get("config", {}).get("pipeline", {}).get("psd_nperseg", 1024))
        self._monitor = (SpectrumMonitor(self.output_rate_hz, len(self._cols), nperseg=nperseg,
                                         units=f"{self.units}^2/Hz")
                         if self._spectra is None and self.output_rate_hz else None)

    # ----------------------------------------------------------------- control
    @property
    def description(self) -> str:
        return f"replay {self.path.name}"

    @property
    def duration_s(self) -> float:
        return (self.t1_ns - self.t0_ns) * 1e-9

    @property
    def position_s(self) -> float:
        return (self._now_ns - self.t0_ns) * 1e-9

    def start(self) -> None:
        """Describe the run, jump to the start position and play."""
        self.seek(self._start_s)
        self.play()
        self._timer.start()

    def play(self) -> None:
        if self._now_ns >= self.t1_ns:
            self.seek(0.0)
        self.playing = True
        self._last_wall = time.monotonic()

    def pause(self) -> None:
        self.playing = False
        self._emit_status(force=True)

    def set_speed(self, speed: float) -> None:
        """Play speed × real time (``math.inf``: as fast as possible)."""
        if not speed > 0:
            raise ValueError(f"replay speed must be > 0, got {speed}")
        self.speed = float(speed)

    def seek(self, t_s: float) -> None:
        """Jump to ``t_s`` seconds after the run's start: the display starts over from there."""
        target = self.t0_ns + int(min(max(float(t_s), 0.0), self.duration_s) * 1e9)
        self._epoch += 1
        self._now_ns = target
        self._row = _lazy_searchsorted(self._t, target) if self.n_rows else 0
        self._reset_reducers()
        self._ev_counts = (np.bincount(self._ev["channel"][:self._ev_index(target)], minlength=self.n_channels)
                           if self._ev else np.zeros(self.n_channels, np.int64))
        self._ev_vetoed = int(np.count_nonzero(self._ev["flags"][:self._ev_index(target)] & _VETOED)) if self._vetoes else 0
        self._emit(self._info())
        for name, (t, v, unit) in self._hk.items():  # the fridge history up to here, in one go
            k = int(np.searchsorted(t, target))
            if k:
                self._emit(lp.housekeeping_message(name, t[:k], v[:k], unit))
        self._emit_status(force=True)
        self.position_changed.emit(self.position_s)

    def set_channels(self, channels: np.ndarray) -> None:
        """Channels to replay timestreams of, when the run has more than ``max_channels``."""
        if self.n_channels <= self.max_channels:
            return
        cols = np.asarray(channels, np.int32)[:self.max_channels]
        if len(cols) and not np.array_equal(cols, self._cols):
            self._cols = np.sort(cols)
            self._reset_reducers()

    def close(self) -> None:
        self._timer.stop()
        self.playing = False

    # ------------------------------------------------------------------ playing
    def _tick(self) -> None:
        now = time.monotonic()
        dt = min(now - self._last_wall, 0.5)  # a stalled GUI does not make the replay leap
        self._last_wall = now
        if self.playing:
            step_s = self.MAX_CHUNK_S if math.isinf(self.speed) else dt * self.speed
            self.advance(step_s)
        else:
            self._emit_status()

    def advance(self, step_s: float) -> None:
        """Emit everything in the next ``step_s`` seconds of the run (what one tick does)."""
        start, target = self._now_ns, min(self._now_ns + int(step_s * 1e9), self.t1_ns + 1)
        if self.n_rows and self._row < self.n_rows:
            target = self._stream_until(target)
        self._events_between(start, target)
        self._spectra_between(start, target)
        self._gaps_between(start, target)
        for name, (t, v, unit) in self._hk.items():
            a, b = np.searchsorted(t, [start, target])
            if b > a:
                self._emit(lp.housekeeping_message(name, t[a:b], v[a:b], unit))
        self._now_ns = target
        self.position_changed.emit(self.position_s)
        if target > self.t1_ns:
            self.playing = False
            self._emit_status(force=True)
            self._emit(lp.end_message(self.run.status.value, str(self.run.attrs.get("end_reason", "")),
                                      bool(self.run.attrs.get("interrupted", False))))
            self.finished.emit()
        else:
            self._emit_status()

    def _stream_until(self, target: int) -> int:
        """Emit stream rows with t < target (at most MAX_CHUNK_S of them); returns the time reached."""
        max_rows = int(self.MAX_CHUNK_S * self.output_rate_hz) + 1
        i = self._row
        j = min(self.n_rows, i + max_rows)
        t = np.asarray(self._t[i:j].compute())
        k = int(np.searchsorted(t, target))
        if k == 0:
            return target
        if k == len(t) and j < self.n_rows:
            target = int(t[-1]) + 1  # the chunk cap was reached first
        data = np.asarray(self._data[i:i + k][:, self._cols].compute(), np.float32)
        self._row = i + k
        t = t[:k].astype(np.int64)
        td, y = self._decimator.push(t, data)
        if len(td):
            self._emit(lp.stream_message(td, y, self._cols, self.stream_rate_hz))
        c = self._cols
        if self._iq_data is not None:  # the IQ the run stored
            i_rows, q_rows = (np.asarray(a[i:i + k][:, c].compute(), np.float32) for a in self._iq_data)
            iq = (i_rows + 1j * q_rows).astype(np.complex64)
        else:  # inverse of IQCalibration.phase: phase = sign * angle((iq - centre) e^{-i rotation})
            iq = (self._centre[c] + self._radius[c] * np.exp(1j * (self._sign[c] * data + self._rotation[c])))
            iq = iq.astype(np.complex64)
        points, op = self._iqr.push(iq)
        msg = lp.iq_message(points, op, self._cols, int(t[-1]))
        msg.header["reconstructed"] = self._iq_data is None
        self._emit(msg)
        if self._monitor is not None:
            snap = self._monitor.push(data, t)
            if snap is not None:
                self._emit(lp.psd_message(snap[0], snap[1], snap[2], self._cols, self._monitor.units))
        return target

    def _ev_index(self, t_ns: int) -> int:
        return int(np.searchsorted(self._ev["t"], t_ns)) if self._ev else 0

    def _events_between(self, start: int, target: int) -> None:
        if not self._ev:
            return
        a, b = self._ev_index(start), self._ev_index(target)
        if b <= a:
            return
        cols = {k: v[a:b] for k, v in self._ev.items()}
        self._ev_counts += np.bincount(cols["channel"], minlength=self.n_channels)[:self.n_channels]
        if self._vetoes:
            self._ev_vetoed += int(np.count_nonzero(cols["flags"] & _VETOED))
        records = index = None
        if self._records is not None:
            k = min(b - a, 32)
            rows = slice(b - k, b) if self._ev_order is None else self._ev_order[b - k:b]
            records = np.asarray(self._records[rows].compute(), np.float32)
            index = np.arange(b - a - k, b - a, dtype=np.int32)
        self._emit(lp.events_message(cols, records, index, presamples=self.presamples,
                                     record_rate_hz=self.record_rate_hz))

    def _spectra_between(self, start: int, target: int) -> None:
        if self._spectra is None:
            return
        a, b = np.searchsorted(self._sp_t, [start, target])
        for u in range(a, b):
            psd = np.asarray(self._spectra["psd"].data[u].compute(), np.float32)
            for lo in range(0, psd.shape[0], 128):
                rows = np.arange(lo, min(lo + 128, psd.shape[0]), dtype=np.int32)
                self._emit(lp.psd_message(int(self._sp_t[u]), self._sp_freq, psd[rows], rows, self._sp_units))

    def _gaps_between(self, start: int, target: int) -> None:
        t = self._gaps["t"]
        a, b = np.searchsorted(t, [start, target])
        for g in range(a, b):
            self._decimator.reset()
            self._emit(lp.gap_message(int(self._gaps["first_sample"][g]), int(self._gaps["n_samples"][g]),
                                      int(t[g]), str(self._gaps["cause"][g]), str(self._gaps["detail"][g])))

    # ---------------------------------------------------------------- messages
    def _emit(self, msg: lp.Message) -> None:
        self.message.emit(msg)

    def _info(self) -> lp.Message:
        station = self.run.attrs.get("station")
        msg = lp.info_message(
            station=str(station.get("name", "") if isinstance(station, dict) else station or self.run.run_id),
            stream=self.stream_name or "", units=self.units, output_rate_hz=self.output_rate_hz,
            adc_rate_hz=self.adc_rate_hz, channel_coords=self.channel_coords or {"channel": np.zeros(0, np.int32)},
            run_path=str(self.path), stream_channels=self._cols, stream_rate_hz=self.stream_rate_hz,
            source="replay",
        )
        msg.header["epoch"] = self._epoch
        msg.header["duration_s"] = self.duration_s
        return msg

    def _emit_status(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < 0.2:
            return
        self._last_status = now
        ended = self._now_ns > self.t1_ns
        speed = "max" if math.isinf(self.speed) else f"{self.speed:g}×"
        state = "replay ended" if ended else (f"replay {speed}" if self.playing else "replay paused")
        samples = int(self._row * (self.adc_rate_hz / self.output_rate_hz)) if self.output_rate_hz else 0
        if now - self._rate_ref[0] >= 1.0:
            self._measured_rate = (samples - self._rate_ref[1]) / (now - self._rate_ref[0])
            self._rate_ref = (now, samples)
        k = int(np.searchsorted(self._gaps["t"], self._now_ns))
        try:
            disk = shutil.disk_usage(self.path)
            free, total = disk.free, disk.total
        except OSError:
            free = total = -1
        self._emit(lp.status_message(
            self._ev_counts, state=state, elapsed_s=self.position_s, samples=samples,
            sample_rate_hz=max(self._measured_rate, 0.0), events=int(self._ev_counts.sum()),
            gaps=k, samples_lost=int(self._gaps["n_samples"][:k].sum()), disk_free_bytes=free, disk_total_bytes=total,
            **({"vetoed": self._ev_vetoed} if self._vetoes else {}),
        ))
