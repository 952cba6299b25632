"""cryodaq recover: damaged root or group zarr.json rebuilt from what survives; an intact run left untouched."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr
import zarr

from cryodaq.cli import main as cli_main
from cryodaq.errors import RunDamagedError, RunFormatError
from cryodaq.storage import RunStatus, RunWriter, open_run, recover_run, verify_run
from cryodaq.storage.rebuild import salvage_object


def _closed_run(writer: RunWriter, pat: SimpleNamespace) -> Path:
    writer.append_stream("phase", *pat.stream_block(0, 300))
    writer.append_events(pat.event_batch(0, 40))
    writer.append_gap(300, 25, 123, "packet_loss", "sequence 17 -> 19")
    for i in range(3):
        writer.append_housekeeping("mxc_temperature", [1_700_000_000_000_000_000 + i * 10**9], [0.010 + i / 1000], "K")
    writer.update_attrs(pipeline_calibration={"rotation": [0.1, 0.2]})
    writer.close(interrupted=True, end_reason="operator stop")
    return writer.path


def _files(path: Path) -> dict[str, tuple[bytes, int]]:
    return {str(f.relative_to(path)): (f.read_bytes(), f.stat().st_mtime_ns) for f in path.rglob("*") if f.is_file()}


def _truncate(file: Path, keep: float | int) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])


def _check_data(path: Path, pat: SimpleNamespace) -> None:
    run = open_run(path)
    np.testing.assert_array_equal(run.stream("phase")["phase"].values, pat.stream_block(0, 300)[0])
    np.testing.assert_array_equal(run.events()["amplitude"].values, np.arange(40, dtype=np.float32))
    assert run.gaps()["cause"].values.tolist() == ["packet_loss"]
    assert run.housekeeping("mxc_temperature")["value"].values.tolist() == [0.010, 0.011, 0.012]
    assert verify_run(path).intact


def test_recover_on_a_complete_intact_run_says_so_and_changes_nothing(writer: RunWriter, pat: SimpleNamespace,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = _closed_run(writer, pat)
    before = _files(path)
    assert cli_main(["recover", str(path)]) == 0
    assert "complete and intact" in capsys.readouterr().err
    assert _files(path) == before  # not a byte, not a time stamp
    info = recover_run(path)
    assert info.status is RunStatus.COMPLETE and any("nothing changed" in n for n in info.notes)
    assert _files(path) == before


def test_truncated_root_zarr_json_is_rebuilt_from_what_survives(writer: RunWriter, pat: SimpleNamespace,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = _closed_run(writer, pat)
    attrs = open_run(path).attrs
    _truncate(path / "zarr.json", 0.4)  # cut inside the consolidated metadata, after the run attrs
    for command in (["info", str(path)], ["verify", str(path)]):
        assert cli_main(command) != 0
    with pytest.raises(RunDamagedError, match="cryodaq recover"):
        open_run(path)
    with pytest.raises(Exception):  # noqa: B017 - plain xarray cannot read it either
        xr.open_zarr(path, group="events")
    capsys.readouterr()
    assert cli_main(["recover", str(path)]) == 0
    assert "rebuilt zarr.json from the damaged zarr.json" in capsys.readouterr().err
    run = open_run(path)
    rebuilt = dict(run.attrs)
    [entry] = rebuilt.pop("recovered")
    assert rebuilt == attrs  # every run attr survived: status, times, snapshot, calibration
    assert entry["rebuilt"][0]["node"] == "(root)" and entry["rebuilt"][0]["lost"] == []
    assert run.status is RunStatus.COMPLETE and run.attrs["interrupted"] is True
    _check_data(path, pat)
    ev = xr.open_zarr(path, group="events")  # consolidated again: plain xarray reads it
    np.testing.assert_array_equal(ev["amplitude"].values, np.arange(40, dtype=np.float32))
    assert (path / "zarr.json.damaged").is_file()
    assert "recovered" in "\n".join(recover_run(path).render().splitlines())  # a second recover: intact now


def test_root_cut_inside_the_run_attrs_takes_the_catalog_and_the_data(writer: RunWriter, pat: SimpleNamespace) -> None:
    path = _closed_run(writer, pat)
    attrs = open_run(path).attrs
    text = (path / "zarr.json").read_text()
    _truncate(path / "zarr.json", text.index('"station"') + 20)  # run_id, status, times survive; station does not
    info = recover_run(path)
    run = open_run(path)
    meta = run.attrs
    for key in ("format_version", "run_id", "kind", "status", "interrupted", "end_reason", "started", "ended"):
        assert meta[key] == attrs[key], key
    assert meta["station"] == {"name": attrs["station"]["name"], "snapshot": {}}  # name from the catalog
    [entry] = meta["recovered"]
    root = entry["rebuilt"][0]
    assert any("catalog.sqlite" in s for s in root["from"]) and "station.snapshot" in root["lost"]
    assert "config" in root["lost"] and "software" in root["lost"]
    assert info.status is RunStatus.COMPLETE and not info.damage
    _check_data(path, pat)


def test_root_lost_entirely_without_catalog_is_inferred_from_the_data(tmp_path: Path, pat: SimpleNamespace) -> None:
    w = RunWriter.create(tmp_path, station_name="s", station_snapshot={}, config={}, run_id="lost", catalog=False)
    w.append_events(pat.event_batch(0, 40))
    w.close()
    (w.path / "zarr.json").unlink()
    with pytest.raises(RunDamagedError, match="root zarr.json is missing"):
        open_run(w.path)
    recover_run(w.path)
    run = open_run(w.path)
    assert run.run_id == "lost" and run.status is RunStatus.CRASHED and run.attrs["format_version"] == 2
    t = pat.event_batch(0, 40)["t"]
    assert run.attrs["started"].startswith("2023-11-14T22:13:20") and run.attrs["ended"] > run.attrs["started"]
    assert int(t[0]) // 10**9 == 1_700_000_000
    np.testing.assert_array_equal(run.events()["amplitude"].values, np.arange(40, dtype=np.float32))
    assert "status (marked crashed)" in run.attrs["recovered"][0]["rebuilt"][0]["lost"]


def test_group_metadata_from_the_consolidated_copy(writer: RunWriter, pat: SimpleNamespace) -> None:
    path = _closed_run(writer, pat)
    original = json.loads((path / "events" / "zarr.json").read_text())
    (path / "events" / "zarr.json").write_text('{"attributes": {"comm')
    with pytest.raises(RunDamagedError, match=r"events: metadata events/zarr.json unreadable"):
        open_run(path)
    recover_run(path)
    assert json.loads((path / "events" / "zarr.json").read_text())["attributes"] == original["attributes"]
    _check_data(path, pat)


def test_group_metadata_of_a_crashed_run_is_inferred_from_its_arrays(writer: RunWriter, pat: SimpleNamespace) -> None:
    data, si, _ = pat.stream_block(0, 300)
    writer.append_stream("phase", data, si, 1_700_000_000_000_000_000 + si * 1_000_000)  # 1 kHz, as declared
    writer.append_events(pat.event_batch(0, 40))
    writer.commit()
    root = zarr.open_group(writer.path, mode="r+", use_consolidated=False)  # its writer died on another host
    root.attrs["cryodaq"] = dict(root.attrs["cryodaq"], host="another-host.invalid",
                                 heartbeat="2020-01-01T00:00:00.000000Z")
    stream_attrs = dict(zarr.open_group(writer.path, path="stream", mode="r").attrs)
    (writer.path / "stream" / "zarr.json").unlink()
    with pytest.raises(RunDamagedError, match="stream: metadata stream/zarr.json unreadable: no zarr.json"):
        open_run(writer.path, damaged="mask")  # no consolidated copy: nothing can read the group
    info = recover_run(writer.path)
    run = open_run(writer.path)
    assert run.status is RunStatus.CRASHED and not info.damage
    got = dict(zarr.open_group(writer.path, path="stream", mode="r").attrs)
    assert got == stream_attrs | {"committed": 300}
    np.testing.assert_array_equal(run.stream("phase")["phase"].values, data)
    [entry] = run.attrs["recovered"]
    assert any("sample_rate_hz" in x for x in entry["rebuilt"][0]["inferred"])


def test_recover_names_what_it_cannot_restore(writer: RunWriter, pat: SimpleNamespace,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = _closed_run(writer, pat)
    (path / "stream" / "phase" / "c" / "1" / "0").unlink()
    assert cli_main(["recover", str(path)]) == 1
    err = capsys.readouterr().err
    assert "stream/phase: 1 chunk missing (c/1/0): time rows 64..127" in err and "cannot be restored" in err


def test_recover_refuses_what_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(RunFormatError, match="is a file, not a run"):
        recover_run(tmp_path / "notes.txt")
    assert cli_main(["recover", str(tmp_path)]) == 2
    assert cli_main(["info", str(tmp_path / "notes.txt")]) == 2
    err = capsys.readouterr().err
    assert "not a run" in err and "notes.txt: is a file, not a run; expected a <run_id>.zarr folder" in err
    assert "Traceback" not in err


def test_salvage_object_keeps_every_complete_member() -> None:
    text = json.dumps({"a": 1, "b": {"c": [1, 2], "d": {"e": "x" * 50}}, "f": 2})
    for cut in range(len(text) + 1):
        got, complete = salvage_object(text[:cut], depth=2)
        assert complete == (cut == len(text))
        if "a" in got:
            assert got["a"] == 1
        if "f" in got:
            assert got == {"a": 1, "b": {"c": [1, 2], "d": {"e": "x" * 50}}, "f": 2}
