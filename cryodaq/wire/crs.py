"""The CRS readout packet (t0.technology CRS boards, firmware "rfmux"), as rfmux 1.7.0 defines it.

A CRS multicasts one UDP datagram per module per decimated sample (group 239.192.0.2, port
9876; the PFB stream on 9877 is not read here). Every field is little-endian and packed
(``rfmux/streamer/include/packet.h``)::

    header (16 B)  magic u32 0x5344494b, version u16 (5 long | 6 short), serial u16,
                   num_modules u8, flags u8, fir_stage u8 (bits 2:0 decimation stage, bit 3 short),
                   module u8 (0-based on the wire; the board's API counts from 1), seq u32
    samples        int32 I, int32 Q per channel (1024 long, 128 short): ADC counts x 256
    timestamp (32 B) IRIG-B: y (two-digit year), d (day of year, from 1), h, m, s, ss (ticks of
                   1/156.25 MHz), c (bits 17:0 count, 30:29 source, 31 "recent": disciplined), sbs

``sequence`` counts packets per module and restarts at 0 when the decimation stage changes or
the stream restarts. Samples are divided by 256.0 as floats: the packetizer's gain is 256, but a
board keeps the fractional counts in the low byte (rfmux's parser does the same). The sample
rate is ``625 MHz / 256 / 64 / 2**stage``.

numpy and the standard library only, so a simulator or a relay can speak it without the rest
of cryodaq. rfmux's own parser agrees with this one field by field (``tests/wire/test_crs.py``).
"""

from __future__ import annotations

import datetime as _dt
import functools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = [
    "ADC_RATE_HZ", "GROUP", "HEADER", "LONG_CHANNELS", "LONG_SIZE", "LONG_VERSION", "MAGIC", "PFB_PORT", "PORT",
    "SAMPLE_GAIN", "SHORT_CHANNELS", "SHORT_SIZE", "SHORT_VERSION", "SOURCES", "SS_PER_SECOND", "TIMESTAMP",
    "CRSPacketError", "Packets", "channels_of_size", "decode", "decode_many", "encode", "irig_to_utc_ns",
    "packet_dtype", "sample_rate_hz", "time_source",
]

MAGIC = 0x5344494B
GROUP = "239.192.0.2"
PORT = 9876
PFB_PORT = 9877
LONG_VERSION, SHORT_VERSION = 5, 6
LONG_CHANNELS, SHORT_CHANNELS = 1024, 128
SS_PER_SECOND = 156_250_000  # timestamp sub-second ticks (6.4 ns)
#: IRIG-B timestamp source, bits 30:29 of ``c`` (packet.h ``enum class Source``)
SOURCES = {0: "BACKPLANE", 1: "TEST", 2: "SMA", 3: "GND"}
ADC_RATE_HZ = 625e6
SAMPLE_GAIN = 256.0  # the packetizer's gain: wire int32 = ADC counts x 256

HEADER = np.dtype([("magic", "<u4"), ("version", "<u2"), ("serial", "<u2"), ("num_modules", "u1"),
                   ("flags", "u1"), ("fir_stage", "u1"), ("module", "u1"), ("seq", "<u4")])
TIMESTAMP = np.dtype([(k, "<u4") for k in ("y", "d", "h", "m", "s", "ss", "c", "sbs")])


@functools.lru_cache(maxsize=4)
def packet_dtype(n_channels: int) -> np.dtype:
    """One whole datagram as a numpy record: header, ``iq`` (n_channels, 2) int32, timestamp."""
    return np.dtype([("hdr", HEADER), ("iq", "<i4", (n_channels, 2)), ("ts", TIMESTAMP)])


LONG_SIZE = packet_dtype(LONG_CHANNELS).itemsize  # 8240
SHORT_SIZE = packet_dtype(SHORT_CHANNELS).itemsize  # 1072
_CHANNELS_BY_SIZE = {LONG_SIZE: LONG_CHANNELS, SHORT_SIZE: SHORT_CHANNELS}
_VERSION_BY_CHANNELS = {LONG_CHANNELS: LONG_VERSION, SHORT_CHANNELS: SHORT_VERSION}


class CRSPacketError(ValueError):
    """A datagram that is not a CRS readout packet (size, magic or version)."""


def sample_rate_hz(stage: int) -> float:
    """Samples per second of each channel at decimation ``stage`` (0-6): 38147 Hz ... 596 Hz."""
    if not 0 <= int(stage) <= 6:
        raise ValueError(f"CRS decimation stage must be 0-6, got {stage!r}")
    return ADC_RATE_HZ / 256 / 64 / 2 ** int(stage)


def time_source(c: int) -> tuple[str, bool]:
    """(source name, disciplined) from a timestamp's ``c`` word: bits 30:29 and bit 31 ("recent")."""
    return SOURCES[(int(c) >> 29) & 0x3], bool((int(c) >> 31) & 1)


