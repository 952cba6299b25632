"""The clock model of a run: one fitted map from sample index to UTC, with its uncertainty.

A board's sample counter is the one thing that never jumps: samples come at a steady (if not
exactly nominal) rate. Its timestamps — packet stamps, PPS edges, IRIG-B times, DASTARD's
trigger times — are noisy and may step (an NTP correction). So UTC is fitted, not copied:

    t(n) = t_ref + (n - n_ref) * ns_per_sample

over every anchor ``(sample index, stamp)`` the source gave (offset and drift; the RMS of the
residuals is the stamps' jitter). :class:`ClockTracker` fits it while a run streams (an online
least-squares line with a weak prior on the drift, so a few anchors give a sane slope) and gives
the pipeline its event times; :class:`ClockModel` is the fitted result stored with the run.

- A **jump** (stamps suddenly off the line by more than ``jump_threshold`` and 20 jitters, for
  ``jump_confirm`` anchors in a row, agreeing with each other) is recorded as a
  :class:`ClockJump`, and later stamps are taken back by its size: times stay continuous and
  monotonic in the clock the run started with. A lone stamp off the line is an outlier, left out.
- A **restart** of the counter (a sample index going back: the board began a new stream) starts
  a new :class:`ClockSegment`.
- Uncertainty of ``t(n)``: the line's own (jitter and anchor count) in quadrature with the
  source's absolute uncertainty (:mod:`cryodaq.timing.sources`) and, for clocks nothing
  disciplines, a rate bound times the time since the segment began.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from cryodaq.readout.source import TimeBase
from cryodaq.timing.sources import source_kind, stated_uncertainty_s

__all__ = ["ANCHOR_OUTLIER", "ANCHOR_USED", "ClockJump", "ClockModel", "ClockSegment", "ClockTracker"]

ANCHOR_USED, ANCHOR_OUTLIER = 0, 1  # anchor status codes (stored in clock/status)

_MIN_FIT = 4  # anchors before stamps far off the line count as outliers or jumps


@dataclass(frozen=True)
class ClockJump:
    """The stamps stepped by ``size_ns`` at ``sample_index`` (``t_ns``: the stepped stamp there).

    Times after it stay continuous; add ``size_ns`` to refer them to the stepped clock.
    """

    sample_index: int
    t_ns: int
    size_ns: int
    segment: int = 0


@dataclass(frozen=True)
class ClockSegment:
    """One continuous stretch of the sample counter: ``t = t_ref_ns + (n - n_ref) * ns_per_sample``.

    ``jitter_ns``: RMS residual of the anchors; ``intercept_var`` (ns²) and ``slope_var`` (ns² per
    sample²): the variances of the line's level at ``n_ref`` and of its slope. ``first_sample`` ..
    ``last_sample`` and ``first_t_ns`` .. ``last_t_ns`` are the anchors' range.
    """

    n_ref: float
    t_ref_ns: int
    ns_per_sample: float
    jitter_ns: float
    n_anchors: int
    n_outliers: int
    intercept_var: float
    slope_var: float
    first_sample: int
    last_sample: int
    first_t_ns: int
    last_t_ns: int

    def utc_ns(self, sample_index: Any) -> np.ndarray:
        x = np.asarray(sample_index, dtype=np.float64) - self.n_ref
        return self.t_ref_ns + np.rint(x * self.ns_per_sample).astype(np.int64)

    def line_uncertainty_ns(self, sample_index: Any) -> np.ndarray:
        """1-sigma uncertainty of the fitted line at ``sample_index`` (jitter averaged over the anchors)."""
        x = np.asarray(sample_index, dtype=np.float64) - self.n_ref
        return np.sqrt(self.intercept_var + x * x * self.slope_var)


@dataclass(frozen=True)
class ClockModel:
    """A run's clock: its time source and the fitted map sample index -> UTC ns (module docstring)."""

    source: str
    disciplined: bool
    detail: str
    uncertainty_s: float | None  # the source's absolute 1-sigma uncertainty (stated, or its kind's typical one)
    rate_uncertainty_ppm: float  # for clocks nothing disciplines; 0 otherwise
    nominal_rate_hz: float
    segments: tuple[ClockSegment, ...] = ()
    jumps: tuple[ClockJump, ...] = ()
    host_clock: Mapping[str, Any] | None = None  # chrony/ntpd summary during the run (cryodaq.timing.host_clock)
    reference: str = ""  # what the clock follows, as the stream says (a CRS: BACKPLANE, SMA, TEST, GND)
    changes: tuple[Mapping[str, Any], ...] = ()  # time bases the stream stated later in the run ({t_ns, source, ...})

    # --- summary ------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return bool(self.segments)

    @property
    def ns_per_sample(self) -> float:
        return self.segments[-1].ns_per_sample if self.segments else 1e9 / self.nominal_rate_hz

    @property
    def drift_ppm(self) -> float:
        """How much faster than nominal the samples come, in the stamps' time (ppm)."""
        return (1e9 / self.nominal_rate_hz / self.ns_per_sample - 1.0) * 1e6

    @property
    def jitter_ns(self) -> float:
        return max((s.jitter_ns for s in self.segments), default=0.0)

    @property
    def n_anchors(self) -> int:
        return sum(s.n_anchors for s in self.segments)

    @property
    def n_outliers(self) -> int:
        return sum(s.n_outliers for s in self.segments)

    # --- mapping ------------------------------------------------------------------------
    def _segment_of(self, sample_index: np.ndarray, t_hint: np.ndarray | None) -> np.ndarray:
        """Segment number of each sample: by the stored (online) time when given, else the last segment
        whose sample range holds it (a counter restart makes sample indices ambiguous)."""
        n_seg = len(self.segments)
        if n_seg <= 1:
            return np.zeros(sample_index.shape, np.int64)
        if t_hint is not None:
            starts = np.array([s.first_t_ns for s in self.segments], np.int64)
            return np.clip(np.searchsorted(starts, np.asarray(t_hint, np.int64), "right") - 1, 0, n_seg - 1)
        firsts = np.array([s.first_sample for s in self.segments], np.int64)
        out = np.zeros(sample_index.shape, np.int64)
        for k in range(n_seg):
            out[sample_index >= firsts[k]] = k
        return out

    def utc_ns(self, sample_index: Any, t_hint: Any = None) -> np.ndarray:
        """UTC ns (int64) of ``sample_index``. ``t_hint``: the stored event times, only to pick the
        segment where the counter restarted."""
        if not self.segments:
            raise ValueError("the clock model has no fitted segment (the run stored no timestamps)")
        n = np.asarray(sample_index)
        if len(self.segments) == 1:
            return self.segments[0].utc_ns(n)
        seg = self._segment_of(n, None if t_hint is None else np.asarray(t_hint))
        out = np.zeros(n.shape, np.int64)
        for k, s in enumerate(self.segments):
            sel = seg == k
            out[sel] = s.utc_ns(n[sel])
        return out

    def uncertainty_ns(self, sample_index: Any, t_hint: Any = None) -> np.ndarray:
        """1-sigma uncertainty (ns, float64) of ``utc_ns(sample_index)`` as absolute UTC: the line's,
        the source's (NaN where it has none) and the rate bound since the segment began."""
        n = np.asarray(sample_index)
        seg = self._segment_of(n, None if t_hint is None else np.asarray(t_hint))
        line = np.zeros(n.shape)
        elapsed = np.zeros(n.shape)
        for k, s in enumerate(self.segments):
            sel = seg == k
            line[sel] = s.line_uncertainty_ns(n[sel])
            elapsed[sel] = np.abs(n[sel].astype(np.float64) - s.first_sample) / self.nominal_rate_hz
        return _combined_ns(line, elapsed, self.uncertainty_s, self.rate_uncertainty_ppm)

    def continuous_stamps(self, sample_index: Any, t_ns: Any, segment: Any = None) -> np.ndarray:
        """Stamps with every earlier jump of their segment taken back out (what the line is fitted to)."""
        n, t = np.asarray(sample_index), np.asarray(t_ns, np.int64).copy()
        seg = np.zeros(n.shape, np.int64) if segment is None else np.asarray(segment, np.int64)
        for j in self.jumps:
            t[(seg == j.segment) & (n >= j.sample_index)] -= j.size_ns
        return t

    # --- storage ------------------------------------------------------------------------
    def as_attrs(self) -> dict[str, Any]:
        """JSON-able form, the run's root attr ``clock`` (docs/run-format.md)."""
        return {
            "source": self.source, "disciplined": self.disciplined, "detail": self.detail,
            "uncertainty_s": self.uncertainty_s, "rate_uncertainty_ppm": self.rate_uncertainty_ppm,
            "nominal_rate_hz": self.nominal_rate_hz,
            "drift_ppm": self.drift_ppm if self.fitted else None,
            "jitter_s": self.jitter_ns * 1e-9 if self.fitted else None,
            "segments": [asdict(s) for s in self.segments],
            "jumps": [asdict(j) for j in self.jumps],
            "host_clock": dict(self.host_clock) if self.host_clock is not None else None,
            "reference": self.reference,
            **({"changes": [dict(c) for c in self.changes]} if self.changes else {}),
        }

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> ClockModel:
        """The model stored in a run's ``clock`` attr; older runs (source and uncertainty only) give an
        unfitted model."""
        source = str(attrs.get("source", "host_utc"))
        if source == "host system clock":  # runs written before the clock was modelled
            source = "host_utc"
        seg_fields = set(ClockSegment.__dataclass_fields__)
        jump_fields = set(ClockJump.__dataclass_fields__)
        unc = attrs.get("uncertainty_s")
        return cls(
            source=source, disciplined=bool(attrs.get("disciplined", False)), detail=str(attrs.get("detail", "")),
            uncertainty_s=None if unc is None else float(unc),
            rate_uncertainty_ppm=float(attrs.get("rate_uncertainty_ppm", 0.0) or 0.0),
            nominal_rate_hz=float(attrs.get("nominal_rate_hz", 0.0) or 0.0),
            segments=tuple(ClockSegment(**{k: v for k, v in s.items() if k in seg_fields})
                           for s in attrs.get("segments", []) or []),
            jumps=tuple(ClockJump(**{k: v for k, v in j.items() if k in jump_fields})
                        for j in attrs.get("jumps", []) or []),
            host_clock=attrs.get("host_clock"),
            reference=str(attrs.get("reference", "") or ""),
            changes=tuple(attrs.get("changes", []) or []),
        )

    def describe(self) -> str:
        """One line: source, uncertainty, fit, jumps (what ``cryodaq info`` prints)."""
        unc = "unknown" if self.uncertainty_s is None else _fmt_s(self.uncertainty_s)
        text = f"{self.source}{' (disciplined)' if self.disciplined else ''}, uncertainty {unc}"
        if self.fitted:
            text += (f"; fit: drift {self.drift_ppm:+.3f} ppm, jitter {_fmt_s(self.jitter_ns * 1e-9)} "
                     f"over {self.n_anchors} anchors")
            if self.n_outliers:
                text += f" ({self.n_outliers} outliers)"
            if len(self.segments) > 1:
                text += f", {len(self.segments)} segments (counter restarts)"
        else:
            text += "; no fitted model"
        if self.jumps:
            sizes = ", ".join(f"{j.size_ns * 1e-9:+.6f} s at sample {j.sample_index}" for j in self.jumps)
            text += f"; {len(self.jumps)} clock jump(s): {sizes}"
        return text


