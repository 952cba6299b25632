"""NIST DASTARD's network formats: triggered records, status messages, ports and its JSON-RPC framing.

DASTARD (the TES DAQ most X-ray TES labs run) binds, from a base port (5500, fixed in DASTARD):

==========  =====================================================================================
base + 0    JSON-RPC 1.0 control over plain TCP (Go ``net/rpc/jsonrpc``: a stream of JSON objects)
base + 1    status, ZeroMQ PUB, 2 frames ``[topic, JSON]`` (``STATUS``, ``TRIGGERRATE``, ``ALIVE``, ...)
base + 2    triggered records (primary **and** group-trigger secondaries), ZeroMQ PUB, 2 frames
            ``[36-byte header, raw samples]``
base + 4    record summaries (not used by cryodaq)
==========  =====================================================================================

Base + 3 ("secondary records" in DASTARD's docs) is bound by no DASTARD code: secondaries go out on
base + 2 like primaries, and no header field tells them apart.

Record header, little-endian, ``<HBBIIffqQ`` (36 bytes):

=====  ====  =======  =====================================================================
byte   size  type     field
=====  ====  =======  =====================================================================
0      2     u16      channel **index** (position in the ``CHANNELNAMES`` list, not the number
                      in the channel's name); subscribers filter on these 2 bytes
2      1     u8       header version (0; older 24/32-byte layouts also said 0: check the length)
3      1     u8       sample dtype code (:data:`DTYPE_CODES`; DASTARD sends 2 = int16 or 3 = uint16)
4      4     u32      presamples
8      4     u32      samples in the record
12     4     f32      sample period (s)
16     4     f32      volts per arb (raw unit)
20     8     i64      trigger time, ns since the Unix epoch (DASTARD's host clock)
28     8     u64      trigger frame index
=====  ====  =======  =====================================================================

Sources: DASTARD's Go code (``publish_data.go``, ``client_updater.go``, ``global_config.go``,
``rpc_server.go``), checked in /work/notes/dastard.md. Depends on numpy and the standard library only,
so the simulators and tests can speak the format without the acquisition machinery.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Sequence

import numpy as np

__all__ = [
    "DEFAULT_BASE_PORT", "DTYPE_CODES", "PORT_RECORDS", "PORT_RPC", "PORT_STATUS", "PORT_SUMMARIES",
    "RECORD_HEADER", "RECORD_HEADER_SIZE", "DastardFormatError", "JsonStream", "RecordHeader",
    "channel_prefix", "decode_record", "decode_rpc_reply", "decode_status", "dtype_code", "encode_record",
    "encode_rpc_request", "encode_status", "format_go_time", "parse_address", "parse_go_time", "port_addresses",
    "status_values",
]

DEFAULT_BASE_PORT = 5500
PORT_RPC, PORT_STATUS, PORT_RECORDS, PORT_SUMMARIES = 0, 1, 2, 4  # offsets from the base port

RECORD_HEADER = struct.Struct("<HBBIIffqQ")
RECORD_HEADER_SIZE = RECORD_HEADER.size  # 36
RECORD_HEADER_VERSION = 0

#: DASTARD's sample dtype codes ("0-1 = 8 bits; 2-3 = 16; 4-5 = 32; 6-7 = 64; odd=uint; even=int")
DTYPE_CODES: dict[int, np.dtype] = {
    0: np.dtype("<i1"), 1: np.dtype("<u1"), 2: np.dtype("<i2"), 3: np.dtype("<u2"),
    4: np.dtype("<i4"), 5: np.dtype("<u4"), 6: np.dtype("<i8"), 7: np.dtype("<u8"),
}
_CODE_OF = {(dt.kind, dt.itemsize): code for code, dt in DTYPE_CODES.items()}
_ADDRESS = re.compile(r"^tcp://(?P<host>\[[0-9A-Fa-f:.]+\]|[^:/\s]+):(?P<port>\d+)/?$")


class DastardFormatError(ValueError):
    """A message that is not in DASTARD's format (names what is wrong)."""


@dataclass(frozen=True)
class RecordHeader:
    """The 36-byte header of one triggered record (see the module docstring)."""

    channel_index: int
    dtype_code: int
    presamples: int
    n_samples: int
    sample_period_s: float
    volts_per_arb: float
    trigger_time_ns: int
    trigger_frame: int
    version: int = RECORD_HEADER_VERSION

    @property
    def dtype(self) -> np.dtype:
        return DTYPE_CODES[self.dtype_code]


def dtype_code(dtype: Any) -> int:
    """DASTARD's code for a numpy integer dtype (uint16 -> 3)."""
    dt = np.dtype(dtype)
    try:
        return _CODE_OF[(dt.kind, dt.itemsize)]
    except KeyError:
        raise DastardFormatError(f"dtype {dt} has no DASTARD sample code (integers of 1, 2, 4 or 8 bytes)") from None


def channel_prefix(channel_index: int) -> bytes:
    """The ZeroMQ subscription prefix of one channel: its index as 2 little-endian bytes.

    (DASTARD's docs say "4-byte channel number"; a 4-byte prefix also requires the version and dtype
    bytes to be 0, so it matches nothing DASTARD sends.)
    """
    if not 0 <= int(channel_index) <= 0xFFFF:
        raise ValueError(f"DASTARD channel index must be 0..65535, got {channel_index}")
    return struct.pack("<H", int(channel_index))


