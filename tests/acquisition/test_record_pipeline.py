"""RecordPipeline: a source's own triggered records -> events with the raw samples kept exactly; status ->
housekeeping; records that cannot be stored become gaps."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.acquisition.pipeline import RecordPipeline
from cryodaq.config import PipelineConfig, TriggerConfig
from cryodaq.readout import RecordBlock, StatusMessage, StreamDescription
from cryodaq.wire.dastard import format_go_time

T0 = 1_800_000_000_000_000_000


def _stream(n_channels: int = 3) -> StreamDescription:
    names = np.asarray([f"chan{k + 1}" for k in range(n_channels)])
    return StreamDescription(kind="records", sample_rate_hz=1e5, n_channels=n_channels, sample_dtype="uint16",
                             units="arb", channel_coords={"channel_name": names}, source="dastard")


def _block(samples: np.ndarray, channel, *, presamples: int = 4, codes=None, status=()) -> RecordBlock:
    n = len(samples)
    return RecordBlock(np.asarray(channel, np.int32), np.arange(100, 100 + n, dtype=np.int64),
                       T0 + np.arange(n, dtype=np.int64) * 1000, samples, presamples, np.full(n, 1e-5),
                       np.full(n, 1 / 65535, np.float32),
                       np.asarray(codes if codes is not None else [3] * n, np.uint8), status=list(status))


def test_records_become_events_with_the_raw_samples_and_trigger_like_amplitudes():
    pipe = RecordPipeline(PipelineConfig(trigger=TriggerConfig(polarity=-1)), _stream())
    rng = np.random.default_rng(3)
    samples = (30000 + rng.integers(-5, 6, (4, 16))).astype(np.uint16)
    samples[:, 6:9] -= np.array([500, 300, 100], np.uint16)  # negative-going pulses after 4 presamples
    [out] = pipe.process(_block(samples, [0, 2, 1, 2]))
    cols = out.event_columns()
    assert cols["records"].dtype == np.uint16 and cols["records"].tobytes() == samples.tobytes()
    assert cols["sample_index"].tolist() == [100, 101, 102, 103] and cols["channel"].tolist() == [0, 2, 1, 2]
    assert cols["t"].tolist() == (T0 + np.arange(4) * 1000).tolist()
    x = samples.astype(np.float64)
    baseline = x[:, :4].mean(axis=1)
    np.testing.assert_allclose(cols["baseline"], baseline, rtol=1e-6)
    np.testing.assert_allclose(cols["amplitude"], (baseline[:, None] - x[:, 4:]).max(axis=1), rtol=1e-5)
    assert cols["sample_dtype"].tolist() == [3] * 4 and cols["volts_per_arb"][0] == np.float32(1 / 65535)
    assert out.events.presamples == 4 and len(out.data) == 0 and not out.gaps
    assert pipe.calibration_attrs()["records_per_channel"] == [1, 1, 2]


def test_a_signed_record_among_unsigned_ones_is_stored_bit_for_bit_and_named():
    pipe = RecordPipeline(PipelineConfig(), _stream())
    signed = np.array([-3, -2, -1, 0, 50, 10], np.int16)
    samples = np.stack([np.array([1, 1, 1, 1, 9, 1], np.uint16), signed.view(np.uint16)])  # as the receiver packs it
    [out] = pipe.process(_block(samples, [0, 1], codes=[3, 2]))
    cols = out.event_columns()
    assert cols["records"].tobytes() == samples.tobytes() and cols["sample_dtype"].tolist() == [3, 2]
    assert cols["records"][1].view(np.int16).tolist() == signed.tolist()
    assert cols["baseline"][1] == pytest.approx(-1.5) and cols["amplitude"][1] == pytest.approx(51.5)


def test_records_that_cannot_share_the_runs_records_array_become_gaps():
    pipe = RecordPipeline(PipelineConfig(), _stream(n_channels=2))
    [first] = pipe.process(_block(np.zeros((2, 16), np.uint16), [0, 1]))
    assert len(first.events) == 2
    [out] = pipe.process(_block(np.zeros((3, 20), np.uint16), [0, 1, 0]))  # DASTARD's record length changed
    assert len(out.events) == 0
    [gap] = out.gaps
    assert (gap.cause, gap.n_samples, gap.first_sample) == ("record_shape_changed", 3, 100)
    assert "20 samples" in gap.detail and "16-sample records" in gap.detail and "start a new run" in gap.detail
    [out] = pipe.process(_block(np.zeros((3, 16), np.uint16), [0, 7, 1]))  # an index DASTARD did not describe
    assert out.event_columns()["channel"].tolist() == [0, 1]
    assert [(g.cause, g.n_samples) for g in out.gaps] == [("bad_record", 1)] and "[7]" in out.gaps[0].detail
    assert pipe.calibration_attrs()["records_refused"] == 4


def test_status_messages_become_housekeeping_and_run_attrs():
    pipe = RecordPipeline(PipelineConfig(), _stream(n_channels=2))
    status = [StatusMessage("TRIGGERRATE", {"HiTime": format_go_time(T0), "Duration": 10**9, "CountsSeen": [3, 4]},
                            T0 + 5),
              StatusMessage("STATUS", {"Running": True, "Nsamples": 16}, T0 + 6),
              StatusMessage("STATELABEL", "CALIBRATION", T0 + 7),
              StatusMessage("ALIVE", {"Running": True, "Time": 2.0, "DataMB": 4.0}, T0 + 8)]
    [out] = pipe.process(RecordBlock.empty(status=status))
    assert len(out.events) == 0
    assert [(h.name, h.t_ns, h.value, h.unit) for h in out.housekeeping] == [
        ("dastard_trigger_rate", T0, 7.0, "Hz"), ("trigger_rate_chan1", T0, 3.0, "Hz"),
        ("trigger_rate_chan2", T0, 4.0, "Hz"), ("dastard_running", T0 + 8, 1.0, ""),
        ("dastard_data_rate", T0 + 8, 2e6, "B/s")]
    attrs = pipe.calibration_attrs()
    assert attrs["source_status"] == {"STATUS": {"Running": True, "Nsamples": 16}}
    assert attrs["state_labels"] == [[T0 + 7, "CALIBRATION"]]
    assert pipe.process(RecordBlock.empty()) == []
