"""Bounded retry, reconnect and clear errors for instrument I/O.

qcodes drivers talk through ``write_raw``/``ask_raw``. :func:`make_reliable` wraps
those two methods of one instrument *instance* so that a call that times out or
finds the connection dropped is retried a bounded number of times, reconnecting the
transport before each retry (a new VISA session on the same resource manager and
address, or a new socket for a qcodes ``IPInstrument``). When every attempt fails
the caller gets an :class:`~cryodaq.errors.InstrumentError` naming the instrument
and its address; the instrument is left marked "broken" and the next call reconnects
first, so an instrument that comes back (power-cycled, cable replugged) works again
with no manual action.

A reply that the parameter cannot parse ("answered garbage") is not retried: it
raises an InstrumentError naming the instrument, address, parameter, command and
reply. qcodes' own exceptions say neither the address nor the reply in a form a
user can act on, hence the wrapping of each parameter's ``get``.

Retrying a set command resends it; SCPI-style set commands are idempotent.
qcodes has no retry layer of its own, which is why this module exists.
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pyvisa.errors
from pyvisa.constants import ResourceAttribute
from pyvisa.errors import VisaIOError
from qcodes.instrument import InstrumentBase, IPInstrument, VisaInstrument
from qcodes.parameters import ParameterBase

from cryodaq.errors import CryodaqError, InstrumentError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: failures worth a reconnect and a retry: timeouts, dropped or refused connections
RETRYABLE: tuple[type[BaseException], ...] = (pyvisa.errors.VisaIOError, pyvisa.errors.InvalidSession, OSError)


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` more attempts after the first; the k-th retry waits ``backoff_s * 2**k``."""

    retries: int = 2
    backoff_s: float = 0.2

    def __post_init__(self) -> None:
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"retries must be an integer >= 0, got {self.retries!r}")
        if not self.backoff_s >= 0:
            raise ValueError(f"backoff_s must be >= 0, got {self.backoff_s!r}")

    def delay_s(self, retry: int) -> float:
        return self.backoff_s * 2**retry


def call_with_retry(
    op: Callable[[], T],
    *,
    policy: RetryPolicy,
    instrument: str,
    address: str | None,
    what: str,
    reconnect: Callable[[], None] | None = None,
    retryable: tuple[type[BaseException], ...] = RETRYABLE,
) -> T:
    """Run ``op``; on a ``retryable`` failure reconnect (if given), wait and try again.

    After ``policy.retries`` retries raises InstrumentError("no answer to <what> after
    N attempts: <last error>"). Other exceptions propagate at once.
    """
    attempts = policy.retries + 1
    last: BaseException | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(policy.delay_s(attempt - 1))
            if reconnect is not None:
                try:
                    reconnect()
                except retryable as exc:
                    last = exc
                    log.warning("%s at %s: reconnect failed (%s)", instrument, address, exc)
                    continue
        try:
            return op()
        except retryable as exc:
            last = exc
            log.warning("%s at %s: %s failed on attempt %d/%d: %s", instrument, address, what, attempt + 1,
                        attempts, _describe(exc))
    raise InstrumentError(instrument, address,
                          f"no answer to {what} after {attempts} attempt(s): {_describe(last)}") from last


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    else:
        text = str(exc.args[0]) if exc.args else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _ReliableIO:
    """Per-instrument state: policy, address, broken flag, the last exchange."""

    def __init__(self, instrument: InstrumentBase, policy: RetryPolicy) -> None:
        self.instrument = instrument
        self.policy = policy
        self.name = instrument.name
        self.address = _address_of(instrument)
        self.broken = False
        self.replies = 0
        self.last_exchange: tuple[str, str] = ("", "")
        self.lock = threading.RLock()  # one exchange at a time: interleaved replies would be garbage
        self.write_raw = instrument.write_raw
        self.ask_raw = instrument.ask_raw

    def reconnect(self) -> None:
        inst = self.instrument
        if isinstance(inst, VisaInstrument):
            _reconnect_visa(inst)
        elif isinstance(inst, IPInstrument):
            _reconnect_ip(inst)
        self.broken = False
        log.info("%s: reconnected to %s", self.name, self.address)

    def _run(self, op: Callable[[], T], what: str) -> T:
        with self.lock:
            def attempt() -> T:
                if self.broken:
                    self.reconnect()
                try:
                    return op()
                except RETRYABLE:
                    self.broken = True
                    raise

            return call_with_retry(attempt, policy=self.policy, instrument=self.name, address=self.address,
                                   what=what)

    def write(self, cmd: str) -> None:
        self._run(lambda: self.write_raw(cmd), f"write {cmd!r}")

    def ask(self, cmd: str) -> str:
        def op() -> str:
            reply = self.ask_raw(cmd)
            if reply == "" and isinstance(self.instrument, IPInstrument):
                # a raw socket returns b"" once the peer has closed the connection
                raise ConnectionResetError("the connection was closed by the instrument")
            return reply

        reply = self._run(op, f"query {cmd!r}")
        self.replies += 1
        self.last_exchange = (cmd, reply)
        return reply


def _address_of(instrument: InstrumentBase) -> str | None:
    if isinstance(instrument, VisaInstrument):
        return instrument.address
    if isinstance(instrument, IPInstrument):
        return f"{instrument._address}:{instrument._port}"
    return getattr(instrument, "address", None)


