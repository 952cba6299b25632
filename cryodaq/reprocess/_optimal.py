"""The optimal-filter stage: per-channel filters, then amplitude, χ², arrival time, energy for every event.

Per channel the filter is learnt exactly as the live pipeline learns it
(:func:`cryodaq.analysis.filters.learn_channel_filter`: template from its clean events' records, no
PILEUP/TRUNCATED flag; noise PSD from pulse-free records, AutoTrigger vetoed by the trigger), or
taken from stored filters (config ``load``): ``online`` uses the run's own live filters — with the
stored events' records (``source: records``) each event gets the very filter it got live
(``of_filter``), so the values are reproduced exactly; re-triggered events get the filter valid at
their sample index —, a path uses another run's or reprocessing's filters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cryodaq.analysis.filters import ChannelFilter, learn_channel_filter, select_filter
from cryodaq.config import OptimalFilterConfig
from cryodaq.dsp import EventBatch

log = logging.getLogger(__name__)

COLUMNS = ("of_amplitude", "chi2", "of_delay_s", "energy", "residual_std")


@dataclass
class OptimalFilterOutput:
    """Columns for every event (NaN where a channel had no filter or the record was truncated),
    and the per-channel filters as arrays for the derived group (the newest filter of each channel)."""

    columns: dict[str, np.ndarray]
    templates: np.ndarray  # (n_channels, record_length), NaN for channels without a filter
    noise_psd: np.ndarray  # (n_channels, record_length // 2 + 1)
    freq: np.ndarray  # (record_length // 2 + 1,) Hz
    resolution: np.ndarray  # (n_channels,) theoretical 1-sigma amplitude resolution, stream units
    line_amplitudes: np.ndarray  # (n_channels, 1) OF amplitude of the first calibration line
    energy_coeffs: np.ndarray  # (n_channels, 2): E = c1 A + c2 A^2
    summary: dict[str, Any] = field(default_factory=dict)


def optimal_filter_stage(
    events: EventBatch, noise: np.ndarray, noise_channel: np.ndarray, n_channels: int, rate_hz: float,
    config: OptimalFilterConfig, *, polarity: int = 1, channel_names: Any = None,
    loaded: list[ChannelFilter] | None = None, event_filter: np.ndarray | None = None,
) -> OptimalFilterOutput:
    """Filter every event's record with its channel's optimal filter (see the module docstring).

    ``events.channel`` / ``noise_channel`` are column indices ``0..n_channels-1``; ``channel_names``
    (their coordinate values) match stored filters and label the summary. ``polarity=-1``: downward
    pulses, filtered sign-flipped so amplitudes come out positive. ``loaded``: use these filters
    instead of learning; ``event_filter`` (index into ``loaded`` per event, −1: none) picks each
    event's filter, else the one valid at its sample index.
    """
    names = np.arange(n_channels) if channel_names is None else np.asarray(channel_names)
    if events.records is None:
        raise ValueError("the optimal-filter stage needs the events' records")
    n, length = len(events), events.records.shape[1]
    pre = events.presamples
    nf = length // 2 + 1
    cols = {name: np.full(n, np.nan, np.float32) for name in COLUMNS}
    out = OptimalFilterOutput(
        columns=cols,
        templates=np.full((n_channels, length), np.nan, np.float32),
        noise_psd=np.full((n_channels, nf), np.nan),
        freq=np.fft.rfftfreq(length, 1.0 / rate_hz),
        resolution=np.full(n_channels, np.nan),
        line_amplitudes=np.full((n_channels, 1), np.nan),
        energy_coeffs=np.full((n_channels, 2), np.nan),
    )
    max_delay = round(config.max_delay_s * rate_hz) if config.max_delay_s else max(pre // 2, 1)
    skipped: dict[str, str] = {}
    template_pulses = np.zeros(n_channels, np.int64)
    finite = np.all(np.isfinite(events.records), axis=1)
    for c in range(n_channels):
        mine = np.flatnonzero(events.channel == c)
        name = str(names[c])
        if loaded is not None:
            which = (event_filter[mine] if event_filter is not None
                     else select_filter(loaded, int(names[c]), events.sample_index[mine]))
            used = sorted(set(int(i) for i in which if i >= 0))
            if not used:
                skipped[name] = "no stored filter for this channel"
                continue
            for i in used:
                rows = mine[(which == i) & finite[mine]]
                _fill(cols, rows, loaded[i].columns(events.records[rows]))
            _describe(out, c, loaded[used[-1]])
            template_pulses[c] = loaded[used[-1]].n_pulses
            continue
        recs = events.records[mine].astype(np.float64)
        clean = (events.flags[mine] == 0) & finite[mine]
        noise_c = noise[noise_channel == c]
        try:
            f = learn_channel_filter(recs, clean, noise_c, channel=int(names[c]), rate_hz=rate_hz, presamples=pre,
                                     max_delay=max_delay, config=config, polarity=polarity)
        except ValueError as exc:  # too few usable records, flat template...: this channel gets no filter
            skipped[name] = str(exc)
            continue
        rows = mine[finite[mine]]
        _fill(cols, rows, f.columns(events.records[rows]))
        _describe(out, c, f)
        template_pulses[c] = f.n_pulses
        if config.energy_lines_ev and not f.has_energy:
            skipped[f"{name} energy"] = f"fewer than {len(config.energy_lines_ev)} amplitude peaks"
    if skipped:
        log.warning("optimal filter: channels without a filter or energy scale: %s", skipped)
    out.summary = {"max_delay_samples": max_delay, "skipped": skipped, "template_pulses": template_pulses.tolist(),
                   "polarity": polarity, "filters": "loaded" if loaded is not None else "learnt"}
    return out


def _fill(cols: dict[str, np.ndarray], rows: np.ndarray, values: dict[str, np.ndarray]) -> None:
    for k in COLUMNS:
        cols[k][rows] = values[k]


def _describe(out: OptimalFilterOutput, c: int, f: ChannelFilter) -> None:
    out.templates[c] = f.template
    out.noise_psd[c] = f.noise_psd
    out.resolution[c] = f.resolution
    out.energy_coeffs[c] = f.energy
    out.line_amplitudes[c, 0] = f.line_amplitude
