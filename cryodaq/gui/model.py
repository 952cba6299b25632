"""What the GUI knows: live messages folded into fixed-size numpy ring buffers (no Qt here).

Every message is applied with a handful of vectorised numpy calls, whatever its
size; the docks read views of these buffers when the redraw timer fires. Memory
is bounded: each buffer holds the latest ``history_s`` or a fixed number of
rows, so a GUI left open all night does not grow.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import numpy as np

from cryodaq.wire import live as lp


def column_index(available: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions of ``wanted`` in ``available`` (every wanted value must be there), vectorised."""
    order = np.argsort(available, kind="stable")
    return order[np.searchsorted(available, wanted, sorter=order)]


class RingBuffer:
    """The latest ``capacity`` rows of an appended array, readable as one contiguous view.

    Each row is stored twice (at ``i`` and ``i + capacity``), so the newest
    ``n`` rows are always one slice: reads never copy or concatenate.
    """

    def __init__(self, capacity: int, shape: tuple[int, ...] = (), dtype: Any = np.float64) -> None:
        self.capacity = int(capacity)
        self._buf = np.zeros((2 * self.capacity, *shape), dtype)
        self._pos = 0
        self._n = 0
        self.appended = 0  # rows ever appended (for readers that track what they have seen)

    def __len__(self) -> int:
        return self._n

    @property
    def row_shape(self) -> tuple[int, ...]:
        return self._buf.shape[1:]

    def clear(self) -> None:
        self._pos = self._n = 0

    def append(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows)
        k = len(rows)
        self.appended += k
        cap = self.capacity
        if k >= cap:
            rows, k = rows[-cap:], cap
        i = self._pos
        first = min(k, cap - i)
        self._buf[i:i + first] = rows[:first]
        self._buf[i + cap:i + cap + first] = rows[:first]
        rest = k - first
        if rest:
            self._buf[:rest] = rows[first:]
            self._buf[cap:cap + rest] = rows[first:]
        self._pos = (i + k) % cap
        self._n = min(cap, self._n + k)

    def view(self) -> np.ndarray:
        """Oldest to newest (a view: copy it to keep it past the next append)."""
        end = self._pos + self.capacity
        return self._buf[end - self._n:end]

    def last(self, n: int) -> np.ndarray:
        v = self.view()
        return v[max(0, len(v) - int(n)):]


