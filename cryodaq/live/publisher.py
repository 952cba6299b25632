"""Live publisher: a session sink that feeds GUIs over ZeroMQ PUB without ever slowing acquisition.

The session's threads only hand their results over: every sink call appends a
reference to a bounded queue (microseconds) and returns. One sender thread owns
the socket (zmq sockets are not thread-safe) and does the rest at most
``max_message_rate_hz`` times a second per topic: it decimates the timestreams
of the published channels to about ``stream_rate_hz`` (block means), subsamples
IQ (:class:`~cryodaq.live.reduce.IQReducer`), batches events (capped
per message, only the latest records), splits PSDs into blocks of channels, and
sends. Reducing a batch of blocks at once also costs less than block by block.

Every send is non-blocking: when a subscriber is slow or stalled its queue
(``SNDHWM`` messages, then the kernel's socket buffer) fills, ``zmq.Again`` comes
back and the message is dropped and counted per topic (:attr:`LivePublisher.drops`).
(``ZMQ_XPUB_NODROP`` makes a full queue report ``Again``; plain PUB would drop
without telling.) A PUB socket with no subscriber at all discards silently,
which is fine: nobody is watching. Should the sender thread itself fall behind,
the hand-over queue drops its oldest blocks (:attr:`LivePublisher.backlog_drops`)
rather than grow.

With ``XPUB_NODROP`` a message is refused for every subscriber while any one of
them is full, so a stalled subscriber must not stay connected: ZMTP heartbeats
(``heartbeat_s``) cut off a peer that stops reading (a stalled or sleeping GUI
stops answering pings once its buffers are full), and the others get data
again. Every message carries a per-topic ``seq`` so each subscriber can count
what it missed.
"""

from __future__ import annotations

import collections
import functools
import logging
import math
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from cryodaq.wire import live as lp
from cryodaq.live.reduce import IQReducer, StreamDecimator
from cryodaq.acquisition.pipeline import PipelineOutput
from cryodaq.acquisition.sinks import SessionStats, StreamInfo
from cryodaq.errors import CryodaqError
from cryodaq.readout.blocks import Gap

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "tcp://127.0.0.1:5556"
DEFAULT_MAX_CHANNELS = 16


class PublisherError(CryodaqError, RuntimeError):
    """The live publisher could not bind its address; ``os_error`` says why (e.g. ``EADDRINUSE``)."""

    def __init__(self, message: str, os_error: OSError | None = None) -> None:
        super().__init__(message)
        self.os_error = os_error


def bind_pub(socket: zmq.Socket, address: str) -> str:
    """Bind ``socket``; a port of 0, ``*`` or ``auto`` picks a free one. Returns the bound endpoint."""
    base, _, port = address.rpartition(":")
    try:
        if address.startswith("tcp://") and port in ("0", "*", "auto"):
            socket.bind_to_random_port(base)
        else:
            socket.bind(address)
    except zmq.ZMQError as exc:
        raise PublisherError(f"live publisher: cannot bind {address!r}: {exc}",
                             OSError(exc.errno, exc.strerror)) from None
    return socket.getsockopt_string(zmq.LAST_ENDPOINT)


