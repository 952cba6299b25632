"""Damaged runs never read as data: missing, truncated and corrupt chunks are reported by group, array and
sample range (open_run, run_info, cryodaq info / verify), and read as NaN or flagged only when asked to."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr

from cryodaq.cli import main as cli_main
from cryodaq.errors import RunDamagedError
from cryodaq.storage import FORMAT_VERSION, RunWriter, open_run, run_info
from cryodaq.storage.sweep_store import AxisCoords, Measured, SweepRun
from cryodaq.storage.verify import chunk_file, verify_run

V1_RUN = Path(__file__).resolve().parents[1] / "data" / "format_v1_run.zip"


def _run(writer: RunWriter, pat: SimpleNamespace) -> Path:
    """A closed run: 300 stream rows in chunks of 64, 40 events, gaps, housekeeping, spectra, a VNA sweep."""
    writer.append_stream("phase", *pat.stream_block(0, 300))
    writer.append_events(pat.event_batch(0, 40))
    writer.append_gap(300, 25, 123, "packet_loss", "sequence 17 -> 19")
    for i in range(3):
        writer.append_housekeeping("mxc_temperature", [i * 10**9], [0.010 + i * 0.001], "K")
    writer.append_spectrum(1, np.linspace(0, 500, 11), np.ones((pat.N_CH, 11)), units="rad^2/Hz")
    writer.write_sweep("vna", {"frequency": np.linspace(4e9, 5e9, 9)}, {"s21": np.arange(9) * (1 + 1j)})
    writer.close()
    return writer.path


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip(path: Path, at: int = 12) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x10
    path.write_bytes(bytes(data))


def _v1_run(tmp_path: Path) -> Path:
    with zipfile.ZipFile(V1_RUN) as z:
        z.extractall(tmp_path)
    return tmp_path / "v1run.zarr"


# ---------------------------------------------------------------- the format
def test_new_runs_checksum_every_chunk_and_fill_floats_with_nan(writer: RunWriter, pat: SimpleNamespace) -> None:
    path = _run(writer, pat)
    docs = {str(f.parent.relative_to(path)): json.loads(f.read_text()) for f in path.rglob("zarr.json")}
    arrays = {k: d for k, d in docs.items() if d["node_type"] == "array"}
    assert len(arrays) > 20
    for name, doc in arrays.items():
        assert doc["codecs"][-1] == {"name": "crc32c"}, name
        if doc["data_type"].startswith(("float", "complex")):
            assert doc["fill_value"] in ("NaN", ["NaN", "NaN"]), name
    assert arrays["events/t"]["fill_value"] == np.iinfo(np.int64).min
    assert arrays["events/channel"]["fill_value"] == np.iinfo(np.int32).min
    assert arrays["events/flags"]["fill_value"] == np.iinfo(np.uint16).max
    assert open_run(path).attrs["format_version"] == FORMAT_VERSION == 2
    # plain xarray still reads every group, values intact
    ph = xr.open_zarr(path, group="stream").load()
    np.testing.assert_array_equal(ph["phase"].values, pat.stream_block(0, 300)[0])
    ev = xr.open_zarr(path, group="events").load()
    np.testing.assert_array_equal(ev["amplitude"].values, np.arange(40, dtype=np.float32))
    s21 = xr.open_zarr(path, group="sweeps/vna").load()["s21"].values
    np.testing.assert_allclose(s21, np.arange(9) * (1 + 1j))
    assert xr.open_zarr(path, group="gaps").load()["cause"].values.tolist() == ["packet_loss"]
    report = verify_run(path)
    assert report.intact and report.chunks == report.checksummed > 20 and "intact" in report.render()


# ---------------------------------------------------------------- missing chunks
def test_deleted_stream_chunk_is_reported_never_read_as_zero(writer: RunWriter, pat: SimpleNamespace) -> None:
    path = _run(writer, pat)
    chunk_file(path, "stream", "phase", (1, 0)).unlink()  # rows 64..127
    with pytest.raises(RunDamagedError) as err:
        open_run(path)
    msg = str(err.value)
    assert "stream/phase" in msg and "time rows 64..127 of 300" in msg and "samples 64..127" in msg
    assert "\n" not in msg
    [dmg] = err.value.damage
    assert (dmg.group, dmg.array, dmg.problem, dmg.rows, dmg.samples) == ("stream", "phase", "missing", (64, 128),
                                                                          (64, 127))
    run = open_run(path, damaged="mask")
    ds = run.stream("phase").load()
    phase = ds["phase"].values
    assert np.isnan(phase[64:128]).all() and not np.isnan(phase[:64]).any() and not np.isnan(phase[128:]).any()
    np.testing.assert_array_equal(phase[128:], pat.stream_block(128, 172)[0])
    assert ds["intact"].values.tolist() == [True] * 64 + [False] * 64 + [True] * 172
    assert "stream/phase" in ds.attrs["damage"][0]
    # plain xarray: the format's NaN fill, not 0.0
    assert np.isnan(xr.open_zarr(path, group="stream")["phase"].values[64:128]).all()
    # the other groups of the same run read as before
    np.testing.assert_array_equal(run.events()["amplitude"].values, np.arange(40, dtype=np.float32))


def test_deleted_events_chunk_and_integer_columns(writer: RunWriter, pat: SimpleNamespace) -> None:
    path = _run(writer, pat)
    chunk_file(path, "events", "amplitude", (0,)).unlink()
    chunk_file(path, "events", "t", (0,)).unlink()
    with pytest.raises(RunDamagedError, match=r"events/amplitude: 1 chunk missing \(c/0\): event rows 0\.\.39"):
        open_run(path)
    ev = open_run(path, damaged="mask").events().load()
    assert np.isnan(ev["amplitude"].values).all()  # never 0.0
    assert not ev["intact"].values.any()  # integer t cannot hold NaN: its loss is flagged, not filled
    assert (ev["t"].values != 0).all() and (ev["channel"].values == np.arange(40) % pat.N_CH).all()
    plain = xr.open_zarr(path, group="events").load()
    assert np.isnan(plain["amplitude"].values).all()
    assert (plain["t"].values == np.iinfo(np.int64).min).all()  # the sentinel, not a plausible time


def test_info_and_cli_report_damage_by_group_array_and_range(writer: RunWriter, pat: SimpleNamespace,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = _run(writer, pat)
    assert cli_main(["info", str(path)]) == 0
    capsys.readouterr()
    chunk_file(path, "stream", "phase", (2, 0)).unlink()
    chunk_file(path, "events", "channel", (0,)).unlink()
    info = run_info(path)
    assert not info.intact and {(d.group, d.array) for d in info.damage} == {("stream", "phase"), ("events", "channel")}
    assert info.events_per_channel == {}  # the channel column is lost: no counts made up from fill values
    assert cli_main(["info", str(path)]) == 1
    err = capsys.readouterr().err
    assert "DAMAGED" in err and "stream/phase: 1 chunk missing (c/2/0): time rows 128..191" in err
    assert "events/channel" in err
    assert cli_main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "stream/phase" in out and "events/channel" in out
    assert cli_main(["verify", "--json", str(path)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["intact"] is False
    found = {(d["group"], d["array"], d["problem"], tuple(d["rows"])) for d in report["damage"]}
    assert found == {("stream", "phase", "missing", (128, 192)), ("events", "channel", "missing", (0, 40))}


# ---------------------------------------------------------------- corrupt chunks
@pytest.mark.parametrize("damage", [_truncate, _flip])
def test_truncated_or_flipped_chunk_is_reported_and_never_read(writer: RunWriter, pat: SimpleNamespace,
                                                                damage, capsys: pytest.CaptureFixture[str]) -> None:
    path = _run(writer, pat)
    damage(chunk_file(path, "stream", "phase", (3, 0)))  # rows 192..255
    damage(chunk_file(path, "events", "amplitude", (0,)))
    report = verify_run(path)
    found = {(d.group, d.array, d.problem, d.rows) for d in report.damage}
    assert found == {("stream", "phase", "corrupt", (192, 256)), ("events", "amplitude", "corrupt", (0, 40))}
    assert cli_main(["verify", str(path)]) == 1
    assert "stream/phase: 1 chunk corrupt (c/3/0): time rows 192..255" in capsys.readouterr().out

    run = open_run(path)  # presence is intact; reading the chunk fails loudly, naming it
    with pytest.raises(RunDamagedError, match=r"stream/phase: 1 chunk corrupt \(c/3/0\): time rows 192\.\.255"):
        run.stream("phase")["phase"].values
    np.testing.assert_array_equal(run.stream("phase")["phase"][:192].values, pat.stream_block(0, 192)[0])
    with pytest.raises(ValueError):  # plain xarray: zarr's checksum error, never numbers
        xr.open_zarr(path, group="events")["amplitude"].values

    masked = open_run(path, damaged="mask")
    masked.verify()  # decode everything first: the corrupt chunks are then read around
    phase = masked.stream("phase")["phase"].values
    assert np.isnan(phase[192:256]).all() and not np.isnan(phase[:192]).any()
    assert np.isnan(masked.events()["amplitude"].values).all()


# ---------------------------------------------------------------- old runs, sweeps, live runs
def test_format_1_runs_open_and_a_missing_chunk_is_still_reported(tmp_path: Path) -> None:
    path = _v1_run(tmp_path)
    run = open_run(path)
    assert run.attrs["format_version"] == 1 and run.damage == []
    np.testing.assert_array_equal(run.stream("phase")["phase"].values[:, 0], np.arange(300, dtype=np.float32))
    assert verify_run(path).intact and verify_run(path).checksummed == 0
    chunk_file(path, "stream", "phase", (2, 0)).unlink()  # fill value 0 in version 1
    chunk_file(path, "events", "amplitude", (0,)).unlink()
    with pytest.raises(RunDamagedError, match=r"stream/phase: 1 chunk missing \(c/2/0\): time rows 128\.\.191"):
        open_run(path)
    masked = open_run(path, damaged="mask")
    phase = masked.stream("phase")["phase"].values
    assert np.isnan(phase[128:192]).all() and (phase[:128, 0] == np.arange(128)).all()
    assert np.isnan(masked.events()["amplitude"].values).all()


def test_point_written_sweeps_need_only_the_measured_chunks(tmp_path: Path) -> None:
    run = SweepRun.create(tmp_path, station_name="vna", station_snapshot={}, config={})
    axes = [AxisCoords("power_dbm", {"power_dbm": np.arange(5.0)}),
            AxisCoords("frequency", {"frequency": np.linspace(1, 2, 3000)})]
    grp = run.sweep("s", axes)
    for i in range(2):  # two of five rows measured; each row of 3000 points spans one chunk
        for j in range(0, 3000, 1000):
            grp.write_point((i, j), {"s21": Measured((), np.array(np.nan + 0j))}, t_ns=1)  # an all-NaN chunk too
    run.close()
    assert open_run(run.path).damage == [] and verify_run(run.path).intact
    chunk_file(run.path, "sweeps/s", "s21", (1, 0)).unlink()
    with pytest.raises(RunDamagedError, match=r"sweeps/s/s21: 1 chunk missing \(c/1/0\)"):
        open_run(run.path)


def test_a_live_run_being_written_is_not_damaged(writer: RunWriter, pat: SimpleNamespace) -> None:
    writer.append_stream("phase", *pat.stream_block(0, 100))
    writer.commit()
    writer.append_stream("phase", *pat.stream_block(100, 100))  # buffered / past committed: not data yet
    assert open_run(writer.path).damage == []
    shutil.rmtree(writer.path / "stream" / "phase" / "c" / "0")
    with pytest.raises(RunDamagedError, match="time rows 0..63 of 100"):
        open_run(writer.path)
    writer.close()
