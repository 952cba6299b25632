"""UDP receiver of cryodaq readout packets: packets -> contiguous sample blocks + gap records.

The receiver thread does as little as possible: read a batch of datagrams without
holding the GIL (:class:`~cryodaq.readout.datagrams.DatagramReader`), check their
headers and sequence numbers with array operations, copy their samples into the
block being assembled, and hand full blocks to a bounded queue. It never blocks on the consumer: when the queue is
full the block is dropped, counted, and recorded as a gap ("pipeline_overflow").
Missing sequence numbers become gaps ("packet_loss"); a block never spans a gap,
so downstream DSP can reset its state instead of stitching across it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import numpy as np

from cryodaq.readout.block_queue import BlockQueue
from cryodaq.readout.blocks import CAUSE_OVERFLOW, CAUSE_PACKET_LOSS, CAUSE_RESTART, Block, Gap
from cryodaq.readout.datagrams import DatagramReader, set_receive_buffer
from cryodaq.readout.source import ReceiverStats
from cryodaq.wire import packet as pk

__all__ = ["UDPReceiver"]

log = logging.getLogger(__name__)


class UDPReceiver:
    """Receive readout packets on ``host:port`` into blocks of ``packets_per_block`` packets.

    Blocks go to ``self.blocks`` (a bounded queue); a block is also flushed early
    when a gap occurs or when ``max_latency_s`` passes without filling it, so live
    consumers see data promptly. ``None`` is queued once after :meth:`stop`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        packets_per_block: int = 8,
        queue_blocks: int = 256,
        max_latency_s: float = 0.2,
        rcvbuf_bytes: int = 16 * 1024 * 1024,
        batch_datagrams: int = 64,
    ) -> None:
        self.packets_per_block = packets_per_block
        self.max_latency_s = max_latency_s
        self.blocks: BlockQueue[Block | None] = BlockQueue(maxsize=queue_blocks)
        self.stats = ReceiverStats()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        self.rcvbuf_bytes = set_receive_buffer(self._sock, rcvbuf_bytes, f"UDP receiver on {self.host}:{self.port}")
        self._reader = DatagramReader(self._sock, batch_datagrams, pk.MAX_DATAGRAM)
        self._stop = threading.Event()
        self._drain_until = 0.0
        self._thread = threading.Thread(target=self._run, name="cryodaq-udp-receiver", daemon=True)
        self._pending_gaps: list[Gap] = []
        self._next_seq: int | None = None
        self._next_sample: int | None = None
        self._ns_per_sample: float | None = None  # learnt from packet timestamps, for gap times
        self._last_first: int | None = None
        self._last_t = 0
        self._buf: np.ndarray | None = None
        self._fill = 0
        self._block_first = 0
        self._block_t = 0
        self._block_started = 0.0
        self._block_continuous = True
        self._continuous_next = True

    # --- lifecycle ----------------------------------------------------------
    def start(self) -> UDPReceiver:
        self._thread.start()
        return self

    def stop(self, drain_s: float = 0.3) -> None:
        """Stop after reading what is already in the socket (for up to ``drain_s``)."""
        self._drain_until = time.monotonic() + drain_s
        self._stop.set()
        if not self._thread.is_alive():
            self._sock.close()
            return
        self._thread.join(timeout=drain_s + 5)
        self._sock.close()

    def __enter__(self) -> UDPReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if not self._stop.is_set():
            self.stop()

    # --- the loop -----------------------------------------------------------
    def _run(self) -> None:
        while not (self._stop.is_set() and time.monotonic() > self._drain_until):
            try:
                n = self._reader.read(0.05)
            except OSError:
                break
            if n == 0:
                if self._stop.is_set():
                    break  # the socket is empty and we were asked to stop
                self._flush_if_stale()
                continue
            self._accept_batch(n)
            self._flush_if_stale()
        self._flush()
        if self._pending_gaps:  # gaps with no block after them still get recorded
            self._put(Block(self._next_sample or 0, 0, np.empty((0,), np.int16), False, self._pending_gaps), force=True)
            self._pending_gaps = []
        self._put(None, force=True)

    def _accept_batch(self, n: int) -> None:
        """The batch's datagrams in order: each run of packets that continue one another (the usual
        case: the whole batch) is checked for a gap once and copied into blocks with array copies."""
        data, sizes = self._reader.data[:n], self._reader.sizes[:n]
        h, ok = pk.decode_headers(data, sizes)
        for i in np.flatnonzero(~ok):
            self.stats.bad_packets += 1
            try:
                pk.decode_header(memoryview(data[i, : sizes[i]]))
            except pk.PacketError as exc:
                log.warning("ignored a bad packet: %s", exc)
        same = (ok[1:] & ok[:-1] & (h["sequence"][1:] == h["sequence"][:-1] + 1)
                & (h["first_sample"][1:] == h["first_sample"][:-1] + h["n_samples"][:-1])
                & (h["n_samples"][1:] == h["n_samples"][:-1]) & (h["n_streams"][1:] == h["n_streams"][:-1])
                & (h["sample_fmt"][1:] == h["sample_fmt"][:-1]))
        bounds = [0, *(np.flatnonzero(~same) + 1).tolist(), n]
        for a, b in zip(bounds[:-1], bounds[1:]):
            if ok[a]:  # a run longer than one packet is all good ones
                self._accept_run(h[a:b], data[a:b])

    def _accept_run(self, h: np.ndarray, rows: np.ndarray) -> None:
        """``h``: the headers of consecutive packets (sequence and samples continue), ``rows`` their datagrams."""
        k = len(h)
        first = int(h["first_sample"][0])
        self._check_continuity(int(h["sequence"][0]), first, int(h["t_ns"][0]))
        last_first, last_t = int(h["first_sample"][-1]), int(h["t_ns"][-1])
        prev_first, prev_t = ((int(h["first_sample"][-2]), int(h["t_ns"][-2])) if k > 1
                              else (self._last_first, self._last_t))
        if prev_first is not None and last_first > prev_first:
            self._ns_per_sample = (last_t - prev_t) / (last_first - prev_first)
        self._last_first, self._last_t = last_first, last_t
        ns = int(h["n_samples"][0])
        self._next_seq = int(h["sequence"][-1]) + 1
        self._next_sample = last_first + ns
        self.stats.packets += k
        self.stats.samples += k * ns

        header = pk.PacketHeader(int(h["sequence"][0]), first, int(h["t_ns"][0]), ns, int(h["n_streams"][0]),
                                 int(h["sample_fmt"][0]))
        shape = header.sample_shape
        payload = rows[:, pk.HEADER_SIZE : pk.HEADER_SIZE + header.payload_bytes].view("<i2").reshape((k, *shape))
        pos = 0
        while pos < k:
            buf = self._buf
            if buf is None or buf.shape[1:] != shape[1:] or self._fill + ns > len(buf):
                self._flush()
                if buf is None or buf.shape[1:] != shape[1:] or ns > len(buf):
                    buf = self._buf = np.empty((max(self.packets_per_block, 1) * ns, *shape[1:]), dtype=np.int16)
            if self._fill == 0:
                self._block_first, self._block_t = first + pos * ns, int(h["t_ns"][pos])
                self._block_started = time.monotonic()
                self._block_continuous = self._continuous_next
                self._continuous_next = True
            take = min(k - pos, (len(buf) - self._fill) // ns)
            buf[self._fill : self._fill + take * ns].reshape((take, *shape))[...] = payload[pos : pos + take]
            self._fill += take * ns
            pos += take
            if self._fill == len(buf):
                self._flush()

    def _check_continuity(self, sequence: int, first: int, t_ns: int) -> None:
        """Record a gap (lost packets, a restart) between what came before and a packet ``sequence``."""
        if self._next_seq is None:
            return
        st = self.stats
        if sequence > self._next_seq or (sequence == self._next_seq and first > self._next_sample):
            lost = sequence - self._next_seq
            start = self._next_sample
            n_missing = first - start
            st.lost_packets += lost
            st.lost_samples += n_missing
            detail = (f"sequence {self._next_seq}..{sequence - 1} missing ({lost} packets)" if lost
                      else "sample index jumped with consecutive sequence numbers")
            self._gap(Gap(start, n_missing, self._t_of(start, first, t_ns), CAUSE_PACKET_LOSS, detail))
        elif sequence < self._next_seq:  # the board restarted its stream, or reordered: never stitch
            self._gap(Gap(first, 0, t_ns, CAUSE_RESTART, f"sequence went back from {self._next_seq - 1} to {sequence}"))

    def _t_of(self, sample: int, first: int, t_ns: int) -> int:
        """UTC ns of ``sample``, from a packet whose ``first`` sample was at ``t_ns``."""
        if self._ns_per_sample:
            return int(t_ns - (first - sample) * self._ns_per_sample)
        return t_ns

    def _gap(self, gap: Gap) -> None:
        """Close the block being filled and mark the next one discontinuous."""
        self._flush()
        self.stats.gaps += 1
        self._pending_gaps.append(gap)
        self._continuous_next = False
        log.info("gap: %s", gap)

    def _flush_if_stale(self) -> None:
        if self._fill and time.monotonic() - self._block_started > self.max_latency_s:
            self._flush()

    def _flush(self) -> None:
        if not self._fill or self._buf is None:
            return
        block = Block(self._block_first, self._block_t, self._buf[: self._fill].copy(),
                      self._block_continuous, self._pending_gaps)
        self._pending_gaps = []
        self._fill = 0
        self._put(block)

    def _put(self, block: Block | None, force: bool = False) -> None:
        if force or block is None:  # at shutdown: wait (boundedly) for room
            self.blocks.put_at_end(block, "UDP")
            return
        if not self.blocks.offer(block):
            self.stats.dropped_blocks += 1
            self.stats.dropped_samples += block.n_samples
            # The samples are lost to the pipeline: record them and break continuity.
            self._pending_gaps = [*block.gaps, Gap(block.first_sample, block.n_samples, block.t_ns,
                                                   CAUSE_OVERFLOW, "processing fell behind; block dropped"),
                                  *self._pending_gaps]
            self.stats.gaps += 1
            self._continuous_next = False
