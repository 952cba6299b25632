"""ThresholdTrigger's offline, chunked API (candidates -> resolve -> extract + pileup) equals streaming."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cryodaq.dsp import EventBatch, EventFlag, ThresholdTrigger

ARGS = {"threshold": 1.0, "holdoff": 10, "baseline_samples": 4, "presamples": 6, "record_length": 24, "keep_records": True}


def _signal(n: int = 3000, n_ch: int = 3, seed: int = 0) -> np.ndarray:
    """Noise, single pulses, and bursts of spikes 7 samples apart: hold-off chains (10 > 7)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.15, (n, n_ch)).astype(np.float32)
    for c in range(n_ch):
        for p in rng.integers(20, n - 30, 12):
            x[p : p + 8, c] += np.float32(3.0) * np.exp(-np.arange(8) / 2.0).astype(np.float32)
        start = 400 + 300 * c
        x[start : start + 200 : 7, c] += 4.0  # a burst: each spike is a crossing
    x[-3, 0] += 5.0  # a pulse whose record the stream end cuts (TRUNCATED)
    return x


def _streaming(x: np.ndarray, blocks: int, **kw: object) -> EventBatch:
    trig = ThresholdTrigger(**{**ARGS, **kw})
    out = []
    for i, part in enumerate(np.array_split(x, blocks)):
        start = sum(len(p) for p in np.array_split(x, blocks)[:i])
        out.append(trig.process(part, start))
    out.append(trig.finish())
    return EventBatch.concat(out)


def _chunked(x: np.ndarray, edges: list[int], **kw: object) -> tuple[EventBatch, int]:
    """Candidates per chunk (with the overlap the trigger asks for), one resolve, extraction per chunk."""
    trig = ThresholdTrigger(**{**ARGS, **kw})
    n = x.shape[0]
    lead = max(trig.lookback, trig.presamples)
    tail = trig.builder.span - trig.presamples
    cands = []
    for a, e in itertools.pairwise(edges):
        v0 = max(0, a - lead)
        ch, idx = trig.candidates(x[v0:e], v0, 0, start=a)
        cands.append((ch, idx))
    ch = np.concatenate([c[0] for c in cands])
    idx = np.concatenate([c[1] for c in cands])
    order = np.lexsort((idx, ch))
    ch, idx = ch[order], idx[order]
    kept, recorded = trig.resolve(ch, idx, x.shape[1])
    events = []
    for a, e in itertools.pairwise(edges):
        mine = recorded & (idx >= a) & (idx < e)
        v0, v1 = max(0, a - lead), min(n, e + tail)
        events.append(trig.extract(x[v0:v1], v0, idx[mine], ch[mine], stream_end=n))
    ev = EventBatch.concat(events)
    ev.flags[trig.pileup(ev.sample_index, ev.channel, idx[kept], ch[kept])] |= np.uint16(EventFlag.PILEUP)
    return ev.sorted(), int(idx.size)


def _same(a: EventBatch, b: EventBatch) -> None:
    assert len(a) == len(b)
    for col in ("sample_index", "channel", "amplitude", "baseline", "flags"):
        np.testing.assert_array_equal(getattr(a, col), getattr(b, col), err_msg=col)
    np.testing.assert_array_equal(a.records, b.records)


@pytest.mark.parametrize("edges", [[0, 3000], [0, 407, 414, 421, 1000, 1001, 2990, 3000], list(range(0, 3001, 25))])
@pytest.mark.parametrize("extra", [{}, {"dead_time": 30}, {"polarity": -1}])
def test_chunked_equals_streaming(edges: list[int], extra: dict) -> None:
    x = _signal() * extra.get("polarity", 1)
    ref = _streaming(x, 7, **extra)
    got, n_candidates = _chunked(x, edges, **extra)
    _same(ref, got)
    assert n_candidates > len(ref)  # hold-off suppressed some candidates: the chains were exercised
    assert np.any(ref.flags & EventFlag.TRUNCATED) and np.any(ref.flags & EventFlag.PILEUP)


def test_candidates_refuse_a_block_without_lookback() -> None:
    trig = ThresholdTrigger(**ARGS)
    x = _signal()
    with pytest.raises(ValueError, match="samples before"):
        trig.candidates(x[100:200], 100, 0, start=102)


def test_resolve_needs_sorted_candidates() -> None:
    trig = ThresholdTrigger(**ARGS)
    with pytest.raises(ValueError, match="sorted"):
        trig.resolve(np.array([0, 0]), np.array([50, 40]), 1)
