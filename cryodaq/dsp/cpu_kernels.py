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

import math
import threading
from typing import Any

import numba
import numpy as np

__all__ = ["baseline_edges", "ddc_mix", "fir_decimate_rows", "iq_phase", "pfb_fir", "warm_up"]

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


@numba.njit(**_JIT)
def iq_phase(iq: Any, centre: Any, phasor: Any, sign: Any, unwrap: bool, out: Any) -> None:  # pragma: no cover
    """``out = sign * unwrap(angle((iq - centre) * phasor), axis=0)`` in one pass, float32.

    The unwrap is numpy's (``numpy.unwrap`` with its default ``discont = pi``): a step of at
    least pi between neighbours gets the multiple of 2 pi that brings it into [-pi, pi).
    """
    n, n_tones = iq.shape
    pi = np.float32(math.pi)
    two_pi = np.float32(2 * math.pi)
    prev = np.zeros(n_tones, np.float32)
    corr = np.zeros(n_tones, np.float32)
    for i in range(n):
        z_row = iq[i]
        o = out[i]
        for c in range(n_tones):
            z = (z_row[c] - centre[c]) * phasor[c]
            p = np.float32(math.atan2(z.imag, z.real))
            if unwrap and i > 0:
                d = p - prev[c]
                if abs(d) >= pi:
                    dm = (d + pi) % two_pi - pi
                    if dm == -pi and d > 0:
                        dm = pi
                    corr[c] += dm - d
            prev[c] = p
            o[c] = (p + corr[c]) * sign[c]


@numba.njit(**_JIT)
def baseline_edges(u: Any, b: int, thr: Any, polarity: int, prev_in: Any, prev_out: Any, rows: Any,
                   cols: Any) -> int:  # pragma: no cover - compiled
    """Rising crossings of ``polarity * (u[i] - mean(u[i-b:i]))`` over ``thr`` for rows i >= b of ``u``.

    Writes (row - b, column) of each crossing in row-major order into ``rows``/``cols`` and returns
    how many there are (more than ``rows.size``: call again with room for them all). ``prev_in``:
    whether each column was above before row b; ``prev_out`` gets it after the last row. The moving
    sum is float64, restarted from the block's own samples each call (no drift over a run).
    """
    m, n_ch = u.shape
    s_sum = np.zeros(n_ch, np.float64)
    for j in range(b):
        for c in range(n_ch):
            s_sum[c] += u[j, c]
    for c in range(n_ch):
        prev_out[c] = prev_in[c]
    k = 0
    cap = rows.size
    for i in range(b, m):
        row = u[i]
        for c in range(n_ch):
            s = np.float32(row[c] - s_sum[c] / b)
            above = s >= thr[c] if polarity > 0 else s <= -thr[c]
            if above and not prev_out[c]:
                if k < cap:
                    rows[k] = i - b
                    cols[k] = c
                k += 1
            prev_out[c] = above
        old = u[i - b]
        for c in range(n_ch):
            s_sum[c] += row[c] - old[c]
    return k


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
    iq_phase(z, np.zeros(3, np.complex64), np.ones(3, np.complex64), np.ones(3, np.float32), True,
             np.empty((4, 3), np.float32))
    flags = np.zeros(3, np.bool_)
    baseline_edges(np.zeros((8, 3), np.float32), 2, np.ones(3, np.float32), 1, flags, flags.copy(),
                   np.empty(4, np.int64), np.empty(4, np.int64))
