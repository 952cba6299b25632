"""Fuzz the importers (LJH, HDF5, Touchstone): a correct run, or one ImportFormatError naming the file and
nothing written (no run folder, no hidden partial folder)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h5py
import numpy as np
import pytest
import skrf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cryodaq.errors import CryodaqError
from cryodaq.storage import RunWriter, export_hdf5, import_hdf5, import_ljh, import_touchstone, open_run, verify_run
from cryodaq.storage.ljh import read_ljh
from cryodaq.storage.touchstone import read_touchstone

_COMMON = {"deadline": None, "database": None, "derandomize": True,
           "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]}
PARSE = settings(max_examples=150, **_COMMON)  # parsing only: fast
IMPORT = settings(max_examples=25, **_COMMON)  # whole imports (a run written, read back, verified): slower


# ------------------------------------------------------------------ inputs
def _ljh_header(fields: dict[str, str]) -> bytes:
    lines = ["#LJH Memorial File Format", *(f"{k}: {v}" for k, v in fields.items()), "#End of Header"]
    return ("\n".join(lines) + "\n").encode("latin-1", "replace")


LJH_FIELDS = {"Save File Format Version": "2.2.0", "Software Version": "DASTARD version 0.3.0",
              "Number of rows": "2", "Row number (from 0-1 inclusive)": "1", "Digitized Word Size In Bytes": "2",
              "Presamples": "4", "Total Samples": "16", "Timestamp offset (s)": "1700000000.5",
              "Timebase": "1.000000e-05", "Channel": "3", "Subframe divisions": "2", "Subframe offset": "1"}
I64 = st.integers(-(2**63), 2**63 - 1)


def _ljh_records(n: int, version: str = "2.2", times: list[int] | None = None) -> bytes:
    if version.startswith("2.1"):
        dtype = np.dtype([("tick", "u1"), ("x", "u1"), ("ms", "<u4"), ("d", "<u2", (16,))])
        rec = np.zeros(n, dtype)
        rec["ms"], rec["tick"] = np.arange(n) * 7, np.arange(n) % 250
        if times:
            rec["ms"][: len(times)] = [t % 2**32 for t in times[:n]]
    else:
        dtype = np.dtype([("sub", "<i8"), ("us", "<i8"), ("d", "<u2", (16,))])
        rec = np.zeros(n, dtype)
        rec["sub"], rec["us"] = np.arange(n) * 2 + 1, 1_700_000_000_000_000 + np.arange(n) * 100
        if times:
            rec["us"][: len(times)] = times[:n]
            rec["sub"][: len(times)] = times[:n]
    rec["d"] = 1000 + (np.arange(16) == 8) * (100 + np.arange(n)[:, None])
    return rec.tobytes()


def _touchstone_text() -> str:
    rng = np.random.default_rng(1)
    s = 0.3 * (rng.normal(size=(6, 2, 2)) + 1j * rng.normal(size=(6, 2, 2)))
    net = skrf.Network(frequency=skrf.Frequency(4, 8, 6, unit="GHz"), s=s, z0=50, name="dut")
    with tempfile.TemporaryDirectory() as tmp:
        net.write_touchstone("dut", dir=tmp, form="ri")
        return (Path(tmp) / "dut.s2p").read_text()


TOUCHSTONE = _touchstone_text()


@pytest.fixture(scope="module")
def hdf5_export(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of an HDF5 export of a small run with every group."""
    out = tmp_path_factory.mktemp("h5")
    w = RunWriter.create(out, station_name="s", station_snapshot={"a": [1, None]}, config={"x": 1}, run_id="src",
                         catalog=False)
    w.declare_stream("phase", n_channels=2, sample_rate_hz=100.0, units="rad", chunk_time=8)
    si = np.arange(20)
    w.append_stream("phase", np.ones((20, 2), np.float32), si, si * 10**7)
    k = np.arange(5)
    w.append_events({"t": k, "sample_index": k, "channel": k % 2, "amplitude": k.astype(np.float32)})
    w.append_gap(3, 2, 1, "packet_loss", "x")
    w.append_housekeeping("T", [1, 2], [0.1, 0.2], "K")
    w.close()
    return export_hdf5(w.path, out / "src.h5").read_bytes()


