"""Streaming polyphase filter-bank (PFB) channelizer, critically or 2x oversampled.

Frame ``j`` (counted from the last :meth:`PFBChannelizer.reset`) is computed from the
input samples ``x[j*hop : j*hop + n_taps*n_channels]`` (relative to the reset) as

    Y[j, k] = sum_n h[n] x[j*hop + n] exp(-2 pi i k n / M) * exp(-2 pi i k j hop / M)

where the last factor (``(-1)**(k*j)`` at 2x oversampling, 1 when critically sampled)
makes every channel a proper baseband signal.  Because the prototype ``h`` is
symmetric, ``Y[j, k]`` is channel k's zero-phase low-passed baseband signal
``x[n] exp(-2 pi i k n / M)`` evaluated at the *centre* of frame j's window,
``first_sample + j*hop + (n_taps*n_channels - 1)/2`` (:meth:`frame_sample_index`).
Only complete windows produce frames: the first frame appears once
``n_taps*n_channels`` samples have arrived.

Hand-written rather than ``cupyx.signal.channelize_poly`` because that is GPU-only,
not streaming and not oversampled. The FIR is memory-bound, so both paths fuse the raw
int16 decode into it: on CPU a compiled kernel (:mod:`cryodaq.dsp.cpu_kernels`) and scipy's
rfft in cache-sized chunks, threaded over ``backend.fft_workers``; on cupy an elementwise
kernel and cuFFT, with the block, the history and the frames staying on the device.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..backend import Backend, numpy_backend
from ._window import design_prototype


class PFBChannelizer:
    """Polyphase channelizer over ``n_channels`` with ``n_taps`` taps per branch.

    ``process(block)`` takes any number of new samples (int16 or float; complex when
    ``real_input=False``) and returns the frames completed by them, shape
    ``(n_frames, n_bins)`` complex64, with ``n_bins = n_channels//2 + 1`` for real
    input (bins 0..M/2 at ``k*fs/M``) and ``n_channels`` for complex input (FFT order).
    A real cosine of amplitude A at a bin centre gives A/2 (its positive-frequency half);
    a complex tone gives A.
    """

    def __init__(
        self,
        n_channels: int,
        n_taps: int = 8,
        oversampling: int = 1,
        window: Any = "hann",
        real_input: bool = True,
        backend: Backend | None = None,
    ) -> None:
        if n_channels < 2:
            raise ValueError(f"PFB needs n_channels >= 2, got {n_channels}")
        if n_taps < 1:
            raise ValueError(f"PFB needs n_taps >= 1, got {n_taps}")
        if oversampling not in (1, 2):
            raise ValueError(f"PFB oversampling must be 1 or 2, got {oversampling}")
        if n_channels % oversampling:
            raise ValueError(f"2x oversampled PFB needs an even n_channels, got {n_channels}")
        self.backend = backend or numpy_backend()
        self.xp = self.backend.xp
        self.n_channels = int(n_channels)
        self.n_taps = int(n_taps)
        self.oversampling = int(oversampling)
        self.hop = self.n_channels // self.oversampling
        self.real_input = bool(real_input)
        self.length = self.n_taps * self.n_channels
        self.n_bins = self.n_channels // 2 + 1 if self.real_input else self.n_channels
        self._window = window
        host = design_prototype(self.n_channels, self.n_taps, window)
        self.prototype_host = host  # float64 on the host, for design/response calculations
        self.prototype = self.backend.asarray(host.astype(np.float32))
        self._weights = self.prototype.reshape(self.n_taps, self.n_channels)
        self._dtype = np.float32 if self.real_input else np.complex64
        self._pool: ThreadPoolExecutor | None = None
        self._acc: np.ndarray | None = None  # CPU frame buffer, reused
        if not self.backend.device:
            from cryodaq.dsp.cpu_kernels import warm_up

            warm_up()
        self.reset()

    # -- state ---------------------------------------------------------------------
    def reset(self, first_sample: int = 0) -> None:
        """Forget all history; the next sample processed has index ``first_sample``."""
        self.first_sample = int(first_sample)
        self.frames_done = 0  # frames emitted since reset (global frame index of the next)
        self._hist = self.xp.zeros(0, dtype=self._dtype)  # samples not yet consumed by a frame

    # -- geometry ------------------------------------------------------------------
    def bin_frequencies(self, fs: float) -> np.ndarray:
        """Centre frequency (Hz) of each output bin, in output order."""
        if self.real_input:
            return np.arange(self.n_bins) * (fs / self.n_channels)
        return np.fft.fftfreq(self.n_channels, d=1.0 / fs)

    def output_rate(self, fs: float) -> float:
        """Frame rate (Hz) for an input sample rate ``fs``."""
        return fs / self.hop

    def frame_sample_index(self, j: Any) -> Any:
        """Input sample index (float64; may be half-integer) that frame ``j`` refers to.

        The centre of frame j's window: ``first_sample + j*hop + (n_taps*n_channels-1)/2``.
        """
        return self.first_sample + np.asarray(j, dtype=np.float64) * self.hop + (self.length - 1) / 2.0

    # -- processing ----------------------------------------------------------------
    def channelize(self, x: Any) -> Any:
        """One-shot channelization of ``x``; equal to a fresh object's ``process(x)``.
        The streaming state is left as it was."""
        saved = (self.first_sample, self.frames_done, self._hist)
        self.reset()
        try:
            return self.process(x)
        finally:
            self.first_sample, self.frames_done, self._hist = saved

    def process(self, block: Any) -> Any:
        """Append ``block`` (1-D) and return the newly completed frames, (n, n_bins) complex64.

        ``block`` may be host data on a device backend: it is then copied over (one counted
        transfer); a device-resident pipeline hands over device arrays.
        """
        xp = self.xp
        block = self.backend.asarray(block)
        if block.ndim != 1:
            raise ValueError(f"PFB input must be 1-D, got shape {block.shape}")
        if self.real_input and xp.iscomplexobj(block):
            raise TypeError("PFB built with real_input=True was given complex samples")
        held = self._hist.shape[0]
        total = held + int(block.shape[0])
        n_frames = (total - self.length) // self.hop + 1 if total >= self.length else 0
        if not n_frames:
            out = xp.empty((0, self.n_bins), dtype=np.complex64)
        else:
            out = self._filter_device(block, n_frames) if self.backend.device else self._filter_cpu(block, n_frames)
            if self.oversampling == 2:
                # (-1)**(k*j): negate odd bins of odd global frames.
                start = 1 if self.frames_done % 2 == 0 else 0
                out[start::2, 1::2] *= -1
        consumed = n_frames * self.hop
        self._hist = self._region(block, consumed, total, xp.empty(total - consumed, dtype=self._dtype))
        self.frames_done += n_frames
        return out

    def _region(self, block: Any, a: int, b: int, dest: Any) -> Any:
        """Samples ``a:b`` of the stream (held history followed by ``block``) as float32/complex64
        into ``dest``."""
        held = self._hist.shape[0]
        if a < held:
            dest[: min(b, held) - a] = self._hist[a : min(b, held)]
        if b > held:
            lo = max(a, held)
            dest[lo - a : b - a] = block[lo - held : b - held]
        return dest

    def _filter_device(self, block: Any, n_frames: int) -> Any:
        """Device path: on cupy one fused kernel reads the raw samples (int16 converted in
        registers) and writes the FIR sums; elsewhere (the strict test backend) the same sums as
        array operations. Then the batched FFT."""
        xp = self.xp
        acc = xp.empty((n_frames, self.n_channels), dtype=self._dtype)
        if self.backend.is_gpu and self.real_input:
            hist = self._hist if self._hist.shape[0] else xp.zeros(1, dtype=np.float32)
            _gpu_fir_kernel(xp)(block, hist, self._weights, self._hist.shape[0], self.hop, self.n_channels,
                                self.n_taps, acc)
        else:
            buf = xp.concatenate([self._hist, block.astype(self._dtype, copy=False)])
            item = buf.dtype.itemsize
            frames = xp.lib.stride_tricks.as_strided(
                buf, shape=(n_frames, self.n_taps, self.n_channels),
                strides=(self.hop * item, self.n_channels * item, item),
            )
            acc[...] = frames[:, 0, :] * self._weights[0]
            for t in range(1, self.n_taps):
                acc += frames[:, t, :] * self._weights[t]
        fft = self.backend.fft.rfft if self.real_input else self.backend.fft.fft
        return fft(acc, axis=-1, **self.backend.fft_kwargs())

    def _filter_cpu(self, block: np.ndarray, n_frames: int) -> np.ndarray:
        # The fused FIR kernel straight from the raw samples (int16 read as is) into one frame
        # buffer, then one scipy rfft call whose result is the output (no copy). Frames that reach
        # back into the held history read a small bridge buffer (history + the block's first
        # samples). With fft_workers > 1 the FIR runs on that many threads (the kernel releases the
        # GIL) and the FFT is threaded by scipy.
        from cryodaq.dsp.cpu_kernels import pfb_fir

        if block.dtype not in (np.int16, np.float32, np.complex64) or not block.flags.c_contiguous:
            block = np.ascontiguousarray(block, dtype=self._dtype)
        held = self._hist.shape[0]
        n_bridge = min(n_frames, -(-held // self.hop))  # frames whose window starts in the history
        bridge = None
        if n_bridge:
            bridge = self._region(block, 0, (n_bridge - 1) * self.hop + self.length,
                                  np.empty((n_bridge - 1) * self.hop + self.length, dtype=self._dtype))
        if self._acc is None or self._acc.shape[0] < n_frames:
            self._acc = np.empty((n_frames, self.n_channels), dtype=self._dtype)  # kept: no page faults per block
        acc = self._acc[:n_frames]
        workers = self.backend.fft_workers or 1
        step = -(-n_frames // workers)
        spans = [(f0, min(f0 + step, n_frames)) for f0 in range(0, n_frames, step)]

        def fir(span: tuple[int, int]) -> None:
            f0, f1 = span
            if f0 < n_bridge:
                pfb_fir(bridge, f0 * self.hop, self._weights, self.hop, acc[f0:min(f1, n_bridge)])
            if f1 > n_bridge:
                lo = max(f0, n_bridge)
                pfb_fir(block, lo * self.hop - held, self._weights, self.hop, acc[lo:f1])

        if len(spans) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pfb")
            list(self._pool.map(fir, spans))
        else:
            fir((0, n_frames))
        fft = self.backend.fft.rfft if self.real_input else self.backend.fft.fft
        return fft(acc, axis=-1, workers=workers)


_GPU_FIR: dict[int, Any] = {}


def _gpu_fir_kernel(cp: Any) -> Any:
    """The fused PFB FIR as a cupy elementwise kernel (one thread per output sample): reads
    the held float32 history or the raw block (int16 or float32, converted in registers)."""
    key = id(cp)
    if key not in _GPU_FIR:
        _GPU_FIR[key] = cp.ElementwiseKernel(
            "raw X blk, raw float32 hist, raw float32 w, int64 held, int64 hop, int64 m_len, int64 n_taps",
            "float32 y",
            """
            const long long f = i / m_len, m = i % m_len;
            float acc = 0.0f;
            for (long long t = 0; t < n_taps; ++t) {
                const long long s = f * hop + t * m_len + m;
                const float v = s < held ? hist[s] : (float)blk[s - held];
                acc += w[t * m_len + m] * v;
            }
            y = acc;
            """,
            "cryodaq_pfb_fir",
        )
    return _GPU_FIR[key]
