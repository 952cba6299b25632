"""DASTARD OFF files and experiment-state files: an independent writer (from the format description in
docs/run-format.md, struct by struct) makes files of known content; the import must give them back exactly."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from cryodaq.cli import main as cli_main
from cryodaq.errors import ImportFormatError
from cryodaq.storage import import_off, open_run, read_experiment_state, read_off

T0 = 1_721_750_400_000_000_000


def write_off_file(path: Path, *, version: str, channel: int, projectors: np.ndarray, basis: np.ndarray,
                   records: list[dict], frame_period: float = 4e-6, tail: bytes = b"") -> None:
    """An OFF file written field by field with struct (no numpy record dtype), as DASTARD's off.go does."""
    nbases, nsamples = projectors.shape
    model = {"Projectors": {"Rows": nbases, "Cols": nsamples, "SavedAs": "float64 after header"},
             "Basis": {"Rows": nsamples, "Cols": nbases, "SavedAs": "float64 after header"}, "Description": "test"}
    if version == "0.1.0":
        model["Projectors"]["RowMajorFloat64ValuesBase64"] = base64.b64encode(
            b"".join(struct.pack("<d", v) for v in projectors.ravel())).decode()
        model["Basis"]["RowMajorFloat64ValuesBase64"] = base64.b64encode(
            b"".join(struct.pack("<d", v) for v in basis.ravel())).decode()
    header = {"ChannelIndex": channel - 1, "ChannelName": f"chan{channel}", "ChannelNumberMatchingName": channel,
              "MaxPresamples": 5, "MaxSamples": nsamples, "FramePeriodSeconds": frame_period, "FileFormat": "OFF",
              "FileFormatVersion": version, "NumberOfBases": nbases, "ModelInfo": model,
              "CreationInfo": {"DastardVersion": "0.2.12", "GitHash": "x", "SourceName": "SimPulses",
                               "CreationTime": "2024-07-23T10:00:00.123456789-06:00"},
              "ReadoutInfo": {"NumberOfRows": 1, "NumberOfColumns": "1", "NumberOfChans": 1},
              "PixelInfo": {"XPosition": 0, "YPosition": 0, "Name": ""}}
    with open(path, "wb") as fh:
        fh.write(json.dumps(header, indent=4).encode() + b"\n")  # Go MarshalIndent ends with a '}' line
        if version != "0.1.0":
            fh.write(b"".join(struct.pack("<d", v) for v in projectors.ravel()))
            fh.write(b"".join(struct.pack("<d", v) for v in basis.ravel()))
        for r in records:
            fh.write(struct.pack("<iiqqf", r["n"], r["pre"], r["frame"], r["t"], r["ptm"]))
            if version == "0.3.0":
                fh.write(struct.pack("<f", r["delta"]))
            fh.write(struct.pack("<f", r["resid"]))
            fh.write(b"".join(struct.pack("<f", c) for c in r["coefs"]))
        fh.write(tail)


def _records(rng: np.random.Generator, n: int, nbases: int, t0: int, channel: int) -> list[dict]:
    return [{"n": 20, "pre": 5, "frame": 1000 * i + channel, "t": t0 + 10_000_000 * i + channel,
             "ptm": float(np.float32(rng.normal(3000, 5))), "delta": float(np.float32(rng.normal(0, 1))),
             "resid": float(np.float32(rng.uniform(1, 3))),
             "coefs": [float(np.float32(v)) for v in rng.normal(0, 1000, nbases)]} for i in range(n)]


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "0.3.0"])
def test_reader_gives_back_records_and_projectors_exactly(tmp_path: Path, version: str) -> None:
    rng = np.random.default_rng(1)
    proj, basis = rng.normal(size=(3, 20)), rng.normal(size=(20, 3))
    recs = _records(rng, 7, 3, T0, 1)
    path = tmp_path / f"run_chan1_{version}.off"
    write_off_file(path, version=version, channel=1, projectors=proj, basis=basis, records=recs, tail=b"\x01" * 11)
    off = read_off(path)
    assert off.version == version and off.n_records == 7 and off.partial_bytes == 11  # a partial record is left out
    np.testing.assert_array_equal(off.projectors, proj)
    np.testing.assert_array_equal(off.basis, basis)
    np.testing.assert_array_equal(off.records["unixnano"], [r["t"] for r in recs])
    np.testing.assert_array_equal(off.records["framecount"], [r["frame"] for r in recs])
    np.testing.assert_array_equal(off.records["coefs"], np.array([r["coefs"] for r in recs], np.float32))
    np.testing.assert_array_equal(off.records["residualStdDev"], np.array([r["resid"] for r in recs], np.float32))
    if version == "0.3.0":
        np.testing.assert_array_equal(off.records["pretriggerDelta"], np.array([r["delta"] for r in recs], np.float32))
    np.testing.assert_allclose(off.modeled_records(slice(0, 2)), np.array([r["coefs"] for r in recs[:2]]) @ basis.T,
                               rtol=1e-6)


