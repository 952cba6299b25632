"""Fused CPU kernels for the streaming hot paths (numba): the numpy backend's DSP, and the host's
share of every backend's trigger (``min_gap_keep``: hold-off over the candidates brought back).

numpy evaluates an expression one pass at a time, each pass streaming whole arrays through
memory; the channelizer's FIRs are memory-bound, so a pass per tap (or numpy's einsum, which
re-reads its accumulator per tap) costs as much as the FFT that follows. These kernels read
each input once, convert int16 to float32 on the fly, and keep the sums in registers, as a GPU
F-engine fuses its input decode into the PFB's FIR. numba compiles them on first use (cached
on disk) and they release the GIL, so the channelizer's worker threads run them in parallel.

Hand-written because no library has them: scipy's FIR routines apply one filter to every
column, while a polyphase branch has its own taps, and the DDC's mixer changes every frame.
The device path (cupy, and the strict test backend) computes the same sums with array
operations in the DSP objects themselves. The trigger's two host loops (hold-off, whose every
decision depends on the previous kept candidate, and the record gather, for which numpy's fancy
indexing builds index arrays several times the records' size) are compiled here too.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numba
import numpy as np

__all__ = ["baseline_edges", "ddc_mix", "fir_decimate_rows", "gather_records", "iq_phase", "min_gap_keep", "pfb_fir",
           "warm_up"]

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


# iq_phase's flags: FMA contraction only. With "fast" (arcp) LLVM turns the vector division
# into a reciprocal estimate (vrcpps + a Newton step), a few ulp off and inf for subnormals.
_PHASE_JIT = dict(_JIT, fastmath={"contract"})


@numba.njit(inline="always", **_PHASE_JIT)
def _atan2f(y: Any, x: Any) -> Any:  # pragma: no cover - compiled
    """``atan2(y, x)`` in float32, branch-free (selects only), for :func:`iq_phase`.

    Hand-written because libm's ``atan2f`` is a scalar call, which keeps LLVM from vectorizing
    the loop over tones; this one is plain arithmetic and selects, so it runs 8 lanes per AVX2
    instruction. ``a = min(|x|, |y|) / max(|x|, |y|)`` in [0, 1]; ``t = atan(a) = a + a s Q(s)``
    with ``s = a^2`` and Q of degree 7, fitted (Lawson's iterated least squares in float64 on a
    dense grid) to the minimax relative error of ``atan(a)/a``: 1.5e-8 in float64, 1.8e-8 with
    the float32 coefficients. Then the octant, ``base +- t`` with base 0, pi/2 or pi held as
    float32 hi + lo, so one rounding near pi. Measured against float64 ``arctan2`` of the same
    float32 inputs (32 M random points, magnitudes 1e-37 to 1e37): at most 2.2e-7 rad, 0.93 ulp
    at pi, and 1.7 ulp of the result anywhere (numpy's float32 arctan2: 2.5e-7 rad).
    atan2(0, 0) = 0 and the signed zeros follow libm (signs read with copysign):
    atan2(+-0, -0) = +-pi, atan2(-0, x > 0) = -0; subnormals are fine. No NaN/inf handling.
    """
    ax = abs(x)
    ay = abs(y)
    swap = ay > ax
    mx = ay if swap else ax
    mn = ax if swap else ay
    a = mn / (mx if mx > 0 else np.float32(1.0))  # x = y = 0: a = 0/1, not 0/0
    s = a * a
    q = np.float32(0.00297459471039474)
    q = q * s + np.float32(-0.016581200063228607)
    q = q * s + np.float32(0.043553564697504044)
    q = q * s + np.float32(-0.07580579817295074)
    q = q * s + np.float32(0.10678941011428833)
    q = q * s + np.float32(-0.14214208722114563)
    q = q * s + np.float32(0.19994136691093445)
    q = q * s + np.float32(-0.3333316743373871)
    t = a + (a * s) * q
    # atan2 = t, pi/2 - t (|y| > |x|), pi - t (x < 0), pi/2 + t (both), negated for y < 0.
    xneg = math.copysign(np.float32(1.0), x) < 0
    zero = np.float32(0.0)
    hi = np.float32(1.5707963705062866) if swap else (np.float32(3.1415927410125732) if xneg else zero)
    lo = np.float32(-4.371138828673793e-08) if swap else (np.float32(-8.742277657347586e-08) if xneg else zero)
    r = hi + ((t if swap == xneg else -t) + lo)
    return -r if math.copysign(np.float32(1.0), y) < 0 else r


@numba.njit(**_PHASE_JIT)
def iq_phase(iq: Any, centre: Any, phasor: Any, sign: Any, unwrap: bool, out: Any) -> None:  # pragma: no cover
    """``out = sign * unwrap(angle((iq - centre) * phasor), axis=0)`` in one pass, float32.

    The unwrap is numpy's (``numpy.unwrap`` with its default ``discont = pi``): a step of at
    least pi between neighbours gets the multiple of 2 pi that brings it into [-pi, pi).

    Branch-free, so the loop over tones vectorizes: both phases lie in [-pi, pi], so a step
    ``d = p - prev`` lies in [-2 pi, 2 pi], and numpy's rule (``dm = (d + pi) % 2pi - pi``,
    ``dm = pi`` where ``dm == -pi and d > 0``, correction ``dm - d`` where ``|d| >= pi``) gives
    ``-2 pi`` for ``pi < d <= 2 pi`` (dm = d - 2 pi), ``+2 pi`` for ``-2 pi <= d < -pi``
    (dm = d + 2 pi) and 0 for ``d = +-pi`` exactly (dm = d) and for ``|d| < pi``: one select
    each way. The correction accumulates in float32 as a whole number of turns (exact), applied
    as ``p + turns * 2pi`` with 2 pi as float32 hi + lo: a sum of float32 2 pi's would drift by
    the constant's rounding (1.7e-7 per turn) and by each addition's.
    """
    n, n_tones = iq.shape
    pi = np.float32(math.pi)
    two_pi_hi = np.float32(6.2831854820251465)
    two_pi_lo = np.float32(-1.7484555314695172e-07)  # 2 pi - two_pi_hi
    one = np.float32(1.0)
    zero = np.float32(0.0)
    prev = np.empty(n_tones, np.float32)
    turns = np.zeros(n_tones, np.float32)
    for i in range(n):
        z_row = iq[i]
        o = out[i]
        if unwrap and i > 0:
            for c in range(n_tones):
                z = (z_row[c] - centre[c]) * phasor[c]
                p = _atan2f(z.imag, z.real)
                d = p - prev[c]
                k = turns[c] - (one if d > pi else zero) + (one if d < -pi else zero)
                turns[c] = k
                prev[c] = p
                o[c] = ((p + k * two_pi_lo) + k * two_pi_hi) * sign[c]  # lo first: one rounding at |out|
        else:  # row 0, or no unwrap: no turns yet
            for c in range(n_tones):
                z = (z_row[c] - centre[c]) * phasor[c]
                p = _atan2f(z.imag, z.real)
                prev[c] = p
                o[c] = p * sign[c]


@numba.njit(**_JIT)
def baseline_edges(u: Any, b: int, thr: Any, polarity: int, prev_in: Any, prev_out: Any, rows: Any,
                   cols: Any) -> int:  # pragma: no cover - compiled
    """Rising crossings of ``polarity * (u[i] - mean(u[i-b:i]))`` over ``thr`` for rows i >= b of ``u``
    (``b`` = 0: of ``polarity * u[i]``, no baseline).

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
            s = np.float32(row[c] - s_sum[c] / b) if b else row[c]
            above = s >= thr[c] if polarity > 0 else s <= -thr[c]
            if above and not prev_out[c]:
                if k < cap:
                    rows[k] = i - b
                    cols[k] = c
                k += 1
            prev_out[c] = above
        if b:
            old = u[i - b]
            for c in range(n_ch):
                s_sum[c] += row[c] - old[c]
    return k