def _never_raises(method: Callable[..., None]) -> Callable[..., None]:
    """A live-view failure must never end a run: log it, count it in ``errors``, carry on."""

    @functools.wraps(method)
    def guarded(self: LivePublisher, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except Exception:  # noqa: BLE001 - deliberately everything: the live view must not end a run
            self._error(method.__name__)

    return guarded


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
        backlog_s: float = 4.0,
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
        self.backlog_s = float(backlog_s)
        # counters (written by the sender thread; plain ints, safe to read anywhere)
        self.drops: dict[str, int] = {t: 0 for t in lp.TOPICS}
        self.sent: dict[str, int] = {t: 0 for t in lp.TOPICS}
        self.backlog_drops = 0  # pipeline outputs the sender thread had no time for
        self.events_truncated = 0  # events left out of capped messages
        self.errors = 0  # exceptions caught (logged; the run goes on)
        self.channels = np.zeros(0, np.int32)
        # hand-over queue: (kind, payload) in call order
        self._queue: collections.deque[tuple[str, Any]] = collections.deque()
        self._queued_outputs = 0
        self._max_outputs = 1 << 30  # set by start() from the output rate
        self._cond = threading.Condition()
        self._closing = False
        self._last_status = 0.0
        self._rate_ref: tuple[float, int] | None = None
        self._measured_rate_hz = 0.0
        self._disk: tuple[float, int, int] = (-math.inf, -1, -1)
        self._run_dir: Path | None = None
        # sender-thread state
        self._seq: dict[str, int] = {t: 0 for t in lp.TOPICS}
        self._info_msg: lp.Message | None = None
        self._last_info = 0.0
        self._batch: list[PipelineOutput] = []
        self._last_flush = 0.0
        self._all = False
        self._decimator = StreamDecimator(1)
        self._iq = IQReducer(1)
        self._rate_hz = 0.0
        self._output_rate_hz = 0.0
        self._thread = threading.Thread(target=self._run, name="cryodaq-live-publisher", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ sink calls
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
        self._run_dir = Path(info.run_path).parent if info.run_path else None
        self._max_outputs = max(16, int(self.backlog_s * info.output_rate_hz / 64))  # blocks are >= 64 samples
        self._put("start", (info, chans))

    def output(self, out: PipelineOutput) -> None:
        """Hand a block over to the sender thread (drops the oldest block if it is far behind)."""
        with self._cond:
            if self._closing:
                return
            if self._queued_outputs >= self._max_outputs:
                for i, (kind, _) in enumerate(self._queue):
                    if kind == "output":
                        del self._queue[i]
                        self._queued_outputs -= 1
                        self.backlog_drops += 1
                        break
            self._queue.append(("output", out))
            self._queued_outputs += 1
            self._cond.notify()

    def gap(self, gap: Gap) -> None:
        self._put("gap", gap)

    def housekeeping(self, name: str, t_ns: int, value: float, unit: str) -> None:
        self._put("message", lp.housekeeping_message(name, np.array([t_ns]), np.array([value]), unit))

    def spectrum(self, t_ns: int, freq: np.ndarray, psd: np.ndarray, units: str) -> None:
        self._put("spectrum", (t_ns, freq, psd, units))

    @_never_raises
    def status(self, stats: SessionStats) -> None:
        now = time.monotonic()
        if now - self._last_status < self.status_interval_s:
            return
        self._last_status = now
        self._put("message", self._status_message(stats, now, "running"))

    @_never_raises
    def close(self, *, interrupted: bool, reason: str, error: BaseException | None) -> None:
        """Send what is pending and ``end``, stop the sender thread, close the socket (once)."""
        if self._sock.closed:
            return
        status = "aborted" if error is not None else "complete"
        self._put("close", lp.end_message(status, reason, interrupted))
        with self._cond:
            self._closing = True
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            log.warning("live publisher %s: sender thread did not finish; closing anyway", self.address)
        # a short linger lets the last messages reach a live GUI; a stalled one cannot hold us longer
        self._sock.close(linger=200)
        if self._own_context:
            self._ctx.term()
        log.info("live publisher %s closed: sent %s, dropped %s", self.address, self.sent, self.drops)

    @property
    def total_drops(self) -> int:
        return int(sum(self.drops.values()))

    # ----------------------------------------------------------- hand-over
    def _put(self, kind: str, payload: Any) -> None:
        with self._cond:
            if self._closing:
                return
            self._queue.append((kind, payload))
            self._cond.notify()

    def _error(self, where: str) -> None:
        self.errors += 1
        if self.errors <= 3:
            log.exception("live publisher: %s failed (the run goes on)", where)

    # -------------------------------------------------------- sender thread
    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._cond.wait(self.min_interval_s)
                items = list(self._queue)
                self._queue.clear()
                self._queued_outputs = 0
            done = False
            for kind, payload in items:
                try:
                    done = self._handle(kind, payload) or done
                except Exception:  # noqa: BLE001 - one bad item must not stop the sender thread
                    self._error(f"sending {kind}")
            try:
                self._flush(force=done)
                now = time.monotonic()
                if self._info_msg is not None and now - self._last_info >= self.info_interval_s:
                    self._send(self._info_msg)  # late subscribers learn what the stream is
                    self._last_info = now
            except Exception:  # noqa: BLE001 - as above
                self._error("flush")
            if done:
                return

    def _handle(self, kind: str, payload: Any) -> bool:
        """Act on one queued item; True when it was the last (close)."""
        if kind == "output":
            self._batch.append(payload)
            if time.monotonic() - self._last_flush >= self.min_interval_s:
                self._flush()
        elif kind == "message":
            self._send(payload)
        elif kind == "gap":
            self._flush()  # data before the gap go out first, and no bin spans the gap
            self._decimator.reset()
            g = payload
            self._send(lp.gap_message(g.first_sample, g.n_samples, g.t_ns, g.cause, g.detail))
        elif kind == "spectrum":
            t_ns, freq, psd, units = payload
            for lo in range(0, psd.shape[0], self.psd_chunk):
                rows = np.arange(lo, min(lo + self.psd_chunk, psd.shape[0]), dtype=np.int32)
                self._send(lp.psd_message(t_ns, freq, psd[lo:lo + len(rows)], rows, units))
        elif kind == "start":
            self._start(*payload)
        elif kind == "close":
            self._flush(force=True)
            self._send(payload)
            return True
        return False

    def _start(self, info: StreamInfo, chans: np.ndarray) -> None:
        n = info.n_channels
        factor = max(1, math.ceil(info.output_rate_hz / self.stream_rate_hz))
        self.channels = chans
        self._all = len(chans) == n and np.array_equal(chans, np.arange(n))
        self._decimator = StreamDecimator(factor)
        self._rate_hz = info.output_rate_hz / factor
        self._output_rate_hz = info.output_rate_hz
        self._iq = IQReducer(max(1, round(info.output_rate_hz / self.iq_rate_hz)))
        self._info_msg = lp.info_message(
            station=info.station, stream=info.stream, units=info.units, output_rate_hz=info.output_rate_hz,
            adc_rate_hz=info.adc_rate_hz, channel_coords=info.channel_coords, run_path=info.run_path,
            stream_channels=chans, stream_rate_hz=self._rate_hz, source="live",
        )
        self._send(self._info_msg)
        self._last_info = time.monotonic()

    def _flush(self, force: bool = False) -> None:
        """Reduce the batched blocks and send one stream, one IQ and one events message."""
        if not self._batch or (not force and time.monotonic() - self._last_flush < self.min_interval_s):
            return
        batch, self._batch = self._batch, []
        self._last_flush = time.monotonic()
        with_data = [o for o in batch if len(o.sample_index)]
        if with_data:
            data = np.concatenate([o.data for o in with_data])
            t_ns = np.concatenate([o.t_ns for o in with_data])
            t, y = self._decimator.push(t_ns, data if self._all else data[:, self.channels])
            if len(t):
                self._send(lp.stream_message(t, y, self.channels, self._rate_hz))
            iqs = [o.iq for o in with_data if o.iq is not None]
            if len(iqs) == len(with_data):
                iq = np.concatenate(iqs)
                points, op = self._iq.push(iq if self._all else iq[:, self.channels])
                self._send(lp.iq_message(points, op, self.channels, int(t_ns[-1])))
        with_events = [o for o in batch if len(o.events)]
        if with_events:
            self._send(self._events_message(with_events))

    def _send(self, msg: lp.Message) -> bool:
        """Send without blocking; a full queue drops the message and counts it."""
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

    def _events_message(self, outs: list[PipelineOutput]) -> lp.Message:
        cols = {
            "t": np.concatenate([o.event_t_ns for o in outs]),
            "channel": np.concatenate([o.events.channel for o in outs]),
            "amplitude": np.concatenate([o.events.amplitude for o in outs]),
            "baseline": np.concatenate([o.events.baseline for o in outs]),
            "flags": np.concatenate([o.events.flags for o in outs]),
        }
        for name in ("energy", "of_amplitude"):  # from the live optimal filter, when the run has one
            if all(name in o.event_extra for o in outs):
                cols[name] = np.concatenate([o.event_extra[name] for o in outs])
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

    # ---------------------------------------------------------- caller side
    def _status_message(self, stats: SessionStats, now: float, state: str) -> lp.Message:
        """Built in the caller's thread: a consistent copy of the counters at this moment."""
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
        counters = {f.name: getattr(stats, f.name) for f in fields(stats)
                    if f.name in lp.STATUS_FIELDS}
        return lp.status_message(
            stats.events_per_channel, **counters,
            state=state, elapsed_s=stats.elapsed, sample_rate_hz=self._measured_rate_hz,
            publisher_drops=self.total_drops + self.backlog_drops,
            disk_free_bytes=self._disk[1], disk_total_bytes=self._disk[2],
        )
