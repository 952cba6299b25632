"""Calibration sweep through a board that measures its own tones (a :class:`ToneSweepSource`, e.g. a CRS).

Before a run, for each feedline of the source:

1. Search (``calibration.search``, optional): a comb of up to ``search.tones`` tones covers
   ``[start_hz, stop_hz]`` in steps of ``step_hz`` (tone ``k`` sweeps its own sub-band, as
   rfmux's network analysis does) through the board's ``get_samples``; resonances are the dips
   of |S21| that :func:`~cryodaq.dsp.resonator.find_resonators` finds (the deepest ones when
   there are more than the feedline's channels). Without a search, the tones already set are used.
2. Loop sweep: every tone is stepped over ``±span_hz`` in ``points`` steps around its frequency.
3. Calibration: ``method: resonator_fit`` fits each resonance
   (:func:`~cryodaq.dsp.resonator.fit_resonator`, which needs >= 21 points), puts the tone on the
   fitted resonance ``fr`` and takes the IQ loop the tone traces from the fit
   (:func:`~cryodaq.dsp.iqcal.calibration_from_fit`); ``method: loop_sweep`` leaves the tones
   where they are and fits each loop's circle (:func:`~cryodaq.dsp.iqcal.loop_calibration`).
   Either way photon pulses come out positive (the convention in :mod:`cryodaq.dsp.iqcal`).

The sweep is measured in the stream's own units (the board's ``get_samples`` and its packets
both give ADC counts), so the calibration applies to the stream unchanged. The result is one
:class:`~cryodaq.dsp.iqcal.LoopSweep` over all feedlines' tones, in the stream's channel order,
with the fits and the search in its ``detail`` (stored with the run as ``sweeps/iq_loop``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from cryodaq.config import CalibrationConfig, SearchConfig
from cryodaq.dsp.iq import IQCalibration
from cryodaq.dsp.iqcal import LoopSweep, calibration_from_fit, loop_calibration, sweep_offsets
from cryodaq.dsp.resonator import ResonatorFit, ResonatorFitError, find_resonators, fit_resonator
from cryodaq.errors import InstrumentError
from cryodaq.readout.source import ToneSweepSource

__all__ = ["calibrate_tones", "search_resonators"]

log = logging.getLogger(__name__)


def search_resonators(source: ToneSweepSource, line: int, search: SearchConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """Resonance frequencies (Hz, deepest first capped to the line's channels, returned in frequency
    order) found in ``search``'s band on feedline ``line``, and what the search saw."""
    lo, hi = source.feedline_band(line)
    start, stop = max(search.start_hz, lo), min(search.stop_hz, hi)
    if not stop > start:
        raise InstrumentError(source.name, None, f"search band {search.start_hz:.6g}-{search.stop_hz:.6g} Hz is "
                                                 f"outside feedline {line}'s band {lo:.6g}-{hi:.6g} Hz")
    n_freq = int(np.floor((stop - start) / search.step_hz + 1e-9)) + 1
    n_steps = -(-n_freq // max(1, min(search.tones, source.max_sweep_tones(line))))
    n_tones = -(-n_freq // n_steps)
    # tone k covers its own contiguous sub-band; the last may run a few steps past stop_hz (never two
    # tones on one frequency: the board would sum them)
    grid = start + search.step_hz * (np.arange(n_tones)[None, :] * n_steps + np.arange(n_steps)[:, None])
    grid -= max(0.0, float(grid.max()) - hi)  # ... but not past the feedline's band
    started = time.monotonic()
    iq = source.measure_iq(line, grid)
    f_all, z_all = grid.T.ravel(), iq.T.ravel()  # frequency order: tone by tone, step by step
    keep = np.concatenate(([True], np.diff(f_all) > 0))
    f_all, z_all = f_all[keep], z_all[keep]
    found = find_resonators(f_all, z_all, min_depth_db=search.min_depth_db, min_separation_hz=search.min_separation_hz)
    depth = np.asarray(found.depth_db)
    cap = source.max_stream_tones(line)
    chosen = np.sort(np.argsort(depth)[::-1][:cap]) if depth.size > cap else np.arange(depth.size)
    if depth.size > cap:
        log.warning("feedline %d: %d resonances found, the %d deepest are read out (channels_per_module)",
                    line, depth.size, cap)
    dips = np.asarray(found.freq_hz)[chosen]
    info = {"line": line, "start_hz": float(start), "stop_hz": float(stop), "step_hz": search.step_hz,
            "tones": n_tones, "steps": n_steps, "seconds": round(time.monotonic() - started, 2),
            "found_hz": np.asarray(found.freq_hz).tolist(), "depth_db": depth.tolist()}
    log.info("feedline %d: %d resonances in %.6g-%.6g Hz (%d tones x %d steps, %.1f s)", line, depth.size,
             start, stop, n_tones, n_steps, info["seconds"])
    return dips, info


def calibrate_tones(source: ToneSweepSource, cal: CalibrationConfig) -> tuple[LoopSweep, IQCalibration]:
    """Search (if asked), sweep, fit and calibrate every feedline of ``source`` (module docstring).

    Raises :class:`~cryodaq.errors.InstrumentError` naming the source when a feedline ends up with
    no tone, or a resonance cannot be fitted (``resonator_fit``).
    """
    if cal.method not in ("loop_sweep", "resonator_fit"):
        raise ValueError(f"calibrate_tones: method {cal.method!r} needs no sweep")
    if cal.method == "resonator_fit" and cal.points < 21:
        raise InstrumentError(source.name, None, f"calibration.points = {cal.points}: a resonator fit needs >= 21")
    offsets = sweep_offsets(cal.span_hz, cal.points)
    started = time.monotonic()
    centres, sweeps, fits, searches, tones_out = [], [], [], [], []
    for line in source.feedlines():
        if cal.search is not None:
            centre, info = search_resonators(source, line, cal.search)
            searches.append(info)
        else:
            centre = np.asarray(source.tones(line), dtype=float)
        if centre.size == 0:
            if cal.search is None:
                raise InstrumentError(source.name, None, f"feedline {line} has no tones to calibrate")
            source.set_tones(line, centre)  # nothing found on this feedline: it streams nothing
            continue
        iq = source.measure_iq(line, centre[None, :] + offsets[:, None])
        tones = centre
        if cal.method == "resonator_fit":
            line_fits = [_fit(source, line, centre[k] + offsets, iq[:, k], found=cal.search is not None)
                         for k in range(centre.size)]
            ok = np.array([f is not None for f in line_fits], bool)
            centre, iq = centre[ok], iq[:, ok]
            fits += [f for f in line_fits if f is not None]
            tones = np.array([f.fr_hz for f in line_fits if f is not None])
        source.set_tones(line, tones)
        if not tones.size:
            continue
        centres.append(centre)
        sweeps.append(iq)
        tones_out.append(tones)
    if not sweeps:
        raise InstrumentError(source.name, None, "the resonator search found no resonance on any feedline "
                                                 "(calibration.search: band, step_hz, min_depth_db)")
    sweep = LoopSweep(offsets, np.concatenate(sweeps, axis=1), np.concatenate(centres),
                      time.monotonic() - started)
    final = np.concatenate(tones_out)
    if cal.method == "resonator_fit":
        calibration = calibration_from_fit(fits, tone_freq_hz=final)
        sweep.detail["fits"] = [{"fr_hz": f.fr_hz, "Ql": f.Ql, "Qc": f.Qc_abs, "Qi": f.Qi, "phi": f.phi,
                                 "delay_s": f.delay_s, "success": f.success} for f in fits]
    else:
        calibration = loop_calibration(sweep)
    sweep.detail.update(method=cal.method, operating_tone_hz=final.tolist(), searches=searches)
    log.info("calibration sweep of %d tones on %d feedline(s): %.1f s", final.size, len(sweeps), sweep.duration_s)
    return sweep, calibration


def _fit(source: ToneSweepSource, line: int, freq: np.ndarray, iq: np.ndarray, *, found: bool) -> ResonatorFit | None:
    """The fit of one tone's sweep; a dip the search ``found`` that is no resonance is dropped (None,
    with a warning), a tone the user set that cannot be fitted is an error."""
    try:
        fit = fit_resonator(freq, iq)
    except ResonatorFitError as exc:
        if found:
            log.warning("feedline %d: the dip near %.9g Hz is no resonance that can be fitted (%s); not read out",
                        line, np.median(freq), exc)
            return None
        raise InstrumentError(source.name, None, f"feedline {line}: the resonance near {np.median(freq):.9g} Hz "
                                                 f"cannot be fitted ({exc}); widen calibration.span_hz or use "
                                                 "method loop_sweep") from exc
    if not fit.success:
        log.warning("feedline %d: the fit of the resonance at %.9g Hz is poor (%s)", line, fit.fr_hz, fit.message)
    return fit
