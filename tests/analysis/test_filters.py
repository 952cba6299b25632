"""The shared optimal filter on real detector noise: a filter built from half of the 610 µMUX noise records
predicts the spread of the other half's filtered values; a pulse slipped into the noise is cut."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.analysis import learn_channel_filter
from cryodaq.analysis.filters import noise_psd, quiet_records
from cryodaq.config import OptimalFilterConfig
from cryodaq.dsp import OptimalFilter
from cryodaq.storage import read_ljh


def _pulse(n: int, pre: int, rise: float, fall: float) -> np.ndarray:
    t = np.arange(n) - pre
    p = np.where(t > 0, np.exp(-t / fall) - np.exp(-t / rise), 0.0)
    return p / p.max()


def test_predicted_resolution_holds_on_real_umux_noise(shared_data) -> None:
    ljh = read_ljh(shared_data / "dastard_umux_noise_chan4102.ljh")
    noise = np.asarray(ljh.samples[:], dtype=float)
    assert noise.shape == (610, 1000)
    rate = 1.0 / ljh.timebase_s
    learn, test = noise[::2], noise[1::2]
    tmpl = _pulse(1000, ljh.presamples, 4.0, 150.0)
    of = OptimalFilter(tmpl, noise_psd(learn, rate), rate)
    measured = np.std(of.apply(test).amplitude_nodelay)
    assert measured == pytest.approx(of.resolution(), rel=0.1)  # 305 records: ±4 % statistical
    # pulses of known height on real noise: the filter gets them back at that spread
    heights = 500.0 + 50.0 * np.arange(test.shape[0]) / test.shape[0]
    res = of.apply(test + heights[:, None] * tmpl[None, :])
    assert np.std(res.amplitude_nodelay - heights) == pytest.approx(measured, rel=1e-6)
    assert np.std(res.amplitude - heights) == pytest.approx(of.resolution(), rel=0.15)


def test_learning_cuts_a_pulse_out_of_the_noise_and_applies_identically() -> None:
    rng = np.random.default_rng(8)
    n, pre, rate = 512, 128, 1e5
    tmpl = _pulse(n, pre, 3.0, 40.0)
    noise = rng.normal(0, 1.0, (200, n))
    noise[17] += 300 * np.roll(tmpl, -100)  # a pulse the veto missed
    assert not quiet_records(noise)[17] and quiet_records(noise).sum() >= 195
    pulses = 200.0 * tmpl[None, :] * rng.uniform(0.98, 1.02, (60, 1)) + rng.normal(0, 1.0, (60, n))
    cfg = OptimalFilterConfig(min_pulses=20, energy_lines_ev=(5898.8,))
    f = learn_channel_filter(-pulses, np.ones(60, bool), -noise, channel=3, rate_hz=rate, presamples=pre,
                             max_delay=20, config=cfg, polarity=-1)
    assert f.n_noise < 200 and f.channel == 3 and f.has_energy
    white = OptimalFilter(tmpl, noise_psd(rng.normal(0, 1.0, (400, n)), rate), rate)
    assert f.resolution == pytest.approx(white.resolution(), rel=0.15)  # the pulse did not poison the PSD
    cols = f.columns(-pulses[:5])
    assert np.all(np.abs(cols["energy"] - 5898.8) < 0.05 * 5898.8)
    np.testing.assert_array_equal(cols["of_amplitude"], f.columns(-pulses[:5])["of_amplitude"])
    with pytest.raises(ValueError, match="clean pulses"):
        learn_channel_filter(pulses[:5], np.ones(5, bool), noise, channel=0, rate_hz=rate, presamples=pre,
                             max_delay=20, config=cfg)
