"""Sweeps written point by point into a run: layout, xarray access, resume, mismatches."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from qcodes.parameters import Parameter, ParameterWithSetpoints
from qcodes.validators import Arrays

from cryodaq.storage import open_run
from cryodaq.storage.sweep_store import SweepMismatchError, SweepResumeError, SweepRun, point_chunks
from cryodaq.sweeps import ArraySweep, Axis, LinSweep, sweep, zip_axes


def new_run(tmp_path) -> SweepRun:
    return SweepRun.create(tmp_path, station_name="bench", station_snapshot={}, config={"x": 1}, catalog=False)


def trace(point) -> dict:
    """Deterministic scalar, complex trace with a coordinate, and a 2-D array, from the setpoints."""
    a, b = point["a"], point["b"]
    freq = np.linspace(1e9, 2e9, 5)
    return {
        "y": a * 10 + b,
        "s21": xr.DataArray((a + 1j * b) * np.arange(5), dims=["frequency"], coords={"frequency": freq},
                            attrs={"units": "1"}),
        "img": (("row", "col"), np.full((2, 3), a - b)),
        "flag": bool(a > b),
    }


def test_array_measurements_are_stored_with_their_dims_and_xarray_opens_the_group(tmp_path):
    run = new_run(tmp_path)
    a, b = Parameter("a", set_cmd=None, unit="V"), Parameter("b", set_cmd=None)
    res = sweep(LinSweep(a, 0, 2, 3), ArraySweep(b, [0.5, 1.5]), trace, name="map", run=run)
    run.close()
    assert res.total == 6 and res.measured == 6
    ds = xr.open_zarr(run.path, group="sweeps/map")  # plain xarray, consolidated metadata of a closed run
    assert ds.attrs["axes"] == ["a", "b"] and ds.attrs["status"] == "complete"
    assert ds["y"].dims == ("a", "b") and ds["s21"].dims == ("a", "b", "frequency")
    assert ds["img"].dims == ("a", "b", "row", "col") and ds["done"].dims == ("a", "b")
    assert ds["s21"].dtype == np.complex128 and ds["flag"].dtype == bool
    np.testing.assert_allclose(ds["a"].values, [0, 1, 2])
    assert ds["a"].attrs["units"] == "V"
    np.testing.assert_allclose(ds["frequency"].values, np.linspace(1e9, 2e9, 5))
    np.testing.assert_allclose(ds["y"].values, [[0.5, 1.5], [10.5, 11.5], [20.5, 21.5]])
    np.testing.assert_allclose(ds["s21"].sel(a=2.0, b=1.5).values, (2 + 1.5j) * np.arange(5))
    assert (ds["t"].values > 0).all() and "t" in ds.coords
    assert open_run(run.path).dataset("sweeps/map")["y"].shape == (3, 2)


def test_qcodes_parameters_are_measured_like_dond(tmp_path):
    run = new_run(tmp_path)
    x = Parameter("x", set_cmd=None, initial_value=0.0)
    freq = Parameter("freq_axis", unit="Hz", get_cmd=lambda: np.linspace(0, 30, 4), vals=Arrays(shape=(4,)))
    spectrum = ParameterWithSetpoints("spectrum", setpoints=(freq,), vals=Arrays(shape=(4,)), unit="W/Hz",
                                      get_cmd=lambda: np.arange(4) * x.get())
    power = Parameter("power", unit="W", get_cmd=lambda: 2 * x.get())
    sweep(ArraySweep(x, [1.0, 2.0, 3.0]), power, spectrum, name="spec", run=run)
    ds = open_run(run.path).dataset("sweeps/spec")
    assert ds["spectrum"].dims == ("x", "freq_axis") and ds["spectrum"].attrs["units"] == "W/Hz"
    np.testing.assert_allclose(ds["freq_axis"].values, [0, 10, 20, 30])
    np.testing.assert_allclose(ds["power"].values, [2, 4, 6])
    np.testing.assert_allclose(ds["spectrum"].values[2], np.arange(4) * 3.0)


def test_zipped_axis_coordinates_and_an_index_dimension(tmp_path):
    run = new_run(tmp_path)
    res = zip_axes(Axis("resonator", [0, 1, 2]), Axis("f0_hz", [5e9, 5.01e9, 5.02e9], units="Hz"))
    sweep(Axis("power_dbm", [-40, -30]), res, lambda p: {"q": p["f0_hz"] / 1e9 + p["power_dbm"]}, name="z", run=run)
    run.close()
    ds = xr.open_zarr(run.path, group="sweeps/z")
    assert ds["f0_hz"].dims == ("resonator",) and "f0_hz" in ds.coords
    assert float(ds["q"].sel(power_dbm=-30, resonator=2)) == pytest.approx(5.02 - 30)


class Boom(RuntimeError):
    pass


def test_points_committed_before_a_failure_are_skipped_on_resume(tmp_path):
    calls: list = []

    def measure(p):
        calls.append(p.index)
        if len(calls) == 4 and fail[0]:
            raise Boom("instrument on fire")
        return {"y": p["a"] * 10 + p["b"], "tr": (("k",), np.arange(3) + p["a"])}

    fail = [True]
    run = new_run(tmp_path)
    axes = (Axis("a", [0, 1, 2]), Axis("b", [0, 1]))
    with pytest.raises(Boom):
        sweep(*axes, measure, name="s", run=run)
    run.close("aborted", end_reason="Boom")
    done = open_run(run.path).dataset("sweeps/s")["done"].values
    assert done.sum() == 3 and done.ravel()[:3].all()  # the failing 4th point is not committed

    fail[0] = False
    calls.clear()
    run2 = SweepRun.resume(run.path, catalog=False)
    assert run2.resumed_from == "aborted" and run2.meta["status"] == "running"
    res = sweep(*axes, measure, name="s", run=run2)
    run2.close()
    assert res.skipped == 3 and res.measured == 3 and calls == [(1, 1), (2, 0), (2, 1)]
    ds = xr.open_zarr(run.path, group="sweeps/s")
    np.testing.assert_allclose(ds["y"].values, [[0, 1], [10, 11], [20, 21]])
    np.testing.assert_allclose(ds["tr"].values[2, 1], [2, 3, 4])
    meta = open_run(run.path).attrs
    assert meta["status"] == "complete" and meta["resumes"][0]["previous_status"] == "aborted"


def test_resume_refuses_other_axes_and_live_runs(tmp_path):
    run = new_run(tmp_path)
    sweep(Axis("a", [0, 1, 2]), lambda p: {"y": 1.0}, name="s", run=run)
    with pytest.raises(SweepResumeError, match="still running"):
        SweepRun.resume(run.path)
    run.close()
    run2 = SweepRun.resume(run.path, catalog=False)
    with pytest.raises(SweepMismatchError, match="axes"):
        sweep(Axis("a", [0, 1, 2, 3]), lambda p: {"y": 1.0}, name="s", run=run2)
    with pytest.raises(SweepMismatchError, match="differs"):
        sweep(Axis("a", [0, 1, 5]), lambda p: {"y": 1.0}, name="s", run=run2)
    # a measurement whose shape changes from point to point
    with pytest.raises(SweepMismatchError, match="measurement 'y'"):
        sweep(Axis("c", [0, 1]), lambda p: {"y": np.zeros(p["c"] + 1)}, name="u", run=run2)
    run2.close()


def test_point_chunks_keep_one_point_writes_small():
    assert point_chunks((6, 3, 4), ()) == (6, 3, 4)
    assert point_chunks((6, 3, 4), (801,)) == (1, 1, 4, 801)
    assert point_chunks((100, 100), ()) == (40, 100)
    assert point_chunks((2, 3), (5000,)) == (1, 1, 5000)
    assert point_chunks((), ()) == ()


def test_a_sweep_over_a_text_axis_resumes(tmp_path):
    """Text coordinates (a load switch's 'hot'/'cold') come back from zarr as numpy 2 strings; resume compares them."""
    calls: list = []

    def measure(p):
        calls.append(p.index)
        if len(calls) == 2 and first[0]:
            raise Boom("switch stuck")
        return {"y": 1.0 if p["load"] == "hot" else 0.0}

    first = [True]
    run = new_run(tmp_path)
    with pytest.raises(Boom):
        sweep(Axis("load", ["hot", "cold"]), measure, name="y", run=run)
    run.close("aborted", end_reason="Boom")
    first[0] = False
    calls.clear()
    run2 = SweepRun.resume(run.path, catalog=False)
    res = sweep(Axis("load", ["hot", "cold"]), measure, name="y", run=run2)
    assert res.skipped == 1 and calls == [(1,)]
    with pytest.raises(SweepMismatchError, match="differs"):
        sweep(Axis("load", ["hot", "warm"]), measure, name="y", run=run2)
    run2.close()