def encode_record(header: RecordHeader, samples: np.ndarray) -> list[bytes]:
    """The 2 frames DASTARD sends for one record: header, then the raw samples in the header's dtype."""
    samples = np.ascontiguousarray(samples, dtype=header.dtype)
    if samples.ndim != 1 or len(samples) != header.n_samples:
        raise DastardFormatError(f"record of channel {header.channel_index}: header says {header.n_samples} "
                                 f"samples, got an array of shape {samples.shape}")
    head = RECORD_HEADER.pack(header.channel_index, header.version, header.dtype_code, header.presamples,
                              header.n_samples, header.sample_period_s, header.volts_per_arb,
                              header.trigger_time_ns, header.trigger_frame)
    return [head, samples.tobytes()]


def decode_record(frames: Sequence[bytes | memoryview]) -> tuple[RecordHeader, np.ndarray]:
    """``(header, samples)`` of one record message; samples are a read-only view of the second frame."""
    if len(frames) != 2:
        raise DastardFormatError(f"a record message has 2 frames (header, samples), got {len(frames)}")
    head, data = frames
    if len(head) != RECORD_HEADER_SIZE:
        raise DastardFormatError(f"record header is {len(head)} bytes, expected {RECORD_HEADER_SIZE} "
                                 "(DASTARD header version 0 since 2018)")
    ch, version, code, pre, n, period, vpa, t_ns, frame = RECORD_HEADER.unpack(head)
    if version != RECORD_HEADER_VERSION:
        raise DastardFormatError(f"record header version {version} is not supported (expected 0)")
    dt = DTYPE_CODES.get(code)
    if dt is None:
        raise DastardFormatError(f"record of channel {ch}: unknown sample dtype code {code} (known 0..7)")
    if len(data) != n * dt.itemsize:
        raise DastardFormatError(f"record of channel {ch}: header says {n} samples of {dt}, "
                                 f"the payload has {len(data)} bytes")
    if pre > n:
        raise DastardFormatError(f"record of channel {ch}: {pre} presamples in a {n}-sample record")
    header = RecordHeader(ch, code, pre, n, period, vpa, t_ns, frame, version)
    return header, np.frombuffer(data, dtype=dt)


def encode_status(topic: str, payload: Any) -> list[bytes]:
    """A status message: the topic (ASCII) and the payload as JSON, as DASTARD's ``client_updater`` sends it."""
    return [topic.encode("ascii"), json.dumps(payload).encode()]


def decode_status(frames: Sequence[bytes | memoryview]) -> tuple[str, Any]:
    """``(topic, payload)`` of one status message."""
    if len(frames) != 2:
        raise DastardFormatError(f"a status message has 2 frames (topic, JSON), got {len(frames)}")
    try:
        topic = bytes(frames[0]).decode("ascii")
        payload = json.loads(bytes(frames[1]))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DastardFormatError(f"status message is not [ASCII topic, JSON]: {exc}") from None
    return topic, payload


_HK_NAME = re.compile(r"[^A-Za-z0-9_.\-]")


def status_values(topic: str, payload: Any, arrived_ns: int, channel_names: Sequence[str] = (),
                  per_channel_limit: int = 64) -> list[tuple[str, int, float, str]]:
    """The numbers a status message carries, as ``(name, t_ns, value, unit)`` housekeeping samples.

    ``TRIGGERRATE``: ``dastard_trigger_rate`` (all channels) and ``trigger_rate_<channel name>`` for
    the first ``per_channel_limit`` channels (Hz, at ``HiTime``); ``ALIVE``: ``dastard_data_rate``
    (B/s of raw data processed) and ``dastard_running`` (1/0); ``NUMBERWRITTEN``:
    ``dastard_records_written`` (records DASTARD wrote to its own files, all channels);
    ``EXTERNALTRIGGER``: ``dastard_external_trigger_rate`` (Hz). Other topics carry no numbers
    (``DATADROP`` is left out: DASTARD's count rises on every processed block, not only on drops).
    A malformed payload raises :class:`DastardFormatError`.
    """
    try:
        if topic == "TRIGGERRATE":
            t_ns = parse_go_time(payload["HiTime"])
            seconds = int(payload["Duration"]) / 1e9
            counts = [int(c) for c in payload["CountsSeen"]]
            if seconds <= 0:
                return []
            out = [("dastard_trigger_rate", t_ns, sum(counts) / seconds, "Hz")]
            for index, c in enumerate(counts[:per_channel_limit]):
                name = channel_names[index] if index < len(channel_names) else f"index{index}"
                out.append((f"trigger_rate_{_HK_NAME.sub('_', str(name))}", t_ns, c / seconds, "Hz"))
            return out
        if topic == "ALIVE":
            out = [("dastard_running", arrived_ns, 1.0 if payload.get("Running") else 0.0, "")]
            seconds = float(payload.get("Time") or 0.0)
            if seconds > 0:
                rate = float(payload.get("DataMB") or 0.0) * 1e6 / seconds  # SI units, as all housekeeping
                out.append(("dastard_data_rate", arrived_ns, rate, "B/s"))
            return out
        if topic == "NUMBERWRITTEN":
            return [("dastard_records_written", arrived_ns, float(sum(int(n) for n in payload["NumberWritten"])), "")]
        if topic == "EXTERNALTRIGGER":
            return [("dastard_external_trigger_rate", arrived_ns, float(payload["NumberObservedInLastSecond"]), "Hz")]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DastardFormatError(f"{topic} status {payload!r} is not as DASTARD sends it: {exc}") from None
    return []


