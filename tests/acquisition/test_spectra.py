"""SpectrumMonitor: snapshots every interval of data, never spanning a gap."""

from __future__ import annotations

import numpy as np

from cryodaq.acquisition.spectra import SpectrumMonitor


def test_a_gap_refills_the_buffer_but_keeps_the_interval_count():
    rate, nperseg = 1000.0, 64
    mon = SpectrumMonitor(rate, 2, nperseg=nperseg, n_average=8, interval_s=1.0)  # buffer: 64 * 9 // 2 = 288
    rng = np.random.default_rng(0)
    loud = 100 * rng.normal(size=(800, 2)).astype(np.float32)
    assert mon.push(loud, np.arange(800)) is None  # 0.8 s of data: not due yet
    mon.reset()  # a gap
    quiet = rng.normal(size=(300, 2)).astype(np.float32)
    assert mon.push(quiet[:250], np.arange(250)) is None  # 1.05 s of data, but the buffer holds 250 < 288 samples
    t, freq, psd = mon.push(quiet[250:], np.arange(250, 300))
    assert t == 299 and psd.shape == (2, nperseg // 2 + 1) and freq[-1] == rate / 2
    # white noise of unit variance: one-sided PSD 2 / rate; the loud data before the gap are not in it
    assert 0.5 * 2 / rate < np.median(psd[:, 1:-1]) < 2 * 2 / rate
    assert mon.push(quiet, np.arange(300)) is None  # the count restarted at the snapshot: 0.3 s since
