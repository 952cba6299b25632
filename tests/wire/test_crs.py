"""The CRS readout packet: real datagrams from rfmux 1.7.0's mock, decoded here and by rfmux's own parser.

``tests/data/rfmux_packets.bin`` holds 11 datagrams a colleague captured from the mock (each a u32
little-endian length, then the bytes; /work/notes/rfmux.md): 8 long (v5) packets of wire modules 0
and 1 at stage 6, and 3 short (v6) packets at stage 3. The cross-check runs rfmux's C++ parser
(``rfmux.streamer.ReadoutPacket``) in rfmux's own environment on the same bytes, and on packets
cryodaq encodes.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cryodaq.wire import crs

DATA = Path(__file__).resolve().parents[1] / "data" / "rfmux_packets.bin"


def saved_packets() -> list[bytes]:
    data, out, off = DATA.read_bytes(), [], 0
    while off < len(data):
        (n,) = struct.unpack_from("<I", data, off)
        out.append(data[off + 4:off + 4 + n])
        off += 4 + n
    return out


PACKETS = saved_packets()


def test_saved_datagrams_decode_to_what_the_mock_sent():
    assert [len(p) for p in PACKETS] == [crs.LONG_SIZE] * 8 + [crs.SHORT_SIZE] * 3 == [8240] * 8 + [1072] * 3
    long = crs.decode_many(PACKETS[:8])
    assert long.module.tolist() == [1] * 6 + [2] * 2  # wire modules 0 and 1: the board's modules 1 and 2
    assert long.seq.tolist() == [2010, 2011, 2012, 2013, 2014, 2015, 2010, 2011]
    assert set(long.stage) == {6} and not long.short.any() and long.n_channels == 1024
    short = crs.decode_many(PACKETS[8:])
    assert short.seq.tolist() == [925, 926, 927] and set(short.stage) == {3} and short.short.all()
    assert short.n_channels == 128
    assert long.source(0) == ("TEST", True) and int(long.c[0]) == 0xA0000000
    # timestamps: UTC of the first (the mock's clock), steps of 1/fs at stage 6 (1 us jitter: datetime)
    first = dt.datetime(2026, 12, 7, 14, 40, 22, tzinfo=dt.UTC)
    assert long.t_ns[0] == int(first.timestamp()) * 10**9 + 194_356_998
    steps = np.diff(long.t_ns[:6])
    assert np.all(np.abs(steps - 1e9 / crs.sample_rate_hz(6)) < 1100)
    assert long.t_ns[6] == long.t_ns[0]  # every module of a frame carries the frame's stamp
    # samples are ADC counts x 256 with the fractional counts kept: divided as floats
    raw = long.raw["iq"][0, :, 0]
    assert np.any(raw % 256 != 0)
    np.testing.assert_array_equal(long.iq[0].real, raw / 256.0)


def test_decode_many_equals_one_at_a_time_and_picks_channels():
    many = crs.decode_many(np.frombuffer(b"".join(PACKETS[:8]), np.uint8).reshape(8, -1))
    for i, p in enumerate(PACKETS[:8]):
        one = crs.decode(p)
        np.testing.assert_array_equal(one.iq[0], many.iq[i])
        assert one.t_ns[0] == many.t_ns[i] and one.seq[0] == many.seq[i]
    picked = crs.decode_many(PACKETS[:8], channels=np.array([3, 0]))
    np.testing.assert_array_equal(picked.iq, many.iq[:, [3, 0]])


def test_encode_reproduces_the_boards_bytes():
    for p in PACKETS:
        d = crs.decode(p)
        again = crs.encode(module=int(d.module[0]), seq=int(d.seq[0]), stage=int(d.stage[0]), iq=d.iq[0],
                           t_ns=int(d.t_ns[0]), short=bool(d.short[0]))
        assert again == p


def test_bad_datagrams_are_refused_with_what_was_expected():
    with pytest.raises(crs.CRSPacketError, match="1000-byte datagram is no CRS readout packet"):
        crs.decode(b"\x00" * 1000)
    bad = bytearray(PACKETS[0])
    bad[0] ^= 0xFF
    with pytest.raises(crs.CRSPacketError, match="bad magic"):
        crs.decode(bytes(bad))
    wrong = bytearray(PACKETS[0])
    wrong[4] = 6  # a short packet's version in a long packet
    with pytest.raises(crs.CRSPacketError, match="version 6"):
        crs.decode(bytes(wrong))
    with pytest.raises(crs.CRSPacketError, match="different sizes"):
        crs.decode_many([PACKETS[0], PACKETS[-1]])


def test_rates_time_sources_and_irig_dates():
    assert crs.sample_rate_hz(6) == pytest.approx(596.046, abs=1e-3)
    assert crs.sample_rate_hz(0) == pytest.approx(38146.97, abs=0.01)
    with pytest.raises(ValueError, match="0-6"):
        crs.sample_rate_hz(7)
    assert crs.time_source((2 << 29) | (1 << 31)) == ("SMA", True)
    assert crs.time_source(3 << 29) == ("GND", False)
    assert crs.time_source(0) == ("BACKPLANE", False)
    ts = np.zeros((), crs.TIMESTAMP)
    ts["y"], ts["d"], ts["h"], ts["m"], ts["s"], ts["ss"] = 24, 60, 23, 59, 58, 78_125_000  # 2024 is a leap year
    expect = dt.datetime(2024, 2, 29, 23, 59, 58, 500000, tzinfo=dt.UTC)
    assert int(crs.irig_to_utc_ns(ts)) == int(expect.timestamp()) * 10**9 + 500_000_000


RFMUX_PARSE = r'''
import importlib.metadata, json, pathlib, struct, sys, types
# rfmux.streamer alone (its parser and time helpers): the rfmux package's own __init__ takes seconds
root = pathlib.Path(importlib.metadata.distribution("rfmux").locate_file("rfmux"))
pkg = types.ModuleType("rfmux"); pkg.__path__ = [str(root)]; sys.modules["rfmux"] = pkg
import numpy as np
from rfmux.streamer import ReadoutPacket, ts_day_epoch, ts_to_seconds
out = []
data = open(sys.argv[1], "rb").read()
off = 0
while off < len(data):
    (n,) = struct.unpack_from("<I", data, off); off += 4
    raw = data[off:off + n]; off += n
    p = ReadoutPacket(raw); z = np.array(p); ts = p.ts
    out.append(dict(version=p.version, serial=p.serial, fir_stage=p.fir_stage, module=p.module, seq=p.seq,
                    nch=len(p), y=ts.y, d=ts.d, h=ts.h, m=ts.m, s=ts.s, ss=ts.ss, sbs=ts.sbs, source=str(ts.source),
                    recent=ts.recent, sod=ts_to_seconds(ts), epoch=ts_day_epoch(ts),
                    re=z.real.tolist(), im=z.imag.tolist(), same_bytes=bytes(p) == raw))
print(json.dumps(out))
'''


def test_decoding_agrees_with_rfmuxs_own_parser(rfmux_python: Path, tmp_path: Path):
    rng = np.random.default_rng(3)
    ours = [crs.encode(module=3, seq=77, stage=4, iq=rng.normal(0, 5000, 128) + 1j * rng.normal(0, 5000, 128),
                       t_ns=1_800_000_000_123_456_789, source="SMA", disciplined=True),
            crs.encode(module=1, seq=2**32 - 1, stage=6, iq=rng.normal(0, 5000, 1024) * (1 + 1j),
                       t_ns=1_790_000_000_000_000_000, short=False, source="BACKPLANE", disciplined=True)]
    packets = PACKETS + ours
    path = tmp_path / "packets.bin"
    path.write_bytes(b"".join(struct.pack("<I", len(p)) + p for p in packets))
    done = subprocess.run([str(rfmux_python), "-c", RFMUX_PARSE, str(path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(theirs) == len(packets)
    for p, t in zip(packets, theirs):
        d = crs.decode(p)
        hdr = d.raw["hdr"][0]
        assert (int(hdr["version"]), int(hdr["serial"]), int(hdr["fir_stage"]), int(hdr["module"]), int(hdr["seq"])) \
            == (t["version"], t["serial"], t["fir_stage"], t["module"], t["seq"])
        assert d.module[0] == t["module"] + 1 and d.n_channels == t["nch"]
        ts = d.raw["ts"][0]
        assert [int(ts[k]) for k in ("y", "d", "h", "m", "s", "ss", "sbs")] == [t[k] for k in
                                                                              ("y", "d", "h", "m", "s", "ss", "sbs")]
        name, recent = d.source(0)
        assert t["source"].endswith(name) and recent == t["recent"]
        np.testing.assert_array_equal(d.iq[0].real, t["re"])  # exact: the same division by 256
        np.testing.assert_array_equal(d.iq[0].imag, t["im"])
        assert abs(d.t_ns[0] / 1e9 - (t["epoch"] + t["sod"])) < 1e-6  # UTC agrees to better than 1 us
        assert t["same_bytes"]
