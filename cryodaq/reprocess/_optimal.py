"""The optimal-filter stage: per-channel template and noise PSD, then amplitude, χ², arrival time, energy.

Per channel: the template is :func:`cryodaq.dsp.build_template` of its clean events' records
(no PILEUP/TRUNCATED flag); the noise PSD comes from pulse-free records (AutoTrigger, vetoed by
the trigger) through :meth:`cryodaq.dsp.OptimalFilter.from_noise`. With calibration lines, the
``len(lines)`` most populated peaks of the channel's optimal-filter amplitudes are matched to
them in order (one line: energy proportional to amplitude; more: E = c1 A + c2 A²).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.signal
import scipy.stats

from cryodaq.dsp import EventBatch, OptimalFilter, build_template, welch_psd
from cryodaq.config import OptimalFilterConfig

log = logging.getLogger(__name__)


@dataclass
class OptimalFilterOutput:
    """Columns for every event (NaN where a channel had no filter or the record was truncated),
    and the per-channel filters as arrays for the derived group."""

    columns: dict[str, np.ndarray]
    templates: np.ndarray  # (n_channels, record_length), NaN for channels without a filter
    noise_psd: np.ndarray  # (n_channels, record_length // 2 + 1)
    freq: np.ndarray  # (record_length // 2 + 1,) Hz
    resolution: np.ndarray  # (n_channels,) theoretical 1-sigma amplitude resolution, stream units
    line_amplitudes: np.ndarray  # (n_channels, n_lines) OF amplitude of each calibration line
    energy_coeffs: np.ndarray  # (n_channels, 2): E = c1 A + c2 A^2
    summary: dict[str, Any] = field(default_factory=dict)


def line_peaks(amplitudes: np.ndarray, n_lines: int) -> np.ndarray | None:
    """Positions (ascending) of the ``n_lines`` most populated peaks of a 1-D amplitude distribution,
    each refined to the median of the amplitudes within half a kernel width; None if fewer peaks."""
    a = np.asarray(amplitudes, dtype=float)
    a = a[np.isfinite(a)]
    if a.size < 5 or np.ptp(a) == 0:
        return None
    kde = scipy.stats.gaussian_kde(a)
    grid = np.linspace(a.min(), a.max(), 1024)
    density = kde(grid)
    peaks, _ = scipy.signal.find_peaks(np.concatenate([[0.0], density, [0.0]]))
    peaks -= 1
    if peaks.size < n_lines:
        return None
    top = np.sort(peaks[np.argsort(density[peaks])[::-1][:n_lines]])
    width = float(np.sqrt(kde.covariance[0, 0]))
    out = []
    for p in grid[top]:
        near = a[np.abs(a - p) <= 0.5 * width]
        out.append(float(np.median(near)) if near.size else float(p))
    return np.asarray(out)


def _energy_coeffs(peaks: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """(c1, c2) of E = c1 A + c2 A^2 through the origin: proportional for one line, least squares otherwise."""
    if lines.size == 1:
        return np.array([lines[0] / peaks[0], 0.0])
    design = np.stack([peaks, peaks**2], axis=1)
    coeffs, *_ = np.linalg.lstsq(design, lines, rcond=None)
    return coeffs


def optimal_filter_stage(
    events: EventBatch, noise: np.ndarray, noise_channel: np.ndarray, n_channels: int, rate_hz: float,
    config: OptimalFilterConfig, *, polarity: int = 1, channel_names: Any = None,
) -> OptimalFilterOutput:
    """Filter every event's record with its channel's optimal filter (see the module docstring).

    ``events.channel`` / ``noise_channel`` are column indices ``0..n_channels-1``; ``channel_names``
    (their coordinate values) only label the summary. ``polarity=-1``: downward pulses, filtered
    sign-flipped so amplitudes come out positive.
    """
    names = np.arange(n_channels) if channel_names is None else np.asarray(channel_names)
    if events.records is None:
        raise ValueError("the optimal-filter stage needs the events' records")
    n, length = len(events), events.records.shape[1]
    pre = events.presamples
    lines = np.asarray(sorted(config.energy_lines_ev), dtype=float)
    nf = length // 2 + 1
    cols = {name: np.full(n, np.nan, np.float32) for name in ("of_amplitude", "chi2", "of_delay_s", "energy")}
    out = OptimalFilterOutput(
        columns=cols,
        templates=np.full((n_channels, length), np.nan, np.float32),
        noise_psd=np.full((n_channels, nf), np.nan),
        freq=np.fft.rfftfreq(length, 1.0 / rate_hz),
        resolution=np.full(n_channels, np.nan),
        line_amplitudes=np.full((n_channels, lines.size), np.nan),
        energy_coeffs=np.full((n_channels, 2), np.nan),
    )
    max_delay = round(config.max_delay_s * rate_hz) if config.max_delay_s else max(pre // 2, 1)
    skipped: dict[str, str] = {}
    template_pulses = np.zeros(n_channels, np.int64)
    for c in range(n_channels):
        mine = np.flatnonzero(events.channel == c)
        recs = polarity * events.records[mine].astype(np.float64)
        clean = (events.flags[mine] == 0) & np.all(np.isfinite(recs), axis=1)
        noise_c = noise[noise_channel == c]
        name = str(names[c])
        if clean.sum() < config.min_pulses or len(noise_c) < 2:
            skipped[name] = f"{int(clean.sum())} clean pulses (need {config.min_pulses}), {len(noise_c)} noise records"
            continue
        ok = np.all(np.isfinite(recs), axis=1)
        try:
            psd = noise_psd(noise_c, rate_hz)
            of, res, n_template = _dominant_line_filter(recs, clean, ok, pre, psd, rate_hz, max_delay, config)
        except ValueError as exc:  # too few usable records, flat template...: this channel gets no filter
            skipped[name] = str(exc)
            continue
        template_pulses[c] = n_template
        rows = mine[ok]
        cols["of_amplitude"][rows] = res.amplitude
        cols["chi2"][rows] = res.chi2
        cols["of_delay_s"][rows] = res.delay / rate_hz
        out.templates[c] = of.template
        out.noise_psd[c] = psd
        out.resolution[c] = of.resolution()
        if lines.size:
            peaks = line_peaks(res.amplitude[clean[ok]], lines.size)
            if peaks is None or np.any(peaks <= 0):
                skipped[f"{name} energy"] = f"fewer than {lines.size} amplitude peaks"
                continue
            coeffs = _energy_coeffs(peaks, lines)
            out.line_amplitudes[c] = peaks
            out.energy_coeffs[c] = coeffs
            amp = res.amplitude.astype(float)
            cols["energy"][rows] = coeffs[0] * amp + coeffs[1] * amp**2
    if skipped:
        log.warning("optimal filter: channels without a filter or energy scale: %s", skipped)
    out.summary = {"max_delay_samples": max_delay, "skipped": skipped, "template_pulses": template_pulses.tolist()}
    return out


def _dominant_line_filter(
    recs: np.ndarray, clean: np.ndarray, ok: np.ndarray, pre: int, psd: np.ndarray, rate_hz: float, max_delay: int,
    config: OptimalFilterConfig,
) -> tuple[OptimalFilter, Any, int]:
    """Filter from the clean pulses, then again from those of the dominant amplitude peak only.

    Detector response can be non-linear (an MKID's phase saturates), so pulse shape depends on
    energy; a template averaged over several lines fits none of them. The second pass builds it
    from the pulses within ``template_window`` (relative) of the most populated amplitude peak.
    Returns the filter, its result on the complete records (``ok``) and the pulses in the template.
    """
    tmpl = build_template(recs[clean], pre, align=config.align)
    of = OptimalFilter(tmpl.template, psd, rate_hz, max_delay=max_delay)
    res = of.apply(recs[ok]).to_numpy()
    n_template = tmpl.n_used
    if config.template_window:
        amp = np.full(len(recs), np.nan)
        amp[ok] = res.amplitude
        peak = line_peaks(amp[clean], 1)
        if peak is not None and peak[0] > 0:
            members = clean & (np.abs(amp - peak[0]) <= config.template_window * peak[0])
            if members.sum() >= config.min_pulses:
                tmpl = build_template(recs[members], pre, align=config.align)
                of = OptimalFilter(tmpl.template, psd, rate_hz, max_delay=max_delay)
                res = of.apply(recs[ok]).to_numpy()
                n_template = tmpl.n_used
    return of, res, n_template


def noise_psd(noise: np.ndarray, rate_hz: float) -> np.ndarray:
    """One-sided PSD of noise records at their own rfft frequencies, as
    :meth:`cryodaq.dsp.OptimalFilter.from_noise` computes it (rectangular window, mean over records)."""
    noise = np.asarray(noise, dtype=float)
    _, psd = welch_psd(noise, rate_hz, nperseg=noise.shape[1], window="boxcar", detrend="constant")
    return np.asarray(psd).mean(axis=0)
