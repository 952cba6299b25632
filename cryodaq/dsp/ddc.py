"""Per-tone digital down-conversion after the PFB: pick bin, mix offset to DC, low-pass, decimate.

Time convention (composes with :class:`~cryodaq.dsp.pfb.PFBChannelizer`): the mixer
removes the *absolute* tone phase ``2 pi f n / fs`` at the sample index ``n`` each frame
refers to, so a tone ``A exp(2 pi i f n / fs)`` gives the constant ``A`` (a real cosine
``A cos(2 pi f n / fs + phi)`` gives ``A/2 exp(i phi)``), whatever the block sizes and
across ``reset(first_sample)`` after a gap: the IQ operating point does not jump.  The
PFB's gain at the tone's offset from the bin centre is divided out (``equalize``).

Output sample k (counted from the reset) is the symmetric FIR's centre output over
frames ``k*decimation ... k*decimation + lowpass_taps - 1``, i.e. it refers to frame
``k*decimation + (lowpass_taps-1)/2`` and to input sample :meth:`ToneDDC.sample_index`.
Only complete FIR windows give outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import Backend
from ._window import lowpass_taps as _design_lowpass
from ._window import prototype_response
from .pfb import PFBChannelizer


class ToneDDC:
    """Down-convert each tone of a comb from the PFB frames to its own complex baseband.

    ``process(frames)`` takes ``(n_frames, n_bins)`` frames from ``channelizer`` (in
    order, the first one after a reset being frame 0) and returns ``(n_out, n_tones)``
    complex64. Tones that share a bin each get their own mixer.
    """

    def __init__(
        self,
        tone_if_hz: Any,
        fs: float,
        channelizer: PFBChannelizer,
        decimation: int = 1,
        lowpass_taps: int | None = None,
        lowpass_cutoff: float = 0.8,
        equalize: bool = True,
        backend: Backend | None = None,
    ) -> None:
        self.channelizer = channelizer
        self.backend = backend or channelizer.backend
        self.xp = self.backend.xp
        self.fs = float(fs)
        if decimation < 1:
            raise ValueError(f"DDC decimation must be >= 1, got {decimation}")
        self.decimation = int(decimation)
        tones = np.atleast_1d(np.asarray(tone_if_hz, dtype=np.float64))
        if tones.ndim != 1 or tones.size == 0:
            raise ValueError(f"tone_if_hz must be a non-empty 1-D list of frequencies, got shape {tones.shape}")
        self.tone_if_hz = tones
        m = channelizer.n_channels
        spacing = self.fs / m
        k = np.rint(tones / spacing).astype(np.int64)
        if channelizer.real_input:
            bad = (k < 0) | (k > m // 2)
            if bad.any():
                raise ValueError(
                    f"tones {tones[bad]} Hz lie outside 0..fs/2 = {self.fs / 2} Hz of a real-input PFB"
                )
            self.bins = k
        else:
            if (np.abs(tones) > self.fs / 2).any():
                raise ValueError(f"tones must lie within +-fs/2 = {self.fs / 2} Hz for complex input")
            self.bins = k % m
        self._bin_numbers = k  # signed bin of each tone (k*spacing + offset == tone)
        self.offsets_hz = tones - k * spacing
        hop = channelizer.hop
        centre = (channelizer.length - 1) / 2.0
        # Mixer phase (cycles) of frame j since reset: inc*j + base + absolute term.
        self._inc = self.offsets_hz * hop / self.fs
        self._base = np.mod(self.offsets_hz * centre / self.fs, 1.0)
        gain = prototype_response(channelizer.prototype_host, self.offsets_hz / self.fs)
        self.pfb_gain = gain
        self._scale = (1.0 / gain if equalize else np.ones_like(gain)).astype(np.float32)
        if lowpass_taps is None:
            lowpass_taps = 1 if self.decimation == 1 else 16 * self.decimation + 1
        self.lowpass = _design_lowpass(int(lowpass_taps), lowpass_cutoff / self.decimation)
        self._taps = self.lowpass.astype(np.float32)
        self.n_taps_lowpass = len(self._taps)
        self.output_rate = channelizer.output_rate(self.fs) / self.decimation
        # Per-tone constants, once on the backend: the block loop uploads nothing.
        b = self.backend
        self._bins_dev = b.asarray(self.bins)
        self._k_dev = b.asarray(self._bin_numbers)
        self._off_dev = b.asarray(self.offsets_hz)
        self._inc_dev = b.asarray(self._inc)
        self._base_dev = b.asarray(self._base)
        self._scale_dev = b.asarray(self._scale)
        self._taps_dev = b.asarray(self._taps)
        self._table: Any = None  # exp(-2 pi i inc d), d = 0.. : the mixer's frame-to-frame rotation
        self._const: tuple[int, Any] | None = None  # (first_sample, per-tone phase at frame 0) since reset
        self.reset()

    @property
    def n_tones(self) -> int:
        return int(self.tone_if_hz.size)

    def reset(self, frame_index: int = 0) -> None:
        """Forget all history; the next frame given is frame ``frame_index`` since the PFB reset."""
        self._frame = int(frame_index)
        self._next = int(frame_index)  # frame index where the next output's FIR window starts
        self._hist = self.xp.zeros((0, self.n_tones), dtype=np.complex64)
        self._hist_start = int(frame_index)
        self._out_done = 0

    def sample_index(self, k: Any) -> Any:
        """Input ADC sample index (float64) that output sample ``k`` (since reset) refers to."""
        frame = np.asarray(k, dtype=np.float64) * self.decimation + (self.n_taps_lowpass - 1) / 2.0
        return self.channelizer.frame_sample_index(frame)

    def _rotation(self) -> Any:
        """Per tone: the mixer at the next frame, times the equaliser: exp(-2 pi i phase(frame)) * scale.

        The absolute tone phase at the PFB's first sample (``k*s0/M`` in integers, plus
        ``offset*s0/fs``) is worked out once per reset; the frame index enters as ``inc*frame``
        taken modulo one cycle in float64, so the phase stays exact over any run length.
        """
        xp = self.xp
        s0 = int(self.channelizer.first_sample)
        if self._const is None or self._const[0] != s0:
            m = self.channelizer.n_channels
            absolute = xp.mod(xp.mod(self._k_dev * (s0 % m), m) / m + self._off_dev * (s0 / self.fs), 1.0)
            self._const = (s0, xp.mod(self._base_dev + absolute, 1.0))
        cycles = xp.mod(self._inc_dev * float(self._frame), 1.0) + self._const[1]
        return (xp.exp(-2j * np.pi * cycles) * self._scale_dev).astype(np.complex64)

    def _mix_table(self, n: int) -> Any:
        """``exp(-2 pi i inc d)`` for d < n (complex64, (n, n_tones)), grown on demand and reused."""
        if self._table is None or self._table.shape[0] < n:
            xp = self.xp
            rows = max(n, 2 * (0 if self._table is None else self._table.shape[0]))
            d = xp.arange(rows, dtype=np.float64)
            self._table = xp.exp(-2j * np.pi * xp.mod(d[:, None] * self._inc_dev[None, :], 1.0)).astype(np.complex64)
        return self._table[:n]

    def process(self, frames: Any) -> Any:
        """Mix, filter and decimate the next ``frames`` (n, n_bins); returns (n_out, n_tones) complex64."""
        xp = self.xp
        frames = self.backend.asarray(frames)
        if frames.ndim != 2 or frames.shape[1] != self.channelizer.n_bins:
            raise ValueError(
                f"DDC expects frames of shape (n, {self.channelizer.n_bins}), got {frames.shape}"
            )
        n = int(frames.shape[0])
        rot = self._rotation()
        table = self._mix_table(n)
        self._frame += n
        direct = self.n_taps_lowpass == 1 and self.decimation == 1
        held = 0 if direct else int(self._hist.shape[0])
        buf = xp.empty((held + n, self.n_tones), dtype=np.complex64)
        if held:
            buf[:held] = self._hist
        if self.backend.device:
            buf[held:] = frames[:, self._bins_dev] * (table * rot)
        else:
            from cryodaq.dsp.cpu_kernels import ddc_mix

            ddc_mix(frames, self.bins, table, rot, buf[held:])
        if direct:
            self._next += n
            self._hist_start += n
            self._out_done += n
            return buf
        end = self._hist_start + buf.shape[0]
        g, r = self.n_taps_lowpass, self.decimation
        n_out = max((end - g - self._next) // r + 1 if end - self._next >= g else 0, 0)
        off = self._next - self._hist_start
        out = xp.empty((n_out, self.n_tones), dtype=np.complex64)
        if n_out and self.backend.device:
            span = (n_out - 1) * r + 1
            out[...] = buf[off : off + span : r] * self._taps_dev[0]
            for i in range(1, g):
                out += buf[off + i : off + i + span : r] * self._taps_dev[i]
        elif n_out:
            from cryodaq.dsp.cpu_kernels import fir_decimate_rows

            fir_decimate_rows(buf.view(np.float32), self._taps, off, r, out.view(np.float32))
        self._next += n_out * r
        keep_from = self._next - self._hist_start
        self._hist = buf[keep_from:].copy()
        self._hist_start = self._next
        self._out_done += n_out
        return out
