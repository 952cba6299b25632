"""The live optimal-filter stage: learn per channel, hold events meanwhile, filter every event, store the filter
rows; a refresh makes a new row; stored filters are used without learning. Synthetic streams through the TES
pipeline (no instruments)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cryodaq.acquisition.pipeline import TESPipeline, optimal_stage
from cryodaq.analysis.filters import ChannelFilter
from cryodaq.config import OptimalFilterConfig, PipelineConfig, TriggerConfig
from cryodaq.readout.blocks import Block

FS = 100_000.0
CPA = np.array([1e9, 1e9])  # counts per ampere: noise 5 counts, a 1000 eV pulse 1000 counts
TRIGGER = TriggerConfig(threshold_sigma=8.0, holdoff_s=0.003, polarity=-1, baseline_s=0.001, record_s=0.004,
                        presamples_s=0.001)
LINES = (1000.0, 1500.0)


def _stream(seconds: float, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """int16 counts (n, 2): downward two-pole pulses (1 uA per 1000 eV), 20 Hz per channel, white noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    x = np.zeros((n, 2))
    t = np.arange(400)
    shape = np.exp(-t / 60.0) - np.exp(-t / 4.0)
    shape /= shape.max()
    energies = []
    for ch in range(2):
        k = 500
        while True:
            k += int(rng.exponential(FS / 20)) + 450
            if k + 400 >= n:
                break
            e = LINES[int(rng.uniform() < 0.3)] + rng.normal(0, 2.0)
            x[k:k + 400, ch] -= e * 1e-9 * shape
            energies.append((k, ch, e))
    x += rng.normal(0, 5e-9, x.shape)
    return np.rint(x * CPA).astype(np.int16), np.array(energies)


def _run(pipeline: TESPipeline, counts: np.ndarray, block: int = 4096, gap_at: int | None = None) -> list:
    outs = []
    for k in range(0, len(counts), block):
        cont = gap_at is None or k != gap_at
        outs += pipeline.process(Block(k, 1_700_000_000_000_000_000 + int(k * 1e4), counts[k:k + block], cont))
    return outs + pipeline.finish()


def _pipeline(**of: object) -> TESPipeline:
    cfg = PipelineConfig(trigger=TRIGGER, optimal_filter=OptimalFilterConfig(
        min_pulses=10, learn_pulses=15, noise_records=40, energy_lines_ev=LINES, template_window=0.1, **of))
    p = TESPipeline(cfg, fs=FS, counts_per_ampere=CPA)
    p.event_stage = optimal_stage(cfg, FS, 2)
    return p


@pytest.fixture(scope="module")
def stream() -> tuple[np.ndarray, np.ndarray]:
    return _stream(3.0)


def test_every_event_filtered_with_energy_and_summaries(stream: tuple[np.ndarray, np.ndarray]) -> None:
    counts, truth = stream
    p = _pipeline()
    outs = _run(p, counts)
    cols = [o.event_columns() for o in outs if len(o.events)]
    amp = np.concatenate([c["of_amplitude"] for c in cols])
    energy = np.concatenate([c["energy"] for c in cols])
    flags = np.concatenate([c["flags"] for c in cols])
    assert amp.size > 80 and np.isfinite(amp[flags == 0]).all()  # the first events were held, then filtered too
    assert {"chi2", "of_delay_s", "arrival_t", "residual_std", "pretrig_rms", "rise_time_s", "of_filter"} <= set(cols[0])
    rows = [o.optimal_filters for o in outs if o.optimal_filters is not None]
    assert sum(len(r["channel"]) for r in rows) == 2 and sorted(np.concatenate([r["channel"] for r in rows])) == [0, 1]
    clean = energy[(flags == 0) & (energy < 1200)]
    assert abs(np.median(clean) - LINES[0]) < 5.0
    # spread about the line: the drawn 2 eV and the filters' predicted resolution, nothing more
    sigma_pred = np.hypot(2.0, np.mean(np.concatenate([r["fwhm_ev"] for r in rows])) / 2.3548)
    assert np.std(clean[np.abs(clean - 1000) < 20]) == pytest.approx(sigma_pred, rel=0.25)
    attrs = p.calibration_attrs()["optimal_filter"]
    assert attrs["rows"] == 2 and attrs["polarity"] == -1


def test_a_gap_while_learning_keeps_events_waiting_and_a_refresh_adds_rows(
        stream: tuple[np.ndarray, np.ndarray]) -> None:
    counts, _ = stream
    p = _pipeline()
    outs = _run(p, counts[: 150_000], gap_at=4096 * 3)  # a gap at 0.12 s, before any filter exists
    assert not any(len(o.events) for o in outs[:3])
    amp = np.concatenate([o.event_columns()["of_amplitude"] for o in outs if len(o.events)])
    assert np.isfinite(amp).mean() > 0.9
    p.event_stage.request_refresh()
    more = _run(p, counts[150_000:])
    rows = [o.optimal_filters for o in more if o.optimal_filters is not None]
    versions = np.concatenate([r["version"] for r in rows])
    assert sorted(versions) == [1, 1] and np.all(np.concatenate([r["valid_from_sample"] for r in rows]) > 150_000)


def test_stored_filters_are_used_without_learning_or_holding(stream: tuple[np.ndarray, np.ndarray]) -> None:
    counts, _ = stream
    first = _pipeline()
    _run(first, counts)
    stored = [replace(f, version=3) for f in first.event_stage.rows]
    p = TESPipeline(first.config, fs=FS, counts_per_ampere=CPA)
    from cryodaq.acquisition.optimal_stage import OnlineOptimalFilter

    record, pre = 400, 100
    p.event_stage = OnlineOptimalFilter(first.config.optimal_filter, n_channels=2, rate_hz=FS, presamples=pre,
                                        record_length=record, polarity=-1, loaded=stored)
    outs = _run(p, counts[:40_000])
    with_events = [o for o in outs if len(o.events)]
    assert with_events and outs.index(with_events[0]) < 5  # nothing held back
    assert np.isfinite(with_events[0].event_columns()["of_amplitude"]).all()
    rows = [o.optimal_filters for o in outs if o.optimal_filters is not None][0]
    np.testing.assert_array_equal(rows["template"][0], stored[0].template)  # stored again with the new run
    bad = replace(stored[0], template=stored[0].template[:100], _filter=None)
    with pytest.raises(ValueError, match="400 samples"):
        OnlineOptimalFilter(first.config.optimal_filter, n_channels=2, rate_hz=FS, presamples=pre,
                            record_length=record, loaded=[bad])


def test_channel_filter_round_trip_gives_identical_values(stream: tuple[np.ndarray, np.ndarray]) -> None:
    from cryodaq.analysis.filters import filter_rows

    counts, _ = stream
    p = _pipeline()
    outs = _run(p, counts[:150_000])
    rows = filter_rows(p.event_stage.rows)
    again = ChannelFilter(int(rows["channel"][0]), rows["template"][0], rows["noise_psd"][0], float(rows["rate_hz"][0]),
                          int(rows["max_delay"][0]), int(rows["polarity"][0]), int(rows["presamples"][0]),
                          (float(rows["energy_c1"][0]), float(rows["energy_c2"][0])))
    ev = [o for o in outs if len(o.events)][-1]
    mine = ev.events.channel == again.channel
    got = again.columns(ev.events.records[mine])
    np.testing.assert_array_equal(got["of_amplitude"], ev.event_extra["of_amplitude"][mine])
    np.testing.assert_array_equal(got["chi2"], ev.event_extra["chi2"][mine])
