"""Touchstone import: generated .s1p/.s2p files become sweeps/<name>/ groups with complex S-parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skrf
import xarray as xr

from cryodaq.errors import ImportFormatError
from cryodaq.storage import RunKind, open_run
from cryodaq.storage.touchstone import import_touchstone


def _network(n_ports: int, n_freq: int = 21, seed: int = 0, z0: object = 50) -> skrf.Network:
    rng = np.random.default_rng(seed)
    s = 0.3 * (rng.normal(size=(n_freq, n_ports, n_ports)) + 1j * rng.normal(size=(n_freq, n_ports, n_ports)))
    freq = skrf.Frequency(4.0, 8.0, n_freq, unit="GHz")
    return skrf.Network(frequency=freq, s=s, z0=z0, name=f"dut{n_ports}", comments="pump off\nT = 20 mK")


def test_s2p_and_s1p_become_sweep_groups(tmp_path: Path) -> None:
    amp, res = _network(2), _network(1, n_freq=11, seed=1, z0=75)
    amp.write_touchstone("paramp", dir=str(tmp_path))
    res.write_touchstone("resonator", dir=str(tmp_path))
    run_path = import_touchstone([tmp_path / "paramp.s2p", tmp_path / "resonator.s1p"], tmp_path / "runs" / "vna.zarr",
                                 tags=["tune-up"])
    run = open_run(run_path)
    assert run.attrs["kind"] == RunKind.SWEEP and run.attrs["tags"] == ["tune-up"]

    ds = run.dataset("sweeps/paramp").load()
    assert set(ds.data_vars) == {"s11", "s12", "s21", "s22", "done"} and ds["s21"].dims == ("frequency",)
    np.testing.assert_allclose(ds["frequency"].values, amp.f)
    assert ds["frequency"].attrs["units"] == "Hz" and ds["s21"].dtype == np.complex64
    for name, i, j in (("s11", 0, 0), ("s12", 0, 1), ("s21", 1, 0), ("s22", 1, 1)):
        np.testing.assert_allclose(ds[name].values, amp.s[:, i, j], rtol=1e-6, atol=1e-7)
    assert ds["done"].dtype == bool and ds["done"].values.all()
    assert ds.attrs["z0_ohm"] == [50.0, 50.0] and ds.attrs["n_ports"] == 2
    assert ds.attrs["comments"].splitlines()[:2] == ["pump off", "T = 20 mK"]
    assert ds.attrs["source_file"] == str((tmp_path / "paramp.s2p").resolve())

    s1 = xr.open_zarr(run_path, group="sweeps/resonator").load()  # plain xarray reads the complex arrays
    np.testing.assert_allclose(s1["s11"].values, res.s[:, 0, 0], rtol=1e-6, atol=1e-7)
    assert s1.attrs["z0_ohm"] == [75.0] and s1.sizes == {"frequency": 11}


def test_names_and_complex128(tmp_path: Path) -> None:
    net = _network(2)
    net.write_touchstone("a", dir=str(tmp_path))
    run = open_run(import_touchstone(tmp_path / "a.s2p", tmp_path / "r", names=["cold"], dtype=np.complex128))
    ds = run.dataset("sweeps/cold").load()
    np.testing.assert_allclose(ds["s21"].values, net.s[:, 1, 0], rtol=1e-12)
    with pytest.raises(ValueError, match="repeat"):
        import_touchstone([tmp_path / "a.s2p", tmp_path / "a.s2p"], tmp_path / "dup")


def test_bad_touchstone_names_the_file_and_writes_nothing(tmp_path: Path) -> None:
    _network(2).write_touchstone("ok", dir=str(tmp_path))
    bad = tmp_path / "broken.s2p"
    lines = (tmp_path / "ok.s2p").read_text().splitlines()
    bad.write_text("\n".join(lines[:-1] + [" ".join(lines[-1].split()[:4])]) + "\n")  # last point cut short
    with pytest.raises(ImportFormatError, match="broken.s2p"):
        import_touchstone([tmp_path / "ok.s2p", bad], tmp_path / "out" / "r")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_touchstone_is_recognised_by_its_content_not_only_its_name(tmp_path: Path) -> None:
    two, three = _network(2), _network(3, n_freq=7, seed=3)
    two.write_touchstone("amp", dir=str(tmp_path), form="ri")
    three.write_touchstone("hybrid", dir=str(tmp_path), form="db")
    (tmp_path / "amp.s2p").rename(tmp_path / "amp_trace.txt")
    (tmp_path / "hybrid.s3p").rename(tmp_path / "hybrid")  # no suffix at all
    run = open_run(import_touchstone([tmp_path / "amp_trace.txt", tmp_path / "hybrid"], tmp_path / "vna"))
    ds2, ds3 = run.dataset("sweeps/amp_trace").load(), run.dataset("sweeps/hybrid").load()
    assert ds2.attrs["n_ports"] == 2 and ds3.attrs["n_ports"] == 3  # port counts from the data
    np.testing.assert_allclose(ds2["s21"].values, two.s[:, 1, 0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ds3["s32"].values, three.s[:, 2, 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ds3["frequency"].values, three.f)


def test_a_hand_written_touchstone_file_and_an_explicit_port_count(tmp_path: Path) -> None:
    one = tmp_path / "resonator.csv"
    one.write_text("! S11 of a resonator\n# Hz S RI R 50\n4e9 0.5 0.1\n4.5e9 0.4 -0.2\n5e9 0.3 0.0\n")
    ds = open_run(import_touchstone(one, tmp_path / "r1")).dataset("sweeps/resonator").load()
    np.testing.assert_allclose(ds["s11"].values, [0.5 + 0.1j, 0.4 - 0.2j, 0.3 + 0j], rtol=1e-6)
    assert ds.attrs["z0_ohm"] == [50.0] and ds["frequency"].values.tolist() == [4e9, 4.5e9, 5e9]

    wrapped = tmp_path / "wrapped.dat"  # a 2-port with each point on three lines of three values
    rows = ["# GHz S RI R 50"]
    for f in (4.0, 5.0):
        values = [f, *(np.arange(8) / 10 + f / 100)]
        rows += [" ".join(map(str, values[i:i + 3])) for i in range(0, 9, 3)]
    wrapped.write_text("\n".join(rows) + "\n")
    with pytest.raises(ImportFormatError, match=r"wrapped\.dat.*--ports"):
        import_touchstone(wrapped, tmp_path / "r2")
    assert not (tmp_path / "r2.zarr").exists()
    ds = open_run(import_touchstone(wrapped, tmp_path / "r3", ports=2)).dataset("sweeps/wrapped").load()
    np.testing.assert_allclose(ds["s21"].values, [0.24 + 0.34j, 0.25 + 0.35j], rtol=1e-6)  # 2-port order: S11 S21 S12 S22


def test_files_that_are_not_touchstone_are_refused_by_name(tmp_path: Path, shared_data: Path) -> None:
    columns = shared_data / "npl_mat58_figure27_notch_s21.txt"  # three columns of numbers, no option line
    with pytest.raises(ImportFormatError, match=r"npl_mat58_figure27_notch_s21\.txt: not a Touchstone file.*# Hz S RI R 50"):
        import_touchstone(columns, tmp_path / "r")
    notes = tmp_path / "notes.txt"
    notes.write_text("# to do: measure S21\nlots of words\n")
    with pytest.raises(ImportFormatError, match="notes.txt: not a Touchstone file"):
        import_touchstone(notes, tmp_path / "r")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