# ------------------------------------------------------------------ checks
def _attempt(importer: Any, data: bytes, name: str, fuzz: SimpleNamespace,
             check: Any = None) -> bool:
    """Import ``data`` (written as ``name``) into a fresh folder and check the outcome either way:
    a clean error and nothing written, or a run that opens, is intact and reads (then ``check(run, src)``)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        src = folder / name
        src.write_bytes(data)
        try:
            run = importer(src, folder / "out" / "run")
        except Exception as exc:  # noqa: BLE001 - the assertion is on its type
            fuzz.check_clean_error(exc, kinds=(CryodaqError,), names=name)
            out = folder / "out"
            assert not out.exists() or fuzz.leftovers(out, set()) == [], "a failed import left files behind"
            return False
        opened = open_run(run)
        assert verify_run(run).intact
        for group in opened.groups:
            opened.dataset(group).load()
        if check is not None:
            check(run, src)
        return True


# ------------------------------------------------------------------ LJH
ljh_values = st.one_of(st.sampled_from(["", "0", "-1", "2.1.0", "2.2.0", "3.0", "1e400", "-1e400", "nan", "inf",
                                        "-inf", "9" * 30, "1e18", "1.5", "16", "17", "0x10", "chan7", "abc", "1e-400"]),
                       st.text(max_size=10), st.integers(-(2**70), 2**70).map(str), st.floats().map(repr))


@st.composite
def ljh_files(draw: st.DrawFn) -> bytes:
    """A small valid LJH file, then fuzzed: header fields changed or removed, record times anywhere in int64,
    records cut or padded, bytes overwritten."""
    version = draw(st.sampled_from(["2.2", "2.1"]))
    fields = dict(LJH_FIELDS, **{"Save File Format Version": f"{version}.0"})
    for key, value in draw(st.dictionaries(st.sampled_from(sorted(LJH_FIELDS)), st.one_of(st.none(), ljh_values),
                                           max_size=2)).items():
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    body = _ljh_records(draw(st.integers(0, 6)), version, draw(st.one_of(st.none(), st.lists(I64, max_size=3))))
    extra = draw(st.one_of(st.just(0), st.integers(-20, 20)))
    data = bytearray(_ljh_header(fields) + (body + bytes(extra) if extra >= 0 else body[:extra]))
    for _ in range(draw(st.one_of(st.just(0), st.integers(1, 4)))):
        data[draw(st.integers(0, max(len(data) - 1, 0)))] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=150, **_COMMON)
@given(data=ljh_files())
@example(data=_ljh_header(dict(LJH_FIELDS, Presamples="1e400")) + _ljh_records(2))  # found: OverflowError
@example(data=_ljh_header(dict(LJH_FIELDS, **{"Subframe divisions": "9" * 40})) + _ljh_records(2))  # OverflowError
@example(data=_ljh_header(dict(LJH_FIELDS, **{"Save File Format Version": "2.1.0", "Timestamp offset (s)": "nan"}))
         + _ljh_records(2, "2.1"))  # found: ValueError
@example(data=_ljh_header(LJH_FIELDS) + _ljh_records(2, "2.2", [2**62]))  # found: t wrapped around in int64
def test_ljh_parser(fuzz: SimpleNamespace, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chan3.ljh"
        path.write_bytes(data)
        try:
            ljh = read_ljh(path)
            columns = (ljh.t_ns, ljh.sample_index, ljh.subframe_count, np.asarray(ljh.samples))
        except Exception as exc:  # noqa: BLE001 - the assertion is on its type
            fuzz.check_clean_error(exc, kinds=(CryodaqError,), names="chan3.ljh")
            return
        record = {(2, 1): 6, (2, 2): 16}[ljh.version_tuple] + 2 * ljh.n_samples
        assert ljh.header_bytes + ljh.n_records * record == len(data)
        assert all(len(c) == ljh.n_records for c in columns)
        del ljh, columns  # the memory map, before the folder goes


@IMPORT
@given(data=ljh_files())
def test_ljh_import(fuzz: SimpleNamespace, data: bytes) -> None:
    _attempt(import_ljh, data, "chan3.ljh", fuzz,
             check=lambda run, src: open_run(run).committed("events") == read_ljh(src).n_records)


# ------------------------------------------------------------------ HDF5
@settings(max_examples=40, **_COMMON)
@given(seed=st.integers(0, 2**32 - 1), flips=st.integers(1, 12), cut=st.one_of(st.none(), st.integers(0, 60_000)))
def test_hdf5_with_flipped_bytes_or_cut_short(fuzz: SimpleNamespace, hdf5_export: bytes, seed: int, flips: int,
                                              cut: int | None) -> None:
    data = bytearray(hdf5_export)
    rng = np.random.default_rng(seed)
    for at in rng.integers(0, len(data), flips):
        data[at] = int(rng.integers(0, 256))
    _attempt(import_hdf5, bytes(data[:cut] if cut is not None else data), "export.h5", fuzz)


json_like = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-5, 2**40), st.floats(), st.text(max_size=6)),
                         lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                 st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                         max_leaves=6)
attr_values = st.one_of(json_like.map(lambda v: __import__("json").dumps(v)), st.text(max_size=20),
                        st.integers(-3, 3), st.floats(allow_nan=False))


@settings(max_examples=25, **_COMMON)
@given(data=st.data())
def test_hdf5_with_fuzzed_attributes(fuzz: SimpleNamespace, hdf5_export: bytes, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "export.h5"
        file.write_bytes(hdf5_export)
        with h5py.File(file, "r+") as h5:
            objects: list[Any] = [h5]
            h5.visititems(lambda _, obj: objects.append(obj))
            for _ in range(data.draw(st.integers(1, 3))):
                obj = data.draw(st.sampled_from(objects))
                names = sorted(obj.attrs) + ["_cryodaq_zarr", "_cryodaq_dimension_names", "_cryodaq_json_attrs"]
                name = data.draw(st.sampled_from(names))
                if data.draw(st.booleans()) and name in obj.attrs:
                    del obj.attrs[name]
                else:
                    obj.attrs[name] = data.draw(attr_values)
        _attempt(import_hdf5, file.read_bytes(), "export.h5", fuzz)


# ------------------------------------------------------------------ Touchstone
@st.composite
def touchstone_texts(draw: st.DrawFn) -> str:
    """A valid 2-port Touchstone file, with lines fuzzed: tokens replaced, lines dropped, doubled, replaced
    by text, option lines made up."""
    lines = TOUCHSTONE.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["token", "drop", "dup", "text", "option"]))
        if action == "token" and lines[i].split():
            tokens = lines[i].split()
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[j] = draw(st.one_of(st.sampled_from(["nan", "inf", "-1", "0", "1e400", "1e300", "x", "#", "!", "R"]),
                                       st.floats().map(repr), st.text(max_size=5)))
            lines[i] = " ".join(tokens)
        elif action == "drop":
            del lines[i]
        elif action == "dup":
            lines.insert(i, lines[i])
        elif action == "text":
            lines[i] = draw(st.text(max_size=30))
        else:
            lines[i] = "# " + " ".join(draw(st.lists(st.sampled_from(["Hz", "GHz", "S", "Y", "RI", "MA", "DB", "R",
                                                                        "50", "x", "-3"]), max_size=6)))
    return "\n".join(lines) + "\n"


@PARSE
@given(text=st.one_of(touchstone_texts(), st.text(max_size=300), st.binary(max_size=300)),
       name=st.sampled_from(["dut.s2p", "dut.txt", "dut.s1p", "dut"]))
def test_touchstone_parser(fuzz: SimpleNamespace, text: str | bytes, name: str) -> None:
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(raw)
        try:
            net = read_touchstone(path)
        except Exception as exc:  # noqa: BLE001 - the assertion is on its type
            fuzz.check_clean_error(exc, kinds=(CryodaqError,), names=name)
            return
        assert net.s.shape == (len(net.f), net.nports, net.nports) and np.all(np.diff(net.f) > 0)


@IMPORT
@given(text=touchstone_texts(), name=st.sampled_from(["dut.s2p", "dut.txt"]))
def test_touchstone_import(fuzz: SimpleNamespace, text: str, name: str) -> None:
    def same_as_parsed(run: Path, src: Path) -> None:
        ds = open_run(run).dataset(f"sweeps/{src.stem}").load()
        net = read_touchstone(src)
        np.testing.assert_array_equal(ds["frequency"].values, net.f)
        np.testing.assert_array_equal(ds["s11"].values, net.s[:, 0, 0].astype(np.complex64))

    _attempt(import_touchstone, text.encode("utf-8", "surrogatepass"), name, fuzz, check=same_as_parsed)
