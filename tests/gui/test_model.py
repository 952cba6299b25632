"""The GUI's model (ring buffers, message folding) and the histogram peak fit: no Qt needed."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.wire import live as lp
from cryodaq.gui.model import LiveModel, RingBuffer, column_index
from cryodaq.gui.peakfit import FWHM_PER_SIGMA, fit_peak, histogram


def test_ring_buffer_keeps_the_latest_rows_in_order_across_wraps():
    rb = RingBuffer(7, (2,), np.int64)
    rows = np.arange(50).reshape(25, 2)
    fed = []
    for a, b in [(0, 3), (3, 4), (4, 12), (12, 13), (13, 25)]:
        rb.append(rows[a:b])
        fed.append(rows[a:b])
        np.testing.assert_array_equal(rb.view(), np.concatenate(fed)[-7:])
    assert rb.appended == 25 and len(rb) == 7
    np.testing.assert_array_equal(rb.last(3), rows[-3:])


def test_column_index_finds_positions_in_any_order():
    np.testing.assert_array_equal(column_index(np.array([9, 3, 5, 1]), np.array([1, 9, 5])), [3, 0, 2])


def _info(epoch: int = 0, n: int = 4) -> lp.Message:
    msg = lp.info_message(station="s", stream="phase", units="rad", output_rate_hz=16e3, adc_rate_hz=2e6,
                          channel_coords={"channel": np.arange(n, dtype=np.int32)}, run_path="r",
                          stream_channels=[1, 2], stream_rate_hz=1e3, source="replay")
    msg.header["epoch"] = epoch
    return msg


def test_model_folds_messages_and_resets_on_a_new_stream():
    m = LiveModel(psd_average=2)
    m.handle(lp.stream_message(np.arange(3), np.ones((3, 2)), np.array([1, 2]), 1e3))
    assert len(m.stream_t) == 0  # nothing can be placed before the stream is described
    m.handle(_info())
    m.handle(lp.stream_message(np.arange(5) * 10**6, np.arange(10).reshape(5, 2), np.array([1, 2]), 1e3))
    np.testing.assert_allclose(m.stream_t.view(), np.arange(5) * 1e-3)
    ch, cols = m.stream_columns(np.array([0, 2]))
    assert ch.tolist() == [2] and cols.tolist() == [1]
    # PSD: the running mean of the first N snapshots, per channel
    for value in (1.0, 3.0):
        m.handle(lp.psd_message(0, np.arange(4.0), np.full((2, 4), value), np.array([0, 3]), "rad^2/Hz"))
    np.testing.assert_allclose(m.psd[[0, 3]], 2.0)
    assert np.isnan(m.psd[1]).all()
    # events: amplitudes by channel, records with their channel
    cols_ev = {"t": np.array([1, 2, 3]), "channel": np.array([0, 1, 0], np.int32),
               "amplitude": np.array([0.5, 0.7, 0.6], np.float32), "baseline": np.zeros(3, np.float32)}
    m.handle(lp.events_message(cols_ev, np.ones((1, 8)), np.array([2]), presamples=2, record_rate_hz=16e3))
    np.testing.assert_allclose(m.event_values(np.array([0])), [0.5, 0.6])
    assert m.rec_channel.view().tolist() == [0]
    # rates from successive status counters
    m.handle(lp.status_message(np.array([0, 0, 0, 0]), elapsed_s=1.0))
    m.handle(lp.status_message(np.array([4, 0, 2, 0]), elapsed_s=3.0))
    np.testing.assert_allclose(m.rates, [2.0, 0.0, 1.0, 0.0])
    # a repeated info changes nothing; a new epoch (a replay jumped) starts over
    m.handle(_info())
    assert len(m.stream_t) == 5
    m.handle(_info(epoch=1))
    assert len(m.stream_t) == 0 and not len(m.psd_freq)


def test_model_counts_messages_missed_on_the_way():
    m = LiveModel()
    for seq in (1, 2, 5, 6, 9):
        msg = lp.housekeeping_message("mxc", np.array([seq]), np.array([0.01]), "K")
        msg.header["seq"] = seq
        m.handle(msg)
    assert m.missed[lp.HOUSEKEEPING] == 4
    assert len(m.hk["mxc"][0]) == 5


def test_gaussian_fit_recovers_the_line_width():
    rng = np.random.default_rng(3)
    sigma = 0.02
    values = np.concatenate([rng.normal(0.6, sigma, 5000), rng.uniform(0.3, 1.0, 300)])  # a line on a background
    counts, edges = histogram(values, 100)
    fit = fit_peak(counts, edges)
    assert fit is not None
    assert fit.mu == pytest.approx(0.6, abs=0.002)
    assert fit.fwhm == pytest.approx(FWHM_PER_SIGMA * sigma, rel=0.08)
    assert 0 < fit.fwhm_err < 0.1 * fit.fwhm


def test_gaussian_fit_declines_too_few_events():
    counts, edges = histogram(np.array([0.5, 0.6, 0.61]), 20)
    assert fit_peak(counts, edges) is None
