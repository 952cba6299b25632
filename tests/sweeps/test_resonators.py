"""The overnight resonator script on the simulated station recovers the simulated world's Qi(T) and fr(T)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryodaq.station import load_station_config
from cryodaq.storage import open_run
from cryodaq.sweeps import run_script
from sim_instruments.world.world import World

REPO = Path(__file__).resolve().parents[2]
STATION = REPO / "stations" / "demo_sweep.yaml"
SCRIPT = REPO / "stations" / "scripts" / "resonator_overnight.py"

# Temperature uncertainty of a point: the mean of two thermometer readings (0.05 % noise each)
# while the PID holds the setpoint; the truth is taken over T_measured ± DT_REL * T.
DT_REL = 1e-3
N_SIGMA = 3.0


def truth_band(world: World, t_k: float, r: int) -> tuple[np.ndarray, np.ndarray]:
    """(fr, Qi) of resonator ``r`` at the two ends of the temperature band, each sorted (lo, hi)."""
    lo, hi = world.resonator_params(t_k * (1 - DT_REL)), world.resonator_params(t_k * (1 + DT_REL))
    return np.sort([lo[0][r], hi[0][r]]), np.sort([lo[1][r], hi[1][r]])


@pytest.mark.timeout(120)
def test_overnight_script_recovers_the_simulated_qi_and_fr_versus_temperature(tmp_path):
    config = load_station_config(STATION)
    temperatures = [0.05, 0.2, 0.27]
    out = run_script(SCRIPT, config, tmp_path, in_process_simulators=True,
                     options={"temperatures_k": temperatures, "powers_dbm": [-30], "hold_time_s": 0.3,
                              "span_hz": 1e6, "points": 401})
    assert out.status == "complete" and not out.interrupted, out.end_reason
    ds = open_run(out.path).dataset("sweeps/resonators")
    assert dict(ds["done"].sizes) == {"temperature_k": 3, "power_dbm": 1, "resonator": 4}
    assert bool(ds["done"].all()) and bool(ds["fit_ok"].all())
    assert ds["s21"].dims == ("temperature_k", "power_dbm", "resonator", "scan_point")

    world = World(config.simulation.world)  # the same world the simulators ran
    fr0, _, qc_true = world.resonator_params(0.0)
    np.testing.assert_allclose(ds["f0_hz"].values, fr0, rtol=2e-6)  # the wide scan found all four
    for it, ip, r in np.ndindex(ds["done"].shape):
        point = ds.isel(temperature_k=it, power_dbm=ip, resonator=r)
        t_meas = float(point["temperature_measured_k"])
        assert t_meas == pytest.approx(temperatures[it], abs=2e-3)
        fr_band, qi_band = truth_band(world, t_meas, r)
        fr, fr_err = float(point["fr_hz"]), float(point["fr_hz_err"])
        qi, qi_err = float(point["Qi"]), float(point["Qi_err"])
        where = f"T={temperatures[it]} K resonator {r}"
        assert fr_band[0] - N_SIGMA * fr_err <= fr <= fr_band[1] + N_SIGMA * fr_err, (where, fr - fr_band)
        assert qi_band[0] - N_SIGMA * qi_err <= qi <= qi_band[1] + N_SIGMA * qi_err, (where, qi / qi_band)
        assert float(point["Qc"]) == pytest.approx(qc_true[r], rel=0.01)
    # the temperature dependence is really there: Qi falls 10x, fr moves down by > 10 ppm
    qi = ds["Qi"].isel(power_dbm=0).values
    fr = ds["fr_hz"].isel(power_dbm=0).values
    assert (qi[2] < 0.15 * qi[0]).all() and ((fr[2] - fr[0]) / fr[0] < -10e-6).all()

    files = {p.name for p in out.results_dir.iterdir()}
    assert {"resonator_fits.csv", "Qi_vs_T.csv", "Qc_vs_T.csv", "fr_vs_T.csv", "Qi_vs_T.png", "Qc_vs_T.png",
            "fr_shift_vs_T.png", "example_fits.png"} <= files
    for png in out.results_dir.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    table = pd.read_csv(out.results_dir / "resonator_fits.csv")
    assert len(table) == 12 and {"temperature_k", "resonator", "fr_hz", "Qi", "Qi_err", "Qc"} <= set(table.columns)
    np.testing.assert_allclose(np.sort(table["Qi"].values), np.sort(ds["Qi"].values.ravel()))