@numba.njit(**_JIT)
def min_gap_keep(channel: Any, index: Any, last: Any, gap: int, keep: Any) -> None:  # pragma: no cover - compiled
    """Greedy hold-off over candidates sorted by channel, then index: ``keep[i]`` when ``index[i]`` is at
    least ``gap`` after the previous kept one on its channel (before any, ``last[channel]``); ``last``
    is updated in place. Sequential by nature (each decision depends on the previous kept one), and
    a busy stream has hundreds of thousands of candidates per reprocessed chunk."""
    for i in range(index.size):
        c = channel[i]
        if index[i] - last[c] >= gap:
            last[c] = index[i]
            keep[i] = True
        else:
            keep[i] = False


@numba.njit(**_JIT)
def gather_records(a: Any, b: Any, first_row: Any, channel: Any, out: Any) -> None:  # pragma: no cover - compiled
    """``out[e, j] = concat([a, b])[first_row[e] + j, channel[e]]`` (rows clipped to the data), as float32,
    without the concatenation or the (events, samples) index arrays numpy's fancy indexing builds:
    for a busy stream those are several times the records' own size."""
    ha = a.shape[0]
    last = ha + b.shape[0] - 1
    for e in range(out.shape[0]):
        c = channel[e]
        r0 = first_row[e]
        row = out[e]
        for j in range(row.size):
            r = min(max(r0 + j, 0), last)
            row[j] = a[r, c] if r < ha else b[r - ha, c]


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
    for dt in (np.float32, np.float64):
        gather_records(np.zeros((0, 3), dt), np.zeros((4, 3), dt), np.zeros(2, np.int64), np.zeros(2, np.int32),
                       np.empty((2, 3), np.float32))
    for ch_type in (np.int32, np.int64):
        min_gap_keep(np.zeros(2, ch_type), np.arange(2, dtype=np.int64), np.zeros(1, np.int64), 2, flags[:2])
