"""The TWPA procedures on the simulated demo_twpa station (a four-wave-mixing TWPA, sim_instruments.world.twpa),
through the ready script ``stations/scripts/twpa_characterisation.py``, on a simulated clock: the gain map,
P1dB over the band and the noise rise against the model; the overnight tune-up holds the band-mean gain
within ±0.5 dB of its target through a night of injected pump drift that would otherwise move it by
several dB — across an interlock pause and a stop and resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cryodaq.storage import open_run
from cryodaq.sweeps import Condition, SweepControl, run_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "stations" / "scripts" / "twpa_characterisation.py"
STATION = REPO / "stations" / "demo_twpa.yaml"
BAND = np.linspace(5.1e9, 5.9e9, 9)
START, INTERVAL, CHECKS, TARGET = 1.8e9, 600.0, 48, 20.0  # a check every 10 minutes for 8 hours
OPTIONS = {"band_points": 9, "map_pump_frequencies_hz": [5.9e9, 6.0e9], "map_pump_powers_dbm": [-10.5, -10.0],
           "compression_frequencies_hz": [5.3e9, 5.7e9], "compression_points": 15, "noise_frequencies_hz": [5.5e9],
           "check_interval_s": INTERVAL, "checks": CHECKS, "target_gain_db": TARGET, "analyze": False}


class FakeClock:
    def __init__(self) -> None:
        self.now = START
        self.on_sleep = None

    def time(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        if self.on_sleep is not None:
            self.on_sleep(self)
        self.now += s


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> dict[str, Any]:
    """A simulated night: pump drift 0.15 dB/h plus a ±0.05 dB wander (3 h); an interlock trips once at 2 h
    (safe state: pump off); the operator stops at 5 h and the run is resumed at once."""
    clock, out = FakeClock(), tmp_path_factory.mktemp("twpa")
    worlds, safe = [], []
    trip = {"at": START + 2 * 3600.0 + 1, "done": False}

    def interlock() -> str | None:
        if not trip["done"] and clock.now >= trip["at"]:
            trip["done"] = True
            return "mixing chamber warm (test)"
        return None

    def ready(ctx: Any) -> None:
        world = ctx.simulators.world  # a resumed session has new simulators: the drift goes on from the night's start
        world.set_clock(clock.time)
        world.paramp.config.pump_drift_db_per_hour = 0.15
        world.paramp.config.pump_wander_db = 0.05
        world.paramp.config.pump_wander_period_s = 3 * 3600.0
        world.paramp.set_drift_time(clock.now - START)
        worlds.append(world)
        ctx.clock, ctx.sleep = clock.time, clock.sleep
        twpa = ctx["twpa"]
        ctx.add_interlock(Condition("fridge", interlock, safe_state=[lambda: twpa.pump_on(False),
                                                                     lambda: safe.append(twpa.pump_on())]))

    control = SweepControl(interactive=False)

    def stop_at_5h(c: FakeClock) -> None:
        if c.now >= START + 5 * 3600.0:
            control.request_stop("stopped at 5 h (test)")
            clock.on_sleep = None

    clock.on_sleep = stop_at_5h
    first = run_script(SCRIPT, STATION, out, in_process_simulators=True, options=OPTIONS, on_ready=ready,
                       control=control, sweep_defaults={"poll_s": 0.0})
    assert first.status == "complete" and first.interrupted, first.end_reason
    resumed = run_script(SCRIPT, STATION, out, resume=first.path, in_process_simulators=True, on_ready=ready,
                         sweep_defaults={"poll_s": 0.0})
    assert resumed.status == "complete" and not resumed.interrupted, resumed.end_reason
    return {"path": resumed.path, "worlds": worlds, "clock": clock, "safe": safe}


def true_band_gain(pa: Any, clock: FakeClock, t: float, source_dbm: float, pump_hz: float = 6.0e9) -> float:
    """The band-mean of 10 log10(|S21 on|²/|S21 off|²) the world gives at time t for a pump at the source."""
    now, clock.now = clock.now, t
    try:
        pump_mw = 10 ** ((source_dbm - pa.config.pump_attenuation_db + pa.pump_drift_db()) / 10)
    finally:
        clock.now = now
    on = pa.twpa.s21(BAND, pump_hz, pump_mw, 1e-13)
    off = pa.twpa.s21(BAND, pump_hz, 0.0, 1e-13)
    return float(np.mean(10 * np.log10(np.abs(on) ** 2 / np.abs(off) ** 2)))


def test_the_overnight_tune_up_holds_the_gain_against_the_pump_drift(night):
    run = open_run(night["path"])
    hold = run.dataset("sweeps/twpa_hold")
    pa, clock = night["worlds"][-1].paramp, night["clock"]
    assert bool(hold["done"].all()) and hold.sizes["check"] == CHECKS
    t = hold["t_s"].values
    np.testing.assert_allclose(t, hold.attrs["schedule_start_s"] + INTERVAL * np.arange(CHECKS), atol=1e-6)
    power = hold["pump_power_dbm"].values
    # the truth between checks: the pump power held since the last check, the drift as the night goes on
    worst = 0.0
    for i in range(CHECKS):
        for tt in np.linspace(t[i], t[i] + INTERVAL, 11)[:-1]:
            worst = max(worst, abs(true_band_gain(pa, clock, tt, power[i]) - TARGET))
    assert worst <= 0.5, worst
    # without re-tuning, the drift would have moved the gain by several dB
    unheld = [true_band_gain(pa, clock, tt, power[0]) for tt in t]
    assert max(abs(g - TARGET) for g in unheld) > 3.0
    assert int(hold["retuned"].sum()) >= 8 and power[-1] < power[0] - 0.8  # the pump followed the drift down
    assert np.all(np.abs(hold["gain_db"].values - TARGET) <= 0.3)  # measured after each check
    # the interlock paused the hold once, its safe state switched the pump off, and the check was redone
    pauses = run.dataset("sweeps/twpa_hold/pauses")
    assert pauses.sizes["pause"] == 1 and str(pauses["source"].values[0]) == "fridge"
    assert night["safe"] == [False]
    # stopped at 5 h, resumed from the last held power: both sessions are in the run
    assert len(run.attrs["resumes"]) == 1
    tune = run.dataset("sweeps/twpa_tune")
    assert tune.attrs["found_pump_power_dbm"] == pytest.approx(-10.0, abs=0.1)


def test_gain_map_compression_and_noise_rise_against_the_model(night):
    run = open_run(night["path"])
    pa = night["worlds"][0].paramp
    gain_map = run.dataset("sweeps/twpa_gain_map")
    assert gain_map["gain_db"].dims == ("pump_frequency_hz", "pump_power_dbm", "frequency_hz")
    for fp in gain_map["pump_frequency_hz"].values:  # measured before the night began: no drift yet
        for pp in gain_map["pump_power_dbm"].values:
            measured = float(gain_map["mean_gain_db"].sel(pump_frequency_hz=fp, pump_power_dbm=pp))
            assert measured == pytest.approx(true_band_gain(pa, night["clock"], START, pp, fp), abs=0.3)
    at = gain_map.sel(pump_frequency_hz=6.0e9, pump_power_dbm=-10.0)
    assert float(at["mean_gain_db"]) == pytest.approx(TARGET, abs=0.5)  # phase matched at 6 GHz, -60 dBm
    assert 0.05 < float(at["ripple_db"]) < 1.0  # the line's end reflections, amplified once
    comp = run.dataset("sweeps/twpa_compression")
    for f in comp["frequency_hz"].values:  # the state of the world when compression was measured: pump -10 dBm
        assert float(comp["p1db_input_dbm"].sel(frequency_hz=f)) == pytest.approx(_p1db_at(pa, night["clock"], f),
                                                                                  abs=1.0)
    from cryodaq.sweeps.procedures.twpa import noise_rise_analysis

    noise = noise_rise_analysis(run.dataset("sweeps/twpa_noise_rise"))
    rise, snr = float(noise["noise_rise_db"][0]), float(noise["snr_improvement_db"][0])
    assert 8 < rise < float(noise["gain_db"][0]) and snr > 5
    assert float(noise["snr_improvement_db_U"][0]) > 0


def _p1db_at(pa: Any, clock: FakeClock, f: float) -> float:
    """The world's P1dB at f as the compression sweep saw it: pump 6 GHz, -10 dBm, before the night's drift."""
    from dataclasses import replace

    state, now = pa.state, clock.now
    pa._state, clock.now = replace(state, pump_frequency_hz=6.0e9, pump_power_dbm=-10.0, pump_on=True), START  # noqa: SLF001
    try:
        return pa.p1db_dbm(f)
    finally:
        pa._state, clock.now = state, now  # noqa: SLF001


def test_the_report_of_the_night(night, tmp_path):
    from cryodaq.report import validate_report, write_report

    info = write_report(night["path"], tmp_path / "twpa-report")
    validate_report(info.report)
    results = {r["id"]: r for r in info.report["results"]}
    assert info.report["subject"]["kinds"] == ["twpa"]
    assert results["twpa/hold.max_deviation_at_checks_db[target_gain_db=20]"]["value"] <= 0.5
    snr = results["twpa/snr_improvement_db[frequency_hz=5.5e+09]"]
    assert snr["expanded_uncertainty"] > 0 and snr["coverage_factor"] == 2.0
    assert {"twpa_hold.png", "twpa_gain_map.png", "twpa_compression.png", "twpa_noise_rise.png"} <= {
        p.name for p in (tmp_path / "twpa-report" / "procedures").iterdir()}
    traces = {r["figure"] for r in info.report["distributions"]["timetraces"]}
    assert "twpa_hold.gain_before_db" in traces