def _reconnect_visa(inst: VisaInstrument) -> None:
    """Close the VISA session and open a new one at the same address, same terminators and timeout.

    ``set_address`` is qcodes' supported way to reopen the resource; with the same
    visalib it reuses the existing resource manager. It resets the terminators and
    timeout to pyvisa's defaults, so they are put back.
    """
    old = inst.visa_handle
    address = old.resource_name
    read_term, write_term, timeout_ms = old.read_termination, old.write_termination, old.timeout
    backend = inst.visabackend
    visalib = "@py" if backend == "py" else f"{old.visalib.library_path}@{backend}"
    try:
        old.close()
    except (pyvisa.errors.Error, OSError) as exc:  # a broken session may refuse to close; it is replaced anyway
        log.debug("%s: closing the old VISA session failed: %s", inst.name, exc)
    inst.set_address(address, visalib)
    handle = inst.visa_handle
    handle.read_termination = read_term
    handle.write_termination = write_term
    handle.timeout = timeout_ms
    disable_nagle(inst)


def disable_nagle(instrument: Any) -> None:
    """Send each VISA socket write at once (TCP_NODELAY; NI-VISA's default VI_ATTR_TCPIP_NODELAY).

    pyvisa-py leaves Nagle's algorithm on, so a write that follows another write waits for
    the peer's delayed ACK (~40 ms on Linux); a VNA sweep through the qcodes driver is a
    dozen such writes. pyvisa-py 0.7/0.8 cannot set the attribute (its setter entry is the
    generic one, which raises UnknownAttribute), so the session's socket is set directly.
    Resources that are not TCP sockets are left alone.
    """
    handle = getattr(instrument, "visa_handle", None)
    if handle is None or "SOCKET" not in str(getattr(handle, "resource_name", "")).upper():
        return
    sessions = getattr(getattr(handle, "visalib", None), "sessions", {})
    sock = getattr(sessions.get(getattr(handle, "session", None)), "interface", None)
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return
    try:  # another VISA library (NI-VISA already defaults to no delay)
        handle.set_visa_attribute(ResourceAttribute.tcpip_nodelay, True)
    except (VisaIOError, NotImplementedError) as exc:
        log.debug("could not set TCP_NODELAY on %s: %s", getattr(instrument, "name", instrument), exc)


def _reconnect_ip(inst: IPInstrument) -> None:
    sock = inst._socket
    inst._socket = None
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass
    inst._connect()


def iter_parameters(instrument: InstrumentBase) -> Iterator[ParameterBase]:
    """Every parameter of ``instrument`` and of its channels and submodules (each once)."""
    seen: set[int] = set()
    stack: list[Any] = [instrument]
    while stack:
        module = stack.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        if isinstance(module, InstrumentBase):
            yield from module.parameters.values()
            stack.extend(module.submodules.values())
        else:  # a ChannelTuple: a sequence of channels
            stack.extend(ch for ch in module if isinstance(ch, InstrumentBase))


def _wrap_get(parameter: ParameterBase, io: _ReliableIO) -> None:
    original = parameter.get

    @functools.wraps(original)
    def get(*args: Any, **kwargs: Any) -> Any:
        before = io.replies
        try:
            return original(*args, **kwargs)
        except CryodaqError:
            raise
        except Exception as exc:
            if io.replies == before:
                raise  # nothing was received: not a reply that failed to parse
            cmd, reply = io.last_exchange
            raise InstrumentError(
                io.name, io.address,
                f"parameter {parameter.full_name!r}: could not interpret the reply {reply!r} to {cmd!r} "
                f"({_describe(exc)})",
            ) from exc

    get._cryodaq_reliable = True  # type: ignore[attr-defined]
    parameter.get = get  # type: ignore[method-assign]


def make_reliable(instrument: InstrumentBase, policy: RetryPolicy | None = None,
                  timeout_s: float | None = None) -> InstrumentBase:
    """Give ``instrument`` bounded retry with reconnect and clear errors (see module docstring).

    Works on qcodes ``VisaInstrument`` and ``IPInstrument``; calling it again only
    updates the policy and timeout. ``timeout_s`` (None: keep the driver's) is the
    per-attempt I/O timeout, so a dead instrument is reported after about
    ``(retries + 1) * timeout_s + sum of backoffs``.
    """
    if not isinstance(instrument, (VisaInstrument, IPInstrument)):
        raise TypeError(f"make_reliable: {instrument.name!r} is a {type(instrument).__name__}, "
                        "expected a qcodes VisaInstrument or IPInstrument")
    policy = policy or RetryPolicy()
    if timeout_s is not None:
        if isinstance(instrument, VisaInstrument):
            instrument.timeout(timeout_s)
        else:
            instrument.set_timeout(timeout_s)
    io: _ReliableIO | None = getattr(instrument, "_cryodaq_reliable_io", None)
    if io is not None:
        io.policy = policy
        return instrument
    disable_nagle(instrument)
    io = _ReliableIO(instrument, policy)
    instrument._cryodaq_reliable_io = io  # type: ignore[attr-defined]
    instrument.write_raw = io.write  # type: ignore[method-assign]
    instrument.ask_raw = io.ask  # type: ignore[method-assign]
    for parameter in iter_parameters(instrument):
        if parameter.gettable and not getattr(parameter.get, "_cryodaq_reliable", False):
            _wrap_get(parameter, io)
    return instrument


def is_reliable(instrument: InstrumentBase) -> bool:
    """Whether :func:`make_reliable` was applied to ``instrument``."""
    return getattr(instrument, "_cryodaq_reliable_io", None) is not None
