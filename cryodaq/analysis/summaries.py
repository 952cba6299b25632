"""Pulse summaries: the per-record quantities NIST mass computes before filtering, for cuts and drift.

The definitions follow mass2's ``summarize_data_numba`` (the same algorithm as mass v1's Cython
``summarize_data``), on records made positive-going by ``polarity``, with ``Npre`` presamples,
``ne = Npre − pretrigger_ignore`` and sample period ``dt``:

=================  ==============================================================================
``pretrig_mean``   mean of ``x[0:ne]``
``pretrig_rms``    standard deviation (ddof 0) of the same samples
``peak_index``     argmax of the whole record (first maximum)
``peak_value``     ``max(x) − pretrig_mean``
``peak_time_s``    ``(peak_index − Npre) · dt``
``min_value``      ``min(x) − pretrig_mean``
``pulse_average``  mean of ``x[Npre−1:] − pretrig_mean`` (mass includes the last presample)
``pulse_rms``      rms of the same baseline-subtracted samples
``promptness``     ``mean(x[Npre+2 : Npre+8] − pretrig_mean) / peak_value`` (one sample earlier
                   when ``shift1``: the last presample already rose by > 4.3 ``pretrig_rms``)
``rise_time_s``    mass's extrapolated 0–100 % rise: the slope between the first sample above
                   10 % and the last below 90 % of ``peak_value``, times ``peak_value``
                   (1.25× a 10–90 % time for a linear edge)
``postpeak_deriv`` largest spike-rejected 5-point slope after the channel's typical peak index:
                   ``0.1 · max_k min(t_k, t_{k+2})``, ``t_k = −2x_k − x_{k+1} + x_{k+3} + 2x_{k+4}``;
                   a second pulse on the tail makes it large
``shift1``         1 where the trigger came a sample late (see promptness), else 0
=================  ==============================================================================

Differences from mass on purpose: values are floats in the stream's units (mass rounds the
baseline and stores ``peak_value`` as uint16 ADC counts); ``min_value`` is baseline-subtracted.
``residual_std`` (after the optimal filter) comes from
:meth:`cryodaq.dsp.OptimalFilter.residual_std`. Records with NaN (truncated) give NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["SUMMARY_COLUMNS", "summarize_pulses", "typical_peak_index"]

#: summary columns, in order, with their units ("" = the records' units, "s", "sample", "1")
SUMMARY_COLUMNS: dict[str, str] = {
    "pretrig_mean": "", "pretrig_rms": "", "peak_index": "sample", "peak_value": "", "peak_time_s": "s",
    "min_value": "", "pulse_average": "", "pulse_rms": "", "promptness": "1", "rise_time_s": "s",
    "postpeak_deriv": "per sample", "shift1": "1",
}


def typical_peak_index(records: Any, n: int = 100) -> int:
    """The channel's typical peak sample: the median argmax of its first ``n`` complete records (mass2)."""
    x = np.asarray(records, dtype=float)[:n]
    x = x[np.all(np.isfinite(x), axis=1)]
    if len(x) == 0:
        raise ValueError("typical_peak_index: no complete records")
    return int(np.median(np.argmax(x, axis=1)))


