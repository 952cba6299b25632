"""The multi-station world: board clocks, the particles that hit several arrays, the arrays' streams."""

from __future__ import annotations

import numpy as np
import pytest

from sim_instruments.world import World
from sim_instruments.world.board_clock import BoardClock, BoardClockConfig
from sim_instruments.world.particles import GLITCH, MUON, PHOTON

T0 = 1_760_000_000_000_000_000
TWO = {"seed": 4, "cosmics": {"muon_flux_per_cm2_min": 600.0},
       "arrays": {"a": {"z_mm": 0.0, "glitch_rate_hz": 2.0}, "b": {"z_mm": -10.0, "glitch_rate_hz": 2.0}}}


def test_disciplined_stamps_follow_utc_and_free_running_ones_the_counter():
    fs, start = 50_000.0, T0
    disciplined = BoardClock(BoardClockConfig("pps", disciplined=True, offset_s=2e-6, drift_ppm=10.0), fs, start, 1, ())
    counter = BoardClock(BoardClockConfig("board_counter", offset_s=-1e-3, drift_ppm=10.0), fs, start, 1, ())
    n = 50_000 * 100  # 100 s of samples of a crystal 10 ppm fast
    assert disciplined.stamp(n) - start == pytest.approx(100e9 / (1 + 10e-6) + 2e3, abs=1)
    assert counter.stamp(n) - start == pytest.approx(100e9 - 1e6, abs=1)
    assert disciplined.describe() == "pps,UNKNOWN,1"


def test_clock_steps_and_jitter():
    clock = BoardClock(BoardClockConfig("host_ntp", disciplined=True, jitter_s=50e-6, steps=[[1.0, -0.5]]),
                       10_000.0, T0, 2, ())
    stamps = np.array([clock.stamp(k) for k in range(0, 20_000, 100)])
    true = T0 + np.arange(0, 20_000, 100) * 1e5
    err = stamps - true
    assert np.std(err[:100]) == pytest.approx(50e3, rel=0.2)  # before the step: jitter only
    assert np.median(err[100:]) == pytest.approx(-0.5e9, abs=20e3)  # after 1 s: stepped back 0.5 s


def test_bad_clock_settings_are_refused_naming_the_key():
    with pytest.raises(ValueError, match=r"world.arrays.a.clock: .*jitter_s must be >= 0"):
        World({"arrays": {"a": {"clock": {"jitter_s": -1}}}})
    with pytest.raises(ValueError, match=r"world.arrays.a.*unknown key"):
        World({"arrays": {"a": {"pixels": 3}}})


def test_muons_cross_both_arrays_glitches_and_photons_only_one():
    world = World(TWO)
    p = world.particles
    ev = p.events(T0, T0 + 20 * 10**9)
    muons, glitches, photons = (ev[ev["kind"] == k] for k in (MUON, GLITCH, PHOTON))
    both = np.count_nonzero(muons["arrays"] == 0b11)
    assert both > 50 and np.count_nonzero(muons["arrays"] == 0b01) > 0  # some miss the lower array
    assert glitches.size == pytest.approx(2 * 2.0 * 20, rel=0.35)
    assert set(np.unique(glitches["arrays"]).tolist()) <= {1, 2} and set(np.unique(photons["arrays"]).tolist()) <= {1, 2}
    # cos(theta) from cos^2 zenith intensity through a horizontal plane: <cos> = 4/5
    assert np.mean(muons["cos_theta"]) == pytest.approx(0.8, abs=0.03)
    hits = p.hits(T0, T0 + 20 * 10**9)
    per_event = np.bincount(np.unique(hits["event"][hits["kind"] == GLITCH], return_inverse=True)[1])
    assert np.median(per_event) >= 8  # a substrate glitch lights up many pixels
    assert np.all(np.bincount(np.unique(hits["event"][hits["kind"] == PHOTON], return_inverse=True)[1]) == 1)
    # any process rebuilding the world from the same settings gets the same hits
    again = World(TWO).particles.hits(T0 + 3 * 10**9, T0 + 4 * 10**9)
    np.testing.assert_array_equal(again, p.hits(T0 + 3 * 10**9, T0 + 4 * 10**9))


def test_array_stream_is_block_invariant_and_pulses_sit_where_the_hits_are():
    cfg = {**TWO, "arrays": {"a": {"clock": {"drift_ppm": 30.0}, "white_noise_a_per_rthz": 0.0}}}
    world = World(cfg)
    array = world.arrays["a"]
    one = array.new_stream(T0).block(0, 100_000)
    parts = array.new_stream(T0)
    cut = np.concatenate([parts.block(a, 1313) for a in range(0, 100_000, 1313)])[:100_000]
    np.testing.assert_array_equal(one, cut)
    hits = world.particles.hits(T0, T0 + 2 * 10**9, 0)
    big = hits[hits["energy_ev"] > 500]
    clock = parts.clock
    for h in big[:20]:
        s = int(np.ceil(clock.sample_of(np.array([h["t_ns"]]))[0]))
        if s + 5 < 100_000:
            assert one[s - 1, h["channel"]] > one[s + 3, h["channel"]] + 50  # the current drops right after the hit


def test_the_truth_behind_recorded_events_is_matched():
    world = World(TWO)
    hits = world.particles.hits(T0, T0 + 5 * 10**9, 0)
    recorded_t = hits["t_ns"] + 20_000  # a trigger 20 us after each hit
    ids, kinds = world.particles.match(0, recorded_t, hits["channel"])
    assert np.mean(ids == hits["event"]) > 0.97 and np.all(kinds[ids == hits["event"]] == hits["kind"][ids == hits["event"]])
    ids, _ = world.particles.match(0, recorded_t + 10**6, hits["channel"])  # 1 ms off: nothing there
    assert np.mean(ids >= 0) < 0.1
