"""Streaming trigger detectors: find trigger sample indices in (n, n_channels) blocks.

A detector's ``detect(x, first_index, arm_index)`` returns the triggers that became
final with this block, as host arrays ``(index int64, channel int32)`` sorted by
channel then index, plus ``final_end``: every trigger with index < final_end has now
been returned, none later will be.  Results do not depend on how the stream is cut
into blocks.  Triggers before ``arm_index`` (the trigger's warm-up after a reset)
are ignored.  Hold-off: a crossing closer than ``holdoff`` samples to the previous
accepted one on that channel is ignored.

Hand-written: scipy has no streaming (stateful) multi-channel trigger or overlap-save
filter that also runs on cupy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import Backend, numpy_backend

_NEVER = np.iinfo(np.int64).min // 4
_MAD_TO_SIGMA = 1.4826


def greedy_min_gap(channel: np.ndarray, index: np.ndarray, last: np.ndarray, gap: int) -> np.ndarray:
    """Keep-mask for candidates (sorted by channel, index) at least ``gap`` after the previous
    kept one on the same channel; ``last`` (per channel, updated in place) carries across blocks."""
    n = index.size
    keep = np.ones(n, dtype=bool)
    if n == 0:
        return keep
    if gap > 1:
        same = np.zeros(n, dtype=bool)
        same[1:] = channel[1:] == channel[:-1]
        prev = np.where(same, np.roll(index, 1), last[channel])
        if not ((index - prev) >= gap).all():
            # Sequential by nature (each decision depends on the previous kept one); the
            # candidates are few (threshold crossings), so a Python loop is cheap.
            last_kept = dict()
            for i in range(n):
                c = int(channel[i])
                ref = last_kept.get(c, int(last[c]))
                if index[i] - ref >= gap:
                    last_kept[c] = int(index[i])
                else:
                    keep[i] = False
    kept_ch, kept_idx = channel[keep], index[keep]
    if kept_ch.size:
        # Last kept per channel: sorted by channel then index, so the final occurrence wins.
        last[kept_ch] = kept_idx
    return keep


class _Detector:
    """Common state: block contiguity, channel count, hold-off bookkeeping."""

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

    #: samples after a reset before the detector can produce a trigger
    warmup = 0

    def reset(self) -> None:
        self._last: np.ndarray | None = None
        self._prev_above: Any = None

    def _start(self, n_channels: int) -> None:
        if self.n_channels is None:
            self.n_channels = n_channels
        elif n_channels != self.n_channels:
            raise ValueError(f"trigger was set up for {self.n_channels} channels, got a block with {n_channels}")
        if self._last is None:
            self._last = np.full(n_channels, _NEVER, dtype=np.int64)
            # Start "above" so a channel already over threshold at arm time needs a real edge.
            self._prev_above = self.xp.ones(n_channels, dtype=bool)

    def _crossings(self, s: Any, thr: Any, start: int, arm_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Rising crossings of ``polarity * s`` ((C, n)) over ``thr`` ((C, 1) or scalar),
        ``s[:, 0]`` being global sample ``start``; after hold-off, host (channel, index)."""
        xp = self.xp
        if s.shape[1] == 0:
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        above = (s >= thr) if self.polarity > 0 else (s <= -thr)
        edge = xp.empty_like(above)
        edge[:, 1:] = above[:, 1:] & ~above[:, :-1]
        edge[:, 0] = above[:, 0] & ~self._prev_above
        self._prev_above = above[:, -1].copy()
        return self._accept(edge, start, arm_index)

    def _accept(self, mask: Any, start: int, arm_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Candidates where ``mask`` ((C, n) bool) is set, armed and after hold-off."""
        ch, pos = (self.backend.to_numpy(a) for a in self.xp.nonzero(mask))
        idx = pos.astype(np.int64) + start
        ch = ch.astype(np.int32)
        armed = idx >= arm_index
        ch, idx = ch[armed], idx[armed]
        keep = greedy_min_gap(ch, idx, self._last, self.holdoff)
        return ch[keep], idx[keep]


class ThresholdDetector(_Detector):
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
        self._thr_host = np.asarray(threshold, dtype=np.float32)
        self._thr = self.backend.asarray(self._thr_host.reshape(-1, 1) if self._thr_host.ndim else self._thr_host)

    def reset(self) -> None:
        super().reset()
        self._hist = None

    def detect(self, x: Any, first_index: int, arm_index: int) -> tuple[np.ndarray, np.ndarray, int]:
        xp = self.xp
        n, c = x.shape
        self._start(c)
        end = first_index + n
        b = self.baseline_samples
        if b == 0:
            ch, idx = self._crossings(x.T, self._thr, first_index, arm_index)
            return ch, idx, end
        hist = self._hist if self._hist is not None else xp.zeros((0, c), dtype=np.float32)
        u = xp.concatenate([hist, x.astype(np.float32, copy=False)], axis=0)
        u_start = first_index - hist.shape[0]
        self._hist = u[-b:].copy()
        if u.shape[0] <= b:
            return np.zeros(0, np.int32), np.zeros(0, np.int64), end
        cs = xp.zeros((u.shape[0] + 1, c), dtype=np.float64)
        xp.cumsum(u, axis=0, dtype=np.float64, out=cs[1:])
        base = (cs[b:-1] - cs[: -1 - b]) / b  # mean of the b samples before each u[b:]
        s = (u[b:] - base).T.astype(np.float32)
        ch, idx = self._crossings(s, self._thr, u_start + b, arm_index)
        return ch, idx, end


class LevelDetector(_Detector):
    """Start of a run of at least ``min_duration`` samples with ``polarity * x >= level``."""

    def __init__(
        self, level: Any, min_duration: int, holdoff: int = 0, polarity: int = 1,
        backend: Backend | None = None,
    ) -> None:
        if min_duration < 1:
            raise ValueError(f"level trigger min_duration must be >= 1 sample, got {min_duration}")
        self.min_duration = int(min_duration)
        super().__init__(holdoff, polarity, backend)
        lv = np.asarray(level, dtype=np.float32)
        self._level = self.backend.asarray(lv.reshape(-1, 1) if lv.ndim else lv)

    def reset(self) -> None:
        super().reset()
        self._hist = None  # (C, k) above-flags of the samples not yet decided

    def detect(self, x: Any, first_index: int, arm_index: int) -> tuple[np.ndarray, np.ndarray, int]:
        xp = self.xp
        n, c = x.shape
        self._start(c)
        above = (x.T * self.polarity) >= self._level
        hist = self._hist if self._hist is not None else xp.zeros((c, 0), dtype=bool)
        a = xp.concatenate([hist, above], axis=1)
        a_start = first_index + n - a.shape[1]
        d = self.min_duration
        m = a.shape[1] - d + 1  # positions whose whole run window is available
        if m <= 0:
            self._hist = a
            return np.zeros(0, np.int32), np.zeros(0, np.int64), a_start
        cs = xp.zeros((c, a.shape[1] + 1), dtype=np.int32)
        xp.cumsum(a, axis=1, dtype=np.int32, out=cs[:, 1:])
        full = (cs[:, d : d + m] - cs[:, :m]) == d  # a[p : p+d] all above
        start = xp.empty_like(full)
        start[:, 1:] = full[:, 1:] & ~a[:, : m - 1]
        start[:, 0] = full[:, 0] & ~self._prev_above
        self._prev_above = a[:, m - 1].copy()
        self._hist = a[:, m:].copy()
        ch, idx = self._accept(start, a_start, arm_index)
        return ch, idx, a_start + m


def _fft_size(k: int) -> int:
    """Overlap-save FFT length: the power of two minimising N log N / (N - k + 1), >= 1024."""
    best, best_cost = 1024, np.inf
    n = 1024
    while n <= max(1 << 16, 8 * k):
        if n >= 2 * k:
            cost = n * np.log2(n) / (n - k + 1)
            if cost < best_cost:
                best, best_cost = n, cost
        n *= 2
    return best


class MatchedFilterDetector(_Detector):
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
        super().__init__(holdoff, polarity, backend)
        s0 = s - s.mean()
        norm = float(s0 @ s0)
        if norm == 0:
            raise ValueError("matched-filter template is constant; it has no pulse shape")
        self.filter = s0 / norm  # correlation kernel q: sum(q * A*template) == A
        self.k = s.size
        self.template_presamples = int(template_presamples)
        self.warmup = self.k - 1  # the first output needs a full template span
        self.peak_window = max(1, min(int(peak_window) if peak_window is not None else self.holdoff,
                                      max(self.holdoff, 1)))
        self.noise_samples = int(noise_samples)
        self.threshold_sigma = threshold_sigma
        self._fixed_thr = None if threshold is None else np.asarray(threshold, dtype=np.float32)
        self._given_sigma = None if sigma is None else np.asarray(sigma, dtype=np.float32)
        n = int(fft_size) if fft_size else _fft_size(self.k)
        if n < self.k:
            raise ValueError(f"fft_size {n} is shorter than the template ({self.k})")
        self.fft_size = n
        self.step = n - self.k + 1
        g = np.zeros(n)
        g[: self.k] = self.filter[::-1]  # correlation = convolution with the reversed kernel
        self._g_hat = self.backend.asarray(np.fft.rfft(g).astype(np.complex64))
        self._chunk_bytes = (256 << 20) if self.backend.is_gpu else (4 << 20)

    def reset(self) -> None:
        super().reset()
        self._xhist = None  # (C, <= k-1) raw samples before the next block
        self._y = None  # (C, m) filtered samples not yet past detection, from _y_start
        self._y_start = 0
        self._sigma_buf: list[Any] = []
        self._thr = None
        self.noise_sigma: np.ndarray | None = None
        self._pend_ch = np.zeros(0, np.int32)
        self._pend_c = np.zeros(0, np.int64)
        self._y_end: int | None = None

    def filter_block(self, u: Any) -> Any:
        """Valid correlation of ``u`` (C, L) with the kernel: (C, L - k + 1) float32."""
        xp, fft = self.xp, self.backend.fft
        c, length = u.shape
        n_valid = length - self.k + 1
        n, step = self.fft_size, self.step
        n_seg = -(-n_valid // step)
        padded = xp.zeros((c, (n_seg - 1) * step + n), dtype=np.float32)
        padded[:, :length] = u
        item = padded.dtype.itemsize
        segs = xp.lib.stride_tricks.as_strided(
            padded, shape=(c, n_seg, n), strides=(padded.strides[0], step * item, item)
        )
        out = xp.empty((c, n_seg * step), dtype=np.float32)
        per = max(1, self._chunk_bytes // (c * n * 4))
        kw = self.backend.fft_kwargs()
        for s0 in range(0, n_seg, per):
            s1 = min(n_seg, s0 + per)
            spec = fft.rfft(segs[:, s0:s1], axis=-1, **kw)
            spec *= self._g_hat
            y = fft.irfft(spec, n=n, axis=-1, **kw)
            out[:, s0 * step : s1 * step] = y[:, :, self.k - 1 :].reshape(c, -1)
        return out[:, :n_valid]

    def _threshold_ready(self, y: Any, y_start: int) -> tuple[Any, int] | None:
        """Set the threshold once sigma is known; returns the y to run detection on."""
        if self._thr is not None:
            return y, y_start
        if self._fixed_thr is not None or self._given_sigma is not None:
            if self._fixed_thr is not None:
                thr = self._fixed_thr
            else:
                self.noise_sigma = np.broadcast_to(self._given_sigma, (y.shape[0],)).copy()
                thr = self.threshold_sigma * self.noise_sigma
            self._thr = self.backend.asarray(np.asarray(thr, np.float32).reshape(-1, 1) if np.ndim(thr) else thr)
            return y, y_start
        self._sigma_buf.append(y)
        have = sum(b.shape[1] for b in self._sigma_buf)
        if have < self.noise_samples:
            return None
        xp = self.xp
        ally = xp.concatenate(self._sigma_buf, axis=1)
        self._sigma_buf = []
        first = ally[:, : self.noise_samples]
        med = xp.median(first, axis=1, keepdims=True)
        mad = xp.median(xp.abs(first - med), axis=1)
        self.noise_sigma = _MAD_TO_SIGMA * self.backend.to_numpy(mad).astype(np.float64)
        self._thr = self.backend.asarray((self.threshold_sigma * self.noise_sigma).astype(np.float32).reshape(-1, 1))
        return ally, self._sigma_start

    def detect(self, x: Any, first_index: int, arm_index: int) -> tuple[np.ndarray, np.ndarray, int]:
        xp = self.xp
        n, c = x.shape
        self._start(c)
        hist = self._xhist if self._xhist is not None else xp.zeros((c, 0), dtype=np.float32)
        u = xp.empty((c, hist.shape[1] + n), dtype=np.float32)
        u[:, : hist.shape[1]] = hist
        u[:, hist.shape[1] :] = x.T
        u_start = first_index - hist.shape[1]
        self._xhist = u[:, -(self.k - 1) :].copy() if self.k > 1 else u[:, :0]
        none = (np.zeros(0, np.int32), np.zeros(0, np.int64))
        if u.shape[1] < self.k:
            return *none, self._final_end()
        y = self.filter_block(u)
        y_start = u_start + self.template_presamples
        if self._thr is None and not self._sigma_buf:
            self._sigma_start = y_start
        ready = self._threshold_ready(y, y_start)
        if ready is None:
            self._y_end = y_start + y.shape[1]
            return *none, self._final_end()
        y, y_start = ready
        ch, cidx = self._crossings(y, self._thr, y_start, arm_index)
        # Peak search needs peak_window filtered samples from each crossing: keep a tail.
        prev = self._y if self._y is not None else xp.zeros((c, 0), dtype=np.float32)
        ybuf = xp.concatenate([prev, y], axis=1)
        ybuf_start = y_start - prev.shape[1]
        y_end = y_start + y.shape[1]
        self._y_end = y_end
        pend_ch = np.concatenate([self._pend_ch, ch])
        pend_c = np.concatenate([self._pend_c, cidx])
        done = pend_c + self.peak_window <= y_end
        out_ch, out_c = pend_ch[done], pend_c[done]
        self._pend_ch, self._pend_c = pend_ch[~done], pend_c[~done]
        if out_c.size:
            rel = out_c - ybuf_start
            cols = self.backend.asarray(rel[:, None] + np.arange(self.peak_window))
            win = ybuf[self.backend.asarray(out_ch)[:, None], cols] * self.polarity
            shift = self.backend.to_numpy(xp.argmax(win, axis=1)).astype(np.int64)
            out_idx = out_c + shift
            order = np.lexsort((out_idx, out_ch))
            out_ch, out_idx = out_ch[order], out_idx[order]
        else:
            out_idx = out_c
        keep = self.peak_window
        self._y = ybuf[:, -keep:].copy() if ybuf.shape[1] > keep else ybuf
        return out_ch, out_idx, self._final_end()

    def _final_end(self) -> int:
        """Triggers below this index are all known: pending crossings refine to >= c."""
        y_end = self._y_end
        if y_end is None or self._thr is None:
            return _NEVER
        return y_end - self.peak_window + 1
