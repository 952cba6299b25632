"""The clock model: offset + drift fitted from noisy stamps, jitter measured, jumps recorded not followed."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.readout.source import TimeBase
from cryodaq.timing.clock import ANCHOR_OUTLIER, ClockModel, ClockTracker

FS = 100_000.0
T0 = 1_750_000_000_000_000_000
BLOCK = 2048  # samples between anchors


def _stamps(n_blocks: int, *, offset_ns: float = 0.0, drift_ppm: float = 0.0, jitter_ns: float = 0.0,
            seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sample index, stamp, true UTC) of a board whose samples come ``drift_ppm`` fast, stamped by a
    disciplined clock ``offset_ns`` off UTC with ``jitter_ns`` RMS noise."""
    n = np.arange(n_blocks, dtype=np.int64) * BLOCK
    true = T0 + n * (1e9 / FS) / (1 + drift_ppm * 1e-6)
    noise = np.random.default_rng(seed).normal(0.0, jitter_ns, n.size) if jitter_ns else 0.0
    return n, np.rint(true + offset_ns + noise).astype(np.int64), true


def _track(n: np.ndarray, t: np.ndarray, **kw) -> ClockTracker:
    tracker = ClockTracker(FS, TimeBase("host_ntp", disciplined=True), **kw)
    for a, b in zip(n.tolist(), t.tolist(), strict=True):
        tracker.observe(a, b)
    return tracker