class LiveModel:
    """The GUI's state, updated by :meth:`handle` for each message (from a live or a replay source).

    ``versions[topic]`` counts messages applied per topic, so a dock redraws only
    when something it shows changed. Times are UTC seconds (float64).
    """

    def __init__(self, *, history_s: float = 120.0, events_capacity: int = 200_000, iq_points: int = 2000,
                 n_records: int = 32, hk_points: int = 200_000, psd_average: int = 4) -> None:
        self.history_s, self.events_capacity, self.iq_points = history_s, events_capacity, iq_points
        self.n_records, self.hk_points = n_records, hk_points
        self.psd_average = int(psd_average)
        self.versions: collections.Counter[str] = collections.Counter()
        self.missed: collections.Counter[str] = collections.Counter()  # messages lost on the way (seq jumps)
        self.publisher_missed = 0
        self.bad_messages = 0
        self._key: tuple[Any, ...] | None = None
        self.reset()

    # --------------------------------------------------------------- state
    def reset(self) -> None:
        """Forget all data (new run, or a replay jumped)."""
        self.info: dict[str, Any] = {}
        self.n_channels = 0
        self.channel_coords: dict[str, np.ndarray] = {}
        self.units = ""
        self.stream_rate_hz = 0.0
        self.stream_channels = np.zeros(0, np.int32)
        self.stream_t = RingBuffer(1)
        self.stream_y = RingBuffer(1, (0,), np.float32)
        self.iq = RingBuffer(1, (0,), np.complex64)
        self.iq_channels = np.zeros(0, np.int32)
        self.iq_op = np.zeros(0, np.complex64)
        self.iq_reconstructed = False
        cap = self.events_capacity
        self.ev_t, self.ev_channel = RingBuffer(cap), RingBuffer(cap, (), np.int32)
        self.ev_amplitude, self.ev_energy = RingBuffer(cap, (), np.float32), RingBuffer(cap, (), np.float32)
        self.ev_filtered = RingBuffer(cap, (), np.float32)  # optimal-filter amplitude (of_amplitude)
        self.events_dropped = 0
        self.records: RingBuffer | None = None
        self.rec_channel = RingBuffer(self.n_records, (), np.int32)
        self.rec_t = RingBuffer(self.n_records)
        self.rec_baseline = RingBuffer(self.n_records, (), np.float32)
        self.rec_presamples, self.rec_rate_hz = 0, 0.0
        self.psd_freq = np.zeros(0, np.float32)
        self.psd: np.ndarray = np.zeros((0, 0), np.float32)  # running average, (channel, freq)
        self.psd_count = np.zeros(0, np.int64)
        self.psd_units, self.psd_t = "", 0.0
        self.hk: dict[str, tuple[RingBuffer, RingBuffer, str]] = {}
        self.status: dict[str, Any] = {}
        self.events_per_channel = np.zeros(0, np.int64)
        self.rates = np.zeros(0)
        self.vetoed = 0  # events flagged by the coincidence veto (run counter)
        self.veto_rate = 0.0  # ... per second over the same ~5 s as ``rates``
        self._rate_hist: collections.deque[tuple[float, np.ndarray, int]] = collections.deque(maxlen=64)
        self.gaps: list[dict[str, Any]] = []
        self.ended: dict[str, Any] | None = None
        self.last_message = 0.0
        self._seq: dict[str, int] = {}
        self.versions["reset"] += 1

    # ------------------------------------------------------------- dispatch
    def handle(self, msg: lp.Message) -> None:
        """Apply one message."""
        seq = msg.header.get("seq")
        if seq is not None:
            prev = self._seq.get(msg.topic)
            if prev is not None and seq > prev + 1:
                self.missed[msg.topic] += seq - prev - 1
            self._seq[msg.topic] = seq
        handler = getattr(self, f"_on_{msg.topic}", None)
        if handler is None:
            self.bad_messages += 1
            return
        if msg.topic != lp.INFO and not self.info and msg.topic not in (lp.HOUSEKEEPING, lp.STATUS, lp.END):
            return  # until the stream is described, data cannot be placed
        handler(msg)
        self.versions[msg.topic] += 1
        self.last_message = time.monotonic()

    def _on_info(self, msg: lp.Message) -> None:
        h = msg.header
        key = (h.get("station"), h.get("run_path"), h.get("n_channels"), h.get("epoch", 0), h.get("source"))
        if key != self._key:
            self.reset()
            self._key = key
        elif self.info:
            return  # the periodic repeat of what we know
        self.info = dict(h)
        self.n_channels = int(h["n_channels"])
        self.channel_coords = lp.channel_coords_of(msg)
        self.units = h.get("units", "")
        self.stream_rate_hz = float(h.get("stream_rate_hz", 0.0))
        self._set_stream_channels(np.asarray(msg["stream_channels"], np.int32))
        self.events_per_channel = np.zeros(self.n_channels, np.int64)
        self.rates = np.zeros(self.n_channels)

    def _set_stream_channels(self, channels: np.ndarray) -> None:
        self.stream_channels = channels.copy()
        cap = max(int(self.history_s * max(self.stream_rate_hz, 1.0)), 16)
        self.stream_t = RingBuffer(cap)
        self.stream_y = RingBuffer(cap, (len(channels),), np.float32)
        self.versions["stream_channels"] += 1

    def _on_stream(self, msg: lp.Message) -> None:
        channels = msg["channels"]
        if not np.array_equal(channels, self.stream_channels):
            self._set_stream_channels(np.asarray(channels, np.int32))
        self.stream_rate_hz = float(msg.header.get("rate_hz", self.stream_rate_hz))
        self.stream_t.append(msg["t_ns"] * 1e-9)
        self.stream_y.append(msg["data"])

    def _on_iq(self, msg: lp.Message) -> None:
        channels = msg["channels"]
        if not np.array_equal(channels, self.iq_channels):
            self.iq_channels = np.asarray(channels, np.int32).copy()
            self.iq = RingBuffer(self.iq_points, (len(channels),), np.complex64)
        self.iq.append(msg["points"])
        self.iq_op = np.array(msg["op"])
        self.iq_reconstructed = bool(msg.header.get("reconstructed", False))

    def _on_events(self, msg: lp.Message) -> None:
        n = len(msg["t"])
        self.events_dropped += int(msg.header.get("dropped", 0))
        if n:
            self.ev_t.append(msg["t"] * 1e-9)
            self.ev_channel.append(msg["channel"])
            self.ev_amplitude.append(msg["amplitude"])
            for name, buf in (("energy", self.ev_energy), ("of_amplitude", self.ev_filtered)):
                values = msg.arrays.get(name)
                buf.append(values if values is not None else np.full(n, np.nan, np.float32))
        if "records" in msg.arrays and len(msg["records"]):
            rec = msg["records"]
            if self.records is None or self.records.row_shape != rec.shape[1:]:
                self.records = RingBuffer(self.n_records, rec.shape[1:], np.float32)
                self.rec_channel.clear(), self.rec_t.clear(), self.rec_baseline.clear()
            idx = msg["record_index"]
            self.records.append(rec)
            self.rec_channel.append(msg["channel"][idx])
            self.rec_t.append(msg["t"][idx] * 1e-9)
            base = msg.arrays.get("baseline")
            self.rec_baseline.append(base[idx] if base is not None else np.zeros(len(idx), np.float32))
            self.rec_presamples = int(msg.header.get("presamples", 0))
            self.rec_rate_hz = float(msg.header.get("record_rate_hz", 0.0))

    def _on_psd(self, msg: lp.Message) -> None:
        freq, rows, channels = msg["freq"], msg["psd"], msg["channels"]
        if self.psd.shape != (self.n_channels, len(freq)) or not np.array_equal(freq, self.psd_freq):
            self.psd_freq = np.array(freq)
            self.psd = np.full((self.n_channels, len(freq)), np.nan, np.float32)
            self.psd_count = np.zeros(self.n_channels, np.int64)
        count = np.minimum(self.psd_count[channels] + 1, self.psd_average)
        old = np.nan_to_num(self.psd[channels])
        # running mean of the first N snapshots, then an exponential average with weight 1/N
        self.psd[channels] = old + (rows - old) / count[:, None]
        self.psd_count[channels] += 1
        self.psd_units, self.psd_t = msg.header.get("units", ""), msg.header["t_ns"] * 1e-9

    def set_psd_average(self, n: int) -> None:
        self.psd_average = max(1, int(n))
        self.psd_count = np.minimum(self.psd_count, self.psd_average)

    def _on_housekeeping(self, msg: lp.Message) -> None:
        name = msg.header["name"]
        if name not in self.hk:
            self.hk[name] = (RingBuffer(self.hk_points), RingBuffer(self.hk_points), msg.header.get("unit", ""))
        t, v, _ = self.hk[name]
        t.append(msg["t_ns"] * 1e-9)
        v.append(msg["value"])

    def _on_status(self, msg: lp.Message) -> None:
        self.status = dict(msg.header)
        counts = np.asarray(msg["events_per_channel"], np.int64)
        self.publisher_missed = int(self.status.get("publisher_drops", 0))
        elapsed = float(self.status.get("elapsed_s", 0.0))
        if self._rate_hist and (elapsed < self._rate_hist[-1][0] or len(counts) != len(self._rate_hist[-1][1])):
            self._rate_hist.clear()  # a replay jumped back, or another run
        vetoed = int(self.status.get("vetoed", 0))
        self._rate_hist.append((elapsed, counts, vetoed))
        # rates over the last ~5 s of counters (or since the start, early on)
        ref = next((h for h in self._rate_hist if elapsed - h[0] <= 5.0), self._rate_hist[0])
        dt = elapsed - ref[0]
        if dt > 0.2:
            self.rates = (counts - ref[1]) / dt
            self.veto_rate = (vetoed - ref[2]) / dt
        elif elapsed > 0:
            self.rates = counts / elapsed
            self.veto_rate = vetoed / elapsed
        self.events_per_channel = counts
        self.vetoed = vetoed

    def _on_gap(self, msg: lp.Message) -> None:
        self.gaps.append(dict(msg.header))

    def _on_end(self, msg: lp.Message) -> None:
        self.ended = dict(msg.header)

    # --------------------------------------------------------------- queries
    def channel_label(self, ch: int) -> str:
        """Human label of a channel, e.g. 'ch 3  5.0012 GHz'."""
        label = f"ch {ch}"
        f = self.channel_coords.get("tone_frequency_hz")
        if f is not None and ch < len(f):
            label += f"  {f[ch] / 1e9:.6f} GHz"
        return label

    def stream_columns(self, channels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(channels that have a timestream, their column in ``stream_y``) among ``channels``."""
        have = np.asarray(channels)[np.isin(channels, self.stream_channels)]
        return have, column_index(self.stream_channels, have)

    def event_values(self, channels: np.ndarray, quantity: str = "amplitude") -> np.ndarray:
        """Trigger amplitudes, optimal-filter values (``filtered``) or energies of buffered events on ``channels``."""
        buffers = {"amplitude": self.ev_amplitude, "filtered": self.ev_filtered, "energy": self.ev_energy}
        if quantity not in buffers:
            raise ValueError(f"event quantity {quantity!r}: expected one of {sorted(buffers)}")
        values = buffers[quantity].view()
        mask = np.isin(self.ev_channel.view(), channels)
        return values[mask]
