"""Per-channel optimal filters: learnt from pulses and noise records, stored, loaded, applied — one code path.

The live pipeline's optimal-filter stage (:mod:`cryodaq.acquisition.optimal_stage`) and the
reprocessing stage (:mod:`cryodaq.reprocess`) both learn a channel's filter with
:func:`learn_channel_filter`, keep it as a :class:`ChannelFilter` and filter records with
:meth:`ChannelFilter.apply` (:class:`cryodaq.dsp.OptimalFilter` underneath). A stored filter
holds everything that rebuilds the identical :class:`~cryodaq.dsp.OptimalFilter` (float64
template and noise PSD, sample rate, delay window, polarity), so filtering the same records with
a stored filter gives bit-identical values.

Learning: the template is :func:`cryodaq.dsp.build_template` of the clean pulses; with
``template_window`` it is built again from the pulses within that fraction of the most populated
filtered-amplitude peak (a non-linear detector's pulse shape depends on energy: a template
averaged over several lines fits none). The noise PSD is the mean rectangular-window periodogram of
pulse-free records (:meth:`~cryodaq.dsp.OptimalFilter.from_noise`'s estimate), after an excursion cut
that drops a record a pulse slipped into (:func:`quiet_records`). With calibration
lines the ``n`` most populated amplitude peaks are those lines in order: one line gives
``E = c1 A``, more give ``E = c1 A + c2 A²`` (least squares through the origin).

Stored forms: the run's ``optimal_filter/`` group (one row per learnt filter, dim ``filter``;
written by the live stage) and a ``reprocessed/<label>/`` group's per-channel arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cryodaq.analysis.calibration import find_line_peaks
from cryodaq.analysis.lines import FWHM_PER_SIGMA
from cryodaq.config import OptimalFilterConfig
from cryodaq.dsp import OptimalFilter, OptimalFilterResult, build_template, welch_psd
from cryodaq.dsp.stats import MAD_TO_SIGMA

__all__ = ["FILTER_COLUMNS", "ChannelFilter", "energy_coefficients", "filter_rows", "learn_channel_filter",
           "load_filters", "noise_psd", "select_filter"]

#: columns of the ``optimal_filter/`` group (besides ``template``, ``noise_psd``, ``filter``)
FILTER_COLUMNS = ("channel", "version", "valid_from_sample", "rate_hz", "max_delay", "polarity", "presamples",
                  "resolution", "fwhm_ev", "energy_c1", "energy_c2", "n_pulses", "n_noise", "line_amplitude")
NO_ENERGY = (math.nan, math.nan)
EARLIEST = np.iinfo(np.int64).min


def noise_psd(noise: Any, rate_hz: float) -> np.ndarray:
    """One-sided PSD of noise records at their own rfft frequencies (rectangular window, mean over
    records): exactly what :meth:`cryodaq.dsp.OptimalFilter.from_noise` estimates."""
    noise = np.asarray(noise, dtype=float)
    _, psd = welch_psd(noise, rate_hz, nperseg=noise.shape[1], window="boxcar", detrend="constant")
    return np.asarray(psd).mean(axis=0)


def quiet_records(noise: Any, n_sigma: float = 5.0) -> np.ndarray:
    """Mask of the noise records whose excursion (max − min) is at most the median + ``n_sigma`` robust σ:
    drops a record a pulse slipped into (mass2's ``NoiseChannel`` excursion cut); NaN records fail."""
    x = np.asarray(noise, dtype=float)
    if len(x) == 0:
        return np.zeros(0, bool)
    exc = np.ptp(x, axis=1)
    ok = np.isfinite(exc)
    if ok.sum() < 3:
        return ok
    med = np.median(exc[ok])
    mad = MAD_TO_SIGMA * np.median(np.abs(exc[ok] - med))
    return ok & (exc <= med + n_sigma * max(mad, 1e-12 * abs(med)))


def energy_coefficients(peaks: Any, lines_ev: Any) -> np.ndarray:
    """``(c1, c2)`` of ``E = c1 A + c2 A²`` through the origin: proportional for one line, least squares otherwise."""
    peaks, lines = np.asarray(peaks, dtype=float), np.asarray(lines_ev, dtype=float)
    if lines.size == 1:
        return np.array([lines[0] / peaks[0], 0.0])
    design = np.stack([peaks, peaks**2], axis=1)
    coeffs, *_ = np.linalg.lstsq(design, lines, rcond=None)
    return coeffs


def plausible_peaks(peaks: np.ndarray | None, lines_ev: np.ndarray, tolerance: float = 0.3) -> bool:
    """Peaks that can be the lines: positive, and (several lines) spaced like them within ``tolerance``
    (relative; a detector's non-linearity bends the scale a little, a wrong peak bends it a lot), with a
    rising quadratic scale up to 1.5x the highest."""
    if peaks is None or np.any(peaks <= 0):
        return False
    if len(lines_ev) == 1:
        return True
    ratio = (peaks / peaks[0]) / (lines_ev / lines_ev[0])
    if np.any(np.abs(ratio - 1) > tolerance):
        return False
    c1, c2 = energy_coefficients(peaks, lines_ev)
    return bool(c1 > 0 and c1 + 3 * c2 * peaks[-1] > 0)


@dataclass(frozen=True)
class ChannelFilter:
    """One channel's optimal filter and energy scale, in the form that is stored and reloaded.

    ``polarity``: records are multiplied by it before filtering (−1: downward pulses), so
    amplitudes come out positive. ``energy`` (c1, c2): ``E = c1 A + c2 A²`` in eV, NaN when unknown.
    ``valid_from_sample``: the sample index of the first event it was applied to (the earliest
    possible for a channel's first filter, which also serves the events held while it was learnt).
    """

    channel: int
    template: np.ndarray
    noise_psd: np.ndarray
    rate_hz: float
    max_delay: int
    polarity: int = 1
    presamples: int = 0
    energy: tuple[float, float] = NO_ENERGY
    line_amplitude: float = math.nan  # filtered amplitude of the first calibration line
    n_pulses: int = 0
    n_noise: int = 0
    version: int = 0
    valid_from_sample: int = EARLIEST
    _filter: OptimalFilter | None = field(default=None, repr=False, compare=False)

    def build(self) -> OptimalFilter:
        """The :class:`~cryodaq.dsp.OptimalFilter` (made once, then reused)."""
        if self._filter is None:
            of = OptimalFilter(np.asarray(self.template, dtype=np.float64), np.asarray(self.noise_psd, np.float64),
                               self.rate_hz, max_delay=self.max_delay)
            object.__setattr__(self, "_filter", of)
        assert self._filter is not None
        return self._filter

    @property
    def resolution(self) -> float:
        """Predicted 1σ amplitude resolution (stream units)."""
        return self.build().resolution()

    @property
    def has_energy(self) -> bool:
        return bool(np.all(np.isfinite(self.energy)))

    def energy_of(self, amplitude: Any) -> np.ndarray:
        """Energy (eV) of filtered amplitudes (NaN without an energy scale)."""
        a = np.asarray(amplitude, dtype=float)
        c1, c2 = self.energy
        return c1 * a + c2 * a * a

    @property
    def fwhm_ev(self) -> float:
        """Predicted FWHM (eV) at the first calibration line: 2.355 σ_A dE/dA there (NaN without energy)."""
        if not self.has_energy or not np.isfinite(self.line_amplitude):
            return math.nan
        c1, c2 = self.energy
        return float(FWHM_PER_SIGMA * self.resolution * (c1 + 2 * c2 * self.line_amplitude))

    def apply(self, records: Any) -> tuple[OptimalFilterResult, np.ndarray]:
        """Filter ``records`` (stream units, as stored): the host result and each record's residual std."""
        of = self.build()
        x = self.polarity * np.asarray(records, dtype=np.float64)
        res = of.apply(x).to_numpy()
        return res, of.residual_std(x, res)

    def columns(self, records: Any) -> dict[str, np.ndarray]:
        """Event columns for ``records``: ``of_amplitude``, ``of_delay_s``, ``chi2``, ``energy``, ``residual_std``."""
        res, resid = self.apply(records)
        return {"of_amplitude": res.amplitude.astype(np.float32), "of_delay_s": (res.delay / self.rate_hz).astype(
            np.float32), "chi2": res.chi2.astype(np.float32), "energy": self.energy_of(res.amplitude).astype(
            np.float32), "residual_std": resid.astype(np.float32)}

    def with_energy(self, lines_ev: Any, amplitudes: Any, **changes: Any) -> ChannelFilter:
        """A copy with the energy scale from the ``len(lines_ev)`` most populated peaks of ``amplitudes``
        (unchanged when they are not found)."""
        lines = np.sort(np.asarray(lines_ev, dtype=float))
        if lines.size == 0:
            return replace(self, **changes) if changes else self
        peaks = find_line_peaks(amplitudes, lines.size)
        if not plausible_peaks(peaks, lines):
            return replace(self, **changes) if changes else self
        c = energy_coefficients(peaks, lines)
        return replace(self, energy=(float(c[0]), float(c[1])), line_amplitude=float(peaks[0]), **changes)


def learn_channel_filter(
    records: Any, clean: Any, noise: Any, *, channel: int, rate_hz: float, presamples: int, max_delay: int,
    config: OptimalFilterConfig, polarity: int = 1,
) -> ChannelFilter:
    """Learn a channel's filter from its pulse ``records`` (stream units; ``clean`` marks the usable ones)
    and pulse-free ``noise`` records (module docstring). Raises ValueError when there are too few."""
    recs = np.asarray(records, dtype=np.float64)
    clean = np.asarray(clean, bool) & np.all(np.isfinite(recs), axis=1)
    noise = np.asarray(noise, dtype=np.float64)
    if clean.sum() < config.min_pulses or len(noise) < 2:
        raise ValueError(f"{int(clean.sum())} clean pulses (need {config.min_pulses}), {len(noise)} noise records "
                         "(need 2)")
    noise = noise[quiet_records(noise)]
    if len(noise) < 2:
        raise ValueError("fewer than 2 noise records pass the excursion cut")
    pulses = polarity * recs[clean]
    psd = noise_psd(polarity * noise, rate_hz)
    tmpl = build_template(pulses, presamples, align=config.align)
    base = ChannelFilter(int(channel), tmpl.template, psd, float(rate_hz), int(max_delay), int(polarity),
                         int(presamples), n_pulses=tmpl.n_used, n_noise=len(noise))
    if config.template_window:
        amp = base.build().apply(pulses).to_numpy().amplitude
        peak = find_line_peaks(amp, 1)
        if peak is not None and peak[0] > 0:
            members = np.abs(amp - peak[0]) <= config.template_window * peak[0]
            if members.sum() >= config.min_pulses:
                tmpl = build_template(pulses[members], presamples, align=config.align)
                base = replace(base, template=tmpl.template, n_pulses=tmpl.n_used, _filter=None)
    if config.energy_lines_ev:
        base = base.with_energy(config.energy_lines_ev, base.build().apply(pulses).to_numpy().amplitude)
    return base


def filter_rows(filters: list[ChannelFilter]) -> dict[str, np.ndarray]:
    """The ``optimal_filter/`` columns of ``filters`` (one row each): the form the run stores."""
    freq_n = len(filters[0].noise_psd)
    rows: dict[str, Any] = {k: [] for k in FILTER_COLUMNS}
    for f in filters:
        c1, c2 = f.energy
        rows["channel"].append(f.channel)
        rows["version"].append(f.version)
        rows["valid_from_sample"].append(f.valid_from_sample)
        rows["rate_hz"].append(f.rate_hz)
        rows["max_delay"].append(f.max_delay)
        rows["polarity"].append(f.polarity)
        rows["presamples"].append(f.presamples)
        rows["resolution"].append(f.resolution)
        rows["fwhm_ev"].append(f.fwhm_ev)
        rows["energy_c1"].append(c1)
        rows["energy_c2"].append(c2)
        rows["n_pulses"].append(f.n_pulses)
        rows["n_noise"].append(f.n_noise)
        rows["line_amplitude"].append(f.line_amplitude)
    dtypes = {"channel": np.int32, "version": np.int32, "valid_from_sample": np.int64, "max_delay": np.int32,
              "polarity": np.int8, "presamples": np.int32, "n_pulses": np.int32, "n_noise": np.int32}
    out = {k: np.asarray(v, dtype=dtypes.get(k, np.float64)) for k, v in rows.items()}
    out["template"] = np.stack([np.asarray(f.template, np.float64) for f in filters])
    out["noise_psd"] = np.stack([np.asarray(f.noise_psd, np.float64) for f in filters])
    out["transfer"] = np.stack([np.asarray(f.build().transfer, np.complex128) for f in filters])
    assert out["noise_psd"].shape[1] == freq_n
    return out


def _from_rows(ds: Any) -> list[ChannelFilter]:
    n = ds.sizes.get("filter", 0)
    out = []
    for i in range(n):
        row = {k: ds[k].values[i] for k in FILTER_COLUMNS}
        out.append(ChannelFilter(
            int(row["channel"]), np.asarray(ds["template"].values[i], np.float64),
            np.asarray(ds["noise_psd"].values[i], np.float64), float(row["rate_hz"]), int(row["max_delay"]),
            int(row["polarity"]), int(row["presamples"]), (float(row["energy_c1"]), float(row["energy_c2"])),
            float(row["line_amplitude"]), int(row["n_pulses"]), int(row["n_noise"]), int(row["version"]),
            int(row["valid_from_sample"])))
    return out


def _from_reprocessed(ds: Any) -> list[ChannelFilter]:
    cfg = ds.attrs.get("config", {}).get("optimal_filter", {})
    rec = ds.attrs.get("records", {})
    rate, pre = float(rec.get("sample_rate_hz", math.nan)), int(rec.get("presamples", 0))
    max_delay = int(cfg.get("max_delay_samples", max(pre // 2, 1)))
    polarity = int(cfg.get("polarity", 1))
    out = []
    for i, ch in enumerate(ds["tone"].values):
        tmpl = np.asarray(ds["of_template"].values[i], np.float64)
        if not np.all(np.isfinite(tmpl)):
            continue
        coeffs = ds["energy_coeffs"].values[i]
        line = ds["line_amplitude"].values[i, 0] if "line_amplitude" in ds else math.nan
        out.append(ChannelFilter(int(ch), tmpl, np.asarray(ds["of_noise_psd"].values[i], np.float64), rate, max_delay,
                                 polarity, pre, (float(coeffs[0]), float(coeffs[1])), float(line)))
    return out


def load_filters(path: str | Path) -> list[ChannelFilter]:
    """Filters stored with a run: ``RUN`` (its ``optimal_filter/`` rows, from a live run) or
    ``RUN/reprocessed/<label>`` (a reprocessing's per-channel filters)."""
    from cryodaq.storage import open_run

    p = Path(path)
    label = None
    if p.parent.name == "reprocessed":
        p, label = p.parent.parent, p.name
    run = open_run(p)
    if label is not None:
        return _from_reprocessed(run.reprocessed(label).load())
    if "optimal_filter" not in run.root:
        raise KeyError(f"{run.path}: the run stored no optimal filters (no optimal_filter/ group); give a run taken "
                       "with cryodaq.pipeline.optimal_filter, or RUN/reprocessed/<label>")
    return _from_rows(run.dataset("optimal_filter").load())


def select_filter(filters: list[ChannelFilter], channel: int, sample_index: Any) -> np.ndarray:
    """For events of ``channel`` at ``sample_index``: the index (into ``filters``) of the newest filter of that
    channel valid there (``valid_from_sample <= sample_index``), −1 where none is."""
    t = np.asarray(sample_index, dtype=np.int64)
    idx = [i for i, f in enumerate(filters) if f.channel == channel]
    out = np.full(t.shape, -1, np.int64)
    if not idx:
        return out
    idx.sort(key=lambda i: (filters[i].valid_from_sample, filters[i].version))
    starts = np.array([filters[i].valid_from_sample for i in idx], np.int64)
    k = np.searchsorted(starts, t, side="right") - 1
    return np.where(k >= 0, np.asarray(idx)[np.clip(k, 0, None)], -1)
