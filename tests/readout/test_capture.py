"""capture_stream against the simulated TES readout board over real UDP on loopback."""

from __future__ import annotations

import time

import numpy as np
import pytest
from qcodes.instrument import Instrument

from cryodaq.readout.capture import CaptureGapError, capture_stream
from cryodaq.errors import InstrumentError
from cryodaq.instruments import TESReadoutBoard
from sim_instruments.servers.launcher import serve

BIAS_A = 3.5e-4


@pytest.fixture
def sim():
    # no particles: the mean of a capture is then the steady TES current plus noise
    cfg = {"world": {"tes": {"enabled": True, "rate_hz": 0.0}},
           "instruments": {"board": {"face": "tes_readout_board", "address": "TCPIP0::127.0.0.1::0::SOCKET"}}}
    with serve(cfg) as servers:
        servers.world.tes.set_bias(servers.world.tes.channels, BIAS_A)
        board = TESReadoutBoard("capture_board", servers.address("board"))
        yield servers, board
    Instrument.close_all()


def test_capture_gives_the_tes_current_in_amperes(sim):
    servers, board = sim
    tes = servers.world.tes
    t_before = time.time_ns()
    cap = capture_stream(board, 0.2)
    assert cap.units == "A" and cap.fs == 100_000.0
    assert cap.data.shape == (20_000, 8) and cap.data.dtype == np.float64
    assert cap.contiguous and cap.segments == [(0, 20_000)]
    np.testing.assert_array_equal(cap.sample_index, np.arange(20_000))  # a fresh stream starts at sample 0
    assert cap.duration_s == pytest.approx(0.2)
    assert t_before - 1e9 < cap.t0_ns < time.time_ns()
    assert not cap.saturated.any()
    np.testing.assert_allclose(cap.counts_per_ampere, tes.counts_per_ampere())
    # locked FLL: reading = I_tes - (k + flux_offset) * I_phi0; white noise 20 pA/rtHz -> 4.5 nA per sample
    squid = tes.squid_state()
    expected = tes.current_operating_point().i_tes - (squid.k + squid.flux_offset) * tes.config.input_current_per_phi0_a
    np.testing.assert_allclose(cap.data.mean(axis=0), expected, rtol=0, atol=2e-9)
    assert np.std(cap.data, axis=0) == pytest.approx(np.full(8, 4.5e-9), rel=0.1)
    assert board.streaming() is False  # stopped after the capture


def test_capture_in_counts_and_saturation_flag(sim):
    servers, board = sim
    tes = servers.world.tes
    cap = capture_stream(board, 0.02, calibrate=False)
    assert cap.units == "counts" and cap.counts_per_ampere is None
    assert cap.n_samples == 2000
    np.testing.assert_array_equal(cap.data, np.round(cap.data))  # int16 ADC codes
    assert not cap.saturated.any()
    tes.set_flux_offset(2, -9.0)  # pushes channel 2's FLL output far beyond the ADC's +-1 V
    cap = capture_stream(board, 0.02, calibrate=False)
    assert cap.saturated.tolist() == [False, False, True, False, False, False, False, False]
    assert cap.data[:, 2].max() == 32767


def test_gaps_raise_or_are_flagged_never_stitched(sim):
    servers, board = sim
    face = servers.faces["board"]
    face.loss_probability = 0.3  # drop packets at random
    with pytest.raises(CaptureGapError, match="capture_board.*packet_loss"):
        capture_stream(board, 0.2)
    assert board.streaming() is False  # stopped despite the error
    cap = capture_stream(board, 0.2, on_gap="flag")
    assert cap.n_samples == 20_000 and not cap.contiguous
    jumps = np.flatnonzero(np.diff(cap.sample_index) != 1)
    assert len(cap.segments) == len(jumps) + 1 >= 2
    for (start, stop), nxt in zip(cap.segments, cap.segments[1:]):
        assert stop == nxt[0]
        seg = cap.sample_index[start:stop]
        np.testing.assert_array_equal(np.diff(seg), 1)
    missing = int(cap.sample_index[-1] - cap.sample_index[0] + 1 - cap.n_samples)
    assert missing > 0 and sum(g.n_samples for g in cap.gaps) == missing
    assert all(g.cause == "packet_loss" for g in cap.gaps)


def test_refuses_a_board_that_streams_already_and_times_out_on_silence(sim):
    servers, board = sim
    board.start_stream("127.0.0.1", 9)  # someone else's stream
    try:
        with pytest.raises(InstrumentError, match="already streaming"):
            capture_stream(board, 0.01)
    finally:
        board.stop_stream()
    servers.faces["board"].loss_probability = 1.0  # every packet lost: nothing arrives
    with pytest.raises(InstrumentError, match=r"sent 0 of 1000 samples .* within 0.3 s"):
        capture_stream(board, 0.01, timeout_s=0.3)
    assert board.streaming() is False
    with pytest.raises(ValueError, match="seconds"):
        capture_stream(board, 0.0)
