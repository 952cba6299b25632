"""The receiver dance, written once: receiver on a free port, refuse a busy source, start, stop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from cryodaq.errors import InstrumentError
from cryodaq.readout.source import BlockReceiver, ReadoutSource

__all__ = ["receiving", "source_address"]

log = logging.getLogger(__name__)


def source_address(source: ReadoutSource) -> str | None:
    """The source's address for error messages (a VISA or network address), if it has one."""
    address = getattr(source, "address", None)
    return None if address is None else str(address)


@contextmanager
def receiving(source: ReadoutSource, *, host: str = "127.0.0.1", port: int = 0, packets_per_block: int = 8,
              queue_blocks: int = 256, drain_s: float = 0.3, stop_in_background: bool = False,
              purpose: str = "this acquisition", receiver: BlockReceiver | None = None) -> Iterator[BlockReceiver]:
    """Stream ``source`` into a receiver bound to ``host:port`` (0: a free port) for a ``with`` block.

    ``receiver``: one the caller opened already (``source.open_receiver``, not started), e.g. to
    bind a fixed port before creating anything; ``host``, ``port`` and the sizes are then its own.
    It is stopped on leaving, as one opened here would be, also when the source is refused.

    Refuses a source that already streams (another consumer's stream is never taken over):
    :class:`~cryodaq.errors.InstrumentError` naming the source. On leaving, the source's
    stream is stopped first, then the receiver reads what is still in flight (for up to
    ``drain_s``) and queues its end marker (``None``), so a consumer draining ``blocks``
    sees every sample that arrived. With ``stop_in_background`` the receiver is not waited
    for (a short capture that has what it needs).
    """
    if source.is_streaming():
        if receiver is not None:
            receiver.stop(drain_s=0.0)
        raise InstrumentError(source.name, source_address(source),
                              f"is already streaming (another acquisition uses it); stop that stream before {purpose}")
    if receiver is None:
        receiver = source.open_receiver(host, port, packets_per_block=packets_per_block, queue_blocks=queue_blocks)
    receiver.start()
    try:
        source.start_stream(receiver.host, receiver.port)
        try:
            yield receiver
        finally:
            try:
                source.stop_stream()
            except Exception as exc:  # the data already received must still be saved
                log.error("could not stop the stream of %s: %s", source.name, exc)
    finally:
        if stop_in_background:
            threading.Thread(target=receiver.stop, kwargs={"drain_s": 0.0}, name="cryodaq-receiver-close",
                             daemon=True).start()
        else:
            receiver.stop(drain_s=drain_s)
