"""Pulse summaries: exact values on constructed records, and NIST mass's definitions on real DASTARD TES
records (an independent, loop-by-loop implementation of mass2's ``summarize_data_numba`` as the reference)."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.analysis import summarize_pulses
from cryodaq.storage import read_ljh


def test_constructed_record_values() -> None:
    n, pre, dt = 200, 50, 1e-5
    base = np.full(n, 100.0)
    base[:pre] += np.tile([1.0, -1.0], pre // 2)  # pretrigger: mean 100, population rms 1
    x = base.copy()
    x[pre:pre + 10] += np.arange(1, 11) * 100.0  # a linear edge up to 1000 above the baseline
    x[pre + 10:] += 1000.0 * np.exp(-np.arange(n - pre - 10) / 40.0)
    s = summarize_pulses(x[None], pre, 1 / dt)
    assert s["pretrig_mean"][0] == pytest.approx(100.0) and s["pretrig_rms"][0] == pytest.approx(1.0)
    assert s["peak_value"][0] == pytest.approx(1000.0) and s["peak_index"][0] == pre + 9
    assert s["peak_time_s"][0] == pytest.approx(9 * dt)
    # mass's rise time extrapolates the 10 %-90 % slope to 0-100 %: 8 samples x 1000/800 ... on a linear edge
    assert s["rise_time_s"][0] == pytest.approx(dt * 7 * 1000 / 700)
    assert s["pulse_average"][0] == pytest.approx(np.mean(x[pre - 1:] - 100.0))
    second = x.copy()
    second[150:] += 300.0 * np.exp(-np.arange(50) / 40.0)  # pile-up on the tail
    both = summarize_pulses(np.stack([x, second]), pre, 1 / dt, peak_index=pre + 9)
    assert both["postpeak_deriv"][1] > 20 * max(both["postpeak_deriv"][0], 1.0)
    down = summarize_pulses(-x[None], pre, 1 / dt, polarity=-1)  # negative-going pulses
    assert down["peak_value"][0] == pytest.approx(1000.0) and down["pretrig_mean"][0] == pytest.approx(-100.0)
    nan = summarize_pulses(np.where(np.arange(n) > 150, np.nan, x)[None], pre, 1 / dt, peak_index=60)
    assert np.isnan(nan["peak_value"][0]) and nan["peak_index"][0] == -1


def _mass_reference(x: np.ndarray, npre: int, dt: float, peak_sample: int) -> dict[str, float]:
    """mass2 summarize_data_numba, one record, written out plainly (floats, unrounded baseline)."""
    ptm = float(np.mean(x[:npre]))
    rms = float(np.sqrt(np.mean(x[:npre] ** 2) - ptm**2))
    pk = int(np.argmax(x))
    pv = float(x[pk] - ptm)
    post = x[npre - 1:] - ptm
    low, high = ptm + 0.1 * pv, ptm + 0.9 * pv
    k = npre
    while k < len(x) and x[k] <= low:
        k += 1
    lo = k
    while k < len(x) and x[k] <= high:
        k += 1
    hi = k - 1
    rise = dt * (hi - lo) * pv / (x[hi] - x[lo]) if x[hi] > x[lo] else dt
    best = -np.inf
    for j in range(peak_sample, len(x) - 6):
        t1 = -2 * x[j] - x[j + 1] + x[j + 3] + 2 * x[j + 4]
        t2 = -2 * x[j + 2] - x[j + 3] + x[j + 5] + 2 * x[j + 6]
        best = max(best, min(t1, t2))
    return {"pretrig_mean": ptm, "pretrig_rms": rms, "peak_index": pk, "peak_value": pv,
            "pulse_average": float(post.mean()), "pulse_rms": float(np.sqrt(np.mean(post**2))), "rise_time_s": rise,
            "postpeak_deriv": 0.1 * best}


def test_real_dastard_tes_records_match_the_mass_definitions(shared_data) -> None:
    ljh = read_ljh(shared_data / "dastard_tdm_pulses_chan1.ljh")
    recs = np.asarray(ljh.samples[:], dtype=float)
    dt = ljh.timebase_s
    s = summarize_pulses(recs, ljh.presamples, 1 / dt)
    peak_sample = int(np.median(np.argmax(recs, axis=1)))
    assert ljh.n_records == 10 and np.all(s["peak_value"] > 5000)
    for i, x in enumerate(recs):
        ref = _mass_reference(x, ljh.presamples, dt, peak_sample)
        for key, value in ref.items():
            assert s[key][i] == pytest.approx(value, rel=1e-9, abs=1e-9), key
    # TES pulses: a ~10-20 us rise (a few samples of 5.12 us), promptness about 0.6
    assert np.all((s["rise_time_s"] > 2 * dt) & (s["rise_time_s"] < 40 * dt))
    assert np.all((s["promptness"] > 0.3) & (s["promptness"] < 1.0))
