"""IQPipeline: channelized IQ (a CRS's stream) -> phase about the loop centre -> trigger, on synthetic loops."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cryodaq.acquisition.pipeline import IQPipeline, MKIDPipeline, pipeline_for_source
from cryodaq.config import PipelineConfig, TriggerConfig
from cryodaq.dsp import IQCalibration
from cryodaq.readout.blocks import Block
from cryodaq.readout.source import StreamDescription

FS = 596.046
CONFIG = PipelineConfig(trigger=TriggerConfig(threshold_sigma=6.0, holdoff_s=0.1, baseline_s=0.02, record_s=0.2,
                                              presamples_s=0.05))
CENTRE = np.array([2200 + 90j, -1500 + 400j])
RADIUS = np.array([1650.0, 900.0])
ROTATION = np.array([3.0, -1.2])
T0 = 1_796_654_422_194_356_998


def loops(n: int, pulses: dict[int, list[int]], rng: np.random.Generator, height: float = 2.6) -> np.ndarray:
    """IQ on each loop: phase 0 at rest (noise 20 mrad), pulses that jump by ``height`` rad in one
    sample and decay in 20 ms: bigger than pi steps between samples are the CRS's normal case."""
    theta = rng.normal(0, 0.02, (n, 2))
    t = np.arange(n)
    for ch, starts in pulses.items():
        for s in starts:
            theta[s:, ch] += height * np.exp(-(t[s:] - s) / (0.02 * FS))
    # sign -1: the loop runs the other way round; the calibration's sign makes pulses positive
    sign = np.array([1.0, -1.0])
    return (CENTRE + RADIUS * np.exp(1j * (ROTATION + sign * theta))).astype(np.complex64)


def run(pipeline: IQPipeline, iq: np.ndarray, block: int = 32, skip: range = range(0)) -> list:
    outs = []
    for first in range(0, len(iq), block):
        if first in skip:
            continue
        cont = first - block not in skip
        outs += pipeline.process(Block(first, T0 + round(first * 1e9 / FS), iq[first:first + block], cont))
    return outs + pipeline.finish()


def events(outs: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = np.concatenate([o.events.sample_index for o in outs])
    ch = np.concatenate([o.events.channel for o in outs])
    amp = np.concatenate([o.events.amplitude for o in outs])
    return idx, ch, amp


def test_iq_stream_gets_the_iq_pipeline_and_pulses_come_out_positive():
    rng = np.random.default_rng(1)
    pulses = {0: [400, 1000, 1600], 1: [700, 1300]}
    iq = loops(2400, pulses, rng)
    cal = IQCalibration(CENTRE, ROTATION, RADIUS, sign=[1.0, -1.0])
    stream = StreamDescription(kind="iq", sample_rate_hz=FS, n_channels=2, sample_dtype="complex64",
                               channel_coords={"tone_frequency_hz": np.array([1.2e9, 1.21e9])}, source="crs")
    pipeline = pipeline_for_source(CONFIG, stream, calibration=cal, calibration_method="resonator_fit")
    assert type(pipeline) is IQPipeline and pipeline.output_rate == FS
    outs = run(pipeline, iq)
    idx, ch, amp = events(outs)
    found = {c: sorted(idx[ch == c].tolist()) for c in (0, 1)}
    assert found == {0: pulses[0], 1: pulses[1]}  # at the sample of the jump, no more, no fewer
    np.testing.assert_allclose(amp, 2.6, atol=0.1)  # the whole 2.6 rad: no unwrapping artefact
    data = np.concatenate([o.data for o in outs if len(o.sample_index)])
    assert data.shape == (2400, 2) and np.abs(np.median(data, axis=0)).max() < 0.01
    t = np.concatenate([o.t_ns for o in outs if len(o.sample_index)])
    assert abs(t[1000] - (T0 + 1000 * 1e9 / FS)) < 2
    iq_out = np.concatenate([o.iq for o in outs if o.iq is not None and len(o.iq)])
    np.testing.assert_array_equal(iq_out, iq)  # the IQ behind the phase, for the run's i/q and the GUI
    attrs = pipeline.calibration_attrs()
    assert attrs["iq_calibration"] == "resonator_fit" and attrs["phase_sign"] == [1.0, -1.0]
    assert attrs["centre_i"] == CENTRE.real.tolist()


def test_without_a_calibration_the_phase_is_about_the_origin_from_the_first_data():
    rng = np.random.default_rng(2)
    iq = loops(1200, {0: [600]}, rng, height=0.3)
    pipeline = IQPipeline(CONFIG, fs=FS, n_channels=2)
    outs = run(pipeline, iq)
    assert pipeline.calibration is not None and np.all(pipeline.calibration.centre == 0)
    assert pipeline.calibration_attrs()["iq_calibration"] == "baseline"
    assert len(events(outs)[0]) >= 1


def test_a_gap_resets_the_trigger_and_keeps_sample_indices():
    rng = np.random.default_rng(3)
    iq = loops(2400, {0: [500, 1700]}, rng)
    pipeline = IQPipeline(CONFIG, fs=FS, n_channels=2, calibration=IQCalibration(CENTRE, ROTATION, RADIUS,
                                                                                  sign=[1.0, -1.0]))
    outs = run(pipeline, iq, skip=range(1024, 1024 + 3 * 32, 32))
    idx = np.concatenate([o.sample_index for o in outs if len(o.sample_index)])
    assert not np.isin(np.arange(1024, 1120), idx).any() and idx[-1] == 2399
    assert sorted(events(outs)[0].tolist()) == [500, 1700]


def test_calibration_must_match_the_channels():
    cal = IQCalibration(CENTRE[:1], ROTATION[:1], RADIUS[:1])
    with pytest.raises(ValueError, match="1 tones, the stream 2 channels"):
        IQPipeline(CONFIG, fs=FS, n_channels=2, calibration=cal)
    assert issubclass(MKIDPipeline, IQPipeline)  # one IQ -> phase code path behind the channelizer


def test_a_block_shorter_than_a_channelizer_frame_waits_in_its_history():
    """A receiver flushes a partial block after its latency limit: one packet can be shorter than a
    PFB frame, so the channelizer gives no output for it. The stream comes out as if it had been
    one block with the next (no error, same samples)."""
    fs, m = 2.048e6, 64
    config = PipelineConfig(n_channels=m, n_taps=8, decimation=2, trigger=TriggerConfig(threshold_sigma=6.0))
    tones = np.array([10.2, 20.3]) * fs / m
    t = np.arange(1 << 16) / fs
    comb = 4000 * np.cos(2 * np.pi * tones[:, None] * t).sum(axis=0)
    adc = np.rint(comb + np.random.default_rng(3).normal(0, 30, t.size)).astype(np.int16)

    def stream(cuts: list[int]) -> np.ndarray:
        p = MKIDPipeline(config, fs=fs, tone_if_hz=tones)
        outs = []
        for a, b in itertools.pairwise(cuts):
            outs += p.process(Block(a, 0, adc[a:b], True))
        outs += p.finish()
        return np.concatenate([o.data for o in outs if len(o.sample_index)])

    whole = stream(list(range(0, adc.size + 1, 1 << 13)))
    short_first = stream([0, m // 2, *range(1 << 13, adc.size + 1, 1 << 13)])
    np.testing.assert_array_equal(short_first, whole)
