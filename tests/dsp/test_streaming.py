"""End to end: int16 ADC packets -> ToneChannelizer -> phase -> trigger, with a data gap."""

from __future__ import annotations

import numpy as np

from cryodaq.dsp import EdgeTrigger, EventBatch, IQCalibration, ToneChannelizer

FS = 2.048e6
M = 64
PACKET = 4096
TONES = np.array([4, 7, 10, 13, 16, 19, 22, 25]) * FS / M + np.array([3e3, -2e3, 1e3, 4e3, -4e3, 2.5e3, 0, -1e3])
# (tone, ADC sample of the pulse onset)
PULSES = [(1, 300_000), (5, 300_000), (2, 590_000), (6, 1_000_000), (0, 1_400_000)]
N = 1_600_000
GAP = (700_000, 800_000)  # ADC samples lost between these indices


def _adc() -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(N) / FS
    x = rng.normal(scale=30.0, size=N)
    for i, f in enumerate(TONES):
        phase = np.full(N, 0.5 * i)
        for tone, onset in PULSES:
            if tone == i:
                dt = np.clip(t - onset / FS, 0, None)
                phase += 0.4 * (np.exp(-dt / 1.5e-3) - np.exp(-dt / 0.1e-3))
        x += 1500 * np.cos(2 * np.pi * f * t + phase)
    return np.round(x).astype(np.int16)


def _template() -> np.ndarray:
    rate = FS / M / 2
    t = np.arange(-8, 120) / rate
    s = np.where(t >= 0, np.exp(-np.clip(t, 0, None) / 1.5e-3) - np.exp(-np.clip(t, 0, None) / 0.1e-3), 0.0)
    return s / s.max()


def _pipeline(adc: np.ndarray, cal: IQCalibration, blocks_of_packets: list[int]) -> list[tuple[int, int]]:
    """(tone, ADC sample index) of every trigger. Packets in GAP are lost: the pipeline
    flushes, resets everything at the first sample after the gap, and goes on."""
    tc = ToneChannelizer(TONES, FS, M, 8, decimation=2)
    trig = EdgeTrigger(_template(), threshold_sigma=8.0, holdoff=64, template_presamples=8,
                       noise_samples=2000, presamples=16, record_length=96)
    found: list[tuple[int, int]] = []

    def collect(ev: EventBatch) -> None:
        found.extend((int(c), int(round(float(tc.sample_index(k))))) for c, k in zip(ev.channel, ev.sample_index))

    for seg_start, seg_end in ((0, GAP[0]), (GAP[1], N)):
        tc.reset(first_sample=seg_start)
        trig.reset()
        out_index, pos, b = 0, seg_start, 0
        while pos < seg_end:
            block = adc[pos : min(seg_end, pos + blocks_of_packets[b % len(blocks_of_packets)] * PACKET)]
            pos += block.size
            b += 1
            iq = tc.process(block)
            collect(trig.process(cal.phase(iq), out_index))
            out_index += iq.shape[0]
        collect(trig.finish())
    return sorted(found)


def test_pulses_found_once_at_their_adc_sample_for_any_blocking() -> None:
    adc = _adc()
    quiet = ToneChannelizer(TONES, FS, M, 8, decimation=2).process(adc[:200_000])
    cal = IQCalibration.from_baseline(quiet[100:])
    assert np.allclose(cal.radius, 750, rtol=0.01)  # a 1500-count cosine gives 750 in its channel
    got = _pipeline(adc, cal, [25])
    expected = sorted(PULSES)
    assert [g[0] for g in got] == [e[0] for e in expected], got
    for (tone, onset), (gt, gi) in zip(expected, got):
        assert abs(gi - onset) <= 2 * 64 * 2, (tone, onset, gi)  # within 2 output samples
    assert _pipeline(adc, cal, [1, 3, 2, 7]) == got
