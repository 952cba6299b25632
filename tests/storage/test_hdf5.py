"""HDF5 export/import: a run with every group round-trips with identical arrays (values, dtypes) and attrs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import xarray as xr
import zarr

from cryodaq.errors import ImportFormatError
from cryodaq.storage import RunStatus, RunWriter, open_run
from cryodaq.storage.catalog import Catalog
from cryodaq.storage.hdf5 import EXPORT_ATTR, IMPORT_ATTR, export_hdf5, import_hdf5


def _fill(w: RunWriter, pat: SimpleNamespace) -> None:
    rng = np.random.default_rng(1)
    for i in range(3):
        w.append_stream("phase", *pat.stream_block(i * 100, 100))
        batch = pat.event_batch(i * 4, 4)
        batch["records"] = rng.normal(size=(4, 32)).astype(np.float32)
        batch["rise_time_s"] = np.full(4, 1e-5 * (i + 1))
        w.append_events(batch, record_presamples=8, record_sample_rate_hz=1e5)
        w.append_housekeeping("mxc_temperature", [i * 10**9], [0.010 + i * 0.001], "K")
        w.commit()
    w.append_gap(300, 25, 123, "packet_loss", "sequence 17 -> 19 ünïcode")
    w.append_gap(900, 5, 456, "pipeline_overrun")
    freq = np.linspace(0, 500, 11)
    w.append_spectrum(1, freq, np.ones((pat.N_CH, 11)), units="rad^2/Hz")
    w.append_spectrum(2, freq, 2 * np.ones((pat.N_CH, 11)), units="rad^2/Hz")
    f = np.linspace(4e9, 5e9, 7)
    w.write_sweep("s21_cold", {"frequency": f}, {"s21": (np.arange(7) * (1 + 2j)).astype(np.complex64)},
                  attrs={"z0": [50.0, 50.0], "comments": "vna", "empty": None}, array_attrs={"frequency": {"units": "Hz"}})
    w.update_attrs(calibration={"gain": [1.0, 2.5], "ok": True, "note": None})


def _tree(root: zarr.Group) -> dict[str, tuple]:
    """Every array (values, dtype, dims, attrs) and group (attrs) of a run, arrays cut to committed lengths."""
    run = open_run(root.store.root)
    out: dict[str, tuple] = {}

    def walk(grp: zarr.Group, path: str) -> None:
        out[path or "/"] = ("group", dict(grp.attrs))
        for name, arr in grp.arrays():
            p = f"{path}/{name}".strip("/")
            n = run.committed(p) if arr.ndim else None
            values = arr[:n] if arr.ndim else arr[()]
            out[p] = (values, arr.dtype, arr.metadata.dimension_names, dict(arr.attrs))
        for name, sub in grp.groups():
            walk(sub, f"{path}/{name}".strip("/"))

    walk(root, "")
    return out


def _assert_same_tree(a: dict[str, tuple], b: dict[str, tuple]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        if len(a[key]) == 2:  # a group: its attrs
            assert a[key] == b[key], key
            continue
        va, dta, dimsa, attra = a[key]
        vb, dtb, dimsb, attrb = b[key]
        assert dta == dtb, key
        assert dimsa == dimsb, key
        assert attra == attrb, key
        np.testing.assert_array_equal(np.asarray(va), np.asarray(vb), err_msg=key)


def test_round_trip_every_group(writer: RunWriter, pat: SimpleNamespace, tmp_path: Path) -> None:
    _fill(writer, pat)
    writer.close()
    h5 = export_hdf5(writer.path, tmp_path / "out" / "run.h5")
    assert h5.is_file() and not list(h5.parent.glob(".*partial"))
    with h5py.File(h5) as f:  # a plain HDF5 reader sees the tree, cut arrays and JSON-encoded dict attrs
        assert f["stream/phase"].shape == (300, pat.N_CH)
        assert f["events/records"].shape == (12, 32)
        assert json.loads(f["sweeps/s21_cold/s21"].attrs["_cryodaq_dimension_names"]) == ["frequency"]
        assert json.loads(f.attrs["cryodaq"])["run_id"] == writer.path.name[:-5]
        assert json.loads(f.attrs[EXPORT_ATTR])["status"] == "complete"

    back = import_hdf5(h5, tmp_path / "imported" / "copy.zarr")
    assert back == tmp_path / "imported" / "copy.zarr"
    src, dst = zarr.open_group(writer.path, mode="r"), zarr.open_group(back, mode="r")
    ta, tb = _tree(src), _tree(dst)
    root_b = tb.pop("/")[1]
    assert root_b.pop(IMPORT_ATTR)["source"] == str(h5)  # the one attr that differs: names the HDF5 file
    assert ta.pop("/")[1] == root_b
    _assert_same_tree(ta, tb)

    run = open_run(back)
    assert run.status is RunStatus.COMPLETE and run.attrs["calibration"] == {"gain": [1.0, 2.5], "ok": True, "note": None}
    for group in ("stream", "events", "gaps", "spectra", "housekeeping/mxc_temperature", "sweeps/s21_cold"):
        a, b = open_run(writer.path).dataset(group).load(), run.dataset(group).load()
        xr.testing.assert_identical(a, b)
        for var in a.variables:
            assert a[var].dtype == b[var].dtype, (group, var)
    assert run.dataset("sweeps/s21_cold")["s21"].dtype == np.complex64
    assert [e.path for e in Catalog(back.parent).query()] == ["copy.zarr"]  # imports are catalogued


def test_export_of_a_running_run_stops_at_committed_and_imports_as_crashed(
    writer: RunWriter, pat: SimpleNamespace, tmp_path: Path
) -> None:
    writer.append_stream("phase", *pat.stream_block(0, 100))
    writer.append_events(pat.event_batch(0, 5))
    writer.commit()
    writer.append_stream("phase", *pat.stream_block(100, 5000))  # > 4 chunks: written, but never committed
    writer.append_events(pat.event_batch(5, 3))
    assert writer.path.joinpath("stream/phase/c/1/0").exists()
    h5 = export_hdf5(writer.path, tmp_path / "running.h5")
    with h5py.File(h5) as f:
        assert f["stream/phase"].shape == (100, pat.N_CH) and f["events/t"].shape == (5,)
    back = import_hdf5(h5, tmp_path / "snap")
    assert back.name == "snap.zarr"
    run = open_run(back)
    assert run.stored_status is RunStatus.CRASHED and "exported while running" in run.attrs["end_reason"]
    np.testing.assert_array_equal(run.stream("phase")["phase"].values, pat.stream_block(0, 100)[0])
    writer.close()


def test_import_rejects_foreign_or_damaged_files_and_writes_nothing(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(ImportFormatError, match="foreign.h5.*not a cryodaq HDF5 export"):
        import_hdf5(foreign, tmp_path / "a.zarr")
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 50)
    with pytest.raises(ImportFormatError, match="garbage.h5"):
        import_hdf5(garbage, tmp_path / "b.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.h5", "garbage.h5"]


def test_import_failing_half_way_leaves_no_run(writer: RunWriter, pat: SimpleNamespace, tmp_path: Path) -> None:
    _fill(writer, pat)
    writer.close()
    h5 = export_hdf5(writer.path, tmp_path / "run.h5")
    with h5py.File(h5, "r+") as f:  # damage one dataset's metadata deep in the tree
        del f["spectra/psd"].attrs["_cryodaq_dimension_names"]
    out = tmp_path / "out"
    with pytest.raises(ImportFormatError, match="spectra/psd.*_cryodaq_dimension_names"):
        import_hdf5(h5, out / "bad.zarr")
    assert list(out.iterdir()) == []


def test_export_refuses_to_overwrite(writer: RunWriter, tmp_path: Path) -> None:
    writer.close()
    target = tmp_path / "x.h5"
    target.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        export_hdf5(writer.path, target)
    assert target.read_bytes() == b"keep"
    export_hdf5(writer.path, target, overwrite=True)
    assert h5py.is_hdf5(target)