def _combined_ns(line_ns: np.ndarray, elapsed_s: np.ndarray, absolute_s: float | None,
                 rate_ppm: float) -> np.ndarray:
    """The line's uncertainty, the source's absolute one (NaN: none) and the rate bound, in quadrature."""
    absolute = math.nan if absolute_s is None else absolute_s * 1e9
    rate = rate_ppm * 1e-6 * elapsed_s * 1e9
    return np.sqrt(line_ns**2 + absolute**2 + rate**2)


def _fmt_s(seconds: float) -> str:
    a = abs(seconds)
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if a >= scale or unit == "ns":
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:g} s"


@dataclass
class _Moments:
    """Welford co-moments of the anchors of one epoch (between two jumps)."""

    count: int = 0
    mx: float = 0.0
    my: float = 0.0
    sxx: float = 0.0
    sxy: float = 0.0
    syy: float = 0.0

    def add(self, x: float, y: float) -> None:
        self.count += 1
        dx = x - self.mx
        self.mx += dx / self.count
        dy = y - self.my
        self.my += dy / self.count
        self.sxx += dx * (x - self.mx)
        self.sxy += dx * (y - self.my)
        self.syy += dy * (y - self.my)


class _LineFit:
    """Online least-squares line through the anchors (x, y) of one counter segment, about its first anchor.

    Each jump starts an *epoch* with its own intercept and the slope common to all: the stamps after a
    step still say how fast the counter runs, and the size of the step is fitted (the difference of
    intercepts), not guessed from the few anchors that revealed it. The continuous clock is epoch 0's
    line. A Gaussian prior ``slope0 ± slope_sigma`` on the slope keeps a few close anchors sane.
    """

    def __init__(self, n0: float, t0: int, slope0: float, slope_sigma: float) -> None:
        self.n0, self.t0 = n0, t0
        self.slope0, self.slope_sigma = slope0, slope_sigma
        self.epochs = [_Moments()]
        self.outliers = 0
        self.first_sample, self.first_t = int(n0), int(t0)
        self.last_sample, self.last_t = int(n0), int(t0)

    @property
    def count(self) -> int:
        return sum(e.count for e in self.epochs)

    def add(self, x: float, y: float) -> None:
        self.epochs[-1].add(x, y)

    def new_epoch(self) -> None:
        self.epochs.append(_Moments())

    def resid_var(self) -> float:
        """Pooled residual variance of the plain least-squares fit (0 until it has 3 spare anchors' worth)."""
        sxx = sum(e.sxx for e in self.epochs)
        dof = self.count - len(self.epochs) - 1
        if dof < 1 or sxx <= 0:
            return 0.0
        b = sum(e.sxy for e in self.epochs) / sxx
        return max(sum(e.syy - b * e.sxy for e in self.epochs), 0.0) / dof

    def slope(self) -> tuple[float, float]:
        """(slope, its variance) with the prior."""
        prior_w = 1.0 / self.slope_sigma**2
        sxx = sum(e.sxx for e in self.epochs)
        if self.count < 3 or sxx <= 0:  # no estimate of the stamps' scatter yet: keep the prior
            return self.slope0, 1.0 / prior_w
        s2 = max(self.resid_var(), 1.0)  # stamps are integer ns: never trust them below 1 ns
        return (sum(e.sxy for e in self.epochs) / s2 + self.slope0 * prior_w) / (sxx / s2 + prior_w), \
            1.0 / (sxx / s2 + prior_w)

    def intercept(self, epoch: int, b: float | None = None) -> float:
        """Epoch ``epoch``'s y at x = 0 (relative to t0)."""
        b = self.slope()[0] if b is None else b
        e = self.epochs[epoch]
        return e.my - b * e.mx

    def jump(self, epoch: int) -> float:
        """Fitted step of epoch ``epoch`` against epoch 0 (ns)."""
        b = self.slope()[0]
        return self.intercept(epoch, b) - self.intercept(0, b) if self.epochs[epoch].count else 0.0

    def predict(self, n: np.ndarray) -> np.ndarray:
        """The continuous clock (epoch 0's line; y relative to t0) at sample indices ``n``."""
        b, _ = self.slope()
        e = self.epochs[0]
        return e.my + b * (np.asarray(n, np.float64) - self.n0 - e.mx)

    def line_var(self, n: np.ndarray) -> np.ndarray:
        """Variance (ns²) of :meth:`predict`: epoch 0's level, and the slope away from its centre."""
        _, var_b = self.slope()
        e = self.epochs[0]
        x = np.asarray(n, np.float64) - self.n0 - e.mx
        return self.resid_var() / max(e.count, 1) + x * x * var_b

    def segment(self) -> ClockSegment:
        b, var_b = self.slope()
        e = self.epochs[0]
        return ClockSegment(
            n_ref=float(self.n0 + e.mx), t_ref_ns=int(self.t0 + round(e.my)), ns_per_sample=float(b),
            jitter_ns=float(math.sqrt(self.resid_var())), n_anchors=int(self.count), n_outliers=int(self.outliers),
            intercept_var=float(self.resid_var() / max(e.count, 1)), slope_var=float(var_b),
            first_sample=self.first_sample, last_sample=self.last_sample, first_t_ns=self.first_t,
            last_t_ns=self.last_t,
        )


