"""ZeroMQ receiver of a DASTARD's triggered records and status: record batches and anomaly gaps, never blocking.

One thread subscribes to the records (base + 2) and status (base + 1) PUB sockets of a DASTARD
(:mod:`cryodaq.wire.dastard`), decodes each record, and gathers records of one shape into
:class:`~cryodaq.readout.blocks.RecordBlock` batches on a bounded queue; status messages ride along
on the next batch. It never blocks on the consumer: a full queue drops the batch, counts it and
records a ``pipeline_overflow`` gap.

What it can know about lost records, from what DASTARD gives (a PUB socket drops silently above its
send high-water mark, and nothing numbers the messages):

- per channel, trigger frame indices must increase: a record whose frame index does not is
  reported as ``record_out_of_order`` (stored where it arrived, never reordered). DASTARD's group
  triggers publish a channel's secondaries after its primaries of the same data segment, so with
  group triggering on, such reports can be DASTARD's own order rather than a transport fault;
- DASTARD's ``TRIGGERRATE`` status counts the primary triggers of every channel per second
  (``HiTime``, ``Duration``, ``CountsSeen``): :class:`TriggerRateCheck` compares the counts with the
  records that arrived and reports a shortfall as ``record_dropped``. Secondaries are not counted
  by DASTARD, so with group triggers the check is a lower bound.

A jump in trigger frame index says nothing by itself: triggered data have no expected next frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import zmq

from cryodaq.readout.block_queue import BlockQueue
from cryodaq.readout.blocks import (
    CAUSE_BAD_RECORD,
    CAUSE_OVERFLOW,
    CAUSE_RECORD_DROPPED,
    CAUSE_RECORD_OUT_OF_ORDER,
    Gap,
    RecordBlock,
    StatusMessage,
)
from cryodaq.readout.source import ReceiverStats
from cryodaq.wire import dastard as dw

__all__ = ["DastardReceiver", "TriggerRateCheck"]

log = logging.getLogger(__name__)

_NS = 1_000_000_000
_MAX_PER_POLL = 2000  # messages read from one socket before the other gets its turn
_KEEP_NS = 60 * _NS  # record times kept for the trigger-count check when no TRIGGERRATE comes to use them
_PRUNE_AT = 100_000  # record times of one channel above which the older ones are pruned


def channel_label(index: int, names: Sequence[str]) -> str:
    """``"chan3 (index 2)"``, or ``"index 2"`` when the name is not known."""
    return f"{names[index]} (index {index})" if 0 <= index < len(names) else f"index {index}"


class TriggerRateCheck:
    """Compares DASTARD's per-channel trigger counts (``TRIGGERRATE``) with the records that arrived.

    DASTARD counts each channel's primary triggers over consecutive windows ``(HiTime - Duration,
    HiTime]``. The check keeps running totals per channel: the counts of every window evaluated so
    far against the records whose trigger time falls up to the latest window's end (plus
    ``margin_ns``, so that a record on a window's edge is not missed for rounding). A shortfall
    beyond what was already reported becomes one ``record_dropped`` gap (``n_samples`` records,
    ``first_sample`` -1: which records is not known).

    Status and records come on different sockets, so a window is evaluated ``grace_s`` after its
    message arrived (:meth:`due`), when its records are in. Records published before our
    subscription took effect never reach us, so the check starts on DASTARD's own clock: the
    first ``TRIGGERRATE`` after :meth:`subscribed` is skipped and sets ``start_ns`` to its
    ``HiTime`` + 1 s; windows that begin before ``start_ns`` are skipped too. (No host clock is
    involved: a DASTARD on another host, or one that lags, is checked the same way.)
    ``channels``: the channel indices subscribed (None: all).
    """

    def __init__(self, channels: Sequence[int] | None = None, *, grace_s: float = 1.0,
                 margin_ns: int = 100_000) -> None:
        self.channels = None if channels is None else frozenset(int(c) for c in channels)
        self.grace_s = float(grace_s)
        self.margin_ns = int(margin_ns)
        self.start_ns: int | None = None
        self.windows_checked = 0
        self._windows: deque[tuple[float, int, int, list[int]]] = deque()
        self._times: dict[int, list[int]] = {}
        self._counted: dict[int, int] = {}
        self._received: dict[int, int] = {}
        self._reported: dict[int, int] = {}
        self._from_ns: int | None = None  # start of the first evaluated window
        self._last_hi: int | None = None
        self._horizon: int | None = None  # record times before it were pruned: windows reaching back are not checked
        self._skip_next = True

    def subscribed(self) -> None:
        """Our subscription took effect: windows are checked from 1 s after the next TRIGGERRATE's end."""
        self.start_ns = None
        self._skip_next = True

    def record(self, channel: int, t_ns: int) -> None:
        """A record of ``channel`` with trigger time ``t_ns`` arrived."""
        if self.channels is None or channel in self.channels:
            times = self._times.setdefault(channel, [])
            times.append(int(t_ns))
            if len(times) > _PRUNE_AT:  # no TRIGGERRATE uses them (an old DASTARD, a silent status port): bound memory
                cutoff = int(t_ns) - _KEEP_NS
                self._times[channel] = [t for t in times if t >= cutoff]
                self._horizon = max(self._horizon or cutoff, cutoff)

    def trigger_rate(self, payload: Any, arrived: float | None = None) -> None:
        """A ``TRIGGERRATE`` payload (``HiTime``, ``Duration`` in ns, ``CountsSeen``) arrived at ``arrived``
        (``time.monotonic()``); raises :class:`~cryodaq.wire.dastard.DastardFormatError` if malformed."""
        try:
            hi = dw.parse_go_time(payload["HiTime"])
            duration = int(payload["Duration"])
            counts = [int(c) for c in payload["CountsSeen"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise dw.DastardFormatError(f"TRIGGERRATE status {payload!r} lacks HiTime/Duration/CountsSeen: "
                                        f"{exc}") from None
        if self._skip_next:  # its window may have begun before our subscription
            self._skip_next = False
            self.start_ns = hi + _NS
            return
        self._windows.append((time.monotonic() if arrived is None else arrived, hi, duration, counts))

    def due(self, now: float | None = None, channel_names: Sequence[str] = ()) -> list[Gap]:
        """Evaluate the windows whose grace time has passed; returns the gaps found (``channel_names``
        name the channels in their details)."""
        now = time.monotonic() if now is None else now
        gaps: list[Gap] = []
        while self._windows and self._windows[0][0] + self.grace_s <= now:
            _, hi, duration, counts = self._windows.popleft()
            gaps += self._evaluate(hi, duration, counts, channel_names)
        return gaps

    def _evaluate(self, hi: int, duration: int, counts: list[int], names: Sequence[str]) -> list[Gap]:
        lo = hi - duration
        restart = self._last_hi is not None and hi <= self._last_hi  # DASTARD restarted its counters
        pruned = self._horizon is not None and lo < self._horizon  # records it counts were pruned meanwhile
        if restart or pruned:
            log.info("TRIGGERRATE window (%d, %d]: trigger-count check restarts (%s)", lo, hi,
                     "window end went back" if restart else "records pruned")
            self._counted.clear()
            self._received.clear()
            self._reported.clear()
            self._from_ns = None
            self._last_hi = hi
            if pruned:
                self.start_ns = max(self.start_ns or 0, self._horizon or 0)
                return []
        self._last_hi = hi
        if self.start_ns is None or lo < self.start_ns:
            return []
        if self._from_ns is None:
            self._from_ns = lo
        self.windows_checked += 1
        gaps = []
        edge = hi + self.margin_ns
        for ch, seen in enumerate(counts):
            if self.channels is not None and ch not in self.channels:
                continue
            times = np.asarray(self._times.get(ch, ()), dtype=np.int64)
            arrived = int(np.count_nonzero((times > self._from_ns) & (times <= edge)))
            self._times[ch] = times[times > edge].tolist()
            self._counted[ch] = self._counted.get(ch, 0) + seen
            self._received[ch] = self._received.get(ch, 0) + arrived
            missing = self._counted[ch] - self._received[ch] - self._reported.get(ch, 0)
            if missing > 0:
                self._reported[ch] = self._reported.get(ch, 0) + missing
                gaps.append(Gap(-1, missing, hi, CAUSE_RECORD_DROPPED,
                                f"channel {channel_label(ch, names)}: DASTARD counted {self._counted[ch]} triggers "
                                f"up to {dw.format_go_time(hi)} (TRIGGERRATE), {self._received[ch]} records "
                                f"arrived: {missing} lost"))
        return gaps


class DastardReceiver:
    """Receives a DASTARD's records and status into :class:`RecordBlock` batches (see the module doc).

    ``address`` is DASTARD's base address ``tcp://host:port``; the sockets connect at once but
    receive records only between :meth:`subscribe` (to ``channels``, None: all) and
    :meth:`unsubscribe`. Batches hold up to ``records_per_block`` records of one shape and are
    flushed early after ``max_latency_s``. ``None`` is queued once after :meth:`stop`.
    """

    def __init__(self, address: str, *, channels: Sequence[int] | None = None, channel_names: Sequence[str] = (),
                 records_per_block: int = 256, queue_blocks: int = 256, max_latency_s: float = 0.2,
                 rcvhwm: int = 1_000_000, drop_check_grace_s: float = 1.0,
                 context: zmq.Context | None = None) -> None:
        self.address = address
        self.host, self.port = dw.parse_address(address)
        endpoints = dw.port_addresses(address)
        self.records_per_block = max(int(records_per_block), 1)
        self.max_latency_s = float(max_latency_s)
        self.blocks: BlockQueue[RecordBlock | None] = BlockQueue(maxsize=queue_blocks)
        self.stats = ReceiverStats()
        self.channels = None if channels is None else sorted({int(c) for c in channels})
        self.channel_names = list(channel_names)
        self.rate_check = TriggerRateCheck(self.channels, grace_s=drop_check_grace_s)
        ctx = context or zmq.Context.instance()
        self._records = ctx.socket(zmq.SUB)
        self._status = ctx.socket(zmq.SUB)
        for sock, endpoint in ((self._records, endpoints["records"]), (self._status, endpoints["status"])):
            sock.setsockopt(zmq.RCVHWM, int(rcvhwm))  # DASTARD's own send HWM is small: drain into ours
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
        self._want: bool | None = None  # subscription change asked for, applied by the thread
        self._subscribed = False
        self._subscribed_event = threading.Event()
        self._stop = threading.Event()
        self._drain_until = 0.0
        self._thread = threading.Thread(target=self._run, name="cryodaq-dastard-receiver", daemon=True)
        # batch being filled
        self._key: tuple[int, int, int] | None = None
        self._buf: np.ndarray | None = None
        self._cols: dict[str, np.ndarray] = {}
        self._fill = 0
        self._block_started = 0.0
        self._pending_gaps: list[Gap] = []
        self._pending_status: list[StatusMessage] = []
        self._pending_since = 0.0
        self._continuous_next = True
        self._last_frame: dict[int, int] = {}
        self._period_ns: float | None = None

    # --- lifecycle ----------------------------------------------------------
    @property
    def subscribed(self) -> bool:
        """Whether records are subscribed (or about to be)."""
        return self._subscribed if self._want is None else self._want

    def subscribe(self) -> None:
        """Start receiving records (of ``channels``) and status; applied by the receiver thread."""
        self._want = True

    def wait_subscribed(self, timeout: float = 2.0) -> bool:
        """Wait until the receiver thread has subscribed (after :meth:`subscribe` and :meth:`start`)."""
        return self._subscribed_event.wait(timeout)

    def unsubscribe(self) -> None:
        """Stop receiving; what is already in the sockets is still read."""
        self._want = False

    def start(self) -> DastardReceiver:
        self._thread.start()
        return self

    def stop(self, drain_s: float = 0.3) -> None:
        """Stop after reading what is already in the sockets (for up to ``drain_s``)."""
        self._drain_until = time.monotonic() + drain_s
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=drain_s + 5)
        else:
            self._close_sockets()

    def __enter__(self) -> DastardReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if not self._stop.is_set():
            self.stop()

    def _close_sockets(self) -> None:
        for sock in (self._records, self._status):
            if not sock.closed:
                sock.close(linger=0)

    def _prefixes(self) -> list[bytes]:
        return [b""] if self.channels is None else [dw.channel_prefix(c) for c in self.channels]

    def _apply_subscription(self) -> None:
        want, self._want = self._want, None
        if want is None or want == self._subscribed:
            return
        option = zmq.SUBSCRIBE if want else zmq.UNSUBSCRIBE
        for prefix in self._prefixes():
            self._records.setsockopt(option, prefix)
        self._status.setsockopt(option, b"")  # every topic: dispatch on the exact topic, not a prefix
        self._subscribed = want
        if want:
            self._subscribed_event.set()
        else:
            self._subscribed_event.clear()
        if want:
            self.rate_check.subscribed()
            log.info("subscribed to DASTARD records at %s (channels: %s)", self.address,
                     "all" if self.channels is None else self.channels)

    # --- the loop -----------------------------------------------------------
    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._records, zmq.POLLIN)
        poller.register(self._status, zmq.POLLIN)
        try:
            while True:
                self._apply_subscription()
                stopping = self._stop.is_set()
                if stopping and time.monotonic() > self._drain_until:
                    break
                ready = dict(poller.poll(20 if stopping else 50))
                if not ready and stopping:
                    break  # the sockets are empty and we were asked to stop
                if self._records in ready:
                    self._drain(self._records, self._accept_record)
                if self._status in ready:
                    self._drain(self._status, self._accept_status)
                self._check_rates()
                self._flush_if_stale()
        except Exception:  # a receiver bug must not hang the session: log it and end the stream cleanly
            log.exception("DASTARD receiver of %s failed", self.address)
        finally:
            self._close_sockets()
            self._check_rates()
            self._flush()
            if self._pending_gaps or self._pending_status:
                self._put(self._empty_block(), force=True)
            self._put(None, force=True)

    @staticmethod
    def _drain(sock: zmq.Socket, accept: Any) -> None:
        for _ in range(_MAX_PER_POLL):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            accept(frames)

    def _accept_record(self, frames: list[bytes]) -> None:
        st = self.stats
        st.packets += 1
        try:
            h, samples = dw.decode_record(frames)
        except dw.DastardFormatError as exc:
            st.bad_packets += 1
            if st.bad_packets <= 3:
                log.warning("ignored a bad record message from %s: %s", self.address, exc)
            self._add_gap(Gap(-1, 1, time.time_ns(), CAUSE_BAD_RECORD, str(exc)))
            return
        st.samples += 1
        ch, frame = h.channel_index, int(h.trigger_frame)
        last = self._last_frame.get(ch)
        if last is not None and frame <= last:
            st.out_of_order += 1
            what = "repeats" if frame == last else "is below"
            self._add_gap(Gap(frame, 0, int(h.trigger_time_ns), CAUSE_RECORD_OUT_OF_ORDER,
                              f"channel {channel_label(ch, self.channel_names)}: trigger frame {frame} {what} "
                              f"frame {last} received before; stored in arrival order"))
        else:
            self._last_frame[ch] = frame
        if h.sample_period_s > 0 and self._period_ns is None:
            self._period_ns = h.sample_period_s * 1e9
            self.rate_check.margin_ns = max(int(10 * self._period_ns), 1)
        self.rate_check.record(ch, int(h.trigger_time_ns))
        self._add(h, samples)

    def _accept_status(self, frames: list[bytes]) -> None:
        try:
            topic, payload = dw.decode_status(frames)
            if topic == "TRIGGERRATE":
                self.rate_check.trigger_rate(payload)
        except dw.DastardFormatError as exc:
            self.stats.bad_packets += 1
            log.warning("ignored a bad status message from %s: %s", self.address, exc)
            return
        if topic == "CHANNELNAMES" and isinstance(payload, list):
            self.channel_names = [str(n) for n in payload]
        if not self._pending_status and not self._pending_gaps:
            self._pending_since = time.monotonic()
        self._pending_status.append(StatusMessage(topic, payload, time.time_ns()))

    def _add_gap(self, gap: Gap) -> None:
        if not self._pending_status and not self._pending_gaps:
            self._pending_since = time.monotonic()
        self._pending_gaps.append(gap)
        self.stats.gaps += 1
        if gap.cause == CAUSE_RECORD_DROPPED:
            self.stats.lost_packets += gap.n_samples  # one record is one message
            self.stats.lost_samples += gap.n_samples
        log.info("DASTARD %s: %s", gap.cause, gap.detail)

    def _check_rates(self) -> None:
        for gap in self.rate_check.due(channel_names=self.channel_names):
            self._add_gap(gap)

    # --- batches --------------------------------------------------------------
    def _add(self, h: dw.RecordHeader, samples: np.ndarray) -> None:
        key = (h.n_samples, h.presamples, h.dtype.itemsize)
        if key != self._key or self._buf is None:
            self._flush()
            self._key = key
        if self._buf is None:
            n = self.records_per_block
            self._buf = np.empty((n, h.n_samples), dtype=h.dtype)
            self._cols = {"channel": np.empty(n, np.int32), "frame": np.empty(n, np.int64),
                          "t_ns": np.empty(n, np.int64), "sample_period_s": np.empty(n, np.float64),
                          "volts_per_arb": np.empty(n, np.float32), "dtype_code": np.empty(n, np.uint8)}
        i = self._fill
        if i == 0:
            self._block_started = time.monotonic()
        # a record of another integer type of the same size is kept bit for bit; dtype_code says what it is
        self._buf[i] = samples if samples.dtype == self._buf.dtype else samples.view(self._buf.dtype)
        c = self._cols
        c["channel"][i], c["frame"][i], c["t_ns"][i] = h.channel_index, h.trigger_frame, h.trigger_time_ns
        c["sample_period_s"][i], c["volts_per_arb"][i], c["dtype_code"][i] = (h.sample_period_s, h.volts_per_arb,
                                                                              h.dtype_code)
        self._fill += 1
        if self._fill == self.records_per_block:
            self._flush()

    def _flush_if_stale(self) -> None:
        now = time.monotonic()
        if self._fill and now - self._block_started > self.max_latency_s:
            self._flush()
        elif (self._pending_gaps or self._pending_status) and now - self._pending_since > self.max_latency_s:
            self._flush()
            if self._pending_gaps or self._pending_status:  # nothing to carry them: an empty batch does
                self._put(self._empty_block())

    def _empty_block(self) -> RecordBlock:
        block = RecordBlock.empty(gaps=self._pending_gaps, status=self._pending_status,
                                  continuous=self._continuous_next)
        self._pending_gaps, self._pending_status = [], []
        self._continuous_next = True
        return block

    def _flush(self) -> None:
        n = self._fill
        if not n or self._buf is None or self._key is None:
            return
        whole = n == self.records_per_block
        samples = self._buf if whole else self._buf[:n].copy()
        cols = {k: (v if whole else v[:n].copy()) for k, v in self._cols.items()}
        if whole:  # handed over: the next batch gets fresh arrays
            self._buf, self._cols = None, {}
        block = RecordBlock(cols["channel"], cols["frame"], cols["t_ns"], samples, self._key[1],
                            cols["sample_period_s"], cols["volts_per_arb"], cols["dtype_code"],
                            self._continuous_next, self._pending_gaps, self._pending_status)
        self._pending_gaps, self._pending_status = [], []
        self._continuous_next = True
        self._fill = 0
        self._put(block)

    def _put(self, block: RecordBlock | None, force: bool = False) -> None:
        if force or block is None:  # at shutdown: wait (boundedly) for room
            self.blocks.put_at_end(block, "DASTARD")
            return
        if not self.blocks.offer(block):
            st = self.stats
            st.dropped_blocks += 1
            st.dropped_samples += block.n_records
            st.gaps += 1
            # the records are lost to the pipeline: record them; status and earlier gaps go with the next batch
            lost: list[Gap] = []
            if block.n_records:
                chans = np.unique(block.channel)
                lost = [Gap(int(block.frame[0]), block.n_records, int(block.t_ns[0]), CAUSE_OVERFLOW,
                            f"processing fell behind; {block.n_records} records of channel indices "
                            f"{chans.tolist()} dropped (trigger frames {int(block.frame.min())}.."
                            f"{int(block.frame.max())})")]
            self._pending_gaps = [*block.gaps, *lost, *self._pending_gaps]
            self._pending_status = [*block.status, *self._pending_status]
            self._pending_since = time.monotonic()
            self._continuous_next = False
