"""A running NIST DASTARD as a cryodaq readout source: its triggered records into cryodaq runs.

DASTARD keeps acquiring (and, if asked, writing its own LJH/OFF files); cryodaq subscribes to what
it publishes (:mod:`cryodaq.wire.dastard`) and stores the records as events, with DASTARD's status
in housekeeping. A station file names it like any instrument::

    dastard:
      type: cryodaq.instruments.DastardPublisher
      address: tcp://127.0.0.1:5500      # DASTARD's base port: +0 RPC, +1 status, +2 records
      init:
        channels: [0, 1, 2]              # optional: channel *indices* to subscribe (default: all)

:meth:`DastardPublisher.describe` asks DASTARD (JSON-RPC ``SourceControl.SendAllStatus``, read-only)
to re-broadcast its status and reads ``STATUS`` and ``CHANNELNAMES`` from the status port.
DASTARD always publishes; :meth:`start_stream` / :meth:`stop_stream` subscribe and unsubscribe the
receiver that :meth:`open_receiver` made, and :meth:`is_streaming` reflects that subscription.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import zmq
from qcodes.instrument import Instrument
from qcodes.parameters import Parameter
from qcodes.validators import Enum, Ints, Lists, MultiType

from cryodaq.errors import InstrumentError
from cryodaq.readout.dastard_receiver import DastardReceiver
from cryodaq.readout.source import StreamDescription, TimeBase
from cryodaq.wire import dastard as dw

__all__ = ["DastardPublisher"]

_STATUS_TOPICS = ("STATUS", "CHANNELNAMES")
_ASK_EVERY_S = 0.5  # SendAllStatus again while the status socket has not delivered (slow joiner)
_SUBSCRIBE_SETTLE_S = 0.05

log = logging.getLogger(__name__)


def channel_numbers(names: Sequence[str]) -> np.ndarray:
    """The number at the end of each channel name (``chan12043`` -> 12043; -1 when there is none)."""
    out = []
    for name in names:
        m = re.search(r"(\d+)$", str(name))
        out.append(int(m[1]) if m else -1)
    return np.asarray(out, dtype=np.int64)


class DastardPublisher(Instrument):
    """A DASTARD at ``address`` (``tcp://host:base_port``) as a :class:`~cryodaq.readout.source.ReadoutSource`
    of kind ``records`` (see the module docstring).

    ``channels``: channel indices to subscribe (None: all). ``timeout_s``: how long to wait for
    DASTARD's control port and status. ``drop_check_grace_s``: how long after a ``TRIGGERRATE``
    message its window is compared with the records received
    (:class:`~cryodaq.readout.dastard_receiver.TriggerRateCheck`).
    """

    def __init__(self, name: str, address: str, *, channels: Sequence[int] | None = None, timeout_s: float = 5.0,
                 drop_check_grace_s: float = 1.0, **kwargs: Any) -> None:
        try:
            self.host, self.base_port = dw.parse_address(address)
        except ValueError as exc:
            raise InstrumentError(name, address, str(exc)) from None
        super().__init__(name, **kwargs)
        self.address = address
        self.endpoints = dw.port_addresses(address)
        self.timeout_s = float(timeout_s)
        self.drop_check_grace_s = float(drop_check_grace_s)
        self._status_cache: tuple[float, dict[str, Any]] | None = None
        self._receiver: DastardReceiver | None = None
        self._streaming = False
        self._rpc_id = 0
        self.subscribed_channels: Parameter = self.add_parameter(
            "subscribed_channels", label="subscribed channel indices", initial_value=None if channels is None
            else [int(c) for c in channels], get_cmd=None, set_cmd=None,
            vals=MultiType(Enum(None), Lists(Ints(0, 0xFFFF))),
            docstring="DASTARD channel indices (positions in CHANNELNAMES) whose records are subscribed; "
                      "None: every channel. Takes effect at the next stream start.",
        )
        self.sample_rate: Parameter = self.add_parameter(
            "sample_rate", unit="Hz", label="sample rate", get_cmd=lambda: self._rate(),
            docstring="Samples per second of each channel (1 / STATUS SamplePeriod).",
        )
        self.n_channels: Parameter = self.add_parameter(
            "n_channels", get_cmd=lambda: int(self._status()["STATUS"].get("Nchannels", 0)),
            docstring="Channels of DASTARD's running source (STATUS Nchannels).",
        )
        self.record_length: Parameter = self.add_parameter(
            "record_length", unit="samples", get_cmd=lambda: int(self._status()["STATUS"].get("Nsamples", 0)),
            docstring="Samples per triggered record (STATUS Nsamples).",
        )
        self.presamples: Parameter = self.add_parameter(
            "presamples", unit="samples", get_cmd=lambda: int(self._status()["STATUS"].get("Npresamp", 0)),
            docstring="Samples before the trigger in each record (STATUS Npresamp).",
        )
        self.source_name: Parameter = self.add_parameter(
            "source_name", get_cmd=lambda: str(self._status()["STATUS"].get("SourceName", "")),
            docstring="DASTARD's data source (SimPulses, Lancero, Abaco, ...).",
        )
        self.running: Parameter = self.add_parameter(
            "running", get_cmd=lambda: bool(self._status()["STATUS"].get("Running", False)),
            docstring="Whether DASTARD's data source runs (STATUS Running).",
        )
        self.connect_message()

    @classmethod
    def check_address(cls, address: str) -> None:
        """Raise ValueError saying what is expected unless ``address`` is ``tcp://host:port``.

        Station files are checked with it when they are loaded (``cryodaq.station.config``), so a bad
        address fails naming the file and the key before anything is started.
        """
        try:
            dw.parse_address(address)
        except ValueError:
            raise ValueError("DASTARD's base address 'tcp://<host>:<port>' (e.g. tcp://127.0.0.1:5500; "
                             "DASTARD serves port+0 RPC, +1 status, +2 records)") from None

    def get_idn(self) -> dict[str, str | None]:
        """DASTARD's identity; asks it for its status, so an address where no DASTARD answers fails here,
        when the station comes up (naming the instrument and its address)."""
        source = str(self._status()["STATUS"].get("SourceName", "")) or None
        return {"vendor": "NIST", "model": "DASTARD", "serial": self.address, "firmware": source}

    # --- DASTARD's status -------------------------------------------------------------------
    def _error(self, problem: str) -> InstrumentError:
        return InstrumentError(self.name, self.address, problem)

    def rpc(self, method: str, param: Any = "") -> Any:
        """Call DASTARD's JSON-RPC ``method`` (e.g. ``SourceControl.SendAllStatus``) with one parameter."""
        self._rpc_id += 1
        request_id = self._rpc_id
        stream = dw.JsonStream()
        try:
            with socket.create_connection((self.host, self.base_port), timeout=self.timeout_s) as sock:
                sock.sendall(dw.encode_rpc_request(method, param, request_id))
                deadline = time.monotonic() + self.timeout_s
                while time.monotonic() < deadline:
                    data = sock.recv(65536)
                    if not data:
                        break
                    for reply in stream.feed(data):
                        return dw.decode_rpc_reply(reply, request_id)
        except OSError as exc:
            raise self._error(f"DASTARD's control port {self.host}:{self.base_port} (JSON-RPC) did not answer "
                              f"{method}: {exc}; is DASTARD running there with this base port?") from None
        except dw.DastardFormatError as exc:
            raise self._error(f"{method}: {exc}") from None
        raise self._error(f"DASTARD's control port {self.host}:{self.base_port} closed the connection without "
                          f"answering {method}")

    def fetch_status(self, topics: Sequence[str] = _STATUS_TOPICS) -> dict[str, Any]:
        """The latest payload of each status ``topic``: asks DASTARD to re-send all (``SendAllStatus``)
        and reads its status port until each arrived (or ``timeout_s`` passed: InstrumentError)."""
        got: dict[str, Any] = {}
        ctx = zmq.Context.instance()
        sock = ctx.socket(zmq.SUB)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.connect(self.endpoints["status"])
            deadline = time.monotonic() + self.timeout_s
            ask_at = time.monotonic() + 0.05  # give the SUB socket a moment to connect before the first ask
            while any(t not in got for t in topics):
                now = time.monotonic()
                if now >= deadline:
                    missing = [t for t in topics if t not in got]
                    hint = (" (DASTARD has no running data source: start one, e.g. in dastard-commander)"
                            if "STATUS" in got and not got["STATUS"].get("Running") else "")
                    raise self._error(f"no {missing} status from {self.endpoints['status']} within "
                                      f"{self.timeout_s:g} s{hint}")
                if now >= ask_at:
                    self.rpc("SourceControl.SendAllStatus", "")
                    ask_at = now + _ASK_EVERY_S
                if sock.poll(50):
                    try:
                        topic, payload = dw.decode_status(sock.recv_multipart())
                    except dw.DastardFormatError:
                        continue
                    if topic == "STATUS" and not isinstance(payload, dict):
                        continue  # not DASTARD's STATUS object: wait for one that is
                    got[topic] = payload
                    if topic == "STATUS" and not payload.get("Running") and "CHANNELNAMES" in topics:
                        got.setdefault("CHANNELNAMES", [])  # a stopped source re-sends no channel names
        finally:
            sock.close(linger=0)
        return got

    def _status(self, max_age_s: float = 1.0) -> dict[str, Any]:
        if self._status_cache is None or time.monotonic() - self._status_cache[0] > max_age_s:
            self._status_cache = (time.monotonic(), self.fetch_status())
        return self._status_cache[1]

    def _rate(self) -> float:
        period_ns = self._status()["STATUS"].get("SamplePeriod")
        return 1e9 / float(period_ns) if period_ns else float("nan")

    # --- ReadoutSource --------------------------------------------------------------------
    def describe(self) -> StreamDescription:
        """DASTARD's running source as a ``records`` stream: channels (names, numbers), sample rate,
        record length and presamples, from its STATUS and CHANNELNAMES messages."""
        status = self._status(max_age_s=0.0)
        st = status["STATUS"]
        if not st.get("Running"):
            raise self._error("DASTARD has no running data source (STATUS Running is false); start one first")
        n = int(st.get("Nchannels") or 0)
        names = [str(x) for x in status.get("CHANNELNAMES") or []]
        if n <= 0 or len(names) != n:
            raise self._error(f"STATUS says {n} channels but CHANNELNAMES lists {len(names)}")
        chosen = self.subscribed_channels()
        bad = [c for c in (chosen or []) if not 0 <= c < n]
        if bad:
            raise self._error(f"subscribed channel indices {bad} do not exist (DASTARD has {n} channels, "
                              f"indices 0..{n - 1})")
        period_ns = st.get("SamplePeriod")
        return StreamDescription(
            kind="records", sample_rate_hz=1e9 / float(period_ns) if period_ns else 0.0, n_channels=n,
            sample_dtype="uint16", units="arb",
            channel_coords={"channel_name": np.asarray(names), "channel_number": channel_numbers(names)},
            time_base=TimeBase(source="dastard", detail="trigger times from DASTARD's host clock (data arrival "
                                                        "times, interpolated by frame index)"),
            source=self.name, record_length=int(st["Nsamples"]) if st.get("Nsamples") else None,
            presamples=int(st["Npresamp"]) if st.get("Npresamp") is not None else None,
        )

    def configure(self, **settings: Any) -> None:
        """Set parameters by name (validators and station safety limits apply), e.g. ``subscribed_channels=[0, 2]``."""
        for key, value in settings.items():
            param = self.parameters.get(key)
            if param is None or not param.settable:
                settable = sorted(k for k, p in self.parameters.items() if p.settable)
                raise self._error(f"has no settable parameter {key!r} (settable: {settable})")
            param(value)

    def is_streaming(self) -> bool:
        """Whether this instrument has a receiver subscribed (DASTARD itself always publishes)."""
        return self._streaming

    def open_receiver(self, host: str, port: int, *, packets_per_block: int, queue_blocks: int) -> DastardReceiver:
        """A receiver connected to DASTARD's status and records ports (not started, not subscribed).

        ``host``/``port`` (where a pushing board would send) do not apply: cryodaq connects to DASTARD.
        Blocks hold up to ``packets_per_block`` records.
        """
        names = []
        if self._status_cache is not None:
            names = [str(x) for x in self._status_cache[1].get("CHANNELNAMES") or []]
        self._receiver = DastardReceiver(self.address, channels=self.subscribed_channels(), channel_names=names,
                                         records_per_block=packets_per_block, queue_blocks=queue_blocks,
                                         drop_check_grace_s=self.drop_check_grace_s)
        return self._receiver

    def start_stream(self, host: str, port: int) -> None:
        """Subscribe the receiver from :meth:`open_receiver` (``host``/``port`` are its own address), then
        ask DASTARD to re-send its status, so the stream begins with STATUS, CHANNELNAMES, TRIGGER and
        WRITING (a run records them)."""
        if self._receiver is None:
            raise self._error("no receiver to subscribe: open_receiver() first")
        self._receiver.subscribe()
        self._streaming = True
        if self._receiver.wait_subscribed(self.timeout_s):
            time.sleep(_SUBSCRIBE_SETTLE_S)  # ZeroMQ: the subscription reaches DASTARD's PUB a moment later
        try:
            self.rpc("SourceControl.SendAllStatus", "")
        except InstrumentError as exc:  # the records still flow; only the status snapshot is missing
            log.warning("%s: could not ask for DASTARD's status at stream start: %s", self.name, exc)

    def stop_stream(self) -> None:
        """Unsubscribe; DASTARD goes on publishing (and writing its own files if it does)."""
        if self._receiver is not None:
            self._receiver.unsubscribe()
        self._streaming = False
        self._receiver = None

    def close(self) -> None:
        self.stop_stream()
        super().close()
