"""Receiver of a CRS board's readout packets: multicast datagrams -> IQ blocks + per-module gap records.

A CRS sends one packet per module per sample, each module with its own sequence counter
(:mod:`cryodaq.wire.crs`). The receiver joins the board's multicast group (source-specific
when it knows the board's address, as a real board needs; a plain join otherwise), and also
takes unicast datagrams on the same port, which is where rfmux's mock sends when the host's
multicast does not work. It reads datagrams in batches without holding the GIL
(:class:`~cryodaq.readout.datagrams.DatagramReader`), decodes each batch at once, and
assembles **frames**: one sample of every configured channel, from the packets of all the
streamed modules that carry the same sample. A block holds consecutive complete frames as
``(n, n_channels)`` complex64 ADC counts, in the order of the ``channels`` it was given.

Loss is never stitched over: a sequence number a module skipped becomes a
:class:`~cryodaq.readout.blocks.Gap` naming that module, with the number of samples it
lost; a frame that misses any module's packet is left out of the stream, and the block after
the hole is not continuous. A sequence that goes back (the board restarted its stream, or
changed its decimation) is a ``stream_restart`` gap; frames are then re-anchored by the
packets' timestamps, so sample indices and times stay right. Packets at another decimation
stage than the stream was described with are counted as bad and not used (their rate is not
the stream's).

The first packet's timestamp says which clock the board follows (BACKPLANE, SMA, TEST, GND) and
whether it is disciplined; every block carries that as its ``time_base``.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Sequence

import numpy as np

from cryodaq.readout.block_queue import BlockQueue
from cryodaq.readout.blocks import CAUSE_OVERFLOW, CAUSE_PACKET_LOSS, CAUSE_RESTART, Block, Gap, TimeBase
from cryodaq.readout.datagrams import DatagramReader, set_receive_buffer
from cryodaq.readout.source import ReceiverStats
from cryodaq.wire import crs as wire

__all__ = ["CRSReceiver", "join_multicast"]

log = logging.getLogger(__name__)

# Python's socket module lacks the source-specific join before 3.12 on some platforms; the
# option's value and its struct layout are the platform's (Linux: group, interface, source).
_IP_ADD_SOURCE_MEMBERSHIP = getattr(socket, "IP_ADD_SOURCE_MEMBERSHIP", 70 if sys.platform == "darwin" else 39)
_LATE_WINDOW = 64  # a sequence this little behind what was seen is a late duplicate, not a restart


def join_multicast(sock: socket.socket, group: str, interface: str, source: str | None) -> str:
    """Join ``group`` on ``interface``: source-specific (``IP_ADD_SOURCE_MEMBERSHIP``) when ``source``
    is given, plain (``IP_ADD_MEMBERSHIP``) otherwise. Returns how it joined; raises OSError."""
    if source:
        parts = (group, source, interface) if sys.platform == "darwin" else (group, interface, source)
        sock.setsockopt(socket.IPPROTO_IP, _IP_ADD_SOURCE_MEMBERSHIP, b"".join(socket.inet_aton(p) for p in parts))
        return f"source-specific join of {group} from {source} on {interface}"
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + socket.inet_aton(interface))
    return f"join of {group} on {interface}"


class CRSReceiver:
    """Receive a CRS's readout packets on ``port`` into blocks of ``packets_per_block`` frames.

    ``channels``: the ``(module, channel)`` pairs of the stream (board numbering, from 1), in
    the order of the block's columns. ``group``: the multicast group to join (None: unicast only,
    bound to ``interface``); ``interface``: the local address that receives it; ``source``: the
    board's address for a source-specific join (None: a plain join). ``stage``: the decimation
    stage the stream was described with (packets at another stage are not used). ``serial``:
    only packets of this board serial (None: any). ``None`` is queued once after :meth:`stop`.
    """

    def __init__(
        self,
        channels: Sequence[tuple[int, int]],
        *,
        stage: int,
        port: int = wire.PORT,
        group: str | None = wire.GROUP,
        interface: str = "127.0.0.1",
        source: str | None = None,
        serial: int | None = None,
        packets_per_block: int = 32,
        queue_blocks: int = 256,
        max_latency_s: float = 0.2,
        max_skew_s: float = 1.0,
        rcvbuf_bytes: int = 16 * 1024 * 1024,
        batch: int = 64,
    ) -> None:
        if not channels:
            raise ValueError("CRSReceiver: no channels to receive")
        self.channels = [(int(m), int(c)) for m, c in channels]
        self.modules = sorted({m for m, _ in self.channels})
        self.stage = int(stage)
        self.fs = wire.sample_rate_hz(self.stage)
        self.serial = serial
        self.frames_per_block = max(1, int(packets_per_block))
        self.max_latency_s = max_latency_s
        self.max_skew = max(int(round(max_skew_s * self.fs)), 4 * self.frames_per_block)
        self.blocks: BlockQueue[Block | None] = BlockQueue(maxsize=queue_blocks)
        self.stats = ReceiverStats()
        self.time_base: TimeBase | None = None
        # per module: the block columns it fills and the packet channels (0-based) they come from
        self._cols = {m: np.array([i for i, (mm, _) in enumerate(self.channels) if mm == m]) for m in self.modules}
        self._picks = {m: np.array([c - 1 for mm, c in self.channels if mm == m]) for m in self.modules}
        self._mod_index = {m: i for i, m in enumerate(self.modules)}
        self._wanted = np.unique(np.concatenate(list(self._picks.values())))
        self._pick_in_wanted = {m: np.searchsorted(self._wanted, p) for m, p in self._picks.items()}

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):  # several receivers of one multicast port on a host
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.rcvbuf_bytes = set_receive_buffer(self._sock, rcvbuf_bytes, f"CRS receiver on port {port}")
        self.joined = "unicast only"
        try:
            # with a group: any address, so that the mock's unicast fallback (loopback) arrives too
            self._sock.bind(("" if group else interface, port))
            if group:
                try:
                    self.joined = join_multicast(self._sock, group, interface, source)
                except OSError as exc:
                    self.joined = f"unicast only (joining {group} on {interface} failed: {exc})"
                    log.warning("CRS receiver: multicast unavailable (%s); receiving unicast datagrams on port %d",
                                exc, port)
        except OSError:
            self._sock.close()
            raise
        self.host = group or interface
        self.port = int(self._sock.getsockname()[1])
        log.info("CRS receiver on port %d: %s", self.port, self.joined)

        self._reader = DatagramReader(self._sock, max(1, int(batch)), wire.LONG_SIZE)
        self._stop = threading.Event()
        self._drain_until = 0.0
        self._thread = threading.Thread(target=self._run, name="cryodaq-crs-receiver", daemon=True)
        self._warned_stage = False
        # frame assembly
        self._offset: dict[int, int] = {}  # module -> seq - frame index
        self._next: dict[int, int] = {}  # module -> next frame index expected
        self._last_seq: dict[int, int] = {}  # module -> last sequence number and timestamp taken
        self._last_t: dict[int, int] = {}
        self._anchor: tuple[int, int] | None = None  # (frame index, t_ns) of a known frame
        self._cap = 4 * self.max_skew + 4 * self.frames_per_block
        n = len(self.channels)
        self._rows = np.zeros((self._cap, n), np.complex64)
        self._have = np.zeros((self._cap, len(self.modules)), bool)
        self._t = np.zeros(self._cap, np.int64)
        self._base = 0  # frame index of row 0
        self._top = 0  # rows in use (frame index self._base + self._top is the first never seen)
        self._oldest_arrival = 0.0
        self._last_emitted: int | None = None
        self._broken = False  # the next block is not continuous (restart, dropped block)
        self._gaps: list[Gap] = []  # recorded, waiting for the block after them

    # --- lifecycle ----------------------------------------------------------
    def start(self) -> CRSReceiver:
        self._thread.start()
        return self

    def stop(self, drain_s: float = 0.3) -> None:
        """Stop after reading what is already in the socket (for up to ``drain_s``)."""
        self._drain_until = time.monotonic() + drain_s
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=drain_s + 5)
        self._sock.close()

    def __enter__(self) -> CRSReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if not self._stop.is_set():
            self.stop()

    # --- the loop -----------------------------------------------------------
    def _run(self) -> None:
        try:
            while not (self._stop.is_set() and time.monotonic() > self._drain_until):
                try:
                    n = self._reader.read(0.05)
                except OSError:
                    break
                if n:
                    self._accept_batch(n)
                elif self._stop.is_set():
                    break  # the socket is empty and we were asked to stop
                self._emit(flush_stale=True)
        finally:
            self._emit(flush_all=True)
            if self._gaps:  # gaps with no block after them still get recorded
                self._put(Block(self._base, 0, np.zeros((0, len(self.channels)), np.complex64), False,
                                self._gaps, self.time_base), force=True)
                self._gaps = []
            self._put(None, force=True)

    def _accept_batch(self, n: int) -> None:
        size_arr = self._reader.sizes[:n]
        for size in np.unique(size_arr):
            rows = np.flatnonzero(size_arr == size)
            try:
                packets = wire.decode_many(self._reader.data[rows, :size], channels=self._wanted)
            except wire.CRSPacketError as exc:
                self.stats.bad_packets += rows.size
                log.warning("ignored %d datagram(s) of %d bytes: %s", rows.size, size, exc)
                continue
            keep = packets.stage == self.stage
            if self.serial is not None:
                keep &= packets.serial == self.serial
            keep &= np.isin(packets.module, self.modules)
            if not keep.all():
                bad_stage = packets.stage != self.stage
                if bad_stage.any() and not self._warned_stage:
                    log.error("CRS packets at decimation stage %d, but the stream was described at stage %d: "
                              "they are not used (the board's decimation changed?)",
                              int(packets.stage[bad_stage][0]), self.stage)
                    self._warned_stage = True
                self.stats.bad_packets += int(bad_stage.sum())
            if keep.any():
                self._accept(packets, np.flatnonzero(keep))

    def _accept(self, p: wire.Packets, index: np.ndarray) -> None:
        name, disciplined = p.source(int(index[0]))
        if self.time_base is None or (self.time_base.reference, self.time_base.disciplined) != (name, disciplined):
            self._learn_time_base(p, int(index[0]))
        if not self._oldest_arrival:
            self._oldest_arrival = time.monotonic()
        while index.size:
            # up to the next packet whose module's sequence goes back (a restart, or a late packet), all modules
            # in turn; then on from there, so a restart seen on one module never reorders another's packets
            cut = self._next_fall(p, index)
            part, index = index[:cut], index[cut:]
            for m in self.modules:
                sel = part[p.module[part] == m]
                while sel.size:
                    sel = self._accept_module(p, m, sel)
        self._check_skew()

    def _next_fall(self, p: wire.Packets, index: np.ndarray) -> int:
        """Position in ``index`` (arrival order, > 0) of the first packet whose sequence number is not above
        its module's previous one; ``index.size`` when there is none."""
        cut = index.size
        for m in self.modules:
            pos = np.flatnonzero(p.module[index] == m)
            if not pos.size:
                continue
            seq = p.seq[index[pos]].astype(np.int64)
            last = self._last_seq.get(m)
            prev = np.concatenate(([seq[0] - 1 if last is None else last], seq[:-1]))
            falls = pos[(seq <= prev) & (pos > 0)]
            if falls.size:
                cut = min(cut, int(falls[0]))
        return cut

    def _learn_time_base(self, p: wire.Packets, i: int) -> None:
        name, disciplined = p.source(i)
        if self.time_base is not None:
            log.warning("CRS time source changed from %s (disciplined: %s) to %s (disciplined: %s)",
                        self.time_base.reference, self.time_base.disciplined, name, disciplined)
        self.time_base = TimeBase(
            source="irig_b", reference=name, disciplined=disciplined, uncertainty_s=None,
            detail=(f"IRIG-B timestamps of CRS serial {int(p.serial[i])}, time source {name}"
                    + ("" if disciplined else "; not disciplined: the calendar time means nothing")))
        log.info("CRS time base: %s", self.time_base.detail)

    def _accept_module(self, p: wire.Packets, m: int, sel: np.ndarray) -> np.ndarray:
        """Take module ``m``'s packets ``sel`` (arrival order) while their sequence rises; returns the rest."""
        seq, t = p.seq[sel], p.t_ns[sel]
        last = self._last_seq.get(m)
        if last is not None and seq[0] <= last:
            if t[0] <= self._last_t[m]:  # a duplicate or a late packet: its sample was counted lost already
                self.stats.bad_packets += 1
                return sel[1:]
            self._restart(m, last, int(seq[0]), int(t[0]))
        falls = np.flatnonzero(np.diff(seq) <= 0)
        rest = sel[:0]
        if falls.size:
            k = int(falls[0]) + 1
            sel, rest, seq, t = sel[:k], sel[k:], seq[:k], t[:k]
        if m not in self._offset:
            self._offset[m] = int(seq[0]) - self._frame_at(int(t[0]))
        frames = seq - self._offset[m]
        self._last_seq[m], self._last_t[m] = int(seq[-1]), int(t[-1])
        old = frames < max(self._base, self._next.get(m, self._base))
        if old.any():  # samples already emitted, or given up on (the module lagged)
            self.stats.bad_packets += int(old.sum())
            sel, seq, t, frames = sel[~old], seq[~old], t[~old], frames[~old]
            if not sel.size:
                return rest
        expected = self._next.get(m, int(frames[0]))
        steps = np.diff(np.concatenate(([expected - 1], frames)))
        for j in np.flatnonzero(steps > 1):
            n_lost = int(steps[j]) - 1
            self._lost(int(frames[j]) - n_lost, n_lost, int(t[j]) - int(round(n_lost * 1e9 / self.fs)),
                       f"module {m}: sequence {int(seq[j]) - n_lost}..{int(seq[j]) - 1} missing ({n_lost} packets)")
        self._ensure_rows(int(frames[-1]) - self._base + 1)
        rows = frames - self._base
        self._rows[rows[:, None], self._cols[m][None, :]] = p.iq[sel][:, self._pick_in_wanted[m]]
        self._have[rows, self._mod_index[m]] = True
        self._t[rows] = t
        self._top = max(self._top, int(rows[-1]) + 1)
        self._next[m] = int(frames[-1]) + 1
        self.stats.packets += int(sel.size)
        if self._anchor is None or frames[-1] > self._anchor[0]:
            self._anchor = (int(frames[-1]), int(t[-1]))
        return rest

    def _frame_at(self, t_ns: int) -> int:
        """Frame index of a packet stamped ``t_ns`` (from the anchor; 0 for the very first packet)."""
        if self._anchor is None:
            self._anchor = (0, t_ns)
        f0, t0 = self._anchor
        return f0 + int(round((t_ns - t0) * self.fs / 1e9))

    def _t_of(self, frame: int) -> int:
        f0, t0 = self._anchor or (frame, 0)
        return t0 + int(round((frame - f0) * 1e9 / self.fs))

    def _lost(self, first: int, n: int, t_ns: int, detail: str) -> None:
        self.stats.lost_packets += n
        self.stats.gaps += 1
        gap = Gap(first, n, t_ns, CAUSE_PACKET_LOSS, detail)
        self._gaps.append(gap)
        log.info("gap: %s", gap)

    def _restart(self, m: int, last_seq: int, seq: int, t_ns: int) -> None:
        """Module ``m``'s sequence went back while time went on: the board restarted its stream.
        What is pending is emitted (incomplete frames left out), and every module is re-anchored
        by timestamp, so sample indices keep counting time."""
        self._emit(flush_all=True)
        frame = max(self._frame_at(t_ns), self._base)
        self.stats.gaps += 1
        self._gaps.append(Gap(frame, 0, t_ns, CAUSE_RESTART,
                              f"module {m}: sequence went back from {last_seq} to {seq} (the stream restarted)"))
        self._offset.clear()
        self._next.clear()
        self._last_seq.clear()
        self._last_t.clear()
        self._base = frame
        self._broken = True

    def _ensure_rows(self, needed: int) -> None:
        if needed <= self._cap:
            return
        grow = max(needed, 2 * self._cap)  # _check_skew bounds the span; this is for one large batch
        for name in ("_rows", "_have", "_t"):
            old = getattr(self, name)
            new = np.zeros((grow, *old.shape[1:]), old.dtype)
            new[: old.shape[0]] = old
            setattr(self, name, new)
        self._cap = grow

    def _check_skew(self) -> None:
        """A module that sent nothing for ``max_skew_s`` while the others went on: its missing packets
        are recorded as lost, so the other modules' samples are not held back for ever."""
        newest = self._base + self._top
        for m in self.modules:
            nxt = self._next.get(m, self._base)
            if newest - nxt > self.max_skew:
                upto = newest - self.max_skew
                self._lost(nxt, upto - nxt, self._t_of(nxt),
                           f"module {m}: no packets for {upto - nxt} samples while the other modules sent")
                self._next[m] = upto

    # --- blocks ---------------------------------------------------------------
    def _ready(self) -> int:
        """Rows every module has passed (received or given up on)."""
        return max(0, min(self._next.get(m, self._base) for m in self.modules) - self._base)

    def _emit(self, *, flush_stale: bool = False, flush_all: bool = False) -> None:
        """Hand full blocks of frames every module has passed to the queue (also a partial block
        after ``max_latency_s``, or everything with ``flush_all``); frames missing a module's
        packet are left out."""
        ready = self._top if flush_all else min(self._ready(), self._top)
        if ready <= 0:
            return
        stale = flush_stale and self._oldest_arrival and time.monotonic() - self._oldest_arrival > self.max_latency_s
        if not (flush_all or stale):
            ready -= ready % self.frames_per_block  # whole blocks only, until the data have waited long enough
            if not ready:
                return
        complete = self._have[:ready].all(axis=1)
        edges = np.flatnonzero(np.diff(np.concatenate(([False], complete, [False])).astype(np.int8)))
        for a, b in zip(edges[0::2], edges[1::2]):
            for start in range(int(a), int(b), self.frames_per_block):
                self._block(start, min(int(b), start + self.frames_per_block))
        if self._last_emitted is not None:
            self.stats.lost_samples += int((~complete).sum())
        left = self._top - ready
        if left:
            self._rows[:left] = self._rows[ready:self._top]
            self._have[:left] = self._have[ready:self._top]
            self._t[:left] = self._t[ready:self._top]
        self._rows[left:self._top] = 0
        self._have[left:self._top] = False
        self._base += ready
        self._top = left
        self._oldest_arrival = time.monotonic() if left else 0.0

    def _block(self, a: int, b: int) -> None:
        first = self._base + a
        gaps = [g for g in self._gaps if g.first_sample + g.n_samples <= first]
        self._gaps = [g for g in self._gaps if g.first_sample + g.n_samples > first]
        if self._last_emitted is None:
            continuous = not (gaps or self._broken)  # the stream's first block
        else:
            continuous = first == self._last_emitted + 1 and not self._broken
        self._broken = False
        self._last_emitted = first + (b - a) - 1
        self.stats.samples += b - a
        self._put(Block(first, int(self._t[a]), self._rows[a:b].copy(), continuous, gaps, self.time_base))

    def _put(self, block: Block | None, force: bool = False) -> None:
        if force or block is None:  # at shutdown: wait (boundedly) for room
            self.blocks.put_at_end(block, "CRS")
            return
        if not self.blocks.offer(block):
            self.stats.dropped_blocks += 1
            self.stats.dropped_samples += block.n_samples
            self.stats.gaps += 1
            # the samples are lost to the pipeline: record them and break continuity
            self._gaps = [*block.gaps, Gap(block.first_sample, block.n_samples, block.t_ns, CAUSE_OVERFLOW,
                                           "processing fell behind; block dropped"), *self._gaps]
            self._broken = True
