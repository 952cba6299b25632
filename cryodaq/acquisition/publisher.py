"""Live publisher: a session sink that feeds GUIs over ZeroMQ PUB without ever slowing acquisition.

Every send is non-blocking: when a subscriber is slow or stalled its queue
(``SNDHWM`` messages, then the kernel's socket buffer) fills, ``zmq.Again`` comes
back and the message is dropped and counted per topic (:attr:`LivePublisher.drops`).
The pipeline never waits. (``ZMQ_XPUB_NODROP`` makes a full queue report
``Again``; plain PUB would drop without telling.) A PUB socket with no
subscriber at all discards silently, which is fine: nobody is watching.

With ``XPUB_NODROP`` a message is refused for every subscriber while any one of
them is full, so a stalled subscriber must not stay connected: ZMTP heartbeats
(``heartbeat_s``) cut off a peer that stops reading (a stalled or sleeping GUI
stops answering pings once its buffers are full), and the others get data
again. Every message carries a per-topic ``seq`` so each subscriber can count
what it missed.

Reduction happens here so that messages stay small whatever the array size:
timestreams of the published channels are block-mean decimated to about
``stream_rate_hz``; IQ points are subsampled (:class:`IQReducer`); each topic
sends at most ``max_message_rate_hz`` messages a second (data in between is
batched); events per message and PSD channels per message are capped.

Thread-safety: the session calls sinks from its pipeline, housekeeping and main
threads, and zmq sockets are not thread-safe, so one lock guards the socket and
the batches. Every critical section is a few numpy calls and one non-blocking
send (microseconds), so a lock is cheaper than a hand-off queue and sender thread.
"""

from __future__ import annotations

import functools
import logging
import math
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zmq

from cryodaq.acquisition import live_protocol as lp
from cryodaq.acquisition.live_reduce import IQReducer, StreamDecimator
from cryodaq.acquisition.pipeline import PipelineOutput
from cryodaq.acquisition.receiver import Gap
from cryodaq.acquisition.sinks import StreamInfo
from cryodaq.errors import CryodaqError

if TYPE_CHECKING:
    from cryodaq.acquisition.session import SessionStats

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "tcp://127.0.0.1:5556"
DEFAULT_MAX_CHANNELS = 16


class PublisherError(CryodaqError, RuntimeError):
    """The live publisher could not bind its address."""


def bind_pub(socket: zmq.Socket, address: str) -> str:
    """Bind ``socket``; a port of 0, ``*`` or ``auto`` picks a free one. Returns the bound endpoint."""
    base, _, port = address.rpartition(":")
    try:
        if address.startswith("tcp://") and port in ("0", "*", "auto"):
            socket.bind_to_random_port(base)
        else:
            socket.bind(address)
    except zmq.ZMQError as exc:
        raise PublisherError(f"live publisher: cannot bind {address!r}: {exc}") from None
    return socket.getsockopt_string(zmq.LAST_ENDPOINT)


