"""UDP receiver of cryodaq readout packets: packets -> contiguous sample blocks + gap records.

The receiver thread does as little as possible: read a datagram, check its
sequence number, copy its samples into the block being assembled, and hand full
blocks to a bounded queue. It never blocks on the consumer: when the queue is
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
    ) -> None:
        self.packets_per_block = packets_per_block
        self.max_latency_s = max_latency_s
        self.blocks: BlockQueue[Block | None] = BlockQueue(maxsize=queue_blocks)
        self.stats = ReceiverStats()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf_bytes)
        self._sock.bind((host, port))
        self._sock.settimeout(0.05)
        self.host, self.port = self._sock.getsockname()[:2]
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
        buf = bytearray(pk.MAX_DATAGRAM)
        view = memoryview(buf)
        while not (self._stop.is_set() and time.monotonic() > self._drain_until):
            try:
                n = self._sock.recv_into(buf)
            except TimeoutError:
                if self._stop.is_set():
                    break  # the socket is empty and we were asked to stop
                self._flush_if_stale()
                continue
            except OSError:
                break
            try:
                header, samples = pk.decode(view[:n])
            except pk.PacketError as exc:
                self.stats.bad_packets += 1
                log.warning("ignored a bad packet: %s", exc)
                continue
            self._accept(header, samples)
            self._flush_if_stale()
        self._flush()
        if self._pending_gaps:  # gaps with no block after them still get recorded
            self._put(Block(self._next_sample or 0, 0, np.empty((0,), np.int16), False, self._pending_gaps), force=True)
            self._pending_gaps = []
        self._put(None, force=True)

    def _accept(self, h: pk.PacketHeader, samples: np.ndarray) -> None:
        st = self.stats
        if self._next_seq is not None:
            if h.sequence > self._next_seq or (h.sequence == self._next_seq and h.first_sample > self._next_sample):
                lost = h.sequence - self._next_seq
                first = self._next_sample
                n_missing = h.first_sample - first
                st.lost_packets += lost
                st.lost_samples += n_missing
                detail = (f"sequence {self._next_seq}..{h.sequence - 1} missing ({lost} packets)" if lost
                          else "sample index jumped with consecutive sequence numbers")
                self._gap(Gap(first, n_missing, self._t_of(first, h), CAUSE_PACKET_LOSS, detail))
            elif h.sequence < self._next_seq:  # the board restarted its stream, or reordered: never stitch
                self._gap(Gap(h.first_sample, 0, h.t_ns, CAUSE_RESTART,
                              f"sequence went back from {self._next_seq - 1} to {h.sequence}"))
        if self._last_first is not None and h.first_sample > self._last_first:
            self._ns_per_sample = (h.t_ns - self._last_t) / (h.first_sample - self._last_first)
        self._last_first, self._last_t = h.first_sample, h.t_ns
        self._next_seq = h.sequence + 1
        self._next_sample = h.first_sample + h.n_samples
        st.packets += 1
        st.samples += h.n_samples

        n = h.n_samples
        if self._buf is None or self._buf.shape[1:] != samples.shape[1:] or self._fill + n > len(self._buf):
            self._flush()
            if self._buf is None or self._buf.shape[1:] != samples.shape[1:] or n > len(self._buf):
                self._buf = np.empty((max(self.packets_per_block, 1) * n, *samples.shape[1:]), dtype=np.int16)
        if self._fill == 0:
            self._block_first, self._block_t = h.first_sample, h.t_ns
            self._block_started = time.monotonic()
            self._block_continuous = self._continuous_next
            self._continuous_next = True
        self._buf[self._fill:self._fill + n] = samples
        self._fill += n
        if self._fill == len(self._buf):
            self._flush()

    def _t_of(self, sample: int, h: pk.PacketHeader) -> int:
        if self._ns_per_sample:
            return int(h.t_ns - (h.first_sample - sample) * self._ns_per_sample)
        return h.t_ns

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
