"""Fuzz: the UDP readout packet and the live protocol decode any bytes into a correct result or their own error."""

from __future__ import annotations

import json
import struct
from types import SimpleNamespace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryodaq.wire import live, packet

FUZZ = settings(max_examples=200, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

U16, U32, U64 = (st.integers(0, 2**16 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1))


def _batch_decode(buf: bytes) -> tuple[np.ndarray, bool]:
    """``buf`` as one datagram of a receiver's batch (a row of a uint8 buffer longer than it)."""
    rows = np.zeros((2, max(len(buf), packet.HEADER_SIZE) + 16), np.uint8)
    rows[1, : len(buf)] = np.frombuffer(buf, np.uint8)
    h, ok = packet.decode_headers(rows, np.array([0, len(buf)]))
    assert not ok[0]  # an empty datagram is never a packet
    return h[1], bool(ok[1])


def _check_packet(buf: bytes, fuzz: SimpleNamespace) -> None:
    batch_header, batch_ok = _batch_decode(buf)
    try:
        header, samples = packet.decode(buf)
    except Exception as exc:  # noqa: BLE001 - the assertion is on its type
        fuzz.check_clean_error(exc, kinds=(packet.PacketError,))
        assert not batch_ok, "the batch decode accepted a datagram decode() refuses"
        return
    assert batch_ok, "the batch decode refused a datagram decode() accepts"
    assert (int(batch_header["sequence"]), int(batch_header["first_sample"]), int(batch_header["t_ns"]),
            int(batch_header["n_samples"]), int(batch_header["n_streams"]), int(batch_header["sample_fmt"])) == (
        header.sequence, header.first_sample, header.t_ns, header.n_samples, header.n_streams, header.sample_fmt)
    # a decoded packet is exactly what its bytes say
    assert buf[:4] == packet.MAGIC and len(buf) == packet.HEADER_SIZE + header.payload_bytes
    assert samples.dtype == np.dtype("<i2") and samples.size * 2 == header.payload_bytes
    assert samples.shape[0] == header.n_samples and header.n_streams >= 1
    np.testing.assert_array_equal(samples.reshape(-1), np.frombuffer(buf, "<i2", offset=packet.HEADER_SIZE))


@FUZZ
@given(st.binary(max_size=200))
def test_any_datagram(fuzz: SimpleNamespace, buf: bytes) -> None:
    _check_packet(buf, fuzz)


@FUZZ
@given(magic=st.sampled_from([packet.MAGIC, b"CDQ2", b"\0\0\0\0"]), version=st.sampled_from([1, 1, 1, 0, 2, 65535]),
       fmt=st.sampled_from([0, 1, 2, 65535]), seq=U64, first=U64, t_ns=st.integers(-(2**63), 2**63 - 1),
       n=st.one_of(st.integers(0, 64), U32), streams=st.one_of(st.integers(0, 8), U16),
       extra=st.integers(-8, 8), seed=st.integers(0, 2**32 - 1))
def test_datagrams_with_fuzzed_header_fields(fuzz: SimpleNamespace, magic: bytes, version: int, fmt: int, seq: int,
                                             first: int, t_ns: int, n: int, streams: int, extra: int,
                                             seed: int) -> None:
    head = packet.HEADER.pack(magic, version, fmt, seq, first, t_ns, n, streams, 0)
    values = min(n * max(streams, 1) * (2 if fmt == 1 else 1), 4096)
    size = max(0, 2 * values + extra)
    payload = np.random.default_rng(seed).integers(-(2**15), 2**15, size // 2 + 1, dtype=np.int16).tobytes()[:size]
    _check_packet(head + payload, fuzz)


def test_a_valid_packet_round_trips() -> None:
    h = packet.PacketHeader(7, 1000, 123, 4, 3, packet.FMT_COMPLEX_INT16)
    data = np.arange(24, dtype=np.int16).reshape(4, 3, 2)
    got, samples = packet.decode(packet.encode(h, data))
    assert got == h and np.array_equal(samples, data)


# ---------------------------------------------------------------- live protocol
def _check_live(frames: list[bytes], fuzz: SimpleNamespace) -> None:
    try:
        msg = live.decode(frames)
    except Exception as exc:  # noqa: BLE001 - the assertion is on its type
        fuzz.check_clean_error(exc, kinds=(live.LiveProtocolError,))
        return
    assert msg.topic in live.TOPICS
    specs = json.loads(frames[1])["arrays"]
    assert [name for name, _, _ in specs] == list(msg.arrays)
    for (name, dtype, shape), buf in zip(specs, frames[2:], strict=True):
        arr = msg.arrays[name]
        assert arr.dtype == np.dtype(dtype) and arr.shape == tuple(shape) and arr.nbytes == len(buf)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                         st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                 st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                           max_leaves=8)
dtypes = st.sampled_from(["<f4", "<i8", "|b1", "<c8", ">f8", "|u1", "<U3", "|O", "|V4", "S2", "float32", "nonsense",
                          "<f4,<i4", "(2,)i4", ""])
shapes = st.one_of(st.lists(st.integers(-2, 6), max_size=3), st.lists(st.integers(0, 2**40), min_size=1, max_size=2),
                   json_values)
specs = st.lists(st.one_of(st.tuples(st.text(max_size=6), dtypes, shapes).map(list), json_values), max_size=4)


@FUZZ
@given(st.lists(st.binary(max_size=40), max_size=5))
def test_any_frames(fuzz: SimpleNamespace, frames: list[bytes]) -> None:
    _check_live(frames, fuzz)


@FUZZ
@given(topic=st.one_of(st.sampled_from(live.TOPICS), st.text(max_size=6)), version=st.sampled_from([1, 1, 2, None, "1"]),
       arrays=specs, extra=st.dictionaries(st.text(max_size=5), json_values, max_size=3),
       buffers=st.lists(st.binary(max_size=64), max_size=5), header_kind=st.sampled_from(["dict", "list", "raw"]))
def test_fuzzed_headers_and_array_specs(fuzz: SimpleNamespace, topic: str, version: object, arrays: list,
                                        extra: dict, buffers: list[bytes], header_kind: str) -> None:
    header: object = {**extra, "v": version, "arrays": arrays}
    if header_kind == "list":
        header = [header]
    raw = json.dumps(header).encode() if header_kind != "raw" else json.dumps(header)[:-3].encode()
    frames = [topic.encode("utf-8", "surrogatepass"), raw, *buffers]
    _check_live(frames, fuzz)


@FUZZ
@given(n=st.integers(0, 20), seed=st.integers(0, 1000), cut=st.integers(-3, 3))
def test_real_messages_cut_or_padded(fuzz: SimpleNamespace, n: int, seed: int, cut: int) -> None:
    rng = np.random.default_rng(seed)
    msg = live.stream_message(np.arange(n, dtype=np.int64), rng.normal(size=(n, 3)), np.arange(3), 100.0)
    frames = [bytes(f) for f in live.encode(msg)]
    whole = live.decode(frames)
    np.testing.assert_array_equal(whole.arrays["data"], msg.arrays["data"])
    frames[3] = frames[3][:len(frames[3]) + cut] if cut < 0 else frames[3] + bytes(cut)
    _check_live(frames, fuzz)


def test_packet_header_struct_is_40_bytes() -> None:
    assert struct.calcsize("<4sHHQQqIHH") == packet.HEADER_SIZE == 40


# ---------------------------------------------------------------- CRS readout packets (rfmux's format)
def _check_crs(buf: bytes, fuzz: SimpleNamespace) -> None:
    from cryodaq.wire import crs

    try:
        got = crs.decode(buf)
    except Exception as exc:  # noqa: BLE001 - the assertion is on its type
        fuzz.check_clean_error(exc, kinds=(crs.CRSPacketError,))
        return
    words = np.frombuffer(buf, "<u4")
    assert len(got) == 1 and words[0] == crs.MAGIC and len(buf) in (crs.LONG_SIZE, crs.SHORT_SIZE)
    iq32 = words[4:4 + 2 * got.n_channels].view("<i4")
    np.testing.assert_array_equal(got.iq[0].real, iq32[0::2] / crs.SAMPLE_GAIN)  # the samples are what the bytes say
    assert got.t_ns.dtype == np.int64 and got.seq[0] == words[3]


@FUZZ
@given(size=st.sampled_from([1072, 8240, 1071, 1076, 8236, 0, 16]), magic=st.sampled_from([0x5344494B, 0, 0x4B494453]),
       version=st.sampled_from([5, 6, 0, 65535]), header=st.lists(U32, min_size=2, max_size=2),
       timestamp=st.lists(U32, min_size=8, max_size=8), seed=st.integers(0, 2**32 - 1))
def test_crs_datagrams_with_fuzzed_fields(fuzz: SimpleNamespace, size: int, magic: int, version: int,
                                          header: list[int], timestamp: list[int], seed: int) -> None:
    """Any datagram of any size, magic, version, header words and IRIG-B timestamp words (year, day, hour,
    minute, second, sub-second out of range included): decoded as its bytes say, or one CRSPacketError."""
    words = np.random.default_rng(seed).integers(0, 2**32, max(size // 4, 0), dtype=np.uint64).astype("<u4")
    if words.size >= 4:
        words[0], words[1] = magic, (words[1] & 0xFFFF0000) | version
        words[2:4] = header
    if words.size >= 12:
        words[-8:] = timestamp
    _check_crs(words.tobytes()[:size], fuzz)


# ---------------------------------------------------------------- DASTARD records and status messages
@FUZZ
@given(frames=st.lists(st.binary(max_size=80), min_size=0, max_size=3),
       header=st.tuples(U16, st.sampled_from([0, 0, 1]), st.integers(0, 9), U32, st.integers(0, 40),
                        st.floats(allow_nan=True, width=32), st.floats(allow_nan=True, width=32),
                        st.integers(-(2**63), 2**63 - 1), U64),
       extra=st.integers(-4, 4), use_header=st.booleans())
def test_dastard_record_messages(fuzz: SimpleNamespace, frames: list[bytes], header: tuple, extra: int,
                                 use_header: bool) -> None:
    """Any record message (frame count, header bytes and fields, payload size): its header and samples as
    sent, or one DastardFormatError."""
    from cryodaq.wire import dastard

    if use_header:
        head = dastard.RECORD_HEADER.pack(*header)
        itemsize = dastard.DTYPE_CODES[header[2]].itemsize if header[2] in dastard.DTYPE_CODES else 2
        frames = [head, bytes(max(0, header[4] * itemsize + extra))]
    try:
        got, samples = dastard.decode_record(frames)
    except Exception as exc:  # noqa: BLE001 - the assertion is on its type
        fuzz.check_clean_error(exc, kinds=(dastard.DastardFormatError,))
        return
    assert len(frames) == 2 and len(frames[0]) == dastard.RECORD_HEADER_SIZE
    assert samples.nbytes == len(frames[1]) and samples.size == got.n_samples and got.presamples <= got.n_samples
    try:
        topic, payload = dastard.decode_status(frames)
    except Exception as exc:  # noqa: BLE001 - the assertion is on its type
        fuzz.check_clean_error(exc, kinds=(dastard.DastardFormatError,))


@FUZZ
@given(topic=st.sampled_from(["STATUS", "TRIGGERRATE", "CHANNELNAMES", "ALIVE", "NUMBERWRITTEN", "STATELABEL",
                              "TRIGGER", "WRITING", "NEWDASTARD", "SOMETHINGELSE"]),
       payload=json_values, names=st.lists(st.text(max_size=6), max_size=4))
def test_dastard_status_payloads_become_housekeeping_or_one_error(fuzz: SimpleNamespace, topic: str, payload: object,
                                                                   names: list[str]) -> None:
    """A status message of any shape (DASTARD versions differ) gives finite numbers as housekeeping, or one
    DastardFormatError the pipeline logs: never another exception that would end a run."""
    from cryodaq.wire import dastard

    try:
        values = dastard.status_values(topic, payload, 1_700_000_000_000_000_000, names)
    except Exception as exc:  # noqa: BLE001 - the assertion is on its type
        fuzz.check_clean_error(exc, kinds=(dastard.DastardFormatError,))
        return
    for name, t_ns, value, unit in values:
        assert isinstance(name, str) and name and isinstance(unit, str) and t_ns == 1_700_000_000_000_000_000
        assert isinstance(value, float)