def _never_raises(method: Callable[..., None]) -> Callable[..., None]:
    """A live-view failure must never end a run: log it, count it in ``errors``, carry on."""

    @functools.wraps(method)
    def guarded(self: LivePublisher, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except Exception:
            self.errors += 1
            if self.errors <= 3:
                log.exception("live publisher: %s failed (the run goes on)", method.__name__)

    return guarded


class _Batch:
    """Data waiting for the next send of one topic (rate limiting)."""

    def __init__(self) -> None:
        self.parts: list[Any] = []
        self.last_sent = 0.0

    def take(self) -> list[Any]:
        parts, self.parts = self.parts, []
        return parts


class LivePublisher:
    """A :class:`~cryodaq.acquisition.sinks.Sink` publishing a session's results (see module docstring).

    ``channels`` are the channels whose timestreams and IQ points are published
    (default: all when there are at most ``max_channels``, else the first
    ``max_channels``); PSDs, events and counters cover every channel.
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        channels: Sequence[int] | None = None,
        max_channels: int = DEFAULT_MAX_CHANNELS,
        stream_rate_hz: float = 2000.0,
        iq_rate_hz: float = 250.0,
        max_message_rate_hz: float = 20.0,
        status_rate_hz: float = 5.0,
        max_events_per_message: int = 5000,
        max_records_per_message: int = 32,
        psd_channels_per_message: int = 128,
        info_interval_s: float = 2.0,
        sndhwm: int = 100,
        sndbuf: int = 0,
        heartbeat_s: float = 1.0,
        context: zmq.Context | None = None,
    ) -> None:
        self._own_context = context is None
        self._ctx = context or zmq.Context()
        self._sock = self._ctx.socket(zmq.PUB)
        self._sock.setsockopt(zmq.SNDHWM, int(sndhwm))
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.XPUB_NODROP, 1)
        self._sock.setsockopt(zmq.HEARTBEAT_IVL, int(heartbeat_s * 1000))
        self._sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(3 * heartbeat_s * 1000))
        if sndbuf > 0:
            self._sock.setsockopt(zmq.SNDBUF, int(sndbuf))
        try:
            self.address = bind_pub(self._sock, address)
        except PublisherError:
            self._sock.close()
            if self._own_context:
                self._ctx.term()
            raise
        self._requested_channels = None if channels is None else [int(c) for c in channels]
        self.max_channels = int(max_channels)
        self.stream_rate_hz, self.iq_rate_hz = float(stream_rate_hz), float(iq_rate_hz)
        self.min_interval_s = 1.0 / float(max_message_rate_hz)
        self.status_interval_s = 1.0 / float(status_rate_hz)
        self.max_events, self.max_records = int(max_events_per_message), int(max_records_per_message)
        self.psd_chunk = int(psd_channels_per_message)
        self.info_interval_s = float(info_interval_s)
        self.drops: dict[str, int] = {t: 0 for t in lp.TOPICS}
        self.sent: dict[str, int] = {t: 0 for t in lp.TOPICS}
        self.errors = 0  # exceptions caught in sink calls (logged; the run goes on)
        self.events_truncated = 0  # events left out of capped messages (counted, never silent)
        self._lock = threading.Lock()
        self._closed = False
        self._info_msg: lp.Message | None = None
        self._last_info = 0.0
        self._last_status = 0.0
        self._rate_ref: tuple[float, int] | None = None
        self._disk: tuple[float, int, int] = (0.0, -1, -1)
        self._run_dir: Path | None = None
        self._batches = {t: _Batch() for t in (lp.STREAM, lp.IQ, lp.EVENTS)}
        self.channels = np.zeros(0, np.int32)
        self._decimator = StreamDecimator(1)
        self._iq = IQReducer(1)
        self._rate_hz = 0.0
        self._output_rate_hz = 0.0
        self._all = False
        self._seq: dict[str, int] = {t: 0 for t in lp.TOPICS}
        self._measured_rate_hz = 0.0

    # ------------------------------------------------------------------ sink
    @_never_raises
    def start(self, info: StreamInfo) -> None:
        n = info.n_channels
        if self._requested_channels is not None:
            bad = [c for c in self._requested_channels if not 0 <= c < n]
            if bad:  # a live-view setting must not stop a run: publish the channels that exist
                log.warning("live publisher: channels %s do not exist (the stream has %d); not published", bad, n)
            chans = np.asarray([c for c in self._requested_channels if 0 <= c < n], np.int32)
        else:
            chans = np.arange(min(n, self.max_channels), dtype=np.int32)
        factor = max(1, math.ceil(info.output_rate_hz / self.stream_rate_hz))
        with self._lock:
            self.channels = chans
            self._all = len(chans) == n and np.array_equal(chans, np.arange(n))
            self._decimator = StreamDecimator(factor)
            self._rate_hz = info.output_rate_hz / factor
            self._output_rate_hz = info.output_rate_hz
            self._iq = IQReducer(max(1, round(info.output_rate_hz / self.iq_rate_hz)))
            self._run_dir = Path(info.run_path).parent if info.run_path else None
            self._info_msg = lp.info_message(
                station=info.station, stream=info.stream, units=info.units, output_rate_hz=info.output_rate_hz,
                adc_rate_hz=info.adc_rate_hz, channel_coords=info.channel_coords, run_path=info.run_path,
                stream_channels=chans, stream_rate_hz=self._rate_hz, source="live",
            )
            self._send(self._info_msg)
            self._last_info = time.monotonic()

    @_never_raises
    def output(self, out: PipelineOutput) -> None:
        now = time.monotonic()
        with self._lock:
            if self._closed:
                return
            if len(out.sample_index):
                data = out.data if self._all else out.data[:, self.channels]
                t, y = self._decimator.push(out.t_ns, data)
                if len(t):
                    self._batches[lp.STREAM].parts.append((t, y))
                if out.iq is not None:
                    iq = out.iq if self._all else out.iq[:, self.channels]
                    self._batches[lp.IQ].parts.append((*self._iq.push(iq), int(out.t_ns[-1])))
            if len(out.events):
                self._batches[lp.EVENTS].parts.append(out)
            self._flush_due(now)

    @_never_raises
    def gap(self, gap: Gap) -> None:
        with self._lock:
            self._decimator.reset()
            self._send(lp.gap_message(gap.first_sample, gap.n_samples, gap.t_ns, gap.cause, gap.detail))

    @_never_raises
    def housekeeping(self, name: str, t_ns: int, value: float, unit: str) -> None:
        with self._lock:
            self._send(lp.housekeeping_message(name, np.array([t_ns]), np.array([value]), unit))

    @_never_raises
    def spectrum(self, t_ns: int, freq: np.ndarray, psd: np.ndarray, units: str) -> None:
        with self._lock:
            for lo in range(0, psd.shape[0], self.psd_chunk):
                rows = np.arange(lo, min(lo + self.psd_chunk, psd.shape[0]), dtype=np.int32)
                self._send(lp.psd_message(t_ns, freq, psd[lo:lo + len(rows)], rows, units))

    @_never_raises
    def status(self, stats: SessionStats) -> None:
        now = time.monotonic()
        with self._lock:
            if self._closed:
                return
            self._flush_due(now)
            if self._info_msg is not None and now - self._last_info >= self.info_interval_s:
                self._send(self._info_msg)
                self._last_info = now
            if now - self._last_status < self.status_interval_s:
                return
            self._last_status = now
            self._send(self._status_message(stats, now, "running"))

    @_never_raises
    def close(self, *, interrupted: bool, reason: str, error: BaseException | None) -> None:
        with self._lock:
            if self._closed:
                return
            self._flush_due(math.inf)
            status = "aborted" if error is not None else "complete"
            self._send(lp.end_message(status, reason, interrupted))
            self._closed = True
            # a short linger lets the last messages reach a live GUI; a stalled one cannot hold us longer
            self._sock.close(linger=200)
            if self._own_context:
                self._ctx.term()
        log.info("live publisher %s closed: sent %s, dropped %s", self.address, self.sent, self.drops)

    # --------------------------------------------------------------- helpers
    @property
    def total_drops(self) -> int:
        return int(sum(self.drops.values()))

    def _send(self, msg: lp.Message) -> bool:
        """Send without blocking; a full queue drops the message and counts it."""
        if self._closed:
            return False
        self._seq[msg.topic] += 1
        msg.header["seq"] = self._seq[msg.topic]
        try:
            self._sock.send_multipart(lp.encode(msg), flags=zmq.NOBLOCK, copy=True)
        except zmq.ZMQError as exc:  # zmq.Again: a subscriber's queue is full
            self.drops[msg.topic] += 1
            if not isinstance(exc, zmq.Again):
                log.warning("live publisher: send failed: %s", exc)
            return False
        self.sent[msg.topic] += 1
        return True

    def _flush_due(self, now: float) -> None:
        for topic, batch in self._batches.items():
            if batch.parts and now - batch.last_sent >= self.min_interval_s:
                batch.last_sent = now if math.isfinite(now) else time.monotonic()
                self._send(self._build(topic, batch.take()))

    def _build(self, topic: str, parts: list[Any]) -> lp.Message:
        if topic == lp.STREAM:
            return lp.stream_message(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                                     self.channels, self._rate_hz)
        if topic == lp.IQ:
            return lp.iq_message(np.concatenate([p[0] for p in parts]), parts[-1][1], self.channels, parts[-1][2])
        return self._events_message(parts)

    def _events_message(self, outs: list[PipelineOutput]) -> lp.Message:
        cols = {
            "t": np.concatenate([o.event_t_ns for o in outs]),
            "channel": np.concatenate([o.events.channel for o in outs]),
            "amplitude": np.concatenate([o.events.amplitude for o in outs]),
            "baseline": np.concatenate([o.events.baseline for o in outs]),
            "flags": np.concatenate([o.events.flags for o in outs]),
        }
        n = len(cols["t"])
        dropped = max(0, n - self.max_events)
        if dropped:
            self.events_truncated += dropped
            cols = {k: v[dropped:] for k, v in cols.items()}
            n -= dropped
        with_records = [o.events.records for o in outs if o.events.records is not None]
        records = index = None
        if len(with_records) == len(outs) and n:
            k = min(n, self.max_records)  # the latest records only: pulse shapes, not an archive
            records = np.concatenate(with_records)[-k:]
            index = np.arange(n - k, n, dtype=np.int32)
        return lp.events_message(cols, records, index, presamples=outs[-1].events.presamples,
                                 record_rate_hz=self._output_rate_hz, dropped=dropped)

    def _status_message(self, stats: SessionStats, now: float, state: str) -> lp.Message:
        if self._rate_ref is None or now - self._rate_ref[0] >= 1.0:
            if self._rate_ref is not None:
                self._measured_rate_hz = (stats.samples - self._rate_ref[1]) / (now - self._rate_ref[0])
            self._rate_ref = (now, stats.samples)
        if self._run_dir is not None and now - self._disk[0] >= 1.0:
            try:
                usage = shutil.disk_usage(self._run_dir)
                self._disk = (now, usage.free, usage.total)
            except OSError:
                self._disk = (now, -1, -1)
        return lp.status_message(
            stats.events_per_channel,
            state=state, elapsed_s=stats.elapsed, samples=stats.samples, packets=stats.packets,
            sample_rate_hz=self._measured_rate_hz, events=stats.events,
            lost_packets=stats.lost_packets, dropped_blocks=stats.dropped_blocks, gaps=stats.gaps,
            samples_lost=stats.samples_lost, queue_fill=stats.queue_fill,
            housekeeping_errors=stats.housekeeping_errors, publisher_drops=self.total_drops,
            disk_free_bytes=self._disk[1], disk_total_bytes=self._disk[2],
        )
