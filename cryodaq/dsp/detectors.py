"""Streaming trigger detectors: find trigger sample indices in (n, n_channels) blocks.

A detector's ``detect(x, first_index, arm_index)`` returns the triggers that became
final with this block, as host arrays ``(channel int32, index int64)`` sorted by
channel then index, plus ``final_end``: every trigger with index < final_end has now
been returned, none later will be.  Results do not depend on how the stream is cut
into blocks.  Triggers before ``arm_index`` (the trigger's warm-up after a reset)
are ignored.  Hold-off: a crossing closer than ``holdoff`` samples to the previous
accepted one on that channel is ignored.  Arrays are time-major, (n, n_channels),
as the stream arrives: no transposes.

On a device backend the part of a detector that touches every sample runs there and ends
in :class:`Candidates` (the set positions of its edge mask, still device arrays);
:meth:`Detector.accept` finishes on the host with the few candidates (arming, hold-off).
``detect`` is the two in a row; a pipeline instead brings the candidates back together with
its other results, in one transfer per block.

Hand-written: scipy has no streaming (stateful) multi-channel trigger or overlap-save
filter that also runs on cupy.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import Backend, numpy_backend
from .stats import robust_sigma

#: 'no trigger yet' in hold-off bookkeeping: far below any sample index, and safe to subtract from
NEVER = np.iinfo(np.int64).min // 4
_EMPTY = (np.zeros(0, np.int32), np.zeros(0, np.int64))


def greedy_min_gap(channel: np.ndarray, index: np.ndarray, last: np.ndarray, gap: int) -> np.ndarray:
    """Keep-mask for candidates (sorted by channel, index) at least ``gap`` after the previous
    kept one on the same channel; ``last`` (per channel, updated in place) carries across blocks."""
    n = index.size
    keep = np.ones(n, dtype=bool)
    if n == 0:
        return keep
    if gap > 1:
        from cryodaq.dsp.cpu_kernels import min_gap_keep

        min_gap_keep(np.ascontiguousarray(channel), np.ascontiguousarray(index, np.int64), last, int(gap), keep)
        return keep
    kept_ch, kept_idx = channel[keep], index[keep]
    if kept_ch.size:
        last[kept_ch] = kept_idx  # sorted by channel then index: the final occurrence wins
    return keep


def set_positions(mask: Any, backend: Backend) -> tuple[Any, Any]:
    """(row, col) of the set elements of a (n, c) bool array, in row-major order, as backend arrays.

    On CPU, scans 8 flags at a time as uint64 words first: triggers are sparse, and
    ``np.nonzero`` on the whole array is ~10x slower than the rest of the detector.
    """
    if backend.device:
        return backend.xp.nonzero(mask)
    flat = np.ascontiguousarray(mask).reshape(-1)
    m8 = flat.size - flat.size % 8
    words = np.flatnonzero(flat[:m8].view(np.uint64))
    idx = words[:, None] * 8 + np.arange(8)
    idx = idx[flat[idx]] if words.size else np.zeros(0, np.int64)
    idx = np.concatenate([idx.ravel(), np.flatnonzero(flat[m8:]) + m8])
    return np.divmod(idx, mask.shape[1])


def nonzero_2d(mask: Any, backend: Backend) -> tuple[np.ndarray, np.ndarray]:
    """Host (row, col) int64 of the set elements of a (n, c) bool array, in row-major order."""
    r, c = backend.to_host(*set_positions(mask, backend))
    return np.asarray(r, np.int64), np.asarray(c, np.int64)


@dataclass
class Candidates:
    """What a detector found in one block before the host decides: positions of its edge mask.

    ``rows``/``cols``: backend int arrays (row ``r`` is sample ``start + r``); every trigger
    with index < ``final_end`` is now known. :meth:`on_host` after a transfer.
    """

    rows: Any
    cols: Any
    start: int
    final_end: int

    @classmethod
    def none(cls, final_end: int) -> Candidates:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), 0, final_end)

    def arrays(self) -> tuple[Any, Any]:
        return self.rows, self.cols

    def with_arrays(self, rows: Any, cols: Any) -> Candidates:
        """The same candidates with ``rows``/``cols`` replaced (e.g. by their host copies)."""
        return Candidates(rows, cols, self.start, self.final_end)


def gather_rows(a: Any, b: Any, rows: np.ndarray, cols: np.ndarray, backend: Backend) -> Any:
    """``concat([a, b])[rows, cols]`` without concatenating (rows clipped to the data)."""
    xp = backend.xp
    ha, hb = a.shape[0], b.shape[0]
    cols_d = backend.asarray(cols)
    if hb == 0:
        return a[backend.asarray(np.clip(rows, 0, ha - 1)), cols_d]
    from_b = b[backend.asarray(np.clip(rows - ha, 0, hb - 1)), cols_d]
    if ha == 0 or rows.min() >= ha:
        return from_b
    from_a = a[backend.asarray(np.clip(rows, 0, ha - 1)), cols_d]
    return xp.where(backend.asarray(rows < ha), from_a, from_b)


class Detector:
    """Common state: channel count, edge detection, hold-off bookkeeping."""

    #: samples after a reset before the detector can produce a trigger
    warmup = 0
    #: find() on the backend, accept() on the host; False: detect() needs the host mid-block
    splits = True

    def __init__(self, holdoff: int, polarity: int, backend: Backend | None) -> None:
        if polarity not in (1, -1):
            raise ValueError(f"trigger polarity must be +1 or -1, got {polarity}")
        if holdoff < 0:
            raise ValueError(f"trigger holdoff must be >= 0 samples, got {holdoff}")
        self.backend = backend or numpy_backend()
        self.xp = self.backend.xp
        self.holdoff = int(holdoff)
        self.polarity = int(polarity)
        self.n_channels: int | None = None
        self.reset()

    def reset(self) -> None:
        self._last: np.ndarray | None = None
        self._prev_above: Any = None

    def _start(self, n_channels: int) -> None:
        if self.n_channels is None:
            self.n_channels = n_channels
        elif n_channels != self.n_channels:
            raise ValueError(f"trigger was set up for {self.n_channels} channels, got a block with {n_channels}")
        if self._last is None:
            self._last = np.full(n_channels, NEVER, dtype=np.int64)
            # Start "above" so a channel already over threshold at arm time needs a real edge.
            self._prev_above = self.xp.ones(n_channels, dtype=bool)

    def _per_channel(self, value: Any) -> Any:
        """A scalar or per-channel (C,) threshold as a backend float32 array broadcasting over time."""
        v = np.asarray(value, dtype=np.float32)
        return self.backend.asarray(v if v.ndim else v.reshape(()))

    def _edge(self, s: Any, thr: Any) -> Any:
        """Rising edges of ``polarity * s`` ((n, C)) over ``thr``, continuing from the last block."""
        above = (s >= thr) if self.polarity > 0 else (s <= -thr)
        edge = self.xp.empty_like(above)
        edge[1:] = above[1:] > above[:-1]  # True > False: a rising edge, in one pass
        edge[0] = above[0] & ~self._prev_above
        self._prev_above = above[-1].copy()
        return edge

    def _edges(self, s: Any, start: int, final_end: int) -> Candidates:
        """Candidates at the rising edges of ``polarity * s`` over the threshold (:meth:`_edge`): one fused
        pass on the CPU, array operations on a device."""
        if not self.backend.device:
            return self._edges_cpu(s, 0, start, final_end)
        return self._found(self._edge(s, self._thr), start, final_end)

    def _edges_cpu(self, u: np.ndarray, b: int, start: int, end: int) -> Candidates:
        """Rising edges of ``polarity * (u - moving mean of b)`` (``b`` = 0: of ``u``) over the threshold,
        rows >= b, in one compiled pass that writes the candidates."""
        from cryodaq.dsp.cpu_kernels import baseline_edges

        thr = np.broadcast_to(self._thr, (u.shape[1],)).astype(np.float32)
        u = np.ascontiguousarray(u, dtype=np.float32)
        prev = np.empty_like(self._prev_above)
        cap = max(1024, u.size // 64)
        while True:
            rows, cols = np.empty(cap, np.int64), np.empty(cap, np.int64)
            k = baseline_edges(u, b, thr, self.polarity, self._prev_above, prev, rows, cols)
            if k <= cap:
                break
            cap = k
        self._prev_above = prev
        return Candidates(rows[:k], cols[:k], start, end)

    def _found(self, mask: Any, start: int, final_end: int) -> Candidates:
        rows, cols = set_positions(mask, self.backend)
        return Candidates(rows, cols, start, final_end)

    def detect(self, x: Any, first_index: int, arm_index: int, *, holdoff: bool = True,
               ) -> tuple[np.ndarray, np.ndarray, int]:
        """See the module docstring: :meth:`find` on the backend, then :meth:`accept` on the host.
        ``holdoff=False`` returns every armed crossing."""
        found = self.find(self.backend.asarray(x), first_index)
        found = found.with_arrays(*self.backend.to_host(*found.arrays()))
        return *self.accept(found, arm_index, holdoff=holdoff), found.final_end

    def find(self, x: Any, first_index: int) -> Candidates:
        """The backend part of :meth:`detect` for block ``x`` (first sample ``first_index``); a detector that
        needs the host mid-block (``splits`` False, the matched filter) has none and does its work in ``detect``."""
        raise TypeError(f"{type(self).__name__} cannot split its pass into find/accept (it needs the host "
                        "mid-block): call detect()")

    def accept(self, found: Candidates, arm_index: int, holdoff: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Host part: (channel int32, index int64) of the armed candidates (after hold-off), sorted by
        channel then index. ``found`` holds host arrays."""
        idx = np.asarray(found.rows, np.int64) + found.start
        armed = idx >= arm_index
        ch, idx = np.asarray(found.cols)[armed].astype(np.int32), idx[armed]
        order = np.lexsort((idx, ch))
        ch, idx = ch[order], idx[order]
        if not holdoff:
            return ch, idx
        keep = greedy_min_gap(ch, idx, self._last, self.holdoff)
        return ch[keep], idx[keep]


