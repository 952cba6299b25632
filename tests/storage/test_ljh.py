"""LJH import: the two shared DASTARD files (2.1 TDM pulses, 2.2 uMUX noise), synthetic files, corrupt input."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from cryodaq.errors import ImportFormatError
from cryodaq.storage import RunStatus, open_run
from cryodaq.storage.catalog import Catalog
from cryodaq.storage.ljh import import_ljh, read_ljh

TDM, UMUX = "dastard_tdm_pulses_chan1.ljh", "dastard_umux_noise_chan4102.ljh"


def _header(version: str, n_samples: int, presamples: int, timebase: float, channel: int | None,
            software: str = "DASTARD version 0.3.0", extra: str = "") -> bytes:
    lines = ["#LJH Memorial File Format", f"Save File Format Version: {version}", f"Software Version: {software}",
             "Number of rows: 8", "Row number (from 0-7 inclusive): 3", "Digitized Word Size In Bytes: 2",
             f"Presamples: {presamples}", f"Total Samples: {n_samples}", "Timestamp offset (s): 1700000000.123456",
             "System description of this File:", "free text without a colon", "#End of Description",
             f"Timebase: {timebase:e}"]
    if channel is not None:
        lines.append(f"Channel: {channel}")
    return ("\n".join(lines) + "\n" + extra + "#End of Header\n").encode()


def write_ljh22(path: Path, channel: int, frames: np.ndarray, posix_us: np.ndarray, records: np.ndarray,
                presamples: int = 16, timebase: float = 1e-5) -> Path:
    """A small LJH 2.2 file as DASTARD writes it: rowcount = frame * rows + row (8 rows, row 3)."""
    dtype = np.dtype([("sub", "<i8"), ("us", "<i8"), ("data", "<u2", (records.shape[1],))])
    rec = np.zeros(len(frames), dtype)
    rec["sub"], rec["us"], rec["data"] = frames * 8 + 3, posix_us, records
    path.write_bytes(_header("2.2.0", records.shape[1], presamples, timebase, channel) + rec.tobytes())
    return path


def _pulses(n: int, n_samples: int = 64, presamples: int = 16, base: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    heights = np.random.default_rng(seed).integers(50, 5000, n)
    rec = np.full((n, n_samples), base, np.uint16)
    rec[:, presamples + 5] = base + heights
    return rec, heights


# ------------------------------------------------------------------ shared data
def test_shared_tdm_file_ljh21(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / TDM
    ljh = read_ljh(src)
    assert (ljh.version, ljh.n_records, ljh.n_samples, ljh.presamples, ljh.channel) == ("2.1.0", 10, 1024, 515, 1)
    assert ljh.timebase_s == pytest.approx(5.12e-6)
    run = open_run(import_ljh(src, tmp_path / "tdm.zarr"))
    ev = run.events().load()
    assert ev.sizes == {"event": 10, "sample": 1024}
    t = ev["t"].values
    assert np.all(np.diff(t) > 0)
    offset_ns = int(Decimal(ljh.header["Timestamp offset (s)"]) * 10**9)
    assert np.all(t >= offset_ns) and np.all(t - offset_ns < 86_400 * 10**9)  # within a day of the counter's zero
    assert datetime.fromtimestamp(t[0] / 1e9, UTC).date().isoformat() == "2019-08-05"
    # independently decoded: 1 byte of 4 us ticks, 1 unused byte, uint32 ms, then 1024 uint16 samples
    raw = np.frombuffer(src.read_bytes()[ljh.header_bytes:], np.dtype([("tick", "u1"), ("x", "u1"), ("ms", "<u4"),
                                                                       ("d", "<u2", (1024,))]))
    np.testing.assert_array_equal(t, offset_ns + raw["ms"].astype(np.int64) * 10**6 + raw["tick"].astype(np.int64) * 4000)
    np.testing.assert_array_equal(ev["records"].values, raw["d"].astype(np.float32))
    np.testing.assert_array_equal(ev["channel"].values, 1)
    np.testing.assert_allclose(ev["baseline"].values, raw["d"][:, :515].mean(axis=1), rtol=1e-6)
    assert ev["amplitude"].values.min() > 1000  # these are X-ray pulses, thousands of ADC units high
    assert ev["records"].attrs == {"presamples": 515, "sample_rate_hz": pytest.approx(1 / 5.12e-6)}
    assert run.attrs["ljh"][TDM]["header"]["Timebase"] == "5.120000e-06"


def test_shared_umux_file_ljh22(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / UMUX
    ljh = read_ljh(src)
    assert (ljh.version, ljh.n_records, ljh.n_samples, ljh.presamples, ljh.channel) == ("2.2.1", 610, 1000, 250, 4102)
    assert ljh.timebase_s == pytest.approx(4.096e-6)
    run = open_run(import_ljh(src, tmp_path / "umux"))
    ev = run.events().load()
    assert ev.sizes == {"event": 610, "sample": 1000}
    t = ev["t"].values
    assert np.all(np.diff(t) > 0)
    years = {datetime.fromtimestamp(x / 1e9, UTC).year for x in (t[0], t[-1])}
    assert years <= set(range(2010, 2030))
    # noise records follow each other: 1000 frames apart, and 1000 frames take 1000 timebases
    np.testing.assert_array_equal(np.diff(ev["sample_index"].values), 1000)
    # the host-clock timestamps jitter by ~0.1 ms around the frame clock, but agree with it overall
    assert np.median(np.diff(t)) == 4_096_000
    assert abs((t[-1] - t[0]) * 1e-9 - 609 * 1000 * 4.096e-6) < 1e-3
    np.testing.assert_array_equal((ev["subframe_count"].values - 6) // 33, ev["sample_index"].values)
    assert ev["records"].attrs["presamples"] == 250
    assert ev["records"].attrs["sample_rate_hz"] == pytest.approx(1 / 4.096e-6)
    assert run.attrs["started"].startswith(datetime.fromtimestamp(t[0] / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    assert run.attrs["clock"]["uncertainty_s"] == 1e-6
    assert run.status is RunStatus.COMPLETE


# -------------------------------------------------------------------- synthetic
def test_synthetic_two_channels_into_one_run(tmp_path: Path) -> None:
    rec_a, h_a = _pulses(5, seed=1)
    rec_b, h_b = _pulses(4, seed=2)
    us_a = 1_700_000_000_000_000 + np.array([0, 20, 40, 60, 80])
    us_b = 1_700_000_000_000_000 + np.array([10, 30, 50, 70])
    a = write_ljh22(tmp_path / "run_chan3.ljh", 3, np.array([0, 2, 4, 6, 8]), us_a, rec_a)
    b = write_ljh22(tmp_path / "run_chan7.ljh", 7, np.array([1, 3, 5, 7]), us_b, rec_b)
    run = open_run(import_ljh([a, b], tmp_path / "runs" / "both.zarr", tags=["tes", "fe55"]))
    ev = run.events().load()
    np.testing.assert_array_equal(ev["t"].values, (1_700_000_000_000_000 + 10 * np.arange(9)) * 1000)
    np.testing.assert_array_equal(ev["channel"].values, [3, 7, 3, 7, 3, 7, 3, 7, 3])
    np.testing.assert_array_equal(ev["sample_index"].values, np.arange(9))
    np.testing.assert_array_equal(ev["amplitude"].values, [h_a[0], h_b[0], h_a[1], h_b[1], h_a[2], h_b[2], h_a[3],
                                                           h_b[3], h_a[4]])
    np.testing.assert_array_equal(ev["baseline"].values, 1000.0)
    np.testing.assert_array_equal(ev["records"].values[1], rec_b[0].astype(np.float32))
    np.testing.assert_array_equal(ev["source_record"].values, [0, 0, 1, 1, 2, 2, 3, 3, 4])
    assert set(run.attrs["ljh"]) == {"run_chan3.ljh", "run_chan7.ljh"}
    entry = Catalog(tmp_path / "runs").get("both")
    assert entry.n_events == 9 and entry.tags == ("fe55", "tes") and entry.started == run.attrs["started"]


def test_synthetic_ljh21_timestamps(tmp_path: Path) -> None:
    rec, _ = _pulses(3)
    dtype = np.dtype([("tick", "u1"), ("x", "u1"), ("ms", "<u4"), ("data", "<u2", (64,))])
    raw = np.zeros(3, dtype)
    raw["tick"], raw["ms"], raw["data"] = [0, 249, 7], [5, 5, 1_000_000], rec
    path = tmp_path / "old.ljh"
    path.write_bytes(_header("2.1.0", 64, 16, 1e-5, None, extra="Channel name: chan12\n") + raw.tobytes())
    ev = open_run(import_ljh(path, tmp_path / "old")).events().load()
    np.testing.assert_array_equal(ev["t"].values, 1_700_000_000_123_456_000 + np.array([5_000_000, 5_996_000,
                                                                                           1_000_000_028_000]))
    np.testing.assert_array_equal(ev["sample_index"].values, [500, 599, 100_000_002])  # floor(elapsed / 10 us)
    np.testing.assert_array_equal(ev["channel"].values, 12)  # from "Channel name: chan12"
    np.testing.assert_array_equal(ev["subframe_count"].values, -1)


def test_non_dastard_presamples_corrected_as_mass_does(tmp_path: Path) -> None:
    rec, _ = _pulses(2)
    path = write_ljh22(tmp_path / "m.ljh", 1, np.arange(2), np.arange(2), rec)
    data = path.read_bytes().replace(b"DASTARD version 0.3.0", b"MATTER 4.2")
    path.write_bytes(data)
    assert read_ljh(path).presamples == 16 + 3


# ---------------------------------------------------------------- corrupt input
def _good(tmp_path: Path) -> Path:
    rec, _ = _pulses(3)
    return write_ljh22(tmp_path / "good_chan1.ljh", 1, np.arange(3), 1_700_000_000_000_000 + np.arange(3), rec)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:-1], "not a whole number of 144-byte records"),
    (lambda b: b + b"\0" * 10, r"3 records \+ 10 bytes"),
    (lambda b: b.replace(b"#End of Header", b"#End of Heather"), "no '#End of Header'"),
    (lambda b: b.replace(b"Total Samples: 64\n", b""), r"lacks required key\(s\) \['Total Samples'\]"),
    (lambda b: b.replace(b"Version: 2.2.0", b"Version: 3.0.0"), "'Save File Format Version: 3.0.0' is not supported"),
    (lambda b: b.replace(b"Version: 2.2.0", b"Version: banana"), "is not supported"),
    (lambda b: b.replace(b"#LJH Memorial", b"#XYZ Memorial"), "not an LJH file"),
    (lambda b: b.replace(b"Presamples: 16", b"Presamples: 99"), "implausible header"),
    (lambda b: b.replace(b"Timebase: 1.000000e-05", b"Timebase: fast"), "'Timebase' = 'fast' is not a number"),
    (lambda b: b.replace(b"Channel: 1\n", b""), "no 'Channel' header key"),
])
def test_corrupt_files_raise_naming_the_file_and_write_nothing(tmp_path: Path, damage, message: str) -> None:
    src = _good(tmp_path)
    bad = tmp_path / "bad.ljh"
    bad.write_bytes(damage(src.read_bytes()))
    out = tmp_path / "out"
    with pytest.raises(ImportFormatError, match=message) as err:
        import_ljh([src, bad], out / "r.zarr")
    assert str(bad) in str(err.value)
    assert not out.exists() or list(out.iterdir()) == []


def test_ljh21_without_timestamp_offset_is_refused(tmp_path: Path) -> None:
    raw = np.zeros(1, np.dtype([("tick", "u1"), ("x", "u1"), ("ms", "<u4"), ("data", "<u2", (64,))]))
    path = tmp_path / "x_chan1.ljh"
    path.write_bytes(_header("2.1.0", 64, 16, 1e-5, 1).replace(b"Timestamp offset (s): 1700000000.123456\n", b"")
                     + raw.tobytes())
    with pytest.raises(ImportFormatError, match=r"x_chan1.ljh.*'Timestamp offset \(s\)'"):
        read_ljh(path)


def test_files_that_do_not_fit_one_run_are_refused(tmp_path: Path) -> None:
    a = _good(tmp_path)
    rec, _ = _pulses(2, n_samples=32, presamples=8)
    b = write_ljh22(tmp_path / "short_chan2.ljh", 2, np.arange(2), np.arange(2), rec, presamples=8)
    with pytest.raises(ImportFormatError, match="short_chan2.ljh: samples per record 32 differs from 64"):
        import_ljh([a, b], tmp_path / "mixed")
    with pytest.raises(ImportFormatError, match="given twice"):
        import_ljh([a, a], tmp_path / "twice")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good_chan1.ljh", "short_chan2.ljh"]


def test_existing_output_is_never_overwritten(tmp_path: Path) -> None:
    a = _good(tmp_path)
    out = import_ljh(a, tmp_path / "r")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(FileExistsError):
        import_ljh(a, tmp_path / "r.zarr")
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_failure_half_way_through_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cryodaq.storage.ljh as ljh_module
    from cryodaq.storage import RunWriter

    a = _good(tmp_path)
    calls = []
    real = RunWriter.append_events

    def failing(self: RunWriter, *args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(self, *args, **kwargs)

    monkeypatch.setattr(ljh_module, "_BLOCK_RECORDS", 2)
    monkeypatch.setattr(RunWriter, "append_events", failing)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="No space left"):
        import_ljh(a, out / "r.zarr")
    assert len(calls) == 2 and list(out.iterdir()) == []  # the hidden staging folder is gone too