def test_import_two_channels_with_experiment_states(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    data = tmp_path / "20240723" / "0000"
    data.mkdir(parents=True)
    proj, basis = rng.normal(size=(4, 20)), rng.normal(size=(20, 4))
    recs = {ch: _records(rng, 30, 4, T0, ch) for ch in (1, 3)}
    for ch in (1, 3):
        write_off_file(data / f"20240723_run0000_chan{ch}.off", version="0.3.0", channel=ch, projectors=proj * ch,
                       basis=basis, records=recs[ch])
    (data / "20240723_run0000_experiment_state.txt").write_text(
        "# unix time in nanoseconds, state label\n"
        f"{T0}, START\n{T0 + 100_000_000}, CALIBRATION\n{T0 + 200_000_000}, SAMPLE_A\n{T0 + 250_000_000}, STOP\n"
        f"{T0 + 300_000_000}, HALF")  # still being written: left out
    run_path = import_off(sorted(data.glob("*.off")), tmp_path / "off_run")
    run = open_run(run_path)
    ev = run.events().load()
    assert ev.sizes["event"] == 60 and np.all(np.diff(ev["t"].values) >= 0)
    for ch in (1, 3):
        mine = ev.where(ev["channel"] == ch, drop=True)
        coefs = np.array([r["coefs"] for r in recs[ch]], np.float32)
        np.testing.assert_array_equal(mine["filt_value"].values, coefs[:, 2])  # mass: pulseMean, derivativeLike, filtValue
        np.testing.assert_array_equal(mine["off_coef_3"].values, coefs[:, 3])
        np.testing.assert_array_equal(mine["pretrig_mean"].values, np.array([r["ptm"] for r in recs[ch]], np.float32))
        np.testing.assert_array_equal(mine["sample_index"].values, [r["frame"] for r in recs[ch]])
    model = run.dataset("off").load()
    np.testing.assert_array_equal(model["projectors"].sel(channel=3).values, proj * 3)
    np.testing.assert_array_equal(model["basis"].sel(channel=1).values, basis)
    states = run.dataset("experiment_state").load()
    assert list(states["label"].values) == ["START", "CALIBRATION", "SAMPLE_A", "STOP"]
    t_rel = ev["t"].values - T0
    expected = np.searchsorted([0, 100_000_000, 200_000_000, 250_000_000], t_rel, side="right") - 1
    np.testing.assert_array_equal(ev["state_index"].values, expected)  # a record at a state's time is in it
    assert run.attrs["off"]["20240723_run0000_chan1.off"]["header"]["FileFormatVersion"] == "0.3.0"


def test_experiment_state_rules(tmp_path: Path) -> None:
    f = tmp_path / "x_experiment_state.txt"
    f.write_text("# unix time in nanoseconds, state label\n10, START\n20, A, with comma\n30, B\n40, A, with comma\n")
    st = read_experiment_state(f)
    assert st.labels == ("START", "A, with comma", "B", "A, with comma")
    assert list(st.label_at([5, 10, 19, 20, 35, 99])) == ["", "START", "START", "A, with comma", "B", "A, with comma"]
    assert st.analysis_labels() == ["A, with comma", "B"]
    f.write_text("# unix time in nanoseconds, state label\n10, START\nbad line\n")
    with pytest.raises(ImportFormatError, match="line 3"):
        read_experiment_state(f)


def test_bad_off_files_are_refused_by_name(tmp_path: Path) -> None:
    f = tmp_path / "chan1.off"
    f.write_text('{\n    "FileFormat": "LJH"\n}\n')
    with pytest.raises(ImportFormatError, match=r"chan1\.off.*FileFormat"):
        read_off(f)
    rng = np.random.default_rng(3)
    write_off_file(f, version="0.3.0", channel=1, projectors=rng.normal(size=(3, 20)), basis=rng.normal(size=(20, 3)),
                   records=_records(rng, 2, 3, T0, 1))
    raw = bytearray(f.read_bytes())
    head = raw.index(b"\n}\n") + 3
    f.write_bytes(raw[: head + 100])  # ends inside the projectors
    with pytest.raises(ImportFormatError, match="projectors"):
        read_off(f)


def test_cli_imports_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(4)
    f = tmp_path / "20240723_run0001_chan2.off"
    write_off_file(f, version="0.3.0", channel=2, projectors=rng.normal(size=(3, 20)), basis=rng.normal(size=(20, 3)),
                   records=_records(rng, 5, 3, T0, 2))
    assert cli_main(["import", str(f), "--output", str(tmp_path / "cli_off")]) == 0
    out = Path(capsys.readouterr().out.strip())
    assert open_run(out).events().sizes["event"] == 5