class ThresholdDetector(Detector):
    """Rising crossing of ``polarity * (x - baseline)`` over ``threshold``.

    The baseline at sample i is the mean of the ``baseline_samples`` samples before
    it (0: no baseline subtraction), so a slow drift does not trigger.
    """

    def __init__(
        self, threshold: Any, holdoff: int, polarity: int = 1, baseline_samples: int = 0,
        backend: Backend | None = None,
    ) -> None:
        if baseline_samples < 0:
            raise ValueError(f"baseline_samples must be >= 0, got {baseline_samples}")
        self.baseline_samples = int(baseline_samples)
        self.warmup = self.baseline_samples
        super().__init__(holdoff, polarity, backend)
        self._thr = self._per_channel(threshold)

    def reset(self) -> None:
        super().reset()
        self._hist = None

    @property
    def lookback(self) -> int:
        """Samples before an index that decide whether it is a crossing (the baseline and the
        previous sample): a block starting this far before ``i`` finds exactly the crossings at >= i."""
        return self.baseline_samples + 1

    def find(self, x: Any, first_index: int) -> Candidates:
        xp = self.xp
        n, c = x.shape
        self._start(c)
        end = first_index + n
        b = self.baseline_samples
        if b == 0:
            return self._edges(x, first_index, end) if n else Candidates.none(end)
        hist = self._hist if self._hist is not None else xp.zeros((0, c), dtype=np.float32)
        u = xp.concatenate([hist, x.astype(np.float32, copy=False)], axis=0)
        u_start = first_index - hist.shape[0]
        self._hist = u[-b:].copy()
        if u.shape[0] <= b:
            return Candidates.none(end)
        if not self.backend.device:  # one fused pass on the CPU
            return self._edges_cpu(u, b, u_start + b, end)
        # Moving mean of the b samples before each sample, from a per-block float64 cumsum
        # (per block, so no rounding drift over a long run).
        cs = xp.zeros((u.shape[0] + 1, c), dtype=np.float64)
        xp.cumsum(u, axis=0, dtype=np.float64, out=cs[1:])
        base = (cs[b:-1] - cs[: -1 - b]) / b
        s = (u[b:] - base).astype(np.float32)
        return self._found(self._edge(s, self._thr), u_start + b, end)


