"""Streaming triggers: block boundaries, hold-off, dead time, pile-up, records, flush, reset."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.backend import gpu_available, numpy_backend
from cryodaq.dsp import (
    AutoTrigger,
    EdgeTrigger,
    EventBatch,
    EventFlag,
    GroupTrigger,
    LevelTrigger,
    ThresholdTrigger,
    sample_index_to_utc_ns,
)
from cryodaq.dsp.cpu_kernels import gather_records
from cryodaq.dsp.detectors import NEVER, MatchedFilterDetector, gather_rows, greedy_min_gap, nonzero_2d

PRE = 20


def _template(n: int = 200, rise: float = 4.0, decay: float = 30.0) -> np.ndarray:
    t = np.arange(n - PRE, dtype=float)
    s = np.exp(-t / decay) - np.exp(-t / rise)
    return np.r_[np.zeros(PRE), s / s.max()]


def _stream(n: int, arrivals: dict[int, list[int]], amp: float, n_ch: int, noise: float = 1.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=noise, size=(n, n_ch)).astype(np.float32) + 100.0  # an offset baseline
    pulse = _template()[PRE:]
    for c, times in arrivals.items():
        for t0 in times:
            seg = x[t0 : t0 + pulse.size, c]
            seg += amp * pulse[: seg.size]
    return x


def _run(trig, x: np.ndarray, sizes, first: int = 0) -> EventBatch:
    out, i = [], 0
    for s in sizes:
        if i >= len(x):
            break
        out.append(trig.process(x[i : i + s], first + i))
        i += s
    if i < len(x):
        out.append(trig.process(x[i:], first + i))
    out.append(trig.finish())
    return EventBatch.concat(out)


def _same(a: EventBatch, b: EventBatch) -> None:
    assert np.array_equal(a.sample_index, b.sample_index)
    assert np.array_equal(a.channel, b.channel)
    assert np.array_equal(a.flags, b.flags)
    assert np.allclose(a.amplitude, b.amplitude, atol=1e-3)
    assert np.allclose(a.baseline, b.baseline, atol=1e-3)
    if a.records is not None:
        assert np.allclose(a.records, b.records, equal_nan=True)


def _threshold(**kw) -> ThresholdTrigger:
    args = dict(threshold=8.0, holdoff=150, baseline_samples=32, presamples=32, record_length=256, keep_records=True)
    args.update(kw)
    return ThresholdTrigger(**args)


def _edge(**kw) -> EdgeTrigger:
    args = dict(template=_template(), threshold_sigma=8.0, holdoff=150, template_presamples=PRE,
                noise_samples=3000, presamples=32, record_length=256, keep_records=True)
    args.update(kw)
    return EdgeTrigger(**args)


@pytest.mark.parametrize("make", [_threshold, _edge], ids=["threshold", "edge"])
def test_pulse_straddling_block_boundary_found_once_at_one_shot_index(make) -> None:
    arrivals = {0: [5000], 1: [7000, 12000], 2: [9000]}
    x = _stream(16_000, arrivals, amp=30.0, n_ch=3)
    one = _run(make(), x, [len(x)])
    assert len(one) == 4
    for c, times in arrivals.items():
        got = np.sort(one.sample_index[one.channel == c])
        assert np.all(np.abs(got - np.array(times)) <= 3), (c, got)
    # Cut right through each pulse (before, at and after the trigger sample) and at random.
    for cut in (5000 - 1, 5000, 5001, 5010, 7000 + 40, 9000 + 100):
        _same(_run(make(), x, [cut, len(x)]), one)
    rng = np.random.default_rng(1)
    for _ in range(3):
        _same(_run(make(), x, rng.integers(1, 700, size=200)), one)
    _same(_run(make(), x, [1] * 50 + [333] * 100), one)


def test_threshold_records_baseline_amplitude() -> None:
    x = _stream(6000, {0: [3000]}, amp=50.0, n_ch=1, noise=0.01)
    ev = _run(_threshold(threshold=5.0), x, [2990, 20, 3000])
    assert len(ev) == 1 and ev.flags[0] == 0
    assert ev.baseline[0] == pytest.approx(100.0, abs=0.01)
    assert ev.amplitude[0] == pytest.approx(50.0, rel=0.01)
    assert ev.records.shape == (1, 256) and ev.presamples == 32
    t = int(ev.sample_index[0])
    assert np.array_equal(ev.records[0], x[t - 32 : t - 32 + 256, 0])


def test_holdoff_and_negative_polarity() -> None:
    # Two pulses 100 samples apart: one trigger with a hold-off of 150, two with 50.
    x = _stream(8000, {0: [3000, 3100]}, amp=-40.0, n_ch=1, noise=0.01)
    assert len(_run(_threshold(polarity=-1, holdoff=150), x, [8000])) == 1
    ev = _run(_threshold(polarity=-1, holdoff=50), x, [8000])
    assert len(ev) == 2
    assert np.all(ev.amplitude > 30)  # amplitude is positive for the triggered polarity
    # Positive polarity without baseline subtraction never reaches 100 + 8.
    assert len(_run(_threshold(threshold=108.0, polarity=1, holdoff=50, baseline_samples=0), x, [8000])) == 0


def test_pileup_flag_and_dead_time() -> None:
    x = _stream(12_000, {0: [3000, 3200, 8000]}, amp=40.0, n_ch=2, noise=0.01)
    ev = _run(_threshold(holdoff=100), x, [12_000])
    assert list(ev.sample_index // 10) == [300, 320, 800]
    # The second trigger lies inside the first's record window [t-32, t+224); not vice versa.
    assert list(ev.flags) == [EventFlag.PILEUP, 0, 0]
    # Dead time: the second is not recorded, but still marks the first as pile-up.
    ev = _run(_threshold(holdoff=100, dead_time=500), x, [12_000])
    assert len(ev) == 2 and ev.flags[0] & EventFlag.PILEUP and ev.flags[1] == 0


def test_finish_truncates_and_reset_forgets() -> None:
    x = _stream(6000, {0: [5900]}, amp=40.0, n_ch=1, noise=0.01)
    trig = _threshold()
    assert len(trig.process(x, 0)) == 0  # the record needs 256-32 samples after 5900
    ev = trig.finish()
    assert len(ev) == 1 and ev.flags[0] & EventFlag.TRUNCATED
    assert np.isnan(ev.records[0, -1]) and not np.isnan(ev.records[0, :100]).any()
    # After a reset, a block at any index is accepted and nothing carries over.
    trig.process(x[:5950], 0)
    trig.reset()
    assert len(trig.process(x[5950:], 1_000_000)) == 0
    assert len(trig.finish()) == 0
    with pytest.raises(ValueError, match="contiguous"):
        trig.process(x[:100], 0)
        trig.process(x[:100], 200)


def test_no_trigger_during_warmup() -> None:
    x = _stream(3000, {0: [10, 1000]}, amp=40.0, n_ch=1, noise=0.01)
    ev = _run(_threshold(presamples=64, baseline_samples=32), x, [3000])
    assert list(ev.sample_index // 10) == [100]


def test_level_trigger_needs_duration() -> None:
    x = np.zeros((4000, 2), np.float32)
    x[1000:1003, 0] = 5  # too short
    x[2000:2050, 0] = 5
    x[2500:2600, 1] = 5
    one = _run(LevelTrigger(4.0, min_duration=10, presamples=32, record_length=128), x, [4000])
    assert list(zip(one.channel, one.sample_index)) == [(0, 2000), (1, 2500)]
    _same(_run(LevelTrigger(4.0, min_duration=10, presamples=32, record_length=128), x, [2005, 1, 500, 9]), one)


def test_auto_trigger_records_only_quiet_windows() -> None:
    x = _stream(20_000, {0: [5000]}, amp=40.0, n_ch=2, noise=0.01)
    veto = ThresholdTrigger(5.0, holdoff=100, baseline_samples=32)
    auto = AutoTrigger(1000, presamples=32, record_length=256, veto=veto)
    ev = _run(auto, x, [3000] * 7)
    assert np.all(ev.flags == EventFlag.FORCED)
    t0 = ev.sample_index[ev.channel == 0]
    t1 = ev.sample_index[ev.channel == 1]
    assert len(t1) == len(np.arange(32, 20_000 - 256, 1000))  # every period on the quiet channel
    # Channel 0 loses the records whose window (or guard before it) holds the pulse.
    assert set(t1) - set(t0) == {5032}
    assert np.all(ev.records.max(axis=1) - 100 < 1)
    _same(_run(AutoTrigger(1000, 32, 256, ThresholdTrigger(5.0, holdoff=100, baseline_samples=32)), x, [777] * 30), ev)


def test_group_trigger_records_members() -> None:
    x = _stream(8000, {0: [3000], 2: [6000]}, amp=40.0, n_ch=3, noise=0.01)
    ev = _run(GroupTrigger(_threshold(), {0: [1, 2]}), x, [8000])
    rows = sorted(zip(ev.sample_index // 10, ev.channel, ev.flags))
    assert [(r[1], r[2]) for r in rows] == [(0, 0), (1, EventFlag.FORCED), (2, EventFlag.FORCED), (2, 0)]
    assert len({int(t) for t, c, f in zip(ev.sample_index, ev.channel, ev.flags) if f}) == 1


def test_edge_trigger_sigma_and_threshold_units() -> None:
    x = _stream(20_000, {0: [8000]}, amp=6.0, n_ch=2, noise=1.0, seed=3)
    trig = _edge(threshold_sigma=6.0)
    ev = _run(trig, x, [4000] * 5)
    assert list(ev.channel) == [0] and abs(int(ev.sample_index[0]) - 8000) <= 3
    # A 6-sigma raw pulse is far above 6 filtered sigmas (the filter gains SNR).
    fixed = _run(_edge(threshold_sigma=None, threshold=3.0), x, [20_000])
    _same(fixed, ev)
    with pytest.raises(ValueError, match="exactly one"):
        EdgeTrigger(_template(), threshold=1.0, threshold_sigma=5.0)


def test_event_batch_and_utc() -> None:
    a = EventBatch([5, 1], [0, 1], [1.0, 2.0], [0, 0], [0, 1])
    b = EventBatch.empty()
    c = EventBatch.concat([a, b, a])
    assert len(c) == 4 and c.sample_index.dtype == np.int64 and c.flags.dtype == np.uint16
    assert list(c.sorted().sample_index) == [1, 1, 5, 5]
    with pytest.raises(ValueError, match="length"):
        EventBatch([1], [1, 2], [1], [1], [1])
    t = sample_index_to_utc_ns(np.array([1000, 3048]), 1_700_000_000_000_000_000, 1000, 2.048e6)
    assert t.dtype == np.int64 and t[1] - t[0] == 1_000_000


@pytest.mark.gpu
def test_gpu_triggers_match_numpy() -> None:
    pytest.importorskip("cupy")
    if not gpu_available():
        pytest.skip("no CUDA device")
    from cryodaq.backend import get_backend

    gpu, strict = get_backend("cupy"), get_backend("strict")  # the same device code path, numpy underneath
    x = _stream(40_000, {0: [5000, 20_000], 3: [9000]}, amp=30.0, n_ch=4)
    for make in (_threshold, _edge):
        ref = _run(make(backend=strict), strict.asarray(x), [4096] * 10)
        got = _run(make(backend=gpu), gpu.asarray(x), [4096] * 10)
        _same(got, ref)


def test_overlap_save_equals_direct_correlation() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(5000, 3)).astype(np.float32)
    for workers in (None, 2):
        det = MatchedFilterDetector(_template(), threshold=1.0, template_presamples=PRE, fft_size=512,
                                    backend=numpy_backend(fft_workers=workers))
        ref = np.stack([np.correlate(x[:, c], det.filter, "valid") for c in range(3)], axis=1)
        assert np.allclose(det.filter_block(x[:0], x), ref, atol=1e-5)
        # History + block, with the split inside the first segment and at odd places.
        for split in (1, 150, 199, 777):
            assert np.allclose(det.filter_block(x[:split], x[split:]), ref, atol=1e-5)
    # The filter is scaled so that a pulse A*template peaks at A.
    assert float(det.filter @ (7.0 * _template())) == pytest.approx(7.0)
    mask = rng.random((1001, 7)) < 0.01
    r, c = nonzero_2d(mask, numpy_backend())
    r2, c2 = np.nonzero(mask)
    assert np.array_equal(r, r2) and np.array_equal(c, c2)


def test_threaded_edge_trigger_matches_single() -> None:
    x = _stream(30_000, {0: [5000, 20_000], 2: [9000]}, amp=30.0, n_ch=3)
    one = _run(_edge(), x, [30_000])
    two = _run(_edge(backend=numpy_backend(fft_workers=2)), x, [4096] * 8)
    _same(two, one)
    assert len(one) == 3


def test_greedy_hold_off_matches_the_sequential_rule_and_carries_across_blocks() -> None:
    """The compiled hold-off against the rule written out: keep a candidate at least ``gap`` after the
    previous kept one on its channel (the last block's last kept one before any), then split in two."""
    rng = np.random.default_rng(5)
    n_ch, gap = 5, 7
    ch = np.sort(rng.integers(0, n_ch, 4000)).astype(np.int32)
    idx = np.concatenate([np.sort(rng.choice(20_000, int((ch == c).sum()), replace=False)) for c in range(n_ch)])
    start = np.array([NEVER, 3, -100, NEVER, 10], np.int64)
    want, ref = np.zeros(idx.size, bool), start.copy()
    for i, (c, t) in enumerate(zip(ch, idx)):
        if t - ref[c] >= gap:
            want[i], ref[c] = True, t
    last = start.copy()
    got = greedy_min_gap(ch, idx, last, gap)
    assert 0 < got.sum() < idx.size and np.array_equal(got, want) and np.array_equal(last, ref)
    last = start.copy()  # the same stream cut in two blocks at index 10 000
    parts = []
    for lo, hi in ((0, 10_000), (10_000, 20_000)):
        sel = (idx >= lo) & (idx < hi)
        parts.append((sel, greedy_min_gap(ch[sel], idx[sel], last, gap)))
    joined = np.zeros(idx.size, bool)
    for sel, keep in parts:
        joined[sel] = keep
    assert np.array_equal(joined, want) and np.array_equal(last, ref)


@pytest.mark.parametrize("hist_rows", [0, 5])
def test_compiled_record_gather_matches_the_array_gather(hist_rows: int) -> None:
    """Records read across the history/block seam and past either end (clipped), as the device path reads them."""
    rng = np.random.default_rng(6)
    hist = rng.normal(size=(hist_rows, 4)).astype(np.float32)
    x = rng.normal(size=(30, 4)).astype(np.float32)
    first = np.array([-3, 0, 2, hist_rows - 2, 20, 31], np.int64)
    ch = np.array([0, 3, 1, 2, 3, 0], np.int32)
    want = gather_rows(hist, x, first[:, None] + np.arange(8), ch[:, None], numpy_backend())
    got = np.full((first.size, 8), np.nan, np.float32)
    gather_records(hist, x, first, ch, got)
    assert np.array_equal(got, want)
