"""The paramp tune-up script on the simulated demo_paramp station: its gain map matches the simulated
JPA's gain, it picks and applies the best point under the gain cap, and the Y-factor noise
temperatures match the world's added noise."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cryodaq.storage import open_run
from cryodaq.sweeps import run_script

REPO = Path(__file__).resolve().parents[2]
FLUX_A, PUMP_HZ, TARGET_HZ = 3.2954e-4, 10.0008e9, 5.0004e9


@pytest.mark.timeout(120)
def test_paramp_tuneup_finds_the_operating_point_and_measures_the_noise(tmp_path):
    worlds = []
    fluxes = [FLUX_A - 3e-6, FLUX_A, FLUX_A + 3e-6]
    freqs = [PUMP_HZ - 20e6, PUMP_HZ, PUMP_HZ + 20e6]
    powers = [-22.0, -21.0, -20.5, -20.0]
    out = run_script(REPO / "stations" / "scripts" / "paramp_tuneup.py", REPO / "stations" / "demo_paramp.yaml",
                     tmp_path, in_process_simulators=True,
                     options={"flux_currents_a": fluxes, "pump_frequencies_hz": freqs, "pump_powers_dbm": powers,
                              "max_gain_db": 25.0, "noise_offsets_hz": [-2e6, 0.0], "points": 101},
                     on_ready=lambda ctx: worlds.append(ctx.simulators.world))
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
    np.testing.assert_allclose(gain["gain_db"].values[below_cap], truth[below_cap], atol=1.0)

    best = gain.attrs["operating_point"]
    i, j, k = np.unravel_index(np.argmax(np.where(below_cap, truth, -np.inf)), truth.shape)
    assert (best["flux_current_a"], best["pump_frequency_hz"], best["pump_power_dbm"]) == (
        fluxes[i], freqs[j], powers[k])
    assert best["gain_db"] == pytest.approx(truth[i, j, k], abs=1.0) and best["gain_db"] <= 25.0
    # applied: the simulated JPA runs at the operating point, pump on
    assert pa.state.pump_on and pa.state.pump_power_dbm == best["pump_power_dbm"]
    assert pa.state.flux_current_a == pytest.approx(best["flux_current_a"])

    noise = run.dataset("sweeps/paramp_noise")
    for f in noise["frequency_hz"].values:
        point = noise.sel(frequency_hz=f)
        assert float(point["paramp_added_noise_k"]) == pytest.approx(float(pa.added_noise_k(f)), rel=0.2)
        assert float(point["receiver_noise_off_k"]) == pytest.approx(pa.config.hemt_noise_k, rel=0.1)
    names = {p.name for p in out.results_dir.iterdir()}
    assert {"paramp_gain_map.csv", "paramp_operating_point.csv", "paramp_gain_map.png", "paramp_noise.csv",
            "paramp_noise.png"} <= names