_EPOCH_DAYS = np.array([(_dt.date(2000 + y, 1, 1) - _dt.date(1970, 1, 1)).days for y in range(100)], np.int64)


def irig_to_utc_ns(ts: np.ndarray) -> np.ndarray:
    """IRIG-B timestamp records (:data:`TIMESTAMP` fields) -> int64 ns since the Unix epoch.

    ``y`` is a two-digit year (20yy), ``d`` the day of the year from 1, ``ss`` ticks of 6.4 ns.
    The result is UTC when the stamp is disciplined ("recent"); an undisciplined stamp still
    counts samples, but its calendar time means nothing (rfmux: "not a small error but a
    meaningless number").
    """
    ts = np.asarray(ts)
    return _utc_ns(*(ts[k] for k in ("y", "d", "h", "m", "s", "ss")))


def _utc_ns(y: np.ndarray, d: np.ndarray, h: np.ndarray, m: np.ndarray, s: np.ndarray, ss: np.ndarray) -> np.ndarray:
    i8 = np.int64
    days = _EPOCH_DAYS[np.asarray(y, i8) % 100] + np.asarray(d, i8) - 1
    seconds = days * 86400 + np.asarray(h, i8) * 3600 + np.asarray(m, i8) * 60 + np.asarray(s, i8)
    return seconds * 1_000_000_000 + np.asarray(ss, i8) * 32 // 5  # 1 tick = 32/5 ns


@dataclass(frozen=True)
class Packets:
    """Datagrams of one size decoded at once (``n`` packets).

    ``iq``: complex128 ``(n, n_channels)`` in ADC counts (wire / 256; only the packet channels
    asked for, when the decoder was given ``channels``); ``stage``: the decimation
    stage; ``short``: 128-channel packets; ``module``: the board's module number (from 1);
    ``t_ns``: UTC ns of each sample (see :func:`irig_to_utc_ns`); ``c``: the raw ``c`` words.
    """

    version: np.ndarray
    serial: np.ndarray
    module: np.ndarray
    seq: np.ndarray
    stage: np.ndarray
    short: np.ndarray
    t_ns: np.ndarray
    c: np.ndarray
    iq: np.ndarray
    words: np.ndarray  # the datagrams as (n, size / 4) little-endian 32-bit words

    def __len__(self) -> int:
        return int(self.seq.size)

    @property
    def raw(self) -> np.ndarray:
        """The datagrams as structured records (:func:`packet_dtype`: ``hdr``, ``iq``, ``ts``)."""
        n_channels = (self.words.shape[1] - 12) // 2
        return self.words.view(packet_dtype(n_channels)).reshape(-1)

    @property
    def n_channels(self) -> int:
        return int(self.iq.shape[1])

    def source(self, i: int = 0) -> tuple[str, bool]:
        """(time source name, disciplined) of packet ``i``."""
        return time_source(int(self.c[i]))


