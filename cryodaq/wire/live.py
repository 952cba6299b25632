"""The live wire format between the acquisition's publisher and the GUI (version 1).

Every message is one ZeroMQ multipart message::

    [topic (ASCII), header (UTF-8 JSON object), buffer 0, buffer 1, ...]

The header carries ``"v"`` (the protocol version) and ``"arrays"``: one
``[name, dtype, shape]`` per raw buffer that follows, in order (dtype in numpy's
``dtype.str`` form, e.g. ``"<f4"``). Everything else in the header is the topic's
own fields. Arrays are C-contiguous, so the receiver wraps them without copying.

Topics (see docs/gui.md for every field):

``info``          the stream: station, units, rates, channel coordinates, published channels (re-sent every few s)
``status``        run counters: elapsed, samples, rates, drops, gaps, queue fill, publisher drops, disk free
``psd``           a noise-spectrum snapshot for a block of channels
``stream``        decimated timestreams of the published channels
``iq``            subsampled IQ points and the current operating point of the published channels
``events``        event columns, plus the latest pulse records
``housekeeping``  instrument readings (fridge temperatures, paramp settings ...)
``gap``           samples that never reached the pipeline
``end``           the run ended

The same builders are used by the live publisher and by the GUI's replay of a
stored run, so the GUI sees one message format from both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cryodaq.errors import CryodaqError

PROTOCOL_VERSION = 1

INFO, STATUS, PSD, STREAM, IQ, EVENTS, HOUSEKEEPING, GAP, END = (
    "info", "status", "psd", "stream", "iq", "events", "housekeeping", "gap", "end",
)
TOPICS = (INFO, STATUS, PSD, STREAM, IQ, EVENTS, HOUSEKEEPING, GAP, END)

_RESERVED = ("v", "arrays")


class LiveProtocolError(CryodaqError, ValueError):
    """A live message could not be decoded (other version, truncated, or not a cryodaq message)."""


@dataclass
class Message:
    """One decoded (or about to be encoded) live message."""

    topic: str
    header: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        """An array if there is one by that name, else a header field."""
        if key in self.arrays:
            return self.arrays[key]
        return self.header[key]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def encode(msg: Message) -> list[bytes | memoryview]:
    """Frames for ``socket.send_multipart``: topic, JSON header, one buffer per array."""
    if msg.topic not in TOPICS:
        raise LiveProtocolError(f"unknown topic {msg.topic!r}; topics are {TOPICS}")
    clash = [k for k in _RESERVED if k in msg.header]
    if clash:
        raise LiveProtocolError(f"header field(s) {clash} are reserved by the protocol")
    arrays = {name: np.ascontiguousarray(a) for name, a in msg.arrays.items()}
    for name, a in arrays.items():
        if a.dtype.kind in "OUSV":
            raise LiveProtocolError(f"array {name!r}: dtype {a.dtype} cannot go on the wire; put text in the header")
    header = {"v": PROTOCOL_VERSION, **msg.header,
              "arrays": [[name, a.dtype.str, list(a.shape)] for name, a in arrays.items()]}
    frames: list[bytes | memoryview] = [msg.topic.encode("ascii"), json.dumps(header, default=_json_default).encode()]
    frames += [memoryview(a).cast("B") if a.size else b"" for a in arrays.values()]
    return frames


def decode(frames: Sequence[Any]) -> Message:
    """A :class:`Message` from received frames (bytes, memoryviews or ``zmq.Frame``); arrays are read-only views.

    Anything that is not a well-formed message of this protocol version raises :class:`LiveProtocolError`.
    """
    if len(frames) < 2:
        raise LiveProtocolError(f"a live message has at least 2 frames (topic, header), got {len(frames)}")
    raw = [f.buffer if hasattr(f, "buffer") else f for f in frames]
    try:
        topic = bytes(raw[0]).decode("ascii")
        header = json.loads(bytes(raw[1]))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise LiveProtocolError(f"not a cryodaq live message: {exc}") from None
    if topic not in TOPICS:
        raise LiveProtocolError(f"unknown topic {topic[:40]!r}; topics are {', '.join(TOPICS)}")
    if not isinstance(header, dict):
        raise LiveProtocolError(f"topic {topic!r}: header is not a JSON object")
    version = header.pop("v", None)
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise LiveProtocolError(
            f"topic {topic!r}: protocol version {str(version)[:20]!r}; this cryodaq speaks version {PROTOCOL_VERSION}"
        )
    specs = header.pop("arrays", [])
    if not isinstance(specs, list):
        raise LiveProtocolError(f"topic {topic!r}: header 'arrays' is not a list of [name, dtype, shape]")
    if len(specs) != len(raw) - 2:
        raise LiveProtocolError(f"topic {topic!r}: header lists {len(specs)} arrays but {len(raw) - 2} buffers came")
    arrays: dict[str, np.ndarray] = {}
    for spec, buf in zip(specs, raw[2:]):
        name, dt, shape = _array_spec(topic, spec)
        if name in arrays:
            raise LiveProtocolError(f"topic {topic!r}: array {name!r} is listed twice")
        n = int(np.prod(shape, dtype=object))
        if len(buf) != n * dt.itemsize:
            raise LiveProtocolError(
                f"topic {topic!r}: array {name!r} {dt.str}{tuple(shape)} needs {n * dt.itemsize} bytes, got {len(buf)}"
            )
        arrays[name] = np.frombuffer(buf, dtype=dt, count=n).reshape(shape)
    return Message(topic, header, arrays)


_MAX_DIMS = 8


def _array_spec(topic: str, spec: Any) -> tuple[str, np.dtype, tuple[int, ...]]:
    """``[name, dtype, shape]`` of one array, checked: a plain numeric dtype, a shape of non-negative ints."""
    if not isinstance(spec, list) or len(spec) != 3:
        raise LiveProtocolError(f"topic {topic!r}: array spec {str(spec)[:60]} is not [name, dtype, shape]")
    name, dtype, shape = spec
    if not isinstance(name, str) or not isinstance(dtype, str):
        raise LiveProtocolError(f"topic {topic!r}: array spec {str(spec)[:60]}: name and dtype must be strings")
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError, SyntaxError) as exc:
        raise LiveProtocolError(f"topic {topic!r}: array {name!r}: dtype {dtype[:20]!r} is not a numpy dtype ({exc})") \
            from None
    if dt.kind not in "biufc" or dt.fields is not None or dt.subdtype is not None:
        raise LiveProtocolError(f"topic {topic!r}: array {name!r}: dtype {dtype[:20]!r} cannot come over the wire; "
                                "expected a plain numeric dtype")
    if (not isinstance(shape, list) or len(shape) > _MAX_DIMS
            or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in shape)):
        raise LiveProtocolError(f"topic {topic!r}: array {name!r}: shape {str(shape)[:40]} is not a list of "
                                f"non-negative integers (at most {_MAX_DIMS})")
    return name, dt, tuple(shape)


# --------------------------------------------------------------------- builders
def info_message(
    *, station: str, stream: str, units: str, output_rate_hz: float, adc_rate_hz: float,
    channel_coords: Mapping[str, np.ndarray], run_path: str | None, stream_channels: Sequence[int],
    stream_rate_hz: float, source: str,
) -> Message:
    """What the stream is. Numeric channel coordinates travel as arrays ``coord.<name>``, text ones in the header."""
    arrays: dict[str, np.ndarray] = {}
    text: dict[str, list[str]] = {}
    for name, values in channel_coords.items():
        a = np.asarray(values)
        if a.dtype.kind in "biuf":
            arrays[f"coord.{name}"] = a
        else:
            text[name] = [str(x) for x in a.tolist()]
    header = {
        "station": station, "stream": stream, "units": units, "output_rate_hz": float(output_rate_hz),
        "adc_rate_hz": float(adc_rate_hz), "run_path": run_path, "n_channels": len(channel_coords["channel"]),
        "stream_rate_hz": float(stream_rate_hz), "source": source, "text_coords": text,
    }
    arrays["stream_channels"] = np.asarray(stream_channels, dtype=np.int32)
    return Message(INFO, header, arrays)


def channel_coords_of(msg: Message) -> dict[str, np.ndarray]:
    """The channel coordinates an ``info`` message carries (numeric and text)."""
    out = {k.split(".", 1)[1]: v for k, v in msg.arrays.items() if k.startswith("coord.")}
    out.update({k: np.asarray(v) for k, v in msg.header.get("text_coords", {}).items()})
    return out


STATUS_FIELDS = (
    "state", "elapsed_s", "samples", "packets", "sample_rate_hz", "events", "vetoed", "lost_packets", "dropped_blocks",
    "gaps", "samples_lost", "queue_fill", "housekeeping_errors", "publisher_drops", "disk_free_bytes",
    "disk_total_bytes",
)


def status_message(events_per_channel: np.ndarray, **fields: Any) -> Message:
    """Run counters (any of :data:`STATUS_FIELDS`; others are refused so both sides stay in step)."""
    unknown = sorted(set(fields) - set(STATUS_FIELDS))
    if unknown:
        raise LiveProtocolError(f"status: unknown field(s) {unknown}; known are {STATUS_FIELDS}")
    # a copy: the sender goes on counting in its own array
    return Message(STATUS, dict(fields), {"events_per_channel": np.array(events_per_channel, dtype=np.int64)})


def psd_message(t_ns: int, freq: np.ndarray, psd: np.ndarray, channels: np.ndarray, units: str) -> Message:
    """PSD rows ``psd`` (len(channels), len(freq)) of one snapshot taken at ``t_ns``."""
    return Message(PSD, {"t_ns": int(t_ns), "units": units},
                   {"freq": np.asarray(freq, np.float32), "psd": np.asarray(psd, np.float32),
                    "channels": np.asarray(channels, np.int32)})


def stream_message(t_ns: np.ndarray, data: np.ndarray, channels: np.ndarray, rate_hz: float) -> Message:
    """Decimated timestream ``data`` (n, len(channels)) at ``rate_hz``, sample times ``t_ns``."""
    return Message(STREAM, {"rate_hz": float(rate_hz)},
                   {"t_ns": np.asarray(t_ns, np.int64), "data": np.asarray(data, np.float32),
                    "channels": np.asarray(channels, np.int32)})


def iq_message(points: np.ndarray, operating_point: np.ndarray, channels: np.ndarray, t_ns: int) -> Message:
    """IQ ``points`` (n, len(channels)) complex64 and the latest operating point per channel."""
    return Message(IQ, {"t_ns": int(t_ns)},
                   {"points": np.asarray(points, np.complex64), "op": np.asarray(operating_point, np.complex64),
                    "channels": np.asarray(channels, np.int32)})


EVENT_FIELDS = ("t", "channel", "amplitude", "baseline", "energy", "of_amplitude", "flags")


def events_message(columns: Mapping[str, np.ndarray], records: np.ndarray | None = None,
                   record_index: np.ndarray | None = None, *, presamples: int = 0, record_rate_hz: float = 0.0,
                   dropped: int = 0) -> Message:
    """Event columns (``t`` ns, ``channel``, ``amplitude`` ... ) and records of the events at ``record_index``.

    Records are sampled at ``record_rate_hz`` and start ``presamples`` before the trigger;
    ``dropped`` counts events the sender left out to keep the message bounded.
    """
    arrays = {name: np.asarray(columns[name]) for name in EVENT_FIELDS if name in columns}
    for name in ("t", "channel", "amplitude"):
        if name not in arrays:
            raise LiveProtocolError(f"events: column {name!r} is required")
    if records is not None:
        arrays["records"] = np.asarray(records, np.float32)
        arrays["record_index"] = np.asarray(record_index, np.int32)
    header = {"n": len(arrays["t"]), "dropped": int(dropped), "presamples": int(presamples),
              "record_rate_hz": float(record_rate_hz)}
    return Message(EVENTS, header, arrays)


def housekeeping_message(name: str, t_ns: np.ndarray, value: np.ndarray, unit: str) -> Message:
    """Readings of one housekeeping quantity (usually one; a replay sends history in one go)."""
    return Message(HOUSEKEEPING, {"name": name, "unit": unit},
                   {"t_ns": np.atleast_1d(np.asarray(t_ns, np.int64)), "value": np.atleast_1d(np.asarray(value, float))})


def gap_message(first_sample: int, n_samples: int, t_ns: int, cause: str, detail: str = "") -> Message:
    return Message(GAP, {"first_sample": int(first_sample), "n_samples": int(n_samples), "t_ns": int(t_ns),
                         "cause": cause, "detail": detail})


def end_message(status: str, reason: str, interrupted: bool) -> Message:
    return Message(END, {"status": status, "reason": reason, "interrupted": bool(interrupted)})