def test_offset_drift_and_jitter_are_fitted():
    n, t, true = _stamps(3000, offset_ns=1.5e6, drift_ppm=2.5, jitter_ns=40e3)
    model = _track(n, t).model()
    seg = model.segments[0]
    drift_sd_ppm = np.sqrt(seg.slope_var) / seg.ns_per_sample * 1e6
    assert 0.02 < drift_sd_ppm < 0.1  # ~ jitter / (span sqrt(N/12))
    assert model.drift_ppm == pytest.approx(2.5, abs=4 * drift_sd_ppm)
    assert seg.jitter_ns == pytest.approx(40e3, rel=0.05)
    # the model is the clock, not the noisy stamps: it sits at true + offset far better than the jitter
    err = model.utc_ns(n) - (true + 1.5e6)
    assert np.abs(err).max() < 5e3
    # and says so: the line's uncertainty is ~ jitter / sqrt(N) in the middle, not the jitter
    mid = seg.line_uncertainty_ns(n[n.size // 2])
    assert 40e3 / np.sqrt(n.size) * 0.8 < mid < 40e3 / np.sqrt(n.size) * 1.5
    # absolute uncertainty: the host NTP source's 10 ms dominates
    assert model.uncertainty_ns(n[:1])[0] == pytest.approx(10e6, rel=1e-3)


def test_a_perfect_counter_maps_exactly():
    """Stamps of a nominal-rate counter (today's simulated boards) come back to the nanosecond."""
    n = np.arange(0, 500 * 4096, 4096, dtype=np.int64)
    t = T0 + np.rint(n * (1e9 / 2.048e6)).astype(np.int64)
    tracker = _track(n, t)
    idx = np.arange(0, n[-1], 977)
    expected = T0 + np.rint(idx * (1e9 / 2.048e6)).astype(np.int64)
    assert np.abs(tracker.utc_ns(idx) - expected).max() <= 1
    assert tracker.model().jitter_ns < 1.0


def test_few_anchors_keep_the_nominal_slope():
    """Two close, noisy stamps do not make a wild drift: the prior keeps the slope near nominal."""
    n, t, _ = _stamps(2, jitter_ns=50e3)
    model = _track(n, t).model()
    assert abs(model.drift_ppm) < 100


def test_an_ntp_step_is_a_recorded_jump_and_times_stay_monotonic():
    n, t, true = _stamps(1200, offset_ns=0.0, jitter_ns=20e3)
    step_at, step = 700, -500_000_000  # the host clock is stepped back by 0.5 s
    t = t.copy()
    t[step_at:] += step
    tracker = ClockTracker(FS, TimeBase("host_ntp", disciplined=True))
    mapped = []
    for k, (a, b) in enumerate(zip(n.tolist(), t.tolist(), strict=True)):
        tracker.observe(a, b)
        mapped.append(tracker.utc_ns(np.arange(a, a + BLOCK, 256)))  # what the pipeline asks
    times = np.concatenate(mapped)
    assert np.all(np.diff(times) > 0), "event times must never go back"
    model = tracker.model()
    assert len(model.jumps) == 1
    jump = model.jumps[0]
    assert jump.sample_index == n[step_at]
    # the step is fitted from all 500 anchors after it (a common slope, one level per side of the
    # step), not guessed from the 3 that revealed it: known to ~ 20 us * sqrt(1/700 + 1/500)
    assert jump.size_ns == pytest.approx(step, abs=5e3)
    assert model.drift_ppm == pytest.approx(0.0, abs=4 * np.sqrt(model.segments[0].slope_var) / 1e4 * 1e6)
    # times after the step stay in the clock the run began with
    assert np.abs(model.utc_ns(n[-1:]) - true[-1:]).max() < 20e3
    # the stamps with the jump taken out are what the line fits
    cont = model.continuous_stamps(n, t)
    assert np.abs(cont - true).max() < 200e3


def test_a_single_wild_stamp_is_an_outlier_not_a_jump():
    n, t, true = _stamps(300, jitter_ns=1e3)
    t = t.copy()
    t[150] += 300_000_000
    tracker = _track(n, t)
    model = tracker.model()
    assert model.jumps == ()
    assert model.n_outliers == 1
    assert tracker.anchors()["status"][150] == ANCHOR_OUTLIER
    assert np.abs(model.utc_ns(n) - true).max() < 2e3


def test_a_counter_restart_starts_a_new_segment():
    n1, t1, _ = _stamps(100)
    n2 = n1[:50].copy()
    t2 = t1[-1] + 10_000_000 + np.rint(n2 * 1e9 / FS).astype(np.int64)
    tracker = _track(np.concatenate([n1, n2]), np.concatenate([t1, t2]))
    model = tracker.model()
    assert len(model.segments) == 2
    # the same sample index means two times; the stored time picks the segment
    got = model.utc_ns(np.array([1000, 1000]), t_hint=np.array([t1[0] + 10**7, t2[0] + 10**7]))
    assert abs(int(got[0]) - (int(t1[0]) + 1000 * 10_000)) <= 2
    assert abs(int(got[1]) - (int(t2[0]) + 1000 * 10_000)) <= 2


def test_the_model_round_trips_through_run_attrs():
    n, t, _ = _stamps(200, jitter_ns=10e3, drift_ppm=-3.0)
    t = t.copy()
    t[120:] += 2_000_000_000
    tracker = _track(n, t)
    tracker.host_clock = {"daemon": "chrony", "offset_s": 1e-4}
    model = tracker.model()
    again = ClockModel.from_attrs(model.as_attrs())
    assert again == model
    assert "clock jump" in again.describe() and "host_ntp (disciplined)" in again.describe()


def test_runs_from_before_the_model_read_as_unfitted():
    model = ClockModel.from_attrs({"source": "host system clock", "uncertainty_s": None})
    assert not model.fitted and model.source == "host_utc"
    assert "no fitted model" in model.describe()


def test_undisciplined_counters_grow_their_uncertainty_with_time():
    tracker = ClockTracker(FS, TimeBase("board_counter"))
    for k in range(10):
        tracker.observe(k * BLOCK, T0 + round(k * BLOCK * 1e9 / FS))
    model = tracker.model()
    one_hour = int(3600 * FS)
    early, late = model.uncertainty_ns(np.array([0, one_hour]))
    assert early == pytest.approx(10e6, rel=1e-3)  # the host clock it was set from
    assert late == pytest.approx(np.hypot(10e6, 20e-6 * 3600e9), rel=1e-2)  # + 20 ppm for an hour


def test_pps_edges_anchor_whole_seconds():
    tracker = ClockTracker(FS, TimeBase("pps", disciplined=True))
    tracker.observe_pps(0.0, coarse_t_ns=T0 + 300_000_000)  # the host says 0.3 s past the second
    for sec in range(1, 20):
        tracker.observe_pps(sec * FS * (1 + 1e-6))  # edges every second of a 1 ppm fast counter
    model = tracker.model()
    assert model.drift_ppm == pytest.approx(1.0, abs=1e-3)
    assert abs(int(model.utc_ns(np.array([5 * FS * (1 + 1e-6)]))[0]) - (T0 + 5 * 10**9)) <= 1


def test_each_series_of_times_never_goes_back_as_the_fit_moves():
    """Events come out a block or two after their samples, mapped by a fit that has moved since:
    their times still keep the order of their sample indices."""
    n, t, _ = _stamps(60, jitter_ns=200e3, seed=7)  # very noisy stamps: the early fit moves a lot
    tracker = ClockTracker(FS, TimeBase("host_ntp", disciplined=True))
    events = []
    for k, (a, b) in enumerate(zip(n.tolist(), t.tolist(), strict=True)):
        tracker.observe(a, b)
        tracker.utc_ns(np.arange(a, a + BLOCK, 512))  # the block's samples
        if k:  # events of the previous block, one sample apart, mapped now
            events.append(tracker.utc_ns(np.arange(a - BLOCK, a, 1), "events"))
    assert np.all(np.diff(np.concatenate(events)) >= 0)