def _first_above(x: np.ndarray, level: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Per row, the first index ``k >= start`` with ``x[k] > level`` (N when there is none)."""
    n = x.shape[1]
    k = np.arange(n)[None, :]
    hit = (x > level[:, None]) & (k >= start[:, None])
    return np.where(hit.any(axis=1), np.argmax(hit, axis=1), n)


def summarize_pulses(
    records: Any,
    presamples: int,
    sample_rate_hz: float,
    *,
    polarity: int = 1,
    pretrigger_ignore: int = 0,
    peak_index: int | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The summary columns (module docstring) of ``records`` ``(n, N)``; float64 arrays except ``peak_index``
    (int32, −1 for incomplete records) and ``shift1`` (uint8).

    ``peak_index``: the channel's typical peak sample for ``postpeak_deriv`` (default:
    :func:`typical_peak_index` of these records), or one per record (records of several
    channels summarised at once, each with its channel's).
    """
    x = polarity * np.asarray(records, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"summarize_pulses: records must be (n, N), got shape {x.shape}")
    n_rec, n = x.shape
    npre = int(presamples)
    ne = npre - int(pretrigger_ignore)
    if not (1 <= ne and npre + 8 <= n):
        raise ValueError(f"summarize_pulses: presamples={presamples} (ignore {pretrigger_ignore}) leave no "
                         f"pretrigger samples or fewer than 8 samples after them in records of {n}")
    dt = 1.0 / float(sample_rate_hz)
    ok = np.all(np.isfinite(x), axis=1)
    x = np.where(ok[:, None], x, 0.0)
    if peak_index is None:
        peak_index = typical_peak_index(x[ok]) if ok.any() else npre
    pre = x[:, :ne]
    ptm = pre.mean(axis=1)
    ptrms = pre.std(axis=1)
    shift1 = (x[:, npre - 1] - ptm) > 4.3 * ptrms
    pk = np.argmax(x, axis=1)
    xmax = x[np.arange(n_rec), pk]
    peak_value = xmax - ptm
    post = x[:, npre - 1:] - ptm[:, None]
    pulse_average = post.mean(axis=1)
    pulse_rms = np.sqrt((post**2).mean(axis=1))
    win = np.where(shift1[:, None], x[:, npre + 1:npre + 7], x[:, npre + 2:npre + 8])
    with np.errstate(divide="ignore", invalid="ignore"):
        promptness = (win.mean(axis=1) - ptm) / peak_value
    rise = _rise_time(x, ptm, peak_value, npre, dt)
    deriv = _postpeak_deriv(x, np.broadcast_to(np.asarray(peak_index, dtype=np.int64), (n_rec,)))
    flat = ptm >= xmax  # mass: no pulse above the baseline
    peak_value = np.where(flat, 0.0, peak_value)
    out = {
        "pretrig_mean": ptm, "pretrig_rms": ptrms, "peak_index": np.where(flat, 0, pk).astype(np.int32),
        "peak_value": peak_value, "peak_time_s": (np.where(flat, npre, pk) - npre) * dt,
        "min_value": x.min(axis=1) - ptm, "pulse_average": pulse_average, "pulse_rms": pulse_rms,
        "promptness": np.where(flat, 0.0, promptness), "rise_time_s": rise, "postpeak_deriv": deriv,
        "shift1": shift1.astype(np.uint8),
    }
    for name, col in out.items():
        if name == "peak_index":
            col[~ok] = -1
        elif name != "shift1":
            col[~ok] = np.nan
    if polarity == -1:  # back to the records' own sign for the baseline level
        out["pretrig_mean"] = -out["pretrig_mean"]
    return out


def _rise_time(x: np.ndarray, ptm: np.ndarray, pv: np.ndarray, npre: int, dt: float) -> np.ndarray:
    """mass's rise time: ``dt (hi − lo) pv / (x[hi] − x[lo])`` (``dt`` where the edge is not rising)."""
    rows = np.arange(x.shape[0])
    lo = _first_above(x, ptm + 0.1 * pv, np.full(x.shape[0], npre))
    hi = _first_above(x, ptm + 0.9 * pv, lo) - 1
    lo_c, hi_c = np.minimum(lo, x.shape[1] - 1), np.clip(hi, 0, x.shape[1] - 1)
    rise = x[rows, hi_c] - x[rows, lo_c]
    good = (lo < x.shape[1]) & (hi >= lo) & (rise > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(good, dt * (hi_c - lo_c) * pv / np.where(good, rise, 1.0), dt)


def _postpeak_deriv(x: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """``0.1 max_k min(t_k, t_{k+2})`` over windows inside ``[peak, N)`` (mass's spike-rejecting slope),
    ``peak`` per record."""
    n = x.shape[1]
    t = -2 * x[:, :-4] - x[:, 1:-3] + x[:, 3:-1] + 2 * x[:, 4:]  # t_k for k = 0..N-5
    pair = np.minimum(t[:, :n - 6], t[:, 2:n - 4])  # windows k = 0..N-7
    k = np.arange(pair.shape[1])[None, :]
    pair = np.where(k >= np.maximum(peak, 0)[:, None], pair, -np.inf)
    out = 0.1 * pair.max(axis=1)
    return np.where(np.isfinite(out), out, np.nan)