_GO_TIME = re.compile(r"^(?P<base>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<frac>\d{1,9}))?(?P<tz>Z|[+-]\d\d:\d\d)$")


def parse_go_time(text: str) -> int:
    """ns since the Unix epoch of a Go ``time.Time`` in JSON (RFC 3339 with up to 9 fractional digits,
    e.g. ``"2024-07-23T10:00:01.123456789-06:00"``); datetime keeps only microseconds, so the
    fraction is added here."""
    m = _GO_TIME.match(str(text).strip())
    if not m:
        raise DastardFormatError(f"time {text!r} is not RFC 3339 (Go time.Time)")
    tz = "+00:00" if m["tz"] == "Z" else m["tz"]
    seconds = int(datetime.fromisoformat(m["base"] + tz).timestamp())
    frac = (m["frac"] or "").ljust(9, "0")
    return seconds * 1_000_000_000 + int(frac)


def format_go_time(t_ns: int) -> str:
    """``t_ns`` (ns since the epoch) as Go marshals a UTC ``time.Time``: RFC 3339, trailing zeros of the
    fraction dropped (``2024-07-23T16:00:01.5Z``)."""
    seconds, ns = divmod(int(t_ns), 1_000_000_000)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{ns:09d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


# --------------------------------------------------------------------------------- JSON-RPC
# Go's net/rpc/jsonrpc codec: JSON-RPC 1.0 objects written back to back on a TCP stream, no length
# prefix or newline framing. No maintained Python package speaks this Go-specific framing, so the
# few lines are written here: encode a request, split the reply stream into JSON values.
def encode_rpc_request(method: str, param: Any, request_id: int) -> bytes:
    """One request, e.g. ``("SourceControl.SendAllStatus", "", 1)``; Go's codec takes exactly one param."""
    return json.dumps({"method": method, "params": [param], "id": request_id}).encode()


def decode_rpc_reply(reply: Any, request_id: int) -> Any:
    """The ``result`` of a reply object; raises DastardFormatError on a mismatched id or an ``error``."""
    if not isinstance(reply, dict) or "id" not in reply:
        raise DastardFormatError(f"JSON-RPC reply is not an object with an id: {reply!r}")
    if reply["id"] != request_id:
        raise DastardFormatError(f"JSON-RPC reply id {reply['id']!r} does not answer request {request_id}")
    if reply.get("error") is not None:
        raise DastardFormatError(f"DASTARD answered with an error: {reply['error']}")
    return reply.get("result")


class JsonStream:
    """Splits a byte stream into consecutive JSON values (Go's jsonrpc codec framing)."""

    def __init__(self) -> None:
        self._buf = ""
        self._decoder = json.JSONDecoder()

    def feed(self, data: bytes) -> list[Any]:
        """Add received bytes; returns every JSON value now complete."""
        self._buf += data.decode()
        out = []
        while True:
            text = self._buf.lstrip()
            if not text:
                self._buf = ""
                return out
            try:
                value, end = self._decoder.raw_decode(text)
            except json.JSONDecodeError:
                self._buf = text  # incomplete: wait for more bytes
                if len(text) > 16 * 1024**2:
                    raise DastardFormatError("JSON-RPC stream: more than 16 MiB without a complete value") from None
                return out
            out.append(value)
            self._buf = text[end:]


# --------------------------------------------------------------------------------- addresses
def parse_address(address: str) -> tuple[str, int]:
    """``(host, base port)`` of ``tcp://host:port`` (the base port, DASTARD's RPC port: 5500 by default)."""
    m = _ADDRESS.match(str(address).strip())
    if not m:
        raise ValueError(f"expected a DASTARD address 'tcp://<host>:<base port>' (e.g. tcp://127.0.0.1:5500), "
                         f"got {address!r}")
    port = int(m["port"])
    if not 1 <= port <= 65535 - PORT_SUMMARIES:
        raise ValueError(f"DASTARD base port {port} in {address!r} is out of range 1..{65535 - PORT_SUMMARIES}")
    return m["host"], port


def port_addresses(address: str) -> dict[str, str]:
    """The ZeroMQ/TCP endpoints a DASTARD at ``tcp://host:base`` serves: rpc, status, records, summaries."""
    host, base = parse_address(address)
    return {name: f"tcp://{host}:{base + offset}" for name, offset in
            (("rpc", PORT_RPC), ("status", PORT_STATUS), ("records", PORT_RECORDS), ("summaries", PORT_SUMMARIES))}
