"""Fused CPU kernels for the streaming hot paths (numba), used by the numpy backend only.

numpy evaluates an expression one pass at a time, each pass streaming whole arrays through
memory; the channelizer's FIRs are memory-bound, so a pass per tap (or numpy's einsum, which
re-reads its accumulator per tap) costs as much as the FFT that follows. These kernels read
each input once, convert int16 to float32 on the fly, and keep the sums in registers, as a GPU
F-engine fuses its input decode into the PFB's FIR. numba compiles them on first use (cached
on disk) and they release the GIL, so the channelizer's worker threads run them in parallel.

Hand-written because no library has them: scipy's FIR routines apply one filter to every
column, while a polyphase branch has its own taps, and the DDC's mixer changes every frame.
The device path (cupy, and the strict test backend) computes the same sums with array
operations in the DSP objects themselves.
"""

from __future__ import annotations

import threading
from typing import Any

import numba
import numpy as np

__all__ = ["ddc_mix", "fir_decimate_rows", "pfb_fir", "warm_up"]

_JIT = {"nogil": True, "cache": True, "fastmath": True, "boundscheck": False}


@numba.njit(**_JIT)
def pfb_fir(x: Any, x0: int, w: Any, hop: int, out: Any) -> None:  # pragma: no cover - compiled
    """``out[f, m] = sum_t w[t, m] * x[x0 + f*hop + t*M + m]`` for every row ``f`` of ``out``.

    ``x`` 1-D (int16, float32 or complex64), ``w`` (T, M) float32, ``out`` (F, M) float32 or
    complex64. Taps are summed four at a time so the accumulator row is written T/4 times.
    """
    n_frames, m_len = out.shape
    n_taps = w.shape[0]
    for f in range(n_frames):
        row = out[f]
        b = x0 + f * hop
        t = 0
        while t < n_taps:
            k = min(4, n_taps - t)
            x_a = x[b + t * m_len: b + (t + 1) * m_len]
            w_a = w[t]
            if k == 4:
                x_b = x[b + (t + 1) * m_len: b + (t + 2) * m_len]
                x_c = x[b + (t + 2) * m_len: b + (t + 3) * m_len]
                x_d = x[b + (t + 3) * m_len: b + (t + 4) * m_len]
                w_b, w_c, w_d = w[t + 1], w[t + 2], w[t + 3]
                if t == 0:
                    for m in range(m_len):
                        row[m] = x_a[m] * w_a[m] + x_b[m] * w_b[m] + x_c[m] * w_c[m] + x_d[m] * w_d[m]
                else:
                    for m in range(m_len):
                        row[m] += x_a[m] * w_a[m] + x_b[m] * w_b[m] + x_c[m] * w_c[m] + x_d[m] * w_d[m]
            elif t == 0:
                for m in range(m_len):
                    row[m] = x_a[m] * w_a[m]
            else:
                for m in range(m_len):
                    row[m] += x_a[m] * w_a[m]
            t += k if k == 4 else 1


@numba.njit(**_JIT)
def ddc_mix(frames: Any, bins: Any, table: Any, rot: Any, out: Any) -> None:  # pragma: no cover - compiled
    """``out[j, c] = frames[j, bins[c]] * (table[j, c] * rot[c])``: pick each tone's bin and mix it to DC."""
    n, n_tones = out.shape
    for j in range(n):
        fr = frames[j]
        tb = table[j]
        o = out[j]
        for c in range(n_tones):
            o[c] = fr[bins[c]] * (tb[c] * rot[c])


@numba.njit(**_JIT)
def fir_decimate_rows(src: Any, taps: Any, off: int, step: int, out: Any) -> None:  # pragma: no cover - compiled
    """``out[k, :] = sum_i taps[i] * src[off + k*step + i, :]``: a real FIR down the rows, decimated.

    ``src`` (n, W) float32 (e.g. complex64 tones viewed as float32 pairs), ``taps`` (g,) float32.
    """
    n_out, width = out.shape
    n_taps = taps.shape[0]
    for k in range(n_out):
        o = out[k]
        r0 = off + k * step
        s = src[r0]
        g = taps[0]
        for c in range(width):
            o[c] = g * s[c]
        for i in range(1, n_taps):
            s = src[r0 + i]
            g = taps[i]
            for c in range(width):
                o[c] += g * s[c]


_READY = threading.Event()
_READY_LOCK = threading.Lock()


def warm_up() -> None:
    """Compile (or load from numba's disk cache) the common specialisations once per process.

    The DSP objects call it when they are built, so the first block of a stream does not wait
    for the compiler (about a second, more on a loaded machine)."""
    if _READY.is_set():
        return
    with _READY_LOCK:
        if not _READY.is_set():
            _compile_common()
            _READY.set()


def _compile_common() -> None:
    w = np.ones((8, 4), np.float32)
    for dt in (np.int16, np.float32):
        pfb_fir(np.zeros(64, dt), 0, w, 4, np.empty((2, 4), np.float32))
    z = np.zeros((4, 3), np.complex64)
    ddc_mix(z, np.zeros(2, np.int64), np.zeros((4, 2), np.complex64), np.ones(2, np.complex64),
            np.empty((4, 2), np.complex64))
    fir_decimate_rows(np.zeros((8, 4), np.float32), np.ones(3, np.float32), 0, 2, np.empty((2, 4), np.float32))
