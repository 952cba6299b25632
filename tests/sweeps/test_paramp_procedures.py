"""The paramp procedures on the simulated demo_paramp station, through the ready script
``stations/scripts/paramp_tuneup.py``: the tune-up's gain map matches the simulated JPA's gain, it
picks and applies the best point under the gain cap (or puts flux and pump back), a pump power
beyond the station's limit ends it with nothing beyond the limit sent; the Y-factor sweep over
load × pump × frequency gives the world's noise temperatures, switches the load once, puts pump
and load back, pauses on an interlock and redoes only the interrupted point, and resumes after a
stop without measuring a committed point again.

The truth is ``world.paramp`` (sim_instruments/world/paramp.py) of the run's in-process simulators.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cryodaq.storage import open_run
from cryodaq.sweeps import Condition, SweepControl, run_script
from cryodaq.sweeps.procedures import analyze_paramp_run, yfactor_analysis

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "stations" / "scripts" / "paramp_tuneup.py"
STATION = REPO / "stations" / "demo_paramp.yaml"
FLUX_A, PUMP_HZ, TARGET_HZ, PUMP_DBM = 3.2954e-4, 10.0008e9, 5.0004e9, -20.5
#: a one-point tune-up at the station's operating point, then the Y factor at two frequencies
QUICK = {"flux_currents_a": [FLUX_A], "pump_frequencies_hz": [PUMP_HZ], "pump_powers_dbm": [PUMP_DBM],
         "noise_offsets_hz": [-2e6, 0.0]}
NOISE_FREQS = [TARGET_HZ - 2e6, TARGET_HZ]
Key = tuple[str, bool, float]  # (load, pump on, frequency) of one Y-factor reading, as the world had them


def spy_on_noise_readings(ctx: Any, calls: list[Key], hook: Any = None) -> None:
    """Record every noise reading of the run's paramp with the world's load and pump state at that moment;
    ``hook(calls)`` runs after each record, before the reading."""
    paramp, world = ctx["paramp"], ctx.simulators.world
    reading = paramp.noise_reading

    def spied(freq_hz: float, **kwargs: Any) -> Any:
        state = world.paramp.state
        calls.append((state.load, state.pump_on, float(freq_hz)))
        if hook is not None:
            hook(calls)
        return reading(freq_hz, **kwargs)

    paramp.noise_reading = spied


def check_noise_against_the_world(noise: Any, world: Any) -> None:
    """Y-factor results against the simulated chain: paramp added noise within ±20 % of the world's
    t_added·(1 − 1/G), the following chain (pump off) within ±10 % of T_HEMT, the receiver with the
    pump on within ±10 % (each Y from 201 points x ~14 % per point -> ~1 %); the cold load at the
    mixing chamber, whose zero-point noise dominates at 12 mK and 5 GHz."""
    pa = world.paramp
    assert noise["frequency_hz"].values.tolist() == NOISE_FREQS
    for f in noise["frequency_hz"].values:
        point = noise.sel(frequency_hz=f)
        assert float(point["paramp_added_noise_k"]) == pytest.approx(float(pa.added_noise_k(f)), rel=0.20)
        assert float(point["receiver_noise_off_k"]) == pytest.approx(pa.config.hemt_noise_k, rel=0.10)
        assert float(point["receiver_noise_on_k"]) == pytest.approx(float(pa.noise_temperature_k(f)), rel=0.10)
        assert float(point["gain_db"]) == pytest.approx(float(pa.gain_db(f)), abs=0.5)
        assert float(point["t_cold_k"]) == pytest.approx(world.temperature_k(), rel=0.01)
        assert float(point["t_hot_k"]) == pytest.approx(pa.load_temperature_k("hot"), rel=0.01)
        assert float(point["t_cold_cw_k"]) > float(point["t_cold_k"])
        assert float(point["y_pump_on"]) > float(point["y_pump_off"]) > 1


def check_the_budget(noise: Any, raw: Any, world: Any) -> None:
    """The stored GUM budgets: the station's calibrations went with the raw readings; every measurand has
    u, U = 2u and ν_eff; the world's truth (the demo bench puts 0.55 dB of line loss where the calibration
    says 0.5 ± 0.1 dB) lies within ±U; the shares add up to 1 and the line loss leads, as the demo bench
    makes it; each input's source names its calibration."""
    pa = world.paramp
    assert set(raw.attrs["calibrations"]) >= {"hot_load_temperature", "input_line_loss", "analyzer_linearity"}
    assert raw["noise_power_u_mw"].dims == raw["noise_power_mw"].dims and bool((raw["noise_power_dof"] > 50).all())
    for f in noise["frequency_hz"].values:
        point = noise.sel(frequency_hz=f)
        for name, truth in (("receiver_noise_on_k", float(pa.noise_temperature_k(f))),
                            ("paramp_added_noise_k", float(pa.added_noise_k(f))),
                            ("gain_db", float(pa.gain_db(f)))):
            value, u, big_u = (float(point[name + sfx]) for sfx in ("", "_u", "_U"))
            assert big_u == pytest.approx(2 * u) and u > 0 and float(point[name + "_dof"]) > 10
            assert abs(value - truth) <= big_u, (name, value, truth, big_u)
        shares = point["budget_share"].sel(measurand="receiver_noise_on_k")
        assert float(shares.sum()) == pytest.approx(1.0)
        assert str(shares["input"].values[int(np.argmax(shares.values))]) == "line_loss_db"
    assert noise.attrs["dominant_receiver_noise_on"] == ["line_loss_db"] * noise.sizes["frequency_hz"]
    sources = {d["name"]: d["source"] for d in noise.attrs["inputs"]}
    assert "certificate SIM-2024-117" in sources["t_hot_k"] and "2024-09-12" in sources["t_hot_k"]
    assert sources["p_hot_on"].startswith("scatter")


