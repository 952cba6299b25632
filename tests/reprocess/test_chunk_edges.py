"""Reprocessing a synthetic stored run: chunk edges, hold-off chains across them, and a gap.

The reference is the acquisition's own code path: the trigger from ``make_trigger`` fed the
stored stream block by block, restarted at the gap (as ``MKIDPipeline`` does).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cryodaq.acquisition.pipeline import make_trigger
from cryodaq.backend import get_backend, numpy_backend
from cryodaq.dsp import EventBatch, EventFlag
from cryodaq.dsp.detectors import NEVER, greedy_min_gap
from cryodaq.reprocess import load_reprocess_config, reprocess_run
from cryodaq.reprocess.config import ReprocessConfig
from cryodaq.reprocess._plan import Chunk, chunk_rows, find_segments, plan_chunks
from cryodaq.reprocess._tasks import prune_suppressed
from cryodaq.config import PipelineConfig, TriggerConfig
from cryodaq.storage import RunWriter, open_run

RATE = 1000.0
N_CH = 3
# holdoff 10 samples, baseline 4, record 24 with 6 presamples
TRIGGER = TriggerConfig(threshold_sigma=5.0, holdoff_s=0.010, polarity=1, baseline_s=0.004, record_s=0.024,
                        presamples_s=0.006)
SIGMA = 0.2
GAP_ROW = 1500  # the stream restarts here (sample_index jumps)
N = 3000


def _stream() -> np.ndarray:
    rng = np.random.default_rng(3)
    x = rng.normal(0, SIGMA, (N, N_CH)).astype(np.float32)
    pulse = (3.0 * np.exp(-np.arange(10) / 2.5)).astype(np.float32)
    for c in range(N_CH):
        for p in rng.integers(20, N - 20, 10):
            x[p : p + 10, c] += pulse[: len(x[p : p + 10, c])]
        x[300 + 100 * c : 500 + 100 * c : 7, c] += 4.0  # bursts: spikes 7 apart, hold-off 10 chains them
    for p in (99, 100, 101, 199, 200, 249, 250):  # pulses right at chunk edges of 50 and 100 rows
        x[p : p + 10, p % N_CH] += pulse
    x[GAP_ROW + 1, 1] += 4.0  # in the warm-up after the gap: acquisition cannot fire there
    x[GAP_ROW - 3, 2] += 4.0  # a record the gap cuts short (TRUNCATED)
    x[N - 2, 0] += 4.0  # one the end of the run cuts short
    return x


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x = _stream()
    si = np.arange(N, dtype=np.int64)
    si[GAP_ROW:] += 777  # samples lost
    w = RunWriter.create(tmp_path_factory.mktemp("runs"), station_name="synthetic", station_snapshot={},
                         config={"pipeline": {"trigger": TRIGGER.__dict__}}, catalog=False)
    w.declare_stream("phase", n_channels=N_CH, sample_rate_hz=RATE, units="rad", chunk_time=256,
                     channel_coords={"channel": np.array([10, 11, 12])})
    thresholds = np.full(N_CH, TRIGGER.threshold_sigma * SIGMA, np.float32)
    w.update_attrs(pipeline_calibration={"trigger_threshold": thresholds.tolist(), "stream": "phase"})
    for a in range(0, N, 400):
        w.append_stream("phase", x[a : a + 400], si[a : a + 400], 1_700_000_000_000_000_000 + si[a : a + 400] * 1_000_000)
        w.commit()
    w.append_gap(1500, 777, 0, "packet_loss")
    w.close()
    return w.path


def _reference(path: Path) -> tuple[EventBatch, np.ndarray, np.ndarray]:
    """What acquisition would have found: per segment, the stream in blocks of 37 rows, then finish()."""
    run = open_run(path)
    ds = run.stream("phase")
    x, si, t = ds["phase"].values, ds["sample_index"].values, ds["t"].values
    thr = np.asarray(run.attrs["pipeline_calibration"]["trigger_threshold"], np.float32)
    trig = make_trigger(PipelineConfig(trigger=TRIGGER), thr, RATE, numpy_backend())
    out = []
    for s0, s1 in ((0, GAP_ROW), (GAP_ROW, N)):  # the trigger restarts at the gap, indices from 0
        seg = [trig.process(x[a : min(a + 37, s1)], a - s0) for a in range(s0, s1, 37)]
        ev = EventBatch.concat([*seg, trig.finish()])
        ev.sample_index = ev.sample_index + s0  # segment-relative index -> stream row
        out.append(ev)
    ev = EventBatch.concat(out)
    return ev, si[ev.sample_index], t[ev.sample_index]


def _check_same(path: Path, label: str, ref: tuple[EventBatch, np.ndarray, np.ndarray]) -> None:
    ev, si, t = ref
    got = open_run(path).reprocessed(label).load()
    assert got.sizes["event"] == len(ev)
    np.testing.assert_array_equal(got["sample_index"].values, si)
    np.testing.assert_array_equal(got["t"].values, t)
    np.testing.assert_array_equal(got["channel"].values, np.array([10, 11, 12])[ev.channel])
    np.testing.assert_array_equal(got["amplitude"].values, ev.amplitude)
    np.testing.assert_array_equal(got["baseline"].values, ev.baseline)
    np.testing.assert_array_equal(got["flags"].values, ev.flags)
    np.testing.assert_array_equal(got["records"].values, ev.records)


@pytest.mark.parametrize("chunk_s", [10.0, 0.1, 0.05, 0.007])  # 7 rows: shorter than hold-off and records
def test_any_chunking_gives_the_streaming_events(synthetic_run: Path, chunk_s: float) -> None:
    ref = _reference(synthetic_run)
    flags = ref[0].flags
    assert np.any(flags & EventFlag.TRUNCATED) and np.any(flags & EventFlag.PILEUP)
    label = f"chunks-{chunk_s}"
    result = reprocess_run(synthetic_run, {"chunk_s": chunk_s}, label=label, workers=0, progress=False)
    assert result.n_segments == 2
    assert result.n_chunks >= N / (chunk_s * RATE)
    _check_same(synthetic_run, label, ref)


def test_gap_restarts_the_trigger(synthetic_run: Path) -> None:
    reprocess_run(synthetic_run, {"chunk_s": 0.05}, label="gap", workers=0, progress=False)
    got = open_run(synthetic_run).reprocessed("gap")["sample_index"].values
    restart = GAP_ROW + 777
    warm = max(round(TRIGGER.presamples_s * RATE), round(TRIGGER.baseline_s * RATE))
    after = got[got >= restart]
    assert after.size and after.min() >= restart + warm  # the spike in the warm-up did not fire
    assert np.any((got > GAP_ROW - 30) & (got < GAP_ROW))  # the pulse cut by the gap was found


def test_segments_and_chunks() -> None:
    si = np.array([0, 2, 4, 6, 100, 102, 104, 50, 52], np.int64)
    assert find_segments(si) == [(0, 4), (4, 7), (7, 9)]
    assert find_segments(np.zeros(0, np.int64)) == []
    chunks = plan_chunks([(0, 4), (4, 7), (7, 9)], 3)
    assert [(c.start, c.end) for c in chunks] == [(0, 3), (3, 4), (4, 6), (6, 7), (7, 9)]
    assert Chunk(0, 4, 20, 6, 9).view(5, 3) == (4, 12)
    assert chunk_rows(10.0, 16000, 16000) == 160000 and chunk_rows(0.05, 16000, 16000) == 800
    assert chunk_rows(2.4, 1000, 1000) == 2000  # whole storage chunks when larger than one


def test_pruning_keeps_greedy_hold_off_exact() -> None:
    """Dropping what a chunk knows hold-off suppresses never changes the sequential result."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        n_ch, holdoff, start = 2, int(rng.integers(2, 12)), 50
        idx = np.unique(rng.integers(start, start + 80, int(rng.integers(0, 40))))
        ch = rng.integers(0, n_ch, idx.size).astype(np.int32)
        order = np.lexsort((idx, ch))
        ch, idx = ch[order], idx[order]
        before = np.array([start - int(rng.integers(1, 12))]), np.array([int(rng.integers(0, n_ch))], np.int32)
        keep = prune_suppressed(ch, idx, start, holdoff, n_ch)
        full_i, full_c = np.concatenate([before[0], idx]), np.concatenate([before[1], ch])
        o = np.lexsort((full_i, full_c))
        ref = greedy_min_gap(full_c[o], full_i[o], np.full(n_ch, NEVER), holdoff)
        pi, pc = np.concatenate([before[0], idx[keep]]), np.concatenate([before[1], ch[keep]])
        o2 = np.lexsort((pi, pc))
        got = greedy_min_gap(pc[o2], pi[o2], np.full(n_ch, NEVER), holdoff)
        kept_ref = set(zip(full_c[o][ref].tolist(), full_i[o][ref].tolist()))
        kept_got = set(zip(pc[o2][got].tolist(), pi[o2][got].tolist()))
        assert kept_ref == kept_got


def test_example_config_file_runs(synthetic_run: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "reprocess.yaml"
    cfg = load_reprocess_config(example)
    assert cfg.trigger_overrides["threshold_sigma"] == 5.0 and cfg.optimal_filter.energy_lines_ev == (1.55,)
    result = reprocess_run(synthetic_run, cfg, label="example", workers=0, progress=False)
    ds = open_run(synthetic_run).reprocessed("example")
    assert ds.sizes["event"] == result.n_events > 0 and "of_amplitude" in ds
    assert ds.attrs["config"]["file"] == str(example)


def test_strict_backend_reprocesses_without_host_round_trips(synthetic_run: Path) -> None:
    """Reprocessing on the strict test backend (device rules, numpy underneath) gives the same events:
    its detection runs on device arrays and crosses to the host only through the Backend."""
    strict = get_backend("strict")
    before = strict.transfers.counts()
    reprocess_run(synthetic_run, ReprocessConfig(chunk_s=0.05, backend="strict"), label="strict", workers=0,
                  progress=False)
    _check_same(synthetic_run, "strict", _reference(synthetic_run))
    to_device, to_host = (a - b for a, b in zip(strict.transfers.counts(), before))
    assert to_device > 0 and to_host > 0
