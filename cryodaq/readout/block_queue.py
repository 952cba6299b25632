"""The bounded queue between a receiver and the pipeline: the receiver never waits on it.

Every :class:`~cryodaq.readout.source.BlockReceiver` (cryodaq's UDP packets, a CRS board's
multicast, DASTARD's records) hands its blocks over through one of these: :meth:`BlockQueue.offer`
never blocks (a full queue refuses the block, and the receiver records what it lost as a gap),
and :meth:`BlockQueue.put_at_end` queues what a stopping receiver still has (its last gaps, then
the end-of-stream marker ``None``), waiting boundedly for room.
"""

from __future__ import annotations

import logging
import queue
from typing import Generic, TypeVar

__all__ = ["END_WAIT_S", "BlockQueue"]

log = logging.getLogger(__name__)

END_WAIT_S = 5.0  # how long the end-of-stream marker waits for room at shutdown

T = TypeVar("T")


class BlockQueue(queue.Queue, Generic[T]):  # type: ignore[type-arg]
    """A ``queue.Queue`` of blocks (``None``: the end of the stream) of bounded size ``maxsize``."""

    def offer(self, block: T) -> bool:
        """Queue ``block`` if there is room now; False (nothing queued) when the queue is full."""
        try:
            self.put_nowait(block)
        except queue.Full:
            return False
        return True

    def put_at_end(self, block: T | None, receiver: str) -> None:
        """At shutdown: queue ``block`` (``None``: the end-of-stream marker), waiting up to
        :data:`END_WAIT_S` for room; ``receiver`` names who stops, for the log line when the consumer
        never made room."""
        try:
            self.put(block, timeout=END_WAIT_S)
        except queue.Full:
            what = "end-of-stream marker" if block is None else "last block"
            log.error("%s: receiver queue stayed full at shutdown; %s not delivered", receiver, what)