@pytest.mark.timeout(120)
def test_paramp_tuneup_finds_the_operating_point_and_measures_the_noise(tmp_path):
    worlds, faces, calls = [], [], []
    fluxes = [FLUX_A - 3e-6, FLUX_A, FLUX_A + 3e-6]
    freqs = [PUMP_HZ - 20e6, PUMP_HZ, PUMP_HZ + 20e6]
    powers = [-22.0, -21.0, -20.5, -20.0]

    def ready(ctx: Any) -> None:
        worlds.append(ctx.simulators.world)
        faces.append(ctx.simulators.faces)
        spy_on_noise_readings(ctx, calls)

    out = run_script(SCRIPT, STATION, tmp_path, in_process_simulators=True,
                     options={"flux_currents_a": fluxes, "pump_frequencies_hz": freqs, "pump_powers_dbm": powers,
                              "max_gain_db": 25.0, "noise_offsets_hz": [-2e6, 0.0]},
                     on_ready=ready)
    assert out.status == "complete", out.end_reason
    world = worlds[0]
    pa = world.paramp
    run = open_run(out.path)
    gain = run.dataset("sweeps/paramp_gain_map")
    assert gain["gain_db"].dims == ("flux_current_a", "pump_frequency_hz", "pump_power_dbm")
    truth = np.empty((3, 3, 4))
    for idx in np.ndindex(truth.shape):
        state = replace(pa.state, flux_current_a=fluxes[idx[0]], pump_frequency_hz=freqs[idx[1]],
                        pump_power_dbm=powers[idx[2]], pump_on=True)
        truth[idx] = 10 * np.log10(float(pa.small_signal_gain(TARGET_HZ, state)))
    below_cap = truth <= 25.0  # at -20 dBm the JPA is past its threshold (gain clipped at 35 dB)
    np.testing.assert_allclose(gain["gain_db"].values[below_cap], truth[below_cap], atol=0.5)

    best = gain.attrs["operating_point"]
    i, j, k = np.unravel_index(np.argmax(np.where(below_cap, truth, -np.inf)), truth.shape)
    assert (best["flux_current_a"], best["pump_frequency_hz"], best["pump_power_dbm"]) == (
        fluxes[i], freqs[j], powers[k])
    assert best["gain_db"] == pytest.approx(truth[i, j, k], abs=0.5) and best["gain_db"] <= 25.0
    # applied: the simulated JPA runs at the operating point, pump on
    assert pa.state.pump_on and pa.state.pump_power_dbm == best["pump_power_dbm"]
    assert pa.state.pump_frequency_hz == best["pump_frequency_hz"]
    assert pa.state.flux_current_a == pytest.approx(best["flux_current_a"])

    # the Y factor: raw readings per (load, pump, frequency), slow switches outermost
    raw = run.dataset("sweeps/paramp_yfactor")
    assert raw["noise_power_mw"].dims == ("hot_load", "pump_on", "frequency_hz") and bool(raw["done"].all())
    assert raw["hot_load"].values.tolist() == [True, False] and raw["pump_on"].values.tolist() == [False, True]
    assert raw["s21"].dtype.kind == "c" and (raw["load_temperature_k"].sel(hot_load=True) > 1.0).all()
    assert (raw["noise_power_mw"].sel(hot_load=True) > raw["noise_power_mw"].sel(hot_load=False)).all()
    assert calls == [(load, pump, f) for load in ("hot", "cold") for pump in (False, True) for f in NOISE_FREQS]
    switched = faces[0]["load_switch"].received(r"LOAD:SEL \w")
    assert switched == ["LOAD:SEL HOT", "LOAD:SEL COLD"]  # once there, once back: nothing else touched it
    assert raw.attrs["state_before"] == {"pump_on": True, "load": "cold"}
    assert pa.state.load == "cold" and pa.state.pump_on  # put back

    noise = run.dataset("sweeps/paramp_noise")
    check_noise_against_the_world(noise, world)
    check_the_budget(noise, raw, world)
    # the analysis is a function of the stored readings: redone from the run, it gives the same numbers
    again = analyze_paramp_run(out.path, tmp_path / "again")
    for name in ("paramp_added_noise_k", "receiver_noise_on_k", "receiver_noise_off_k", "gain_db", "y_pump_on"):
        np.testing.assert_allclose(again.noise[name].values, noise[name].values, rtol=1e-12, err_msg=name)
    assert bool(yfactor_analysis(raw)["complete"].all())
    names = {p.name for p in out.results_dir.iterdir()}
    assert {"paramp_gain_map.csv", "paramp_operating_point.csv", "paramp_gain_map.png", "paramp_noise.csv",
            "paramp_noise.png", "paramp_yfactor.csv", "paramp_noise_budget.csv"} <= names
    budget = pd.read_csv(out.results_dir / "paramp_noise_budget.csv")
    assert len(budget) == 2 * noise.sizes["measurand"] * noise.sizes["input"]
    assert {"measurand", "input", "sensitivity", "contribution", "share", "source", "distribution"} <= set(budget.columns)
    table = pd.read_csv(out.results_dir / "paramp_yfactor.csv")
    assert len(table) == 8 and {"load", "pump_on", "frequency_hz", "noise_power_mw", "noise_power_dbm", "s21_db",
                                "load_temperature_k"} <= set(table.columns)
    noise_table = pd.read_csv(out.results_dir / "paramp_noise.csv")
    np.testing.assert_allclose(noise_table["paramp_added_noise_k"], noise["paramp_added_noise_k"].values)


