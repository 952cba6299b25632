"""The readout-board UDP packet format (documented in docs/readout-stream.md).

One UDP datagram = a 40-byte little-endian header + int16 samples. Both the
simulated boards and the receiver use this module, so there is one definition.

Header fields (in order, ``<4sHHQQqIHH``):

========== ====== ============================================================
magic      4s     ``b"CDQ1"``
version    u16    1
sample_fmt u16    0 = real int16, 1 = complex int16 (I, Q interleaved)
sequence   u64    packet counter, +1 per packet from stream start
first      u64    index (per stream) of the first sample in this packet
t_ns       i64    UTC time of the first sample, ns since the Unix epoch
n_samples  u32    samples per stream in this packet
n_streams  u16    1 for a raw ADC; N for N demultiplexed channels
reserved   u16    0
========== ====== ============================================================

Payload: ``n_samples * n_streams * (2 if complex else 1)`` int16 values,
sample-major (all streams of sample 0, then sample 1 ...).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

MAGIC = b"CDQ1"
VERSION = 1
HEADER = struct.Struct("<4sHHQQqIHH")
HEADER_SIZE = HEADER.size  # 40
#: the same header as a numpy record, to decode a batch of datagrams at once (:func:`decode_headers`)
HEADER_DTYPE = np.dtype([("magic", "S4"), ("version", "<u2"), ("sample_fmt", "<u2"), ("sequence", "<u8"),
                         ("first_sample", "<u8"), ("t_ns", "<i8"), ("n_samples", "<u4"), ("n_streams", "<u2"),
                         ("reserved", "<u2")])
FMT_REAL_INT16 = 0
FMT_COMPLEX_INT16 = 1
MAX_DATAGRAM = 65507


class PacketError(ValueError):
    """A datagram that is not a cryodaq readout packet."""


@dataclass(frozen=True)
class PacketHeader:
    sequence: int
    first_sample: int
    t_ns: int
    n_samples: int
    n_streams: int = 1
    sample_fmt: int = FMT_REAL_INT16

    @property
    def values_per_sample(self) -> int:
        return self.n_streams * (2 if self.sample_fmt == FMT_COMPLEX_INT16 else 1)

    @property
    def payload_bytes(self) -> int:
        return 2 * self.n_samples * self.values_per_sample

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of the payload's int16 samples: (n_samples,), then n_streams when > 1, then 2 (I, Q) if complex."""
        shape: tuple[int, ...] = (self.n_samples,)
        if self.n_streams > 1:
            shape += (self.n_streams,)
        if self.sample_fmt == FMT_COMPLEX_INT16:
            shape += (2,)
        return shape


def encode(header: PacketHeader, samples: np.ndarray) -> bytes:
    """Pack a header and its int16 samples into one datagram."""
    data = np.ascontiguousarray(samples, dtype="<i2").tobytes()
    if len(data) != header.payload_bytes:
        raise PacketError(f"payload is {len(data)} bytes, header says {header.payload_bytes}")
    head = HEADER.pack(
        MAGIC, VERSION, header.sample_fmt, header.sequence, header.first_sample,
        header.t_ns, header.n_samples, header.n_streams, 0,
    )
    return head + data


def decode_header(buf: bytes | memoryview) -> PacketHeader:
    """Parse and check the header of a datagram (raises PacketError when it is not one)."""
    if len(buf) < HEADER_SIZE:
        raise PacketError(f"datagram of {len(buf)} bytes is shorter than the {HEADER_SIZE}-byte header")
    magic, version, fmt, seq, first, t_ns, n, n_streams, _ = HEADER.unpack_from(buf)
    if magic != MAGIC:
        raise PacketError(f"bad magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise PacketError(f"packet version {version}, this receiver reads version {VERSION}")
    if fmt not in (FMT_REAL_INT16, FMT_COMPLEX_INT16):
        raise PacketError(f"unknown sample format {fmt}")
    if n_streams < 1 or n < 1:
        raise PacketError(f"header says {n} samples of {n_streams} streams; a packet carries at least one of each")
    header = PacketHeader(seq, first, t_ns, n, n_streams, fmt)
    if len(buf) - HEADER_SIZE != header.payload_bytes:
        raise PacketError(
            f"payload is {len(buf) - HEADER_SIZE} bytes, header says {header.payload_bytes}"
        )
    return header


def decode_headers(rows: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The headers of a batch of datagrams: datagram ``i`` is ``rows[i, :sizes[i]]`` (uint8 rows of at least
    :data:`HEADER_SIZE` bytes). Returns their :data:`HEADER_DTYPE` records and a mask of those that pass
    :func:`decode_header`'s checks (which says why one fails)."""
    if rows.ndim != 2 or rows.shape[1] < HEADER_SIZE:
        raise ValueError(f"datagram rows must be (n, >= {HEADER_SIZE}) bytes, got shape {rows.shape}")
    h = np.ascontiguousarray(rows[:, :HEADER_SIZE]).view(HEADER_DTYPE)[:, 0]
    fmt = h["sample_fmt"]
    values = h["n_streams"].astype(np.int64) * np.where(fmt == FMT_COMPLEX_INT16, 2, 1)
    ok = ((np.asarray(sizes) >= HEADER_SIZE) & (h["magic"] == MAGIC) & (h["version"] == VERSION)
          & ((fmt == FMT_REAL_INT16) | (fmt == FMT_COMPLEX_INT16)) & (h["n_streams"] >= 1) & (h["n_samples"] >= 1)
          & (np.asarray(sizes) - HEADER_SIZE == 2 * h["n_samples"].astype(np.int64) * values))
    return h, ok


def decode(buf: bytes | memoryview) -> tuple[PacketHeader, np.ndarray]:
    """Header and samples, shaped (n_samples, n_streams) or (n_samples,) for one stream.

    Complex payloads come back as int16 with a trailing axis of 2 (I, Q).
    """
    header = decode_header(buf)
    samples = np.frombuffer(buf, dtype="<i2", offset=HEADER_SIZE)
    return header, samples.reshape(header.sample_shape)
