"""IQ-loop calibration sweep through the board: circle geometry vs the simulated resonators, resolved photon lines."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from cryodaq.acquisition.session import StreamSession
from cryodaq.errors import StationConfigError
from cryodaq.station import load_station_config
from cryodaq.storage import open_run
from sim_instruments.world.world import World

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "stations" / "demo_mkid.yaml"


def _demo(method: str):
    cfg = load_station_config(DEMO)
    cal = dataclasses.replace(cfg.pipeline.calibration, method=method)
    return dataclasses.replace(cfg, pipeline=dataclasses.replace(cfg.pipeline, calibration=cal))


def _line_ratio(amp: np.ndarray) -> tuple[float, float, float]:
    """Split amplitudes halfway between their 10th and 90th percentiles: (low median, high median, high fraction)."""
    lo, hi = np.percentile(amp, [10, 90])
    cut = 0.5 * (lo + hi)
    return float(np.median(amp[amp < cut])), float(np.median(amp[amp >= cut])), float(np.mean(amp >= cut))


def test_calibration_section_is_validated(tmp_path):
    text = DEMO.read_text().replace("    trigger:\n", "    calibration: {method: loop_sweep, points: 20}\n    trigger:\n", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(StationConfigError, match="calibration.points"):
        load_station_config(bad)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("loop_runs")
    return {m: StreamSession(_demo(m), out, simulate=True, run_id=m).run(d).path
            for m, d in (("loop_sweep", 4.0), ("baseline", 3.0))}


@pytest.mark.slow
def test_stored_loop_sweep_matches_the_simulated_resonators(runs):
    cfg = _demo("loop_sweep")
    run = open_run(runs["loop_sweep"])
    sweep = xr.open_zarr(runs["loop_sweep"], group="sweeps/iq_loop")
    assert sweep["i"].dims == ("offset_hz", "channel")
    cal = run.attrs["pipeline_calibration"]
    assert cal["iq_calibration"] == "loop_sweep"
    centre = np.asarray(cal["centre_i"]) + 1j * np.asarray(cal["centre_q"])
    radius = np.asarray(cal["radius"])
    # notch loop: |centre| = a(1 - r/2), radius = a r/2  =>  r = Ql/Qc = 2 R / (|c| + R)
    world = World(cfg.simulation.world)
    fr, qi, qc = world.resonator_params(world.config.fridge.t_base_k)
    ql_over_qc = (1.0 / (1.0 / qi + 1.0 / qc)) / qc
    np.testing.assert_allclose(2 * radius / (np.abs(centre) + radius), ql_over_qc, rtol=0.1)
    # the operating point (offset 0) lies on its circle, at the stored rotation
    z = sweep["i"].values + 1j * sweep["q"].values
    z_op = z[np.flatnonzero(sweep["offset_hz"].values == 0)[0]]
    np.testing.assert_allclose(np.abs(z_op - centre) / radius, 1.0, atol=0.05)
    np.testing.assert_allclose(np.angle(z_op - centre), cal["rotation_rad"], atol=1e-9)
    # the tones were put back where they were
    np.testing.assert_allclose(sweep.attrs["tones_rf_hz"], run.attrs["station"]["snapshot"]["instruments"]["readout"]
                               ["parameters"]["tone_frequencies"]["value"], atol=1e-3)
    assert sweep.attrs["duration_s"] > 0


@pytest.mark.slow
def test_loop_calibration_resolves_both_photon_lines(runs):
    for method, two_lines in (("loop_sweep", True), ("baseline", False)):
        ev = xr.open_zarr(runs[method], group="events")
        amp, ch = ev["amplitude"].values, ev["channel"].values
        for k in range(8):
            a = amp[ch == k]
            assert a.size >= 20, (method, k, a.size)
            low, high, frac_high = _line_ratio(a)
            assert low > 0, (method, k, low)  # polarity 1: pulses are positive phase excursions
            if two_lines:  # 1.55 eV and 3.1 eV lines, 70 % / 30 % of photons
                assert high / low > 1.3 and 0.1 < frac_high < 0.55, (k, low, high, frac_high)
            else:  # phase about the IQ origin saturates: one line
                assert high / low < 1.3, (k, low, high)