def _words(buf: bytes | bytearray | memoryview | np.ndarray, n_channels: int) -> np.ndarray:
    """The datagrams as rows of little-endian 32-bit words, magic and version checked.

    Every field is a column (or bits of one): a few numpy operations per batch, where a structured
    array with a 1024-channel sub-array costs tens of microseconds per field access."""
    size = packet_dtype(n_channels).itemsize
    words = np.frombuffer(buf, dtype="<u4").reshape(-1, size // 4)
    bad = words[:, 0] != MAGIC
    if bad.any():
        raise CRSPacketError(f"bad magic 0x{int(words[bad, 0][0]):08x} in {int(bad.sum())} of {len(words)} "
                             f"datagram(s), expected 0x{MAGIC:08x}")
    version = words[:, 1] & 0xFFFF
    wrong = version != _VERSION_BY_CHANNELS[n_channels]
    if wrong.any():
        raise CRSPacketError(f"version {int(version[wrong][0])} in a {size}-byte datagram, "
                             f"expected {_VERSION_BY_CHANNELS[n_channels]}")
    return words


def _lift(words: np.ndarray, n_channels: int, channels: np.ndarray | None = None) -> Packets:
    ts = words[:, 4 + 2 * n_channels:]
    iq32 = words[:, 4:4 + 2 * n_channels].view("<i4")
    if channels is not None:
        cols = np.asarray(channels, dtype=np.intp)
        i32, q32 = iq32[:, 2 * cols], iq32[:, 2 * cols + 1]
    else:
        i32, q32 = iq32[:, 0::2], iq32[:, 1::2]
    iq = i32 / SAMPLE_GAIN + 1j * (q32 / SAMPLE_GAIN)
    w1, w2 = words[:, 1], words[:, 2]
    fir = (w2 >> 16) & 0xFF
    return Packets(version=(w1 & 0xFFFF).astype(np.uint16), serial=(w1 >> 16).astype(np.uint16),
                   module=((w2 >> 24) + 1).astype(np.int64), seq=words[:, 3].astype(np.int64),
                   stage=(fir & 0x7).astype(np.int64), short=(fir & 0x8) != 0,
                   t_ns=_utc_ns(ts[:, 0], ts[:, 1], ts[:, 2], ts[:, 3], ts[:, 4], ts[:, 5]),
                   c=ts[:, 6].copy(), iq=iq, words=words)


def channels_of_size(size: int) -> int:
    """Channels per packet of a datagram of ``size`` bytes; :class:`CRSPacketError` for any other size."""
    try:
        return _CHANNELS_BY_SIZE[size]
    except KeyError:
        raise CRSPacketError(f"a {size}-byte datagram is no CRS readout packet "
                             f"(long: {LONG_SIZE} bytes, short: {SHORT_SIZE})") from None


def decode(datagram: bytes | bytearray | memoryview, channels: np.ndarray | None = None) -> Packets:
    """One datagram (a :class:`Packets` of length 1); :class:`CRSPacketError` if it is not a readout packet.

    ``channels``: 0-based packet channels to convert to IQ (default: all of them)."""
    n_channels = channels_of_size(len(datagram))
    return _lift(_words(datagram, n_channels), n_channels, channels)


def decode_many(datagrams: np.ndarray | Sequence[bytes], channels: np.ndarray | None = None) -> Packets:
    """Many datagrams of one size at once: a ``(n, size)`` uint8 array (e.g. a receive buffer) or
    a sequence of equal-length ``bytes``. ``channels``: as for :func:`decode`."""
    if isinstance(datagrams, np.ndarray):
        if datagrams.ndim != 2 or datagrams.dtype != np.uint8:
            raise CRSPacketError(f"decode_many: expected an (n, size) uint8 array, got {datagrams.dtype} "
                                 f"{datagrams.shape}")
        size = datagrams.shape[1]
        buf: bytes | np.ndarray = np.ascontiguousarray(datagrams)
    else:
        sizes = {len(d) for d in datagrams}
        if len(sizes) != 1:
            raise CRSPacketError(f"decode_many: datagrams of {len(sizes)} different sizes {sorted(sizes)}; "
                                 "decode one size at a time")
        size = sizes.pop()
        buf = b"".join(datagrams)
    n_channels = channels_of_size(size)
    return _lift(_words(buf, n_channels), n_channels, channels)


def encode(*, module: int, seq: int, stage: int, iq: np.ndarray, t_ns: int, short: bool | None = None,
           serial: int = 0, source: str = "TEST", disciplined: bool = True) -> bytes:
    """One readout datagram (for simulators, relays and tests): ``iq`` complex ADC counts, one
    value per channel (1024 or 128; fewer are zero-padded to the packet size given by ``short``)."""
    iq = np.asarray(iq, dtype=np.complex128).ravel()
    short = iq.size <= SHORT_CHANNELS if short is None else bool(short)
    n_channels = SHORT_CHANNELS if short else LONG_CHANNELS
    if iq.size > n_channels:
        raise CRSPacketError(f"{iq.size} channels do not fit a {'short' if short else 'long'} packet ({n_channels})")
    rec = np.zeros((), dtype=packet_dtype(n_channels))
    hdr = rec["hdr"]
    hdr["magic"], hdr["version"], hdr["serial"] = MAGIC, _VERSION_BY_CHANNELS[n_channels], serial
    hdr["num_modules"], hdr["flags"] = 1, 0
    hdr["fir_stage"] = (int(stage) & 0x7) | (0x8 if short else 0)
    hdr["module"], hdr["seq"] = int(module) - 1, int(seq) & 0xFFFFFFFF
    full = np.zeros(n_channels, np.complex128)
    full[: iq.size] = iq
    rec["iq"][:, 0] = np.trunc(full.real * SAMPLE_GAIN).astype(np.int32)
    rec["iq"][:, 1] = np.trunc(full.imag * SAMPLE_GAIN).astype(np.int32)
    when = _dt.datetime(1970, 1, 1) + _dt.timedelta(microseconds=int(t_ns) // 1000)
    ns_in_second = int(t_ns) % 1_000_000_000
    code = {v: k for k, v in SOURCES.items()}[source]
    ts = rec["ts"]
    ts["y"], ts["d"] = when.year % 100, when.timetuple().tm_yday
    ts["h"], ts["m"], ts["s"] = when.hour, when.minute, when.second
    # ticks of 6.4 ns, rounded up: a board's own stamp encodes back to the same ticks
    ts["ss"] = -(-ns_in_second * 5 // 32)
    ts["c"] = (code << 29) | (int(disciplined) << 31)
    ts["sbs"] = when.hour * 3600 + when.minute * 60 + when.second
    return rec.tobytes()
