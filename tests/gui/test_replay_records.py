"""Replaying a run of a records source (DASTARD): no stream, events in arrival order, integer records."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cryodaq.acquisition.pipeline import RecordPipeline
from cryodaq.acquisition.sinks import RunWriterSink, StreamInfo
from cryodaq.config import PipelineConfig
from cryodaq.gui.model import LiveModel
from cryodaq.readout import RecordBlock, StreamDescription
from cryodaq.storage import RunWriter
from cryodaq.wire import live as lp

T0 = 1_800_000_000_000_000_000


@pytest.fixture(scope="module")
def records_run(tmp_path_factory):
    """Two batches of records whose trigger times are not in arrival order (DASTARD sends channel by channel)."""
    stream = StreamDescription(kind="records", sample_rate_hz=1e5, n_channels=2, sample_dtype="uint16", units="arb",
                               channel_coords={"channel_name": np.array(["chan1", "chan2"])}, source="dastard")
    pipe = RecordPipeline(PipelineConfig(), stream)
    writer = RunWriter.create(tmp_path_factory.mktemp("runs"), station_name="records", station_snapshot={},
                              config={"pipeline": PipelineConfig().as_dict()}, catalog=False)
    sink = RunWriterSink(writer, store_stream=False)
    sink.start(StreamInfo("records", "records", "arb", 1e5, 1e5, pipe.channel_coords, str(writer.path)))
    rng = np.random.default_rng(5)
    raw = (1000 + rng.integers(0, 50, (6, 40))).astype(np.uint16)
    raw[:, 10:15] += 2000
    times = T0 + np.array([[3, 1, 2], [6, 4, 5]]) * 100_000_000  # per batch: channel 1 first, then channel 0
    for k in range(2):
        block = RecordBlock(np.array([1, 0, 0], np.int32), np.arange(3, dtype=np.int64) + 10 * k, times[k],
                            raw[3 * k:3 * k + 3], 8, np.full(3, 1e-5), np.ones(3, np.float32), np.full(3, 3, np.uint8))
        for out in pipe.process(block):
            sink.output(out)
    sink.close(interrupted=False, reason="done", error=None)
    return writer.path, raw, times.ravel()


def test_replay_plays_records_runs_in_time_order_with_their_own_rate(qapp, qt_ok, records_run):
    from cryodaq.gui.sources import ReplaySource

    path, raw, times = records_run
    src = ReplaySource(path, speed=math.inf)
    messages: list[lp.Message] = []
    src.message.connect(messages.append)
    model = LiveModel()
    src.message.connect(model.handle)
    try:
        src.seek(0.0)
        src.advance(10.0)
    finally:
        src.close()
    events = [m for m in messages if m.topic == lp.EVENTS]
    t = np.concatenate([m["t"] for m in events])
    assert t.tolist() == sorted(times.tolist())  # time order, though stored in arrival order
    order = np.argsort(times, kind="stable")
    last = events[-1]
    assert last.header["presamples"] == 8 and last.header["record_rate_hz"] == pytest.approx(1e5)
    rec = np.concatenate([m["records"] for m in events])
    np.testing.assert_array_equal(rec, raw[order][-len(rec):].astype(np.float32))  # each record with its event
    assert model.records is not None and len(model.ev_t) == 6
