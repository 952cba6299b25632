"""StreamWorkers: a pipeline that is behind joins the queued blocks, and its results do not change."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from cryodaq.acquisition.pipeline import MKIDPipeline
from cryodaq.config import PipelineConfig, TriggerConfig
from cryodaq.acquisition.sinks import SessionStats
from cryodaq.acquisition.workers import StreamWorkers
from cryodaq.readout.block_queue import BlockQueue
from cryodaq.readout.blocks import Block, Gap


PINNED = Path(__file__).parents[1] / "data" / "pinned_streams.npz"  # a simulated MKID ADC stream with photons
CONFIG = PipelineConfig(n_channels=16, n_taps=8, decimation=2,
                        trigger=TriggerConfig(threshold_sigma=5.0, holdoff_s=0.004, record_s=0.004, presamples_s=0.001))
BLOCK, GAP_AT, GAP_LEN = 4096, 20, 3  # samples per block; a gap of GAP_LEN blocks at block GAP_AT


def _load() -> tuple[np.ndarray, float, np.ndarray]:
    with np.load(PINNED) as f:
        return f["mkid_adc"], float(f["mkid_fs"]), f["mkid_tone_if"]


def _blocks() -> list[Block]:
    adc, fs, _ = _load()
    t0 = 1_700_000_000_000_000_000
    return [Block(first, t0 + round(first * 1e9 / fs), adc[first:first + BLOCK], k != GAP_AT + GAP_LEN)
            for k, first in enumerate(range(0, len(adc), BLOCK)) if not GAP_AT <= k < GAP_AT + GAP_LEN]


class _Collect:
    """A sink that keeps the stream, the events and the gaps it is given."""

    def __init__(self) -> None:
        self.stream: list[np.ndarray] = []
        self.events: list[dict[str, np.ndarray]] = []
        self.gaps: list[Gap] = []

    def start(self, info: Any) -> None: ...

    def output(self, out: Any) -> None:
        if len(out.sample_index):
            self.stream.append(np.asarray(out.data))
        self.events.append({k: np.asarray(v) for k, v in out.event_columns().items()})

    def gap(self, gap: Gap) -> None:
        self.gaps.append(gap)

    def housekeeping(self, *args: Any) -> None: ...

    def spectrum(self, *args: Any) -> None: ...

    def status(self, stats: Any) -> None: ...

    def close(self, **kw: Any) -> None: ...


def _run(blocks: list[Block], coalesce: int) -> tuple[_Collect, list[tuple[int, int]], StreamWorkers]:
    _, fs, tone_if = _load()
    receiver = SimpleNamespace(blocks=BlockQueue(maxsize=len(blocks) + 1))
    for b in blocks:  # all queued before the pipeline starts: it is as far behind as it can be
        receiver.blocks.put(b)
    receiver.blocks.put(None)
    pipeline = MKIDPipeline(CONFIG, fs=fs, tone_if_hz=tone_if)
    seen: list[tuple[int, int]] = []
    process = pipeline.process

    def recording(block: Block) -> Any:
        seen.append((block.first_sample, block.n_samples))
        return process(block)

    pipeline.process = recording  # type: ignore[method-assign]
    sink = _Collect()
    workers = StreamWorkers(receiver, pipeline, sink, SessionStats(events_per_channel=np.zeros(len(tone_if), np.int64)),
                            coalesce=coalesce)
    workers.start()
    workers.join(60)
    assert not any(t.is_alive() for t in workers.threads)
    return sink, seen, workers


def test_a_pipeline_that_is_behind_joins_queued_blocks_and_gives_the_same_results() -> None:
    blocks = _blocks()
    one, seen_one, w_one = _run(blocks, coalesce=1)
    joined, seen_joined, w_joined = _run(blocks, coalesce=8)
    assert seen_one == [(b.first_sample, b.n_samples) for b in blocks] and w_one.coalesced == 0
    # runs of up to 8 blocks, never across the gap: 20 blocks before it, the rest after
    groups = [blocks[a:min(a + 8, GAP_AT)] for a in range(0, GAP_AT, 8)]
    groups += [blocks[a:a + 8] for a in range(GAP_AT, len(blocks), 8)]
    assert seen_joined == [(g[0].first_sample, sum(b.n_samples for b in g)) for g in groups]
    gap_lo, gap_hi = GAP_AT * BLOCK, (GAP_AT + GAP_LEN) * BLOCK
    assert all(first + n <= gap_lo or first >= gap_hi for first, n in seen_joined)
    assert w_joined.coalesced == len(blocks) - len(seen_joined)

    assert [(g.first_sample, g.n_samples) for g in joined.gaps] == [(g.first_sample, g.n_samples) for g in one.gaps]
    # the same samples and events; values equal to float32 rounding (the tone mixer's phase is
    # restated at each block's start, so its rounding depends on where blocks begin)
    np.testing.assert_allclose(np.concatenate(joined.stream), np.concatenate(one.stream), rtol=0, atol=2e-6)
    for col in one.events[0]:
        want = np.concatenate([e[col] for e in one.events])
        got = np.concatenate([e[col] for e in joined.events])
        assert want.size > 0, f"no events in column {col!r}"
        if col == "t_err":  # the clock model had one anchor per joined block, not per block
            np.testing.assert_allclose(got, want, rtol=1e-4, err_msg="event times' uncertainty")
        elif want.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=0, atol=2e-6, err_msg=f"event column {col!r}")
        else:
            np.testing.assert_array_equal(got, want, err_msg=f"event column {col!r}")