@dataclass
class _Anchors:
    """Every anchor seen (bounded: thinned to every other one past ``limit``), for the run's ``clock/`` group."""

    limit: int
    sample_index: list[float] = field(default_factory=list)
    t_ns: list[int] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    segment: list[int] = field(default_factory=list)

    def add(self, n: float, t: int, status: int, segment: int) -> None:
        self.sample_index.append(n)
        self.t_ns.append(t)
        self.status.append(status)
        self.segment.append(segment)
        if len(self.t_ns) > self.limit:
            start = (len(self.t_ns) - 1) % 2  # every other one, keeping the newest
            for name in ("sample_index", "t_ns", "status", "segment"):
                setattr(self, name, getattr(self, name)[start::2])

    def mark(self, count: int, status: int) -> None:
        """Set the status of the last ``count`` anchors (still present: thinning keeps the newest)."""
        for i in range(1, min(count, len(self.status)) + 1):
            self.status[-i] = status


class ClockTracker:
    """Fits a stream's clock while it runs and maps sample indices to UTC (module docstring).

    ``observe(sample_index, t_ns)`` for each timestamp the source gives (a block's first packet
    stamp; :meth:`observe_pps` for a PPS edge); :meth:`utc_ns` maps sample indices with the
    current fit, never going back in time for later samples; :meth:`model` is the fit so far.
    Fed from one thread (the pipeline's); :meth:`model` may be called from another.
    """

    def __init__(self, nominal_rate_hz: float, time_base: TimeBase | None = None, *, jump_threshold_s: float = 1e-3,
                 jump_confirm: int = 3, drift_prior_ppm: float = 100.0, max_anchors: int = 100_000) -> None:
        if not nominal_rate_hz > 0:
            raise ValueError(f"clock: nominal sample rate must be > 0 Hz, got {nominal_rate_hz}")
        if jump_confirm < 1:
            raise ValueError(f"clock: jump_confirm must be >= 1 anchor, got {jump_confirm}")
        self.nominal_rate_hz = float(nominal_rate_hz)
        self.time_base = time_base or TimeBase()
        self.jump_threshold_ns = float(jump_threshold_s) * 1e9
        self.jump_confirm = int(jump_confirm)
        self._slope0 = 1e9 / self.nominal_rate_hz
        self._slope_sigma = self._slope0 * float(drift_prior_ppm) * 1e-6
        self._done: list[ClockSegment] = []
        self._fit: _LineFit | None = None
        self._done_jumps: list[ClockJump] = []  # of finished segments
        self._marks: list[tuple[int, int]] = []  # (sample, stamp) where each later epoch of this segment began
        self._pending: list[tuple[float, int, float]] = []  # (n, t, residual) off the line, not yet a jump
        self._last_n: float | None = None
        self._floors: dict[str, tuple[float, int]] = {}  # per series: (sample, time) of its latest mapping
        self._anchors = _Anchors(int(max_anchors))
        self.host_clock: dict[str, Any] | None = None
        self._changes: list[dict[str, Any]] = []
        self._state_time_base(self.time_base)

    def _state_time_base(self, time_base: TimeBase) -> None:
        self.time_base = time_base
        self._absolute_s = stated_uncertainty_s(time_base)
        self._rate_ppm = 0.0 if time_base.disciplined else source_kind(time_base).rate_uncertainty_ppm

    def restate(self, time_base: TimeBase, t_ns: int, *, first: bool = False) -> None:
        """The stream's own word on its clock (e.g. a CRS packet's IRIG-B source and discipline), which
        replaces what the source described before the stream began; a later change (``first`` False)
        is kept in the model's ``changes``. The fit itself goes on: the timestamps do not change."""
        if time_base == self.time_base:
            return
        if not first:
            self._changes.append({"t_ns": int(t_ns), **time_base.as_attrs()})
        self._state_time_base(time_base)

    # --- feeding ------------------------------------------------------------------------
    def observe(self, sample_index: float, t_ns: int) -> None:
        """One timestamp: sample ``sample_index`` (fractional for a PPS edge) was at stamp ``t_ns``."""
        n, t = float(sample_index), int(t_ns)
        if self._fit is None or (self._last_n is not None and n < self._last_n):
            self._start_segment(n, t)
            return
        self._last_n = n
        fit = self._fit
        r = (t - self._offset - fit.t0) - float(fit.predict(np.array([n]))[0])
        sigma = math.sqrt(fit.resid_var())
        tol = max(self.jump_threshold_ns, 20.0 * sigma)
        if fit.count < _MIN_FIT or abs(r) <= tol:
            if self._pending:  # a burst of stamps off the line that came back: outliers
                fit.outliers += len(self._pending)
                self._pending.clear()
            self._accept(n, t)
            self._anchors.add(n, t, ANCHOR_USED, len(self._done))
            return
        self._pending.append((n, t, r))
        self._anchors.add(n, t, ANCHOR_OUTLIER, len(self._done))
        if len(self._pending) < self.jump_confirm:
            return
        residuals = [p[2] for p in self._pending]
        if max(residuals) - min(residuals) <= tol:  # they agree: the stamps stepped; a new epoch begins
            first_n, first_t, _ = self._pending[0]
            self._marks.append((int(round(first_n)), first_t))
            fit.new_epoch()
            for pn, pt, _ in self._pending:
                self._accept(pn, pt)
            self._anchors.mark(len(self._pending), ANCHOR_USED)
            self._pending.clear()
        else:  # scattered: the oldest one is an outlier
            self._pending.pop(0)
            fit.outliers += 1

    def observe_pps(self, edge_sample: float, coarse_t_ns: int | None = None) -> None:
        """A PPS edge seen at (fractional) sample ``edge_sample``: it marks a whole UTC second, the one
        nearest ``coarse_t_ns`` (a rough time of the edge, e.g. the host's) or else nearest the current
        fit (either must be good to ±0.5 s)."""
        if coarse_t_ns is None:
            if self._fit is None:
                raise ValueError("clock: the first PPS edge needs a rough time to say which second it marks")
            coarse_t_ns = int(self.utc_ns(np.array([edge_sample]), "pps")[0] + self._offset)
        self.observe(edge_sample, int(round(coarse_t_ns / 1e9)) * 1_000_000_000)

    @property
    def _offset(self) -> float:
        """The current epoch's fitted step against the segment's first: taken off its stamps."""
        fit = self._fit
        return fit.jump(len(fit.epochs) - 1) if fit is not None else 0.0

    def _segment_jumps(self) -> list[ClockJump]:
        """The current segment's jumps, sized by the fit (each epoch's step against the one before)."""
        fit = self._fit
        if fit is None:
            return []
        steps = [fit.jump(e) for e in range(len(fit.epochs))]
        return [ClockJump(n, t, int(round(steps[e + 1] - steps[e])), len(self._done))
                for e, (n, t) in enumerate(self._marks)]

    def _start_segment(self, n: float, t: int) -> None:
        if self._fit is not None:
            self._done_jumps += self._segment_jumps()
            self._done.append(self._fit.segment())
        self._fit = _LineFit(n, t, self._slope0, self._slope_sigma)
        self._marks = []
        self._pending.clear()
        self._floors.clear()
        self._last_n = n
        self._accept(n, t)
        self._anchors.add(n, t, ANCHOR_USED, len(self._done))

    def _accept(self, n: float, t: int) -> None:
        fit = self._fit
        assert fit is not None
        fit.add(n - fit.n0, float(t - fit.t0))
        fit.last_sample, fit.last_t = int(n), int(round(t - self._offset))  # in the continuous clock

    # --- mapping ------------------------------------------------------------------------
    def utc_ns(self, sample_index: Any, series: str = "samples") -> np.ndarray:
        """UTC ns (int64) of ``sample_index`` from the current fit. Within a ``series`` (the stream's
        samples, its events, ...) a sample after the latest one mapped never gets an earlier time: the
        fit moves a little as anchors come in, and times must not go back."""
        fit = self._fit
        if fit is None:
            raise RuntimeError("clock: no timestamp observed yet; observe() a block before mapping its samples")
        n = np.asarray(sample_index)
        t = fit.t0 + np.rint(fit.predict(n)).astype(np.int64)
        if t.size:
            floor_n, floor_t = self._floors.get(series, (-math.inf, -(1 << 62)))
            later = n > floor_n
            if later.any():
                t[later] = np.maximum(t[later], floor_t)
                k = int(np.argmax(np.where(later, n, -np.inf)))
                self._floors[series] = (float(n.flat[k]), int(t.flat[k]))
        return t

    def uncertainty_ns(self, sample_index: Any) -> np.ndarray:
        """1-sigma uncertainty (ns) of :meth:`utc_ns` as absolute UTC, from the current fit (as
        :meth:`ClockModel.uncertainty_ns`)."""
        n = np.asarray(sample_index, dtype=np.float64)
        fit = self._fit
        if fit is None:
            return np.full(n.shape, math.nan)
        line = np.sqrt(fit.line_var(n))
        return _combined_ns(line, np.abs(n - fit.first_sample) / self.nominal_rate_hz, self._absolute_s,
                            self._rate_ppm)

    # --- results ------------------------------------------------------------------------
    def model(self) -> ClockModel:
        """The fit so far, as the stored model."""
        segments = [*self._done, self._fit.segment()] if self._fit is not None else list(self._done)
        tb = self.time_base
        return ClockModel(
            source=tb.source, disciplined=bool(tb.disciplined),
            detail="; ".join(d for d in (source_kind(tb).description, tb.detail) if d and d != tb.source),
            uncertainty_s=self._absolute_s, rate_uncertainty_ppm=self._rate_ppm,
            nominal_rate_hz=self.nominal_rate_hz, segments=tuple(segments),
            jumps=tuple(self._done_jumps + self._segment_jumps()),
            host_clock=self.host_clock, reference=tb.reference, changes=tuple(self._changes),
        )

    def anchors(self) -> dict[str, np.ndarray]:
        """Every anchor kept: ``sample_index`` (float64), ``t`` (raw stamp, int64 ns), ``status``
        (0 used, 1 outlier), ``segment``."""
        a = self._anchors
        return {"sample_index": np.asarray(a.sample_index, np.float64), "t": np.asarray(a.t_ns, np.int64),
                "status": np.asarray(a.status, np.uint8), "segment": np.asarray(a.segment, np.int16)}
