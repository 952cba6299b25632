"""Records-mode reprocessing: a run with event records but no stream (e.g. imported LJH pulses)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cryodaq.dsp import EventFlag
from cryodaq.errors import StationConfigError
from cryodaq.reprocess import reprocess_run
from cryodaq.storage import RunWriter, open_run

RATE, LENGTH, PRE, SIGMA = 10_000.0, 128, 32, 0.02


def _template() -> np.ndarray:
    t = np.arange(LENGTH - PRE) / RATE
    s = np.exp(-t / 2e-3) - np.exp(-t / 2e-4)
    return np.concatenate([np.zeros(PRE), s / s.max()])


def _write(out: Path, with_noise: bool) -> Path:
    """Pulses of two lines (amplitude 1.0 at 70 %, 1.6) on two channels, plus FORCED noise records."""
    rng = np.random.default_rng(5)
    n = 300
    amp = np.where(rng.random(n) < 0.7, 1.0, 1.6)
    records = amp[:, None] * _template() + rng.normal(0, SIGMA, (n, LENGTH)) + 0.3
    flags = np.zeros(n, np.uint16)
    if with_noise:
        noise = rng.normal(0, SIGMA, (200, LENGTH)) + 0.3
        records = np.concatenate([records, noise])
        flags = np.concatenate([flags, np.full(200, EventFlag.FORCED, np.uint16)])
    m = len(records)
    base = records[:, :PRE].mean(axis=1)
    w = RunWriter.create(out, station_name="records", station_snapshot={}, config={}, catalog=False)
    w.append_events({"t": 1_700_000_000_000_000_000 + np.arange(m) * 10**8, "sample_index": np.arange(m) * 1000,
                     "channel": np.arange(m) % 2 + 5, "amplitude": (records.max(axis=1) - base).astype(np.float32),
                     "baseline": base.astype(np.float32), "flags": flags, "records": records.astype(np.float32)},
                    record_presamples=PRE, record_sample_rate_hz=RATE)
    w.close()
    return w.path


def test_optimal_filter_on_stored_records(tmp_path: Path) -> None:
    path = _write(tmp_path, with_noise=True)
    result = reprocess_run(path, {"optimal_filter": {"energy_lines_ev": [6000.0, 9600.0]}}, label="of",
                           progress=False)
    ds = open_run(path).reprocessed("of").load()
    assert result.n_events == ds.sizes["event"] == 300  # the FORCED noise records are not events
    assert set(ds.tone.values) == {5, 6} and ds.attrs["config"]["source"] == "records"
    of, peak, energy = ds.of_amplitude.values, ds.amplitude.values, ds.energy.values
    line = np.abs(of - 1.0) < 0.2
    assert abs(np.median(of[line]) - 1.0) < 0.01
    assert np.std(of[line]) < 0.8 * np.std(peak[line])  # the filter beats the record maximum
    assert np.std(of[line]) < 1.5 * np.nanmax(ds.of_resolution.values)
    assert abs(np.median(energy[line]) - 6000.0) < 30 and abs(np.median(energy[~line]) - 9600.0) < 50


def test_records_mode_needs_noise_and_refuses_trigger_settings(tmp_path: Path) -> None:
    path = _write(tmp_path, with_noise=False)
    with pytest.raises(StationConfigError, match="optimal_filter.noise_run"):
        reprocess_run(path, {"optimal_filter": {}}, label="x", progress=False)
    with pytest.raises(StationConfigError, match=r"trigger"):
        reprocess_run(path, {"trigger": {"threshold_sigma": 4.0}, "optimal_filter": {}}, label="x", progress=False)
    with pytest.raises(StationConfigError, match="optimal_filter"):
        reprocess_run(path, {}, label="x", progress=False)
    noise_run = _write(tmp_path / "noise", with_noise=True)  # its FORCED records serve as noise
    reprocess_run(path, {"optimal_filter": {"noise_run": str(noise_run)}}, label="with-noise-run", progress=False)
    assert "noise" in open_run(path).reprocessed("with-noise-run").attrs["config"]["optimal_filter"]["noise_from"]