@pytest.mark.timeout(60)
def test_tuneup_without_apply_puts_flux_and_pump_back(tmp_path):
    """apply=False: the best point is recorded, and flux, pump frequency, power and output go back."""
    worlds = []
    out = run_script(SCRIPT, STATION, tmp_path, in_process_simulators=True,
                     options={**QUICK, "flux_currents_a": [FLUX_A + 3e-6], "pump_frequencies_hz": [PUMP_HZ + 20e6],
                              "pump_powers_dbm": [-22.0, -21.5], "apply": False, "noise_offsets_hz": [0.0]},
                     on_ready=lambda ctx: worlds.append(ctx.simulators.world))
    assert out.status == "complete", out.end_reason
    pa = worlds[0].paramp
    gain = open_run(out.path).dataset("sweeps/paramp_gain_map")
    assert gain.attrs["operating_point"]["pump_power_dbm"] == -21.5  # found, not applied
    assert gain.attrs["state_before"] == {"flux_current_a": FLUX_A, "pump_frequency_hz": PUMP_HZ,
                                          "pump_power_dbm": PUMP_DBM, "pump_on": True}
    assert pa.state.pump_on and pa.state.pump_power_dbm == PUMP_DBM and pa.state.pump_frequency_hz == PUMP_HZ
    assert pa.state.flux_current_a == pytest.approx(FLUX_A)


@pytest.mark.timeout(60)
def test_a_pump_power_beyond_the_station_limit_ends_the_tuneup_and_nothing_beyond_it_is_sent(tmp_path):
    """The station limits the pump to [-60, -10] dBm: the grid point at -5 dBm is refused before anything
    is sent, the run aborts naming the limit, and the pump goes back to where it was: only the first grid
    point and the restore reach the source."""
    worlds, pumps = [], []

    def ready(ctx: Any) -> None:
        worlds.append(ctx.simulators.world)
        face = ctx.simulators.faces["pump"]
        pumps.append((face, len(face.received(r"POW\S* -?\d"))))

    out = run_script(SCRIPT, STATION, tmp_path, in_process_simulators=True,
                     options={**QUICK, "pump_powers_dbm": [-15.0, -5.0]}, on_ready=ready)
    assert out.status == "aborted" and "safety limit" in out.end_reason and "pump.power" in out.end_reason
    gain = open_run(out.path).dataset("sweeps/paramp_gain_map")
    assert gain["done"].values.ravel().tolist() == [True, False] and gain.attrs["status"] == "error"
    pa = worlds[0].paramp
    assert pa.state.pump_power_dbm == PUMP_DBM and pa.state.pump_on
    face, n_before = pumps[0]
    sent = face.received(r"POW\S* -?\d")[n_before:]
    assert [s.split()[-1] for s in sent] == ["-15.00", "-20.50"]  # the first grid point, then the restore


