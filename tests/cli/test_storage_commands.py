"""The storage subcommands (runs, export, import) through argparse and cryodaq.storage.cli.register."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import skrf

from cryodaq.errors import ImportFormatError
from cryodaq.storage import RunStatus, RunWriter, open_run
from cryodaq.storage.catalog import CATALOG_FILE
from cryodaq.storage.cli import register


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cryodaq")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def _make_run(out: Path, station: str, tags: tuple[str, ...] = (), events: int = 3) -> Path:
    w = RunWriter.create(out, station_name=station, station_snapshot={}, config={}, tags=tags)
    k = np.arange(events)
    w.append_events({"t": k, "sample_index": k, "channel": k, "amplitude": k.astype(np.float32)})
    w.close()
    return w.path


def test_runs_lists_filters_and_rebuilds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _make_run(tmp_path, "alpha", tags=("cold",))
    b = _make_run(tmp_path, "beta")
    assert _run_cli(["runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 run(s)" in out and a.name[:-5] in out and b.name[:-5] in out and "complete" in out and "cold" in out

    assert _run_cli(["runs", str(tmp_path), "--station", "beta", "--paths"]) == 0
    assert capsys.readouterr().out.split() == [str(b)]
    assert _run_cli(["runs", str(tmp_path), "--tag", "cold", "--paths", "--status", "complete", "--since", "2000-01-01"]) == 0
    assert capsys.readouterr().out.split() == [str(a)]
    assert _run_cli(["runs", str(tmp_path), "--until", "2000-01-01", "--paths"]) == 0
    assert capsys.readouterr().out == ""

    (tmp_path / CATALOG_FILE).unlink()
    assert _run_cli(["runs", str(tmp_path), "--rebuild", "--kind", "stream", "--paths"]) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == [str(a), str(b)] and "rebuilt" in captured.err

    with pytest.raises(SystemExit):
        _run_cli(["runs", str(tmp_path), "--since", "yesterday-ish"])
    assert "ISO-8601" in capsys.readouterr().err
    assert _run_cli(["runs", str(tmp_path / "nowhere")]) == 2


def test_export_then_import_hdf5(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _make_run(tmp_path / "runs", "alpha", events=5)
    assert _run_cli(["export", str(run)]) == 0
    h5 = Path(capsys.readouterr().out.strip())
    assert h5 == run.with_suffix(".h5") and h5.is_file()
    assert _run_cli(["export", str(run), "--format", "hdf5"]) == 2  # exists: refused, not overwritten
    assert "already exists" in capsys.readouterr().err
    assert _run_cli(["export", str(run), "--output", str(tmp_path / "x" / "copy.hdf5"), "--force"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "x" / "copy.hdf5")

    assert _run_cli(["import", str(h5), "--output", str(tmp_path / "back")]) == 0
    back = Path(capsys.readouterr().out.strip())
    assert back == tmp_path / "back.zarr"
    np.testing.assert_array_equal(open_run(back).events()["t"].values, np.arange(5))
    assert _run_cli(["import", str(h5), "--output", str(back)]) == 2  # never over an existing run


def test_import_ljh_and_touchstone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n = 32
    dtype = np.dtype([("sub", "<i8"), ("us", "<i8"), ("data", "<u2", (n,))])
    rec = np.zeros(4, dtype)
    rec["sub"], rec["us"], rec["data"] = np.arange(4), 1_600_000_000_000_000 + np.arange(4), 100
    header = ("#LJH Memorial File Format\nSave File Format Version: 2.2.0\nSoftware Version: DASTARD version 0.3\n"
              f"Presamples: 8\nTotal Samples: {n}\nTimebase: 1e-5\nChannel: 5\n#End of Header\n").encode()
    ljh = tmp_path / "p_chan5.ljh"
    ljh.write_bytes(header + rec.tobytes())
    assert _run_cli(["import", str(ljh), "--output", str(tmp_path / "runs" / "tes"), "--tag", "fe55",
                     "--station", "tes-bench"]) == 0
    run = open_run(capsys.readouterr().out.strip())
    assert run.committed("events") == 4 and run.attrs["tags"] == ["fe55"]
    assert run.attrs["station"]["name"] == "tes-bench" and run.status is RunStatus.COMPLETE

    net = skrf.Network(frequency=skrf.Frequency(1, 2, 5, unit="GHz"), s=np.full((5, 1, 1), 0.5 + 0.1j), z0=50)
    net.write_touchstone("notch", dir=str(tmp_path))
    assert _run_cli(["import", str(tmp_path / "notch.s1p"), "--output", str(tmp_path / "runs" / "vna")]) == 0
    run = open_run(capsys.readouterr().out.strip())
    np.testing.assert_allclose(run.dataset("sweeps/notch")["s11"].values, 0.5 + 0.1j, rtol=1e-6)

    assert _run_cli(["runs", str(tmp_path / "runs"), "--tag", "fe55", "--paths"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "runs" / "tes.zarr")]

    with pytest.raises(ImportFormatError, match="cannot tell the format"):
        _run_cli(["import", str(tmp_path / "data.bin"), "--output", str(tmp_path / "z")])
    with pytest.raises(ImportFormatError, match="several formats"):
        _run_cli(["import", str(ljh), str(tmp_path / "notch.s1p"), "--output", str(tmp_path / "z")])
    assert _run_cli(["import", str(ljh), str(ljh), "--format", "hdf5", "--output", str(tmp_path / "z")]) == 2  # one file
    with pytest.raises(ImportFormatError, match="p_chan5.ljh: not a readable HDF5 file"):
        _run_cli(["import", str(ljh), "--format", "hdf5", "--output", str(tmp_path / "z2")])
    assert not (tmp_path / "z.zarr").exists() and not (tmp_path / "z2.zarr").exists()


def test_import_recognises_touchstone_by_content(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "s21_sweep.txt"
    trace.write_text("! VNA trace\n# Hz S RI R 50\n4e9 0.5 0.1\n5e9 0.4 -0.2\n")
    assert _run_cli(["import", str(trace), "--output", str(tmp_path / "a")]) == 0
    ds = open_run(capsys.readouterr().out.strip()).dataset("sweeps/s21_sweep").load()
    np.testing.assert_allclose(ds["s11"].values, [0.5 + 0.1j, 0.4 - 0.2j], rtol=1e-6)
    assert _run_cli(["import", str(trace), "--ports", "1", "--output", str(tmp_path / "b")]) == 0
    other = tmp_path / "columns.txt"
    other.write_text("4e9 0.5 0.1\n5e9 0.4 -0.2\n")
    with pytest.raises(ImportFormatError, match=r"columns\.txt: cannot tell the format .* Touchstone"):
        _run_cli(["import", str(other), "--output", str(tmp_path / "c")])