class LevelDetector(Detector):
    """Start of a run of at least ``min_duration`` samples with ``polarity * x >= level``."""

    def __init__(
        self, level: Any, min_duration: int, holdoff: int = 0, polarity: int = 1,
        backend: Backend | None = None,
    ) -> None:
        if min_duration < 1:
            raise ValueError(f"level trigger min_duration must be >= 1 sample, got {min_duration}")
        self.min_duration = int(min_duration)
        super().__init__(holdoff, polarity, backend)
        self._level = self._per_channel(level)

    def reset(self) -> None:
        super().reset()
        self._hist = None  # (k, C) above-flags of the samples not yet decided

    def find(self, x: Any, first_index: int) -> Candidates:
        xp = self.xp
        n, c = x.shape
        self._start(c)
        above = (x >= self._level) if self.polarity > 0 else (x <= -self._level)
        hist = self._hist if self._hist is not None else xp.zeros((0, c), dtype=bool)
        a = xp.concatenate([hist, above], axis=0)
        a_start = first_index + n - a.shape[0]
        d = self.min_duration
        m = a.shape[0] - d + 1  # positions whose whole run window is available
        if m <= 0:
            self._hist = a
            return Candidates.none(a_start)
        cs = xp.zeros((a.shape[0] + 1, c), dtype=np.int32)
        xp.cumsum(a, axis=0, dtype=np.int32, out=cs[1:])
        full = (cs[d : d + m] - cs[:m]) == d  # a[p : p+d] all above
        start = xp.empty_like(full)
        start[1:] = full[1:] & ~a[: m - 1]
        start[0] = full[0] & ~self._prev_above
        self._prev_above = a[m - 1].copy()
        self._hist = a[m:].copy()
        return self._found(start, a_start, a_start + m)


