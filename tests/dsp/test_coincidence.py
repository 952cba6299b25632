"""Coincidence grouping and the streaming veto: same groups however the stream is cut, glitches flagged."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.dsp import EventBatch, EventFlag, ThresholdTrigger
from cryodaq.dsp.coincidence import CoincidenceVeto, chain_groups, distinct_per_group


def test_chain_groups_break_at_gaps_longer_than_the_window():
    t = np.array([0, 5, 10, 30, 31, 100])
    assert chain_groups(t, 10).tolist() == [0, 0, 0, 1, 1, 2]
    assert chain_groups(t, 4).tolist() == [0, 1, 2, 3, 3, 4]
    with pytest.raises(ValueError, match="sorted"):
        chain_groups(np.array([3, 1]), 10)


def test_distinct_per_group_counts_channels_not_events():
    group = np.array([0, 0, 0, 1, 1, 2])
    channel = np.array([3, 3, 4, 1, 2, 7])
    assert distinct_per_group(group, channel).tolist() == [2, 2, 2, 2, 2, 1]


def _events(rng: np.random.Generator, n_channels: int = 16, n_glitch: int = 20, n_photon: int = 200,
            span: int = 2_000_000) -> tuple[EventBatch, np.ndarray]:
    """Isolated photons (one channel each) and glitches (8-16 channels within 30 samples); and truth."""
    idx, ch, is_glitch = [], [], []
    for t in rng.choice(span, n_glitch, replace=False):
        hit = rng.choice(n_channels, rng.integers(8, n_channels + 1), replace=False)
        idx += (t + rng.integers(0, 30, hit.size)).tolist()
        ch += hit.tolist()
        is_glitch += [True] * hit.size
    idx += rng.integers(0, span, n_photon).tolist()
    ch += rng.integers(0, n_channels, n_photon).tolist()
    is_glitch += [False] * n_photon
    order = np.lexsort((ch, idx))
    z = np.zeros(len(idx))
    ev = EventBatch(np.asarray(idx)[order], np.asarray(ch)[order], z + 1, z, z)
    return ev, np.asarray(is_glitch)[order]


def test_streaming_veto_equals_one_shot_and_flags_the_glitches():
    rng = np.random.default_rng(5)
    ev, is_glitch = _events(rng)
    one_shot = CoincidenceVeto(window=50, max_channels=3).flush(ev)
    veto = CoincidenceVeto(window=50, max_channels=3)
    out, pos = [], 0
    for cut in np.sort(rng.integers(0, 2_000_000, 40)).tolist() + [2_000_000]:
        sel = (ev.sample_index >= pos) & (ev.sample_index < cut)
        out.append(veto.process(ev.select(sel), horizon=cut))  # everything below `cut` has been seen
        pos = cut
    out.append(veto.flush())
    got = EventBatch.concat(out)
    np.testing.assert_array_equal(got.sample_index, one_shot.sample_index)
    np.testing.assert_array_equal(got.group, one_shot.group)
    np.testing.assert_array_equal(got.multiplicity, one_shot.multiplicity)
    np.testing.assert_array_equal(got.flags, one_shot.flags)
    vetoed = (got.flags & EventFlag.VETOED) != 0
    assert vetoed[is_glitch].all()
    assert vetoed[~is_glitch].mean() < 0.02  # photons flagged only by chance overlap with a glitch
    assert veto.vetoed_groups == 20 and veto.vetoed_events == int(vetoed.sum())
    assert np.all(np.diff(got.group) >= 0) and got.group[0] == 0


def test_events_wait_for_the_horizon():
    veto = CoincidenceVeto(window=10, max_channels=1)
    z = np.zeros(2)
    first = veto.process(EventBatch([100, 105], [0, 1], z, z, z), horizon=110)
    assert len(first) == 0  # an event at 110..115 could still join the group
    second = veto.process(EventBatch.empty(), horizon=116)
    assert len(second) == 2 and (second.flags & EventFlag.VETOED).all() and second.multiplicity.tolist() == [2, 2]


def test_the_trigger_horizon_drives_the_veto_block_by_block():
    """Pulses on every channel at once (a glitch) and on one channel (photons), through a real trigger."""
    fs, n, n_ch = 100_000.0, 200_000, 8
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1.0, (n, n_ch)).astype(np.float32)
    shape = np.exp(-np.arange(400) / 80.0) - np.exp(-np.arange(400) / 5.0)
    glitches = [20_000, 90_000, 150_000]
    photons = [(40_000, 2), (60_000, 5), (120_000, 1), (170_000, 7)]
    for g in glitches:
        for c in range(n_ch):
            x[g + c % 3:g + c % 3 + 400, c] += 40 * shape
    for p, c in photons:
        x[p:p + 400, c] += 40 * shape

    def run(block: int) -> EventBatch:
        trig = ThresholdTrigger(10.0, holdoff=200, baseline_samples=100, presamples=50, record_length=300)
        veto = CoincidenceVeto(window=int(50e-6 * fs), max_channels=3)
        out = []
        for start in range(0, n, block):
            ev = trig.process(x[start:start + block], start)
            out.append(veto.process(ev, trig.horizon))
        out.append(veto.flush(trig.finish()))
        return EventBatch.concat(out)

    a, b = run(1000), run(7919)
    np.testing.assert_array_equal(a.sample_index, b.sample_index)
    np.testing.assert_array_equal(a.flags, b.flags)
    vetoed = (a.flags & EventFlag.VETOED) != 0
    assert len(a) == len(glitches) * n_ch + len(photons)
    assert vetoed.sum() == len(glitches) * n_ch
    assert set(a.group[vetoed].tolist()) == set(np.unique(a.group[vetoed]).tolist()) and len(set(a.group[vetoed])) == 3
