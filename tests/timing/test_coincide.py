"""The coincidence builder on synthetic runs: offsets from the coincidence peak, groups, accidentals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryodaq.cli import main as cli_main
from cryodaq.readout.source import TimeBase
from cryodaq.storage import RunWriter, open_run
from cryodaq.timing.clock import ClockTracker
from cryodaq.timing.coincidences import coincide, count_off_time, estimate_offset

T0 = 1_760_000_000_000_000_000
FS = 100_000.0


def _poisson(rng: np.random.Generator, rate: float, span_s: float) -> np.ndarray:
    return np.sort(rng.integers(0, int(span_s * 1e9), rng.poisson(rate * span_s)))


def test_offset_and_drift_come_from_the_coincidence_peak():
    rng = np.random.default_rng(3)
    span = 600.0
    common = _poisson(rng, 2.0, span)  # events both stations see
    a = np.sort(np.concatenate([common, _poisson(rng, 20.0, span)]))
    offset_ns, drift = 2.5e6, 5e-6  # station B's clock: 2.5 ms ahead, running 5 ppm fast
    b_true = np.concatenate([common, _poisson(rng, 20.0, span)])
    b = np.sort(np.rint(b_true + offset_ns + drift * (b_true - span / 2 * 1e9) +
                        rng.normal(0, 20e3, b_true.size)).astype(np.int64))
    smeared = estimate_offset(a, b, window_ns=200e3, search_ns=10e6)  # 5 ppm x 600 s: 3 ms >> the window
    assert not smeared.found or smeared.n_pairs < 0.5 * common.size
    est = estimate_offset(a, b, window_ns=200e3, search_ns=10e6, max_drift_ppm=20.0)
    assert est.found and est.n_pairs > 0.9 * common.size
    assert est.offset_s * 1e9 == pytest.approx(offset_ns + drift * (est.t_mid_ns - span / 2 * 1e9), abs=4 * est.error_s * 1e9)
    assert est.error_s < 2e-6
    assert est.drift_applied and est.drift_ppm == pytest.approx(5.0, abs=4 * est.drift_error_ppm)
    alone = estimate_offset(a, np.sort(_poisson(rng, 20.0, span)), window_ns=200e3, search_ns=10e6)
    assert not alone.found and "by chance" in alone.note


def _write_run(out, name: str, sample_index: np.ndarray, channel: np.ndarray, *, offset_ns: int = 0,
               jitter_ns: float = 0.0, seed: int = 0):
    """A closed run whose events sit at ``sample_index`` (100 kS/s) with a clock fitted to stamps
    ``offset_ns`` off, ``jitter_ns`` noisy (one every 2048 samples)."""
    rng = np.random.default_rng(seed)
    clock = ClockTracker(FS, TimeBase("host_ntp", uncertainty_s=2e-3, disciplined=True))
    for n in range(0, int(sample_index.max()) + 4096, 2048):
        clock.observe(n, int(T0 + offset_ns + n * 1e4 + rng.normal(0, jitter_ns)))
    order = np.lexsort((channel, sample_index))
    si, ch = sample_index[order], channel[order]
    with RunWriter.create(out, station_name="synthetic", station_snapshot={}, config={}, run_id=name,
                          catalog=False) as w:
        w.append_events({"t": clock.utc_ns(si), "sample_index": si, "channel": ch,
                         "amplitude": np.ones(si.size, np.float32)})
        w.write_clock(clock.model().as_attrs(), clock.anchors())
    return w.path


@pytest.fixture(scope="module")
def channel_run(tmp_path_factory):
    """One run, 8 channels: independent photons (30 Hz each) and bursts hitting 5 channels (2 Hz)."""
    rng = np.random.default_rng(11)
    span = 60.0
    idx, ch = [], []
    for c in range(8):
        t = _poisson(rng, 30.0, span)
        idx.append(t // 10_000)
        ch.append(np.full(t.size, c))
    bursts = _poisson(rng, 2.0, span) // 10_000
    for b in bursts:
        hit = rng.choice(8, 5, replace=False)
        idx.append(b + rng.integers(0, 3, 5))
        ch.append(hit)
    path = _write_run(tmp_path_factory.mktemp("runs"), "channels", np.concatenate(idx).astype(np.int64),
                      np.concatenate(ch).astype(np.int32))
    return path, bursts.size


def test_channels_of_one_run_accidentals_expected_equal_measured(channel_run):
    path, n_bursts = channel_run
    result = coincide([path], 100e-6, label="bursts", workers=0, off_time=20)
    assert result.units == "channels" and result.offsets == []
    assert result.multiplicity.get(5, 0) + result.multiplicity.get(6, 0) + result.multiplicity.get(7, 0) >= n_bursts - 2
    a = result.accidentals
    assert a.expected_hz > 1.0 and a.off_time_counts > 1000  # 28 channel pairs x (30 Hz)^2 x 2 x 100 us
    assert abs(a.pull) < 3, result.render()
    # what was written: one row per coincidence group, the members alongside
    ds = open_run(path).reprocessed("bursts")
    assert ds.sizes["group"] == result.n_coincidences
    assert int(ds["n_units"].min()) >= 2 and ds.sizes["member"] == int(ds["n_events"].sum())
    assert np.all(np.diff(ds["t"].values) > 0)
    assert ds.attrs["accidentals"]["expected_hz"] == pytest.approx(a.expected_hz)


def test_off_time_counting_breaks_true_coincidences():
    t = np.arange(0, 10**10, 10**8, dtype=np.int64)  # 100 events, each seen by both units at once
    spans = [(0, 10**10), (0, 10**10)]
    assert count_off_time([t, t], spans, 1e3, 0.0)[0] == 100
    n, seconds = count_off_time([t, t], spans, 1e3, 1e6)  # shifted by 1 ms: nothing left
    assert n == 0 and seconds == pytest.approx(10.0, abs=0.01)


def test_two_runs_with_offset_clocks_on_dask(tmp_path):
    """Two stations: B's stamps 3 ms ahead and 30 us noisy; common events at 5 Hz; read and counted on Dask."""
    distributed = pytest.importorskip("distributed")
    rng = np.random.default_rng(5)
    span = 40.0
    common = _poisson(rng, 5.0, span) // 10_000
    a = np.concatenate([common, _poisson(rng, 10.0, span) // 10_000])
    b = np.concatenate([common + 7, _poisson(rng, 10.0, span) // 10_000])  # and 70 us later in B's samples
    pa = _write_run(tmp_path, "a", a, np.zeros(a.size, np.int32), seed=1)
    pb = _write_run(tmp_path, "b", b, np.ones(b.size, np.int32), offset_ns=3_000_000, jitter_ns=30e3, seed=2)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as lc, \
            distributed.Client(lc) as client:
        on_dask = coincide([pa, pb], 200e-6, scheduler=client, label="dask")
    local = coincide([pa, pb], 200e-6, workers=0, label="local")
    assert on_dask.workers == 1
    est = on_dask.offsets[0]
    assert est.found and abs(est.offset_s - (3e-3 + 70e-6)) < 4 * max(est.error_s, 5e-6)
    assert on_dask.n_coincidences == local.n_coincidences and on_dask.accidentals == local.accidentals
    run = open_run(pa)
    groups = run.reprocessed("dask")
    np.testing.assert_array_equal(groups["member_event"].values, run.reprocessed("local")["member_event"].values)
    # every common event is in a coincidence (two may share a group when they fall within a window)
    in_a = groups["member_event"].values[groups["member_run"].values == 0]
    assert set(common.tolist()) <= set(run.events()["sample_index"].values[in_a].tolist())


def test_the_command_line_writes_the_group_and_the_figures(channel_run, tmp_path, capsys):
    path, _ = channel_run
    out = tmp_path / "figures.json"
    rc = cli_main(["coincide", str(path), "--window", "100e-6", "--label", "cli", "--workers", "0",
                   "--output", str(out)])
    assert rc == 0
    assert capsys.readouterr().out.strip() == f"{path}/reprocessed/cli"
    figures = json.loads(out.read_text())
    assert figures["units"] == "channels" and figures["n_coincidences"] > 0 and "pull" in figures["accidentals"]


def test_bad_input_is_refused_clearly(channel_run, tmp_path):
    path, _ = channel_run
    with pytest.raises(ValueError, match="window must be > 0"):
        coincide([path], 0.0)
    with pytest.raises(ValueError, match="twice"):
        coincide([path, path], 1e-4, workers=0)
    with pytest.raises(SystemExit):
        cli_main(["coincide", str(path), "--window", "fast"])
