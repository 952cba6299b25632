"""Display reductions shared by the live publisher and the GUI's replay (cryodaq.live.reduce)."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.live.reduce import IQReducer, StreamDecimator


@pytest.mark.parametrize("factor", [1, 3, 8])
def test_stream_decimator_in_chunks_equals_one_block_mean(factor):
    rng = np.random.default_rng(factor)
    x = rng.normal(size=(1000, 3)).astype(np.float32)
    t = np.arange(1000, dtype=np.int64) * 10
    dec = StreamDecimator(factor)
    cuts = np.sort(rng.choice(np.arange(1, 1000), 20, replace=False))
    parts = [dec.push(tc, xc) for tc, xc in zip(np.split(t, cuts), np.split(x, cuts))]
    got_t = np.concatenate([p[0] for p in parts])
    got_x = np.concatenate([p[1] for p in parts])
    n = (1000 // factor) * factor
    np.testing.assert_allclose(got_x, x[:n].reshape(-1, factor, 3).mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(got_t, t[factor // 2:n:factor])


def test_decimator_reset_drops_the_partial_bin_so_nothing_spans_a_gap():
    dec = StreamDecimator(4)
    t1, _ = dec.push(np.arange(6), np.ones((6, 1), np.float32))  # 4 used, 2 waiting
    dec.reset()  # a gap
    t2, y2 = dec.push(np.arange(100, 104), np.full((4, 1), 5.0, np.float32))
    assert len(t1) == 1 and len(t2) == 1
    assert y2[0, 0] == 5.0  # the two samples before the gap were not mixed in
    assert t2[0] == 102


def test_iq_reducer_keeps_a_fixed_stride_and_each_blocks_excursion():
    rng = np.random.default_rng(1)
    z = (100 + rng.normal(0, 1, (300, 2)) + 1j * rng.normal(0, 1, (300, 2))).astype(np.complex64)
    z[137, 1] = 50 + 80j  # a pulse sample in the second block on tone 1
    red = IQReducer(10)
    blocks = [z[:128], z[128:256], z[256:]]
    out = [red.push(b) for b in blocks]
    uniform = np.concatenate([p[0][:-1] for p in out])
    np.testing.assert_array_equal(uniform, z[::10])  # stride continues across blocks
    assert out[1][0][-1, 1] == z[137, 1]  # the excursion is kept even though 137 is off-stride
    np.testing.assert_allclose(out[2][1], z[256:].mean(axis=0), rtol=1e-5)  # operating point
