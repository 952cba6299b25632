"""Resonator tracking during a live MKID run: readout tones re-centred on resonators that drift.

The IQ-loop sweep before the run (:mod:`cryodaq.readout.loop_sweep`) measured, for every tone, the
calibrated phase θ as the tone is stepped by δ across its resonance: a monotonic curve θ(δ), 0 at
δ = 0, slope 4/w there (w = f_r/Q_l, the linewidth; :mod:`cryodaq.dsp.iqcal`). The phase depends
only on where the tone sits relative to the resonance, so a resonance that moved by Δ reads as the
tone moved by −Δ: during the run a tone's phase θ, through the inverse curve
(:func:`loop_phase_curve`, :func:`tone_offset`), says how far the tone is from its operating point
— ``δ(θ)`` — and the tone belongs at ``tone − δ(θ)`` (on its resonance, when it was there at the
sweep). :class:`ToneTracker`, a stage of the pipeline thread
(:class:`~cryodaq.acquisition.workers.StreamWorkers`: ``admit`` each block before the pipeline,
``observe`` its outputs), estimates every ``interval_s`` of data where each tone belongs from the median
phase of the last ``window_s`` (photon pulses do not move a median), fits the drift rate to the last
estimates, and when a tone would be more than ``threshold_linewidths`` off half an interval ahead,
moves it there:

1. ``source.configure(tone_frequencies=...)`` — the station's safety limits apply before anything is
   sent; a refusal ends the run, loudly. Moves are whole steps of the board's phase-coherent grid
   (sample rate / samples per packet: the tone's DDS phase at packet boundaries is unchanged, so the
   IQ loop, and the calibration, stay where they were) and at most ``max_step_linewidths``.
2. the pipeline's channelizer follows (:meth:`~cryodaq.acquisition.pipeline.MKIDPipeline.retune`) at
   the first block that may carry the new tones;
3. blocks that end before the command was sent still carry the old tones and are processed as
   usual; blocks stamped from then until the command returned plus ``settle_s`` (tones in transit)
   are dropped; the next block is non-continuous (every DSP state resets: no filter runs across the
   jump) and carries one :class:`~cryodaq.readout.blocks.Gap` of cause ``retune`` — the phase
   streams are marked. This needs block stamps and the host clock to agree within ``settle_s``;
4. every moved tone is a row of the run's ``retunes/`` group (docs/run-format.md), carried to the
   sinks by the last :class:`~cryodaq.acquisition.pipeline.PipelineOutput` before the move.

Reference tones (``reference_tones_hz``, off resonance) are added to the comb before the calibration
sweep (:func:`add_reference_tones`); :func:`tracking_calibration` measures them about the IQ origin,
so their phase is the readout's common-mode phase, which the MKID pipeline takes out of every tone's
IQ (:meth:`~cryodaq.acquisition.pipeline.MKIDPipeline.set_reference_channels`). They are not tracked.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from cryodaq.acquisition.pipeline import PipelineOutput
from cryodaq.config import TrackingConfig
from cryodaq.dsp.iq import IQCalibration
from cryodaq.dsp.iqcal import LoopSweep
from cryodaq.readout.blocks import CAUSE_RETUNE, Block, Gap
from cryodaq.readout.source import ReadoutSource

__all__ = ["LoopPhaseCurve", "ToneTracker", "add_reference_tones", "loop_phase_curve", "tone_offset",
           "tracking_calibration"]

log = logging.getLogger(__name__)

_HISTORY = 6  # resonance estimates per tone the drift rate is fitted to


class Retunable(Protocol):
    """What the tracker needs of the pipeline: its tones' IFs and a way to move them (:class:`MKIDPipeline`)."""

    tone_if_hz: np.ndarray
    fs: float

    def retune(self, tone_if_hz: Any) -> None: ...


class LoopPhaseCurve:
    """Per tone, the calibrated phase ``theta`` (points, tones) at each sweep offset ``offsets_hz``, the
    linewidth ``linewidth_hz`` (4 / the slope at offset 0) and ``ok``: whether the curve is a resonance
    loop seen from its centre (rising through the sweep; a reference tone's is not)."""

    def __init__(self, offsets_hz: np.ndarray, theta: np.ndarray, linewidth_hz: np.ndarray, ok: np.ndarray) -> None:
        self.offsets_hz, self.theta, self.linewidth_hz, self.ok = offsets_hz, theta, linewidth_hz, ok