@pytest.mark.timeout(60)
def test_the_yfactor_sweep_pauses_on_an_interlock_and_redoes_only_the_interrupted_point(tmp_path):
    """The fridge 'warms up' while (hot load, pump on, target) is measured: the reading is discarded,
    the safe state switches the pump off, and when the interlock clears every axis is set again — the
    point is measured once more, with the pump on; every other point once. The results still match
    the world."""
    worlds, calls, safe = [], [], []
    hot = {"on": False, "polls": 0}
    interrupted: Key = ("hot", True, TARGET_HZ)

    def fridge() -> str | None:
        if not hot["on"]:
            return None
        hot["polls"] += 1
        if hot["polls"] > 3:  # the fridge recovers after three checks
            hot["on"] = False
            return None
        return "mxc 0.5 K above 0.3 K"

    def warm_up(seen: list[Key]) -> None:
        if seen[-1] == interrupted and seen.count(interrupted) == 1:
            hot["on"] = True

    def ready(ctx: Any) -> None:
        worlds.append(ctx.simulators.world)
        spy_on_noise_readings(ctx, calls, warm_up)
        paramp = ctx["paramp"]
        ctx.add_interlock(Condition("fridge", fridge, safe_state=[lambda: paramp.pump_on(False),
                                                                   lambda: safe.append(paramp.pump_on())]))

    out = run_script(SCRIPT, STATION, tmp_path, in_process_simulators=True, options=QUICK, on_ready=ready,
                     sweep_defaults={"poll_s": 0.01})
    assert out.status == "complete" and not out.interrupted, out.end_reason
    counts = Counter(calls)
    assert counts[interrupted] == 2 and len(counts) == 8
    assert all(n == 1 for key, n in counts.items() if key != interrupted)  # redone with the pump on again
    assert safe == [False]  # the safe state ran once and switched the pump off
    run = open_run(out.path)
    pauses = run.dataset("sweeps/paramp_yfactor/pauses")
    assert pauses.sizes["pause"] == 1 and str(pauses["source"].values[0]) == "fridge"
    assert int(pauses["point"][0]) == 3  # flat index of (hot, pump on, second frequency)
    assert "0.5 K" in str(pauses["reason"].values[0])
    assert bool(run.dataset("sweeps/paramp_yfactor")["done"].all())
    check_noise_against_the_world(run.dataset("sweeps/paramp_noise"), worlds[0])
    assert worlds[0].paramp.state.load == "cold" and worlds[0].paramp.state.pump_on


@pytest.mark.timeout(90)
def test_the_yfactor_sweep_resumes_after_a_stop_without_measuring_a_committed_point_again(tmp_path):
    """Stopped (as Ctrl-C without a terminal) after three readings: the run closes complete-but-interrupted
    with three points committed and pump and load put back; resumed, it measures exactly the five others,
    once each, and the results match the world."""
    worlds, first, second = [], [], []
    control = SweepControl(interactive=False, notify=lambda msg: None)

    def stop_after_three(seen: list[Key]) -> None:
        if len(seen) == 3:
            control.request_stop("night over")

    def ready(calls: list[Key], hook: Any = None) -> Any:
        def on_ready(ctx: Any) -> None:
            worlds.append(ctx.simulators.world)
            spy_on_noise_readings(ctx, calls, hook)
        return on_ready

    out = run_script(SCRIPT, STATION, tmp_path, in_process_simulators=True, options=QUICK, control=control,
                     on_ready=ready(first, stop_after_three))
    assert out.status == "complete" and out.interrupted and out.exit_code == 130 and "night over" in out.end_reason
    run = open_run(out.path)
    raw = run.dataset("sweeps/paramp_yfactor")
    done = raw["done"].values.copy()
    assert int(done.sum()) == 3 and raw.attrs["status"] == "stopped"
    assert "paramp_noise" not in run.root["sweeps"]  # not analyzed: the sweep did not finish
    assert worlds[0].paramp.state.load == "cold" and worlds[0].paramp.state.pump_on  # put back after the stop

    again = run_script(SCRIPT, STATION, tmp_path, resume=out.path, in_process_simulators=True,
                       on_ready=ready(second))
    assert again.status == "complete" and not again.interrupted and again.resumed, again.end_reason
    keys = [("hot" if raw["hot_load"].values[i] else "cold", bool(raw["pump_on"].values[j]),
             float(raw["frequency_hz"].values[k])) for i, j, k in zip(*np.nonzero(~done))]
    assert sorted(second) == sorted(keys) and len(second) == 5  # each missing point once, none of the others
    assert sorted(first + second) == sorted(set(first + second))
    run = open_run(out.path)
    assert bool(run.dataset("sweeps/paramp_yfactor")["done"].all())
    check_noise_against_the_world(run.dataset("sweeps/paramp_noise"), worlds[1])
    assert worlds[1].paramp.state.load == "cold" and worlds[1].paramp.state.pump_on
