"""Round trips of every group through open_run and plain xarray.open_zarr; committed lengths; statuses."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr

from cryodaq.storage import FORMAT_VERSION, RunStatus, RunWriter, open_run


def _fill(w: RunWriter, pat: SimpleNamespace) -> None:
    for i in range(3):
        w.append_stream("phase", *pat.stream_block(i * 100, 100))
        w.append_events(pat.event_batch(i * 5, 5))
        w.append_housekeeping("mxc_temperature", [i * 10**9], [0.010 + i * 0.001], "K")
        w.commit()
    w.append_gap(300, 25, 123, "packet_loss", "sequence 17 -> 19")
    w.append_gap(900, 5, 456, "pipeline_overrun")
    freq = np.linspace(0, 500, 11)
    w.append_spectrum(1, freq, np.ones((pat.N_CH, 11)), units="rad^2/Hz")
    w.append_spectrum(2, freq, 2 * np.ones((pat.N_CH, 11)), units="rad^2/Hz")


def test_every_group_round_trips_through_open_run(writer: RunWriter, pat: SimpleNamespace) -> None:
    _fill(writer, pat)
    writer.close()
    run = open_run(writer.path)
    assert run.status is RunStatus.COMPLETE
    assert run.attrs["format_version"] == FORMAT_VERSION
    assert run.attrs["station"]["snapshot"]["instruments"]["fridge"]["parameters"]["T"]["value"] == 0.012
    assert run.attrs["clock"] == {"source": "ntp", "uncertainty_s": 1e-3}
    assert run.groups == ["events", "gaps", "housekeeping/mxc_temperature", "spectra", "stream"]

    st = run.stream("phase").load()
    data, si, t = pat.stream_block(0, 300)
    assert st["phase"].dims == ("time", "channel")
    np.testing.assert_array_equal(st["phase"].values, data)  # includes the exact 0.0 of sample 0
    np.testing.assert_array_equal(st["sample_index"].values, si)
    np.testing.assert_array_equal(st["t"].values, t)
    np.testing.assert_array_equal(st["channel"].values, np.arange(10, 10 + pat.N_CH))
    assert st["phase"].attrs["units"] == "rad" and st.attrs["sample_rate_hz"] == pat.RATE
    assert st["tone_frequency_hz"].dims == ("channel",)

    ev = run.events().load()
    want = pat.event_batch(0, 15)
    assert ev.sizes == {"event": 15}
    for key in ("t", "sample_index", "channel", "amplitude", "baseline"):
        np.testing.assert_array_equal(ev[key].values, want[key])
    assert np.isnan(ev["energy"].values).all() and np.isnan(ev["chi2"].values).all()
    assert (ev["flags"].values == 0).all() and ev["flags"].dtype == np.uint16
    assert ev["amplitude"].values[0] == 0.0  # a 0 stays 0: zarr's fill value must not become NaN

    hk = run.housekeeping("mxc_temperature").load()
    np.testing.assert_allclose(hk["value"].values, [0.010, 0.011, 0.012])
    np.testing.assert_array_equal(hk["t"].values, [0, 10**9, 2 * 10**9])
    assert hk.attrs["unit"] == "K"

    gaps = run.gaps().load()
    assert [str(c) for c in gaps["cause"].values] == ["packet_loss", "pipeline_overrun"]
    assert [str(c) for c in gaps["detail"].values] == ["sequence 17 -> 19", ""]
    np.testing.assert_array_equal(gaps["n_samples"].values, [25, 5])

    sp = run.spectra().load()
    assert sp["psd"].dims == ("update", "channel", "freq") and sp.sizes["update"] == 2
    np.testing.assert_array_equal(sp["psd"].values[1], 2.0)
    np.testing.assert_array_equal(sp["t"].values, [1, 2])


@pytest.mark.parametrize("close", [True, False])
def test_plain_xarray_names_dimensions(writer: RunWriter, close: bool, pat: SimpleNamespace) -> None:
    """Without cryodaq: xarray.open_zarr per group, on a finished (consolidated) and on a running run."""
    _fill(writer, pat)
    writer.commit()
    if close:
        writer.close()
    kw = {} if close else {"consolidated": False}
    st = xr.open_zarr(writer.path, group="stream", **kw)
    assert st["phase"].dims == ("time", "channel")
    assert {"sample_index", "t", "channel", "tone_frequency_hz"} <= set(st.coords)
    ev = xr.open_zarr(writer.path, group="events", **kw)
    assert set(ev.dims) == {"event"}
    assert {"t", "sample_index", "channel", "amplitude", "energy", "baseline", "chi2", "flags"} <= set(ev.variables)
    assert xr.open_zarr(writer.path, group="gaps", **kw)["cause"].values.tolist() == ["packet_loss", "pipeline_overrun"]
    assert xr.open_zarr(writer.path, group="housekeeping/mxc_temperature", **kw)["value"].dims == ("time",)
    assert xr.open_zarr(writer.path, group="spectra", **kw)["psd"].dims == ("update", "channel", "freq")
    root = json.loads((writer.path / "zarr.json").read_text())
    assert (root.get("consolidated_metadata") is not None) == close


def test_uncommitted_appends_are_invisible(writer: RunWriter, pat: SimpleNamespace) -> None:
    writer.append_stream("phase", *pat.stream_block(0, 200))
    writer.append_events(pat.event_batch(0, 7))
    writer.commit()
    writer.append_stream("phase", *pat.stream_block(200, 50))  # buffered, not committed
    writer.append_events(pat.event_batch(7, 3))
    run = open_run(writer.path)
    assert run.status is RunStatus.RUNNING
    assert run.committed("stream") == 200 and run.committed("stream/phase") == 200
    assert run.committed("stream/channel") == pat.N_CH
    assert run.stream("phase").sizes["time"] == 200
    assert run.committed("events") == 7 and run.events().sizes["event"] == 7
    writer.commit()
    assert open_run(writer.path).stream().sizes["time"] == 250
    writer.close()


def test_readers_trust_committed_not_shape(writer: RunWriter, pat: SimpleNamespace) -> None:
    """A shape grown past the committed length (as after a crash mid-append) is cut by readers."""
    writer.append_stream("phase", *pat.stream_block(0, 100))
    writer.commit()
    arr = writer._stream.group["phase"]  # what zarr's append does first: grow the shape
    arr.resize((180, pat.N_CH))
    run = open_run(writer.path)
    assert arr.shape[0] == 180 and run.stream().sizes["time"] == 100
    np.testing.assert_array_equal(run.stream("phase")["phase"].values, pat.stream_block(0, 100)[0])


def test_large_appends_flush_before_commit_but_stay_uncommitted(writer: RunWriter, pat: SimpleNamespace) -> None:
    writer.append_stream("phase", *pat.stream_block(0, 64 * 10))  # > 4 chunks of 64 rows: written at once
    assert writer._stream.group["phase"].shape[0] == 640
    assert open_run(writer.path).committed("stream") == 0
    writer.commit()
    assert open_run(writer.path).committed("stream") == 640


def test_two_variables_share_the_time_axis(writer: RunWriter, pat: SimpleNamespace) -> None:
    writer.declare_stream("dissipation", n_channels=pat.N_CH, sample_rate_hz=pat.RATE, units="rad")
    d, si, t = pat.stream_block(0, 100)
    writer.append_stream("phase", d, si, t)
    writer.commit()
    assert open_run(writer.path).committed("stream") == 0  # dissipation lags: nothing is whole yet
    writer.append_stream("dissipation", -d[:60], si[:60], t[:60])
    writer.commit()
    run = open_run(writer.path)
    assert run.stream_names == ["dissipation", "phase"]
    ds = run.stream().load()
    assert ds.sizes["time"] == 60
    np.testing.assert_array_equal(ds["dissipation"].values, -d[:60])
    np.testing.assert_array_equal(ds["sample_index"].values, si[:60])
    with pytest.raises(ValueError, match="one timebase"):
        writer.declare_stream("adc", n_channels=2, dtype="int16", sample_rate_hz=1e6, units="adu")
    writer.close()


def test_records_and_extra_columns(tmp_path, pat: SimpleNamespace) -> None:
    w = RunWriter.create(tmp_path, station_name="s", station_snapshot={}, config={}, run_id="rec")
    rec = np.arange(2 * 16, dtype=np.float32).reshape(2, 16)
    b = pat.event_batch(0, 2)
    w.append_events({**b, "records": rec, "rise_time_s": np.array([1e-6, 2e-6])},
                    record_presamples=4, record_sample_rate_hz=1e6)
    with pytest.raises(ValueError, match="records"):
        w.append_events({**pat.event_batch(2, 1), "rise_time_s": np.array([1e-6])})
    with pytest.raises(ValueError, match="rise_time_s"):
        w.append_events({**pat.event_batch(2, 1), "records": rec[:1]})
    w.close()
    ev = open_run(w.path).events().load()
    assert ev["records"].dims == ("event", "sample")
    np.testing.assert_array_equal(ev["records"].values, rec)
    assert ev["records"].attrs == {"presamples": 4, "sample_rate_hz": 1e6}
    np.testing.assert_array_equal(ev["rise_time_s"].values, [1e-6, 2e-6])


def test_bad_input_is_refused_with_names(writer: RunWriter, pat: SimpleNamespace) -> None:
    with pytest.raises(KeyError, match="declare_stream"):
        writer.append_stream("adc", *pat.stream_block(0, 3))
    d, si, t = pat.stream_block(0, 3)
    with pytest.raises(ValueError, match="rows"):
        writer.append_stream("phase", d, si[:2], t)
    with pytest.raises(ValueError, match="float"):  # float data into int columns is refused, not truncated
        writer.append_events({**pat.event_batch(0, 2), "channel": np.array([0.5, 1.5])})
    with pytest.raises(ValueError, match="amplitude"):
        writer.append_events({k: v for k, v in pat.event_batch(0, 2).items() if k != "amplitude"})
    writer.append_housekeeping("still", 0, 1.0, "K")
    with pytest.raises(ValueError, match="unit"):
        writer.append_housekeeping("still", 1, 1.0, "mK")
    with pytest.raises(ValueError, match="not valid"):
        writer.append_housekeeping("a/b", 0, 1.0, "K")
    with pytest.raises(FileExistsError, match="already exists"):
        RunWriter.create(writer.path.parent, station_name="x", station_snapshot={}, config={},
                         run_id=writer.path.name.removesuffix(".zarr"))
    writer.close()


def test_context_manager_statuses(tmp_path) -> None:
    def make(run_id: str) -> RunWriter:
        return RunWriter.create(tmp_path, station_name="s", station_snapshot={}, config={}, run_id=run_id)

    with make("ok") as w:
        w.append_housekeeping("x", 0, 1.0, "K")
    with pytest.raises(ZeroDivisionError), make("bad") as w:
        raise ZeroDivisionError("boom")
    with pytest.raises(KeyboardInterrupt), make("ctrlc") as w:
        raise KeyboardInterrupt

    ok, bad, ctrlc = (open_run(tmp_path / f"{n}.zarr") for n in ("ok", "bad", "ctrlc"))
    assert ok.status is RunStatus.COMPLETE and not ok.attrs["interrupted"]
    assert ok.committed("housekeeping/x") == 1 and ok.attrs["ended"] >= ok.attrs["started"]
    assert bad.status is RunStatus.ABORTED and bad.attrs["end_reason"] == "ZeroDivisionError: boom"
    assert ctrlc.status is RunStatus.COMPLETE and ctrlc.attrs["interrupted"] is True


def test_close_is_idempotent_and_final(writer: RunWriter) -> None:
    writer.close()
    writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.append_gap(0, 1, 0, "x")
    w2 = RunWriter.create(writer.path.parent, station_name="bench 1/b", station_snapshot={}, config={})
    assert "-bench_1_b-" in w2.path.name and w2.path.suffix == ".zarr"
    w2.abort(RuntimeError("instrument vanished"))
    assert open_run(w2.path).attrs["end_reason"] == "RuntimeError: instrument vanished"