def _fft_size(k: int) -> int:
    """Overlap-save FFT length: the power of two >= 2k minimising N log N / (N - k + 1);
    at least 512 (batched FFTs of 512-1024 points measured fastest per output sample)."""
    best, best_cost = 512, np.inf
    n = 512
    while n <= max(1 << 16, 8 * k):
        if n >= 2 * k:
            cost = n * np.log2(n) / (n - k + 1)
            if cost < best_cost - 1e-9:
                best, best_cost = n, cost
        n *= 2
    return best


class MatchedFilterDetector(Detector):
    """Threshold on each channel filtered with a pulse template (overlap-save FFT correlation).

    The filter is the zero-mean template scaled so a pulse ``A * template`` gives a
    peak of ``A`` (baseline-insensitive).  Its output at sample i correlates the
    template's onset (``template_presamples``) with i, so it peaks at the pulse onset.
    After a rising crossing at c, the trigger index is the filter's peak within
    ``peak_window`` samples (<= hold-off): amplitude-independent timing.  Threshold
    in signal units (``threshold``) or in units of the filtered noise sigma
    (``threshold_sigma``), sigma given or estimated robustly (MAD) from the first
    ``noise_samples`` filtered samples after a reset.
    """

    def __init__(
        self,
        template: Any,
        threshold: Any = None,
        threshold_sigma: float | None = None,
        holdoff: int = 0,
        polarity: int = 1,
        template_presamples: int = 0,
        noise_samples: int = 8192,
        sigma: Any = None,
        peak_window: int | None = None,
        fft_size: int | None = None,
        backend: Backend | None = None,
    ) -> None:
        s = np.asarray(template, dtype=np.float64)
        if s.ndim != 1 or s.size < 2:
            raise ValueError(f"matched-filter template must be 1-D with >= 2 samples, got shape {s.shape}")
        if (threshold is None) == (threshold_sigma is None):
            raise ValueError("give exactly one of threshold (signal units) or threshold_sigma (noise sigmas)")
        if not 0 <= template_presamples < s.size:
            raise ValueError(f"template_presamples {template_presamples} outside the template (0..{s.size - 1})")
        s0 = s - s.mean()
        norm = float(s0 @ s0)
        if norm == 0:
            raise ValueError("matched-filter template is constant; it has no pulse shape")
        self.splits = False  # the peak search after a crossing reads the filtered data around it
        self.filter = s0 / norm  # correlation kernel q: sum(q * A*template) == A
        self.k = s.size
        self.template_presamples = int(template_presamples)
        self.warmup = self.k - 1  # the first output needs a full template span
        super().__init__(holdoff, polarity, backend)
        pw = self.holdoff if peak_window is None else int(peak_window)
        self.peak_window = max(1, min(pw, max(self.holdoff, 1)))
        self.noise_samples = int(noise_samples)
        self.threshold_sigma = threshold_sigma
        self._fixed_thr = None if threshold is None else np.asarray(threshold, dtype=np.float32)
        self._given_sigma = None if sigma is None else np.asarray(sigma, dtype=np.float64)
        n = int(fft_size) if fft_size else _fft_size(self.k)
        if n < self.k:
            raise ValueError(f"fft_size {n} is shorter than the template ({self.k})")
        self.fft_size = n
        self.step = n - self.k + 1
        g = np.zeros(n)
        g[: self.k] = self.filter[::-1]  # correlation = convolution with the reversed kernel
        self._g_hat = self.backend.asarray(np.fft.rfft(g).astype(np.complex64)[:, None])
        self._chunk_bytes = (256 << 20) if self.backend.device else (1 << 20)
        self._pool: ThreadPoolExecutor | None = None
        # what a channel group's own detector needs (CPU, fft_workers > 1: one detector per worker)
        self._args = dict(template=s, threshold=threshold, threshold_sigma=threshold_sigma, holdoff=self.holdoff,
                          polarity=self.polarity, template_presamples=self.template_presamples,
                          noise_samples=self.noise_samples, sigma=sigma, peak_window=self.peak_window, fft_size=n)
        self._groups: list[tuple[int, int, MatchedFilterDetector]] | None = None

    def reset(self) -> None:
        super().reset()
        self._xhist = None  # (<= k-1, C) raw samples before the next block
        self._ytail = None  # (<= peak_window, C) last filtered samples (for the peak search)
        self._sigma_buf: list[Any] = []
        self._sigma_start = 0
        self._thr = None
        self.noise_sigma: np.ndarray | None = None
        self._pend_ch = np.zeros(0, np.int32)
        self._pend_c = np.zeros(0, np.int64)
        self._y_end: int | None = None
        for _, _, det in getattr(self, "_groups", None) or ():
            det.reset()

    # -- overlap-save ----------------------------------------------------------------
    def filter_block(self, hist: Any, x: Any) -> Any:
        """Valid correlation of ``concat([hist, x])`` ((L, C), time-major) with the kernel:
        (L - k + 1, C) float32.  Segments inside ``x`` are read in place; only those that
        touch ``hist`` or the zero-padded end are copied."""
        xp, fft = self.xp, self.backend.fft
        h, c = hist.shape[0], x.shape[1]
        length = h + x.shape[0]
        n_valid = length - self.k + 1
        n, step = self.fft_size, self.step
        n_seg = -(-n_valid // step)
        y = xp.empty((n_seg * step, c), dtype=np.float32)
        first_inner = -(-h // step)  # first segment starting inside x
        last_inner = (length - n) // step  # last segment ending inside x
        per = max(1, self._chunk_bytes // (c * n * 4))
        gpu = self.backend.device
        kw = self.backend.fft_kwargs() if gpu else {"workers": 1}

        def run(segs: Any, s0: int) -> None:
            spec = fft.rfft(segs, axis=1, **kw)
            spec *= self._g_hat
            out = fft.irfft(spec, n=n, axis=1, **kw)
            cnt = segs.shape[0]  # write through a (cnt, step, c) view of y: one copy, not a reshape's two
            y[s0 * step : (s0 + cnt) * step].reshape(cnt, step, c)[...] = out[:, self.k - 1 :, :]

        def stitched(s0: int, s1: int) -> None:
            buf = xp.zeros(((s1 - s0 - 1) * step + n, c), dtype=np.float32)
            a, b = s0 * step, min(length, (s1 - 1) * step + n)
            if a < h:
                buf[: min(b, h) - a] = hist[a : min(b, h)]
            if b > h:
                lo = max(a, h)
                buf[lo - a : b - a] = x[lo - h : b - h]
            run(self._segments(buf, s1 - s0), s0)

        jobs = []
        if first_inner > 0:
            jobs.append(lambda s1=min(first_inner, n_seg): stitched(0, s1))
        if last_inner >= first_inner:
            xs = x[first_inner * step - h :]
            for s0 in range(first_inner, last_inner + 1, per):
                s1 = min(last_inner + 1, s0 + per)
                jobs.append(lambda s0=s0, s1=s1: run(self._segments(xs[(s0 - first_inner) * step :], s1 - s0), s0))
        tail0 = max(first_inner, last_inner + 1)
        if tail0 < n_seg:
            jobs.append(lambda: stitched(tail0, n_seg))
        workers = self.backend.fft_workers or 1
        if not gpu and workers > 1 and len(jobs) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mf")
            for f in [self._pool.submit(j) for j in jobs]:
                f.result()
        else:
            for j in jobs:
                j()
        return y[:n_valid]

    def _segments(self, buf: Any, count: int) -> Any:
        """(count, fft_size, C) overlapping view of ``buf`` with hop ``step``."""
        row = buf.strides[0]
        return self.xp.lib.stride_tricks.as_strided(
            buf, shape=(count, self.fft_size, buf.shape[1]), strides=(self.step * row, row, buf.strides[1])
        )

    # -- threshold -------------------------------------------------------------------
    def _threshold_ready(self, y: Any, y_start: int) -> tuple[Any, int] | None:
        """Set the threshold once sigma is known; returns the y to run detection on."""
        if self._thr is not None:
            return y, y_start
        c = y.shape[1]
        if self._fixed_thr is not None:
            self._thr = self._per_channel(self._fixed_thr)
            return y, y_start
        if self._given_sigma is not None:
            self.noise_sigma = np.broadcast_to(self._given_sigma, (c,)).copy()
            self._thr = self._per_channel(self.threshold_sigma * self.noise_sigma)
            return y, y_start
        if not self._sigma_buf:
            self._sigma_start = y_start
        self._sigma_buf.append(y)
        if sum(b.shape[0] for b in self._sigma_buf) < self.noise_samples:
            return None
        xp = self.xp
        ally = xp.concatenate(self._sigma_buf, axis=0)
        self._sigma_buf = []
        sigma = robust_sigma(ally[: self.noise_samples], axis=0, backend=self.backend)
        self.noise_sigma = self.backend.to_numpy(sigma).astype(np.float64)
        self._thr = self._per_channel(self.threshold_sigma * self.noise_sigma)
        return ally, self._sigma_start

    # -- detection -------------------------------------------------------------------
    def _channel_groups(self, c: int) -> list[tuple[int, int, MatchedFilterDetector]] | None:
        """On the CPU with ``fft_workers`` > 1: one single-threaded detector per worker, each owning a
        contiguous group of channels end to end (filter, threshold, peak search), so the whole
        detector runs in parallel, not only its FFTs."""
        workers = self.backend.fft_workers or 1
        if self.backend.device or workers < 2 or c < 2 * workers:
            return None
        if self._groups is None:
            groups = []
            for part in np.array_split(np.arange(c), workers):
                a, b = int(part[0]), int(part[-1]) + 1
                args = dict(self._args)
                for key in ("threshold", "sigma"):
                    v = args[key]
                    if v is not None and np.ndim(v):
                        args[key] = np.broadcast_to(np.asarray(v), (c,))[a:b]
                groups.append((a, b, MatchedFilterDetector(**args, backend=numpy_backend())))
            self._groups = groups
        return self._groups

    def _detect_groups(self, groups: list[tuple[int, int, MatchedFilterDetector]], x: Any, first_index: int,
                       arm_index: int) -> tuple[np.ndarray, np.ndarray, int]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="mf")
        futures = [self._pool.submit(det.detect, x[:, a:b], first_index, arm_index) for a, b, det in groups]
        found = [f.result() for f in futures]
        sigmas = [det.noise_sigma for _, _, det in groups]
        if all(sg is not None for sg in sigmas):
            self.noise_sigma = np.concatenate(sigmas)  # type: ignore[arg-type]
        # groups are in channel order and each returns (channel, index) sorted: the concatenation is sorted
        ch = np.concatenate([f[0] + a for (a, _, _), f in zip(groups, found)]).astype(np.int32)
        return ch, np.concatenate([f[1] for f in found]), min(f[2] for f in found)

    def detect(self, x: Any, first_index: int, arm_index: int) -> tuple[np.ndarray, np.ndarray, int]:
        xp = self.xp
        n, c = x.shape
        groups = self._channel_groups(c)
        if groups is not None:
            return self._detect_groups(groups, x, first_index, arm_index)
        self._start(c)
        x = xp.ascontiguousarray(self.backend.asarray(x), dtype=np.float32)
        hist = self._xhist if self._xhist is not None else xp.zeros((0, c), dtype=np.float32)
        h = hist.shape[0]
        if h + n < self.k:
            self._xhist = xp.concatenate([hist, x], axis=0)
            return *_EMPTY, self._final_end()
        y = self.filter_block(hist, x)
        keep = self.k - 1
        self._xhist = x[n - keep :].copy() if n >= keep else xp.concatenate([hist, x], axis=0)[-keep:]
        y_start = first_index - h + self.template_presamples
        ready = self._threshold_ready(y, y_start)
        if ready is None:
            return *_EMPTY, self._final_end()
        y, y_start = ready
        edges = self._edges(y, y_start, 0) if y.shape[0] else Candidates.none(0)
        ch, cidx = self.accept(edges.with_arrays(*self.backend.to_host(*edges.arrays())), arm_index)
        tail = self._ytail if self._ytail is not None else xp.zeros((0, c), dtype=np.float32)
        tail_start = y_start - tail.shape[0]
        y_end = y_start + y.shape[0]
        self._y_end = y_end
        pend_ch = np.concatenate([self._pend_ch, ch])
        pend_c = np.concatenate([self._pend_c, cidx])
        done = pend_c + self.peak_window <= y_end
        out_ch, out_c = pend_ch[done], pend_c[done]
        self._pend_ch, self._pend_c = pend_ch[~done], pend_c[~done]
        out_idx = out_c
        if out_c.size:
            rows = (out_c - tail_start)[:, None] + np.arange(self.peak_window)
            win = gather_rows(tail, y, rows, out_ch[:, None], self.backend) * self.polarity
            out_idx = out_c + self.backend.to_numpy(xp.argmax(win, axis=1)).astype(np.int64)
            order = np.lexsort((out_idx, out_ch))
            out_ch, out_idx = out_ch[order], out_idx[order]
        w = self.peak_window
        self._ytail = y[-w:].copy() if y.shape[0] >= w else xp.concatenate([tail, y], axis=0)[-w:]
        return out_ch, out_idx, self._final_end()

    def _final_end(self) -> int:
        """Triggers below this index are all known: pending crossings refine to >= c."""
        if self._y_end is None or self._thr is None:
            return NEVER
        return self._y_end - self.peak_window + 1
