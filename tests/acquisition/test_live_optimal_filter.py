"""The demo TES station with the live optimal filter (``cryodaq.pipeline.optimal_filter``): every event gets its
filtered value, arrival time, χ², energy and summaries; the filters are stored; reprocessing with the stored
filters reproduces the live values exactly; ``cryodaq analyze`` calibrates and fits the Mn Kα line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cryodaq.acquisition.pipeline import optimal_stage
from cryodaq.acquisition.session import StreamSession
from cryodaq.analysis import analyze_run
from cryodaq.config import ConfigSection, OptimalFilterConfig, PipelineConfig, parse_pipeline
from cryodaq.errors import StationConfigError
from cryodaq.reprocess import reprocess_run
from cryodaq.station import load_station_config
from cryodaq.storage import open_run

ROOT = Path(__file__).resolve().parents[2]
LIVE_COLUMNS = ("of_amplitude", "chi2", "of_delay_s", "energy", "residual_std")


@pytest.fixture(scope="module")
def tes_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    station = load_station_config(ROOT / "stations" / "demo_tes.yaml")
    of = OptimalFilterConfig(min_pulses=8, learn_pulses=12, noise_records=60, energy_lines_ev=(5898.8, 6490.5),
                             template_window=0.1)
    station = replace(station, pipeline=replace(station.pipeline, optimal_filter=of))
    return StreamSession(station, tmp_path_factory.mktemp("live_of"), simulate=True).run(6.0).path


@pytest.mark.slow
def test_live_events_are_filtered_and_the_filters_stored(tes_run: Path) -> None:
    run = open_run(tes_run)
    ev = run.events().load()
    clean = ev["flags"].values == 0
    assert ev.sizes["event"] > 60
    assert ev["records"].attrs["presamples"] == 200 and ev["records"].attrs["sample_rate_hz"] == 1e5
    for col in (*LIVE_COLUMNS, "pretrig_mean", "peak_value", "rise_time_s", "postpeak_deriv", "arrival_t"):
        assert col in ev, col
    assert np.isfinite(ev["of_amplitude"].values[clean]).mean() > 0.9  # the first events were held, then filtered
    filters = run.optimal_filters().load()
    assert sorted(set(filters["channel"].values)) == list(range(8))
    assert filters["template"].dims == ("filter", "sample") and filters["transfer"].dims == ("filter", "freq")
    used = ev["of_filter"].values
    assert set(used[used >= 0]) <= set(range(filters.sizes["filter"]))
    # Mn Kα lies at its energy, and the predicted resolution is the order of the demo TES's (~1 eV)
    e = ev["energy"].values[clean & np.isfinite(ev["energy"].values)]
    ka = e[np.abs(e - 5898.8) < 30]
    assert ka.size > 30 and abs(np.median(ka) - 5898.8) < 3.0
    assert np.all((filters["fwhm_ev"].values[np.isfinite(filters["fwhm_ev"].values)] > 0.3))
    assert run.attrs["pipeline_calibration"]["optimal_filter"]["rows"] == filters.sizes["filter"]


@pytest.mark.slow
def test_reprocessing_with_the_live_filters_reproduces_the_live_values_exactly(tes_run: Path) -> None:
    reprocess_run(tes_run, {"source": "records", "optimal_filter": {"load": "online"}}, label="same-filter",
                  workers=0, progress=False)
    run = open_run(tes_run)
    live = run.events().load()
    rep = run.reprocessed("same-filter").load()
    forced = (live["flags"].values & 4) != 0
    assert rep.sizes["event"] == int((~forced).sum())
    for col in LIVE_COLUMNS:
        a, b = live[col].values[~forced], rep[col].values
        ok = np.isfinite(a)
        assert ok.sum() > 50
        np.testing.assert_array_equal(b[ok], a[ok], err_msg=col)


@pytest.mark.slow
def test_analyze_calibrates_and_fits_mn_kalpha(tes_run: Path) -> None:
    cfg = {"calibration": {"lines": ["MnKAlpha", "MnKBeta"]},
           "fits": [{"line": "MnKAlpha", "window_ev": [5870, 5925], "bin_ev": 0.5}], "plots": False}
    res = analyze_run(tes_run, cfg, label="mn")
    assert sum(c.curve is not None for c in res.channels) >= 4  # a few seconds: ~20 pulses per channel
    ka = res.fit("MnKAlpha")
    assert abs(ka.position - ka.peak_energy) < max(0.5, 4 * ka.position_err)
    assert 0.2 < ka.fwhm < 5.0 and ka.counts.sum() > 50
    assert "mn" in open_run(tes_run).analysis_labels


def test_station_file_section_and_its_errors(tmp_path: Path) -> None:
    sec = ConfigSection("st.yaml", "cryodaq.pipeline", {"optimal_filter": {"learn_pulses": 50, "hold_s": 5}})
    cfg = parse_pipeline(sec)
    assert cfg.optimal_filter.learn_pulses == 50 and cfg.as_dict()["optimal_filter"]["hold_s"] == 5
    assert parse_pipeline(ConfigSection("st.yaml", "cryodaq.pipeline", {"optimal_filter": True})).optimal_filter
    assert parse_pipeline(ConfigSection("st.yaml", "cryodaq.pipeline", {})).optimal_filter is None
    with pytest.raises(StationConfigError, match=r"cryodaq.pipeline.optimal_filter.learn_pulses"):
        parse_pipeline(ConfigSection("st.yaml", "cryodaq.pipeline", {"optimal_filter": {"learn_pulses": 5}}))
    with pytest.raises(StationConfigError, match=r"cryodaq.pipeline.optimal_filter.hold"):
        parse_pipeline(ConfigSection("st.yaml", "cryodaq.pipeline", {"optimal_filter": {"hold": 5}}))
    missing = PipelineConfig(optimal_filter=OptimalFilterConfig(load=str(tmp_path / "nope.zarr")))
    with pytest.raises(StationConfigError, match=r"st\.yaml: cryodaq.pipeline.optimal_filter.load"):
        optimal_stage(missing, 1e5, 2, "st.yaml")
