"""End to end: the two-array station (two boards, two clocks, common muons) -> two runs -> coincide.

A few seconds at raised muon, glitch and photon rates, with an NTP step on array_b's clock. The
figures come from benchmarks/timing.py's ``evaluate`` (the same code that makes the headline
figures of docs/timing.md from a longer run), judged here against looser bounds. The host's time
daemon is stood in for by stored ``chronyc -c tracking`` output (this machine runs none).
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cryodaq.acquisition.session import StreamSession
from cryodaq.storage import open_run, run_info
from cryodaq.timing.clock import ClockModel
from cryodaq.timing.coincidences import coincide
from cryodaq.timing.host_clock import HostClockMonitor, parse_chronyc_tracking
from cryodaq.timing.report import timing_report

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHRONY = "C0A80101,192.168.1.1,3,1718000000.123456789,-0.000250000,-0.000001632,0.000002360,331.898,0.004," \
         "0.154,0.001000000,0.000500000,64.2,Normal\n"  # the host 0.25 ms ahead


def _benchmark():
    spec = importlib.util.spec_from_file_location("timing_benchmark", ROOT / "benchmarks" / "timing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    bench = _benchmark()
    cfg = bench.station_config(muon_flux=900.0, glitch_rate_hz=3.0, photon_rate_hz=1.0, step_s=0.2, step_after_s=1.5)
    cfg = replace(cfg, timing=replace(cfg.timing, host_clock_interval_s=1.0))
    session = StreamSession(cfg, tmp_path_factory.mktemp("runs"), simulate=True)
    session.host_clock = HostClockMonitor(lambda: (parse_chronyc_tracking(CHRONY), "chronyc -c tracking"))
    summary = session.run(3.0)
    result = coincide(summary.paths, 200e-6, label="e2e", workers=0)
    return bench, cfg, summary, result, bench.evaluate(summary.paths, cfg.simulation.world, result)


def test_one_run_per_array_sharing_a_run_group(two_runs):
    _, _, summary, _, _ = two_runs
    assert len(summary.paths) == 2 and summary.status == "complete"
    runs = [open_run(p) for p in summary.paths]
    groups = [r.attrs["run_group"] for r in runs]
    assert groups[0]["id"] == groups[1]["id"] and [g["readout"] for g in groups] == ["array_a", "array_b"]
    assert sorted(groups[0]["runs"]) == sorted(r.run_id for r in runs)
    assert all(st.vetoed > 0 for st in summary.lane_stats.values())  # the progress display's counter


def test_each_run_states_its_time_source_and_the_step_is_a_jump(two_runs):
    _, _, summary, _, fig = two_runs
    for path in summary.paths:
        line = run_info(path).render()
        assert "clock         host_ntp (disciplined), uncertainty 2 ms; fit: drift" in line
        ev = open_run(path).events()
        t = ev["t"].values
        assert np.all(np.diff(t) >= 0), "event times stay monotonic through the step"
        assert np.all(np.isfinite(ev["t_err"].values)) and np.all(ev["t_err"].values >= 2e6 * 0.99)
    clock_b = ClockModel.from_attrs(open_run(summary.paths[1]).attrs["clock"])
    assert len(clock_b.jumps) == 1 and clock_b.jumps[0].size_ns == pytest.approx(0.2e9, abs=100e3)
    assert ClockModel.from_attrs(open_run(summary.paths[0]).attrs["clock"]).jumps == ()
    for c in fig["clocks"]:
        assert c["jitter_fitted_s"] == pytest.approx(c["jitter_true_s"], rel=0.35)
    text, plot = timing_report(summary.paths[1])
    assert re.search(r"jump +\+0\.(19|20)\d* s at sample", text), text
    assert plot is not None and plot.stat().st_size > 1000


def test_coincidences_offset_and_accidentals_against_the_truth(two_runs):
    _, _, _, result, fig = two_runs
    assert fig["muon_coincidences_injected"] >= 5
    assert fig["muon_efficiency"] >= 0.9, fig
    assert fig["offset_found"]
    assert abs(fig["offset_estimated_s"] - fig["offset_true_s"]) < min(fig["jitter_s"]), fig
    assert abs(fig["accidentals"]["pull"]) < 3, result.render()


def test_the_online_veto_flags_glitches_not_isolated_photons(two_runs):
    _, _, summary, _, fig = two_runs
    assert fig["glitch_events"] >= 20 and fig["glitch_veto_efficiency"] >= 0.95, fig
    assert fig["isolated_photons"] >= 20 and fig["photon_veto_fraction"] <= 0.05, fig
    ev = open_run(summary.paths[0]).events()
    flagged = (ev["flags"].values & 8) != 0
    np.testing.assert_array_equal(flagged, ev["multiplicity"].values > 3)  # K = 3 in the station file


def test_the_host_clock_is_logged_as_housekeeping(two_runs):
    _, _, summary, _, _ = two_runs
    for path in summary.paths:
        run = open_run(path)
        offset = run.housekeeping("host_clock_offset")
        assert offset.attrs["unit"] == "s" and np.allclose(offset["value"].values, 250e-6)
        assert np.allclose(run.housekeeping("host_clock_error")["value"].values, 250e-6 + 500e-6 + 1000e-6 / 2)
        host = run.attrs["clock"]["host_clock"]
        assert host["daemon"] == "chrony" and host["readings"] >= 1