def loop_phase_curve(sweep: LoopSweep, calibration: IQCalibration) -> LoopPhaseCurve:
    """Each tone's calibrated phase across the loop sweep, as the tracker inverts it (module docstring)."""
    theta = np.asarray(calibration.phase(sweep.iq.astype(np.complex64)), dtype=float)  # unwrapped along offsets
    x = np.asarray(sweep.offsets_hz, dtype=float)
    i0 = sweep.operating_index()
    lo, hi = max(i0 - 1, 0), min(i0 + 1, x.size - 1)
    slope = (theta[hi] - theta[lo]) / (x[hi] - x[lo])
    # a resonance loop seen from its centre: rising all through the sweep, by more than a radian (an
    # off-resonance tone's arc, or a reference tone measured about the IQ origin, moves far less)
    ok = np.all(np.diff(theta, axis=0) > 0, axis=0) & (slope > 0) & (np.ptp(theta, axis=0) > 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        width = np.where(ok, 4.0 / slope, np.nan)
    return LoopPhaseCurve(x, theta, width, ok)


def tone_offset(theta: np.ndarray, curve: LoopPhaseCurve) -> np.ndarray:
    """How far (Hz) each tone is above its operating point relative to its resonance, from its calibrated
    phase θ: the sweep offset at which the sweep read θ (linear between sweep points, at most the sweep's
    span); NaN where the curve is not ok."""
    out = np.full(np.shape(theta), np.nan)
    for k in np.flatnonzero(curve.ok):
        out[k] = np.interp(theta[k], curve.theta[:, k], curve.offsets_hz)
    return out


def add_reference_tones(source: ReadoutSource, tracking: TrackingConfig) -> np.ndarray:
    """Put the reference tones into the source's comb (those not there yet, through ``configure``: safety
    limits apply); returns their channel indices (none when tracking is off or names none)."""
    if not tracking.enabled or not tracking.reference_tones_hz:
        return np.zeros(0, dtype=np.int64)
    tones = np.asarray(source.describe().channel_coords["tone_frequency_hz"], dtype=float)
    refs = np.asarray(tracking.reference_tones_hz, dtype=float)
    new = [f for f in refs if not np.any(np.abs(tones - f) < 1.0)]
    if new:
        tones = np.concatenate([tones, new])
        source.configure(tone_frequencies=tones)
    return np.array([int(np.argmin(np.abs(tones - f))) for f in refs], dtype=np.int64)


def tracking_calibration(sweep: LoopSweep, calibration: IQCalibration, references: Any) -> IQCalibration:
    """The loop calibration with each reference tone measured about the IQ origin instead (rotated to its
    operating point, radius its magnitude, sign +1): its phase is then the readout's common-mode phase."""
    refs = np.asarray(references, dtype=np.int64)
    if not refs.size:
        return calibration
    z_op = sweep.iq[sweep.operating_index()]
    centre, rotation = np.array(calibration.centre, complex), np.array(calibration.rotation, float)
    radius, sign = np.array(calibration.radius, float), np.broadcast_to(calibration.sign, centre.shape).astype(float)
    centre[refs] = 0
    rotation[refs] = np.angle(z_op[refs])
    radius[refs] = np.abs(z_op[refs])
    sign[refs] = 1.0
    return IQCalibration(centre, rotation, radius, sign)


class ToneTracker:
    """Keeps a tone comb on drifting resonances (module docstring). Owned by one pipeline thread.

    ``step_hz``: the board's phase-coherent tone grid (> 0). ``clock_ns``: the host's UTC clock (the
    blocks' stamps are compared with it to know which data were taken with which tones).
    """

    def __init__(self, source: ReadoutSource, pipeline: Retunable, config: TrackingConfig, sweep: LoopSweep,
                 calibration: IQCalibration, *, step_hz: float, references: Any = (),
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        if not step_hz > 0:
            raise ValueError(f"resonator tracking: the tone step must be > 0 Hz, got {step_hz!r}")
        self.source, self.pipeline, self.config = source, pipeline, config
        self.step_hz = float(step_hz)
        self.tones_rf = np.asarray(sweep.tones_rf_hz, dtype=float).copy()
        self.lo_hz = self.tones_rf - np.asarray(pipeline.tone_if_hz, dtype=float)
        self.curve = loop_phase_curve(sweep, calibration)
        self.references = np.asarray(references, dtype=np.int64)
        self.tracked = self.curve.ok.copy()
        self.tracked[self.references] = False
        if not self.tracked.any():
            log.warning("resonator tracking: no tone's phase follows a resonance loop in the calibration sweep; "
                        "nothing will be tracked")
        elif not self.tracked[np.setdiff1d(np.arange(self.tracked.size), self.references)].all():
            log.warning("resonator tracking: tones %s have no fitted loop phase and are not tracked",
                        np.flatnonzero(~self.tracked & ~np.isin(np.arange(self.tracked.size), self.references)).tolist())
        self._clock_ns = clock_ns
        self._history: list[deque[tuple[float, float]]] = [deque(maxlen=_HISTORY) for _ in self.tones_rf]
        self._phase: list[np.ndarray] = []  # this segment's phase samples (since the last retune)
        self._t_ns: list[np.ndarray] = []
        self._next_estimate_ns: int | None = None
        self._last_index = -1  # ADC sample index of the last phase sample seen
        self._switch: tuple[int, int, np.ndarray] | None = None  # (sent at, settled at, new IFs) of a retune
        self._switched = False  # the pipeline has the new tones
        self._dropped: list[Block] = []
        self.retunes = 0  # retunes done (each may move several tones)
        self.estimates = 0
        self.lags_s: list[float] = []  # how far behind real time the data of each estimate were

    def attrs(self) -> dict[str, Any]:
        """What the tracking did, for the run's attrs (``tracking``)."""
        return {"retunes": self.retunes, "estimates": self.estimates, "step_hz": self.step_hz,
                "tracked_channels": np.flatnonzero(self.tracked).tolist(),
                "reference_channels": self.references.tolist(),
                "linewidth_hz": np.nan_to_num(self.curve.linewidth_hz).tolist(),
                "tone_frequency_hz": self.tones_rf.tolist(),
                # a tracker retunes what it has seen: data far behind real time (a machine that cannot keep
                # up) let the tones fall behind a fast drift by rate x lag
                "data_lag_s": ({"median": float(np.median(self.lags_s)),
                                **{f"p{q}": float(np.quantile(self.lags_s, q / 100)) for q in (95, 99)},
                                "max": float(np.max(self.lags_s))} if self.lags_s else None)}

    # -- the pipeline thread's hooks ---------------------------------------------------------------------
    def admit(self, block: Block) -> Block | None:
        """The block the pipeline may take: None while retuned tones settle (dropped); the first one after is
        non-continuous and carries one ``retune`` gap (with any gap a dropped block had)."""
        if self._switch is None:
            return block
        sent_ns, settled_ns, new_if = self._switch
        if block.t_ns + block.n_samples / self.pipeline.fs * 1e9 < sent_ns:
            return block  # taken before the command: the old tones
        if not self._switched:
            self.pipeline.retune(new_if)
            self._switched = True
        if block.t_ns < settled_ns:
            self._dropped.append(block)
            return None
        self._switch = None
        self._phase, self._t_ns, self._next_estimate_ns = [], [], None
        block.gaps = [*self._retune_gaps(block.first_sample, block.t_ns), *block.gaps]
        block.continuous = False
        return block

    def flush(self) -> list[Gap]:
        """At the stream's end: the ``retune`` gap of data dropped by a retune no block followed."""
        if self._switch is None:
            return []
        self._switch = None
        if not self._dropped:
            return []
        last = self._dropped[-1]
        return self._retune_gaps(last.first_sample + last.n_samples, last.t_ns)

    def observe(self, outputs: list[PipelineOutput]) -> None:
        """Take the pipeline's phase; every ``interval_s`` of data, estimate and re-centre (module docstring).
        A retune's rows ride on the last of ``outputs``."""
        for out in outputs:
            if out.data.shape[0] == 0 or self._switch is not None:
                continue  # no phase, or the old tones' phase after a retune was sent
            self._phase.append(np.asarray(out.data))
            self._t_ns.append(np.asarray(out.t_ns))
            self._last_index = int(out.sample_index[-1])
            if self._next_estimate_ns is None:
                self._next_estimate_ns = int(out.t_ns[0]) + int(self.config.window_s * 1e9)
        if self._next_estimate_ns is None or not self._t_ns or self._t_ns[-1][-1] < self._next_estimate_ns:
            return
        t_ns = np.concatenate(self._t_ns)
        keep = t_ns >= t_ns[-1] - int(self.config.window_s * 1e9)
        phase, t_ns = np.concatenate(self._phase)[keep], t_ns[keep]
        self._phase, self._t_ns = [phase], [t_ns]
        self._next_estimate_ns = int(t_ns[-1]) + int(self.config.interval_s * 1e9)
        rows = self.estimate(np.median(phase, axis=0), int(np.median(t_ns)))
        if rows is not None:
            outputs[-1].retunes = rows

    # -- estimating and moving -----------------------------------------------------------------------------
    def estimate(self, theta: np.ndarray, t_ns: int) -> dict[str, np.ndarray] | None:
        """One estimate from each tone's median phase ``theta`` at data time ``t_ns``; moves the tones that are
        off (returns their ``retunes/`` rows) or returns None."""
        c = self.config
        self.estimates += 1
        position = self.tones_rf - tone_offset(theta, self.curve)  # where each tone belongs now
        t_s = t_ns * 1e-9
        now_ns = self._clock_ns()
        # the new tones take over about now; the next retune comes once the data have caught up, settled and
        # filled a window: aim at the middle of that time
        lag_s = (now_ns - t_ns) * 1e-9
        self.lags_s.append(lag_s)
        ahead_s = lag_s + c.settle_s + max(c.interval_s, lag_s + c.settle_s + c.window_s) / 2
        rate = np.zeros(self.tones_rf.size)
        target = position.copy()
        for k in np.flatnonzero(self.tracked):
            self._history[k].append((t_s, float(position[k])))
            rate[k] = _slope(self._history[k])
            if c.predict:
                target[k] += rate[k] * ahead_s
        log.debug("tracking estimate: data %.3f s behind, off by %s linewidths, rate %s Hz/s", (now_ns - t_ns) * 1e-9,
                  np.round((position - self.tones_rf) / self.curve.linewidth_hz, 3).tolist(), np.round(rate).tolist())
        w = self.curve.linewidth_hz
        off = self.tracked & (np.abs(target - self.tones_rf) > c.threshold_linewidths * np.nan_to_num(w))
        if not off.any():
            return None
        limit = c.max_step_linewidths * w
        move = np.clip(target - self.tones_rf, -limit, limit)
        move = np.where(off, np.round(move / self.step_hz) * self.step_hz, 0.0)
        if not np.any(move):
            return None
        return self._retune(self.tones_rf + move, position, rate)

    def _retune(self, new_rf: np.ndarray, position: np.ndarray, rate: np.ndarray) -> dict[str, np.ndarray]:
        old = self.tones_rf
        t_ns = self._clock_ns()
        self.source.configure(tone_frequencies=new_rf)  # safety limits apply; a refusal ends the run, loudly
        self._switch = (t_ns, self._clock_ns() + int(round(self.config.settle_s * 1e9)), new_rf - self.lo_hz)
        self._switched = False
        moved = np.flatnonzero(new_rf != old)
        self.tones_rf = new_rf.astype(float)
        self._phase, self._t_ns, self._next_estimate_ns = [], [], None
        self.retunes += 1
        log.debug("resonator tracking: moved tones %s by %s Hz", moved.tolist(),
                  np.round(new_rf[moved] - old[moved]).tolist())
        n = moved.size
        return {"t": np.full(n, t_ns, np.int64), "sample_index": np.full(n, self._last_index, np.int64),
                "channel": moved.astype(np.int32), "old_frequency_hz": old[moved], "new_frequency_hz": new_rf[moved],
                "resonance_hz": position[moved], "rate_hz_per_s": rate[moved],
                "linewidth_hz": self.curve.linewidth_hz[moved]}

    def _retune_gaps(self, first_sample: int, t_ns: int) -> list[Gap]:
        gaps = [g for b in self._dropped for g in b.gaps]
        if self._dropped:
            first_sample, t_ns = self._dropped[0].first_sample, self._dropped[0].t_ns
            last = self._dropped[-1]
            n = last.first_sample + last.n_samples - first_sample
        else:
            n = 0
        self._dropped = []
        detail = (f"tones moved by resonator tracking; data taken before the move and {self.config.settle_s:g} s "
                  "after it dropped")
        return [*gaps, Gap(int(first_sample), int(n), int(t_ns), CAUSE_RETUNE, detail)]


def _slope(history: deque[tuple[float, float]]) -> float:
    """Least-squares slope (Hz/s) of (t, position) pairs; 0 with fewer than two distinct times."""
    if len(history) < 2:
        return 0.0
    t = np.array([h[0] for h in history])
    p = np.array([h[1] for h in history])
    t = t - t.mean()
    denom = float(np.dot(t, t))
    return float(np.dot(t, p - p.mean()) / denom) if denom > 0 else 0.0
