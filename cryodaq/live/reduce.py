"""Data reductions for live display, shared by the publisher and the GUI's replay.

Hand-written because they are tiny streaming versions of a reshape-and-mean
(scipy.signal.decimate filters and keeps no state between calls, and an IIR's
group delay would smear pulses in time); both are vectorised numpy.
"""

from __future__ import annotations

import numpy as np


class StreamDecimator:
    """Block-mean decimation by ``factor`` that carries the remainder between calls.

    A boxcar mean is an honest display reduction: noise keeps its level per bin,
    pulses keep their area and their time. :meth:`reset` (after a gap) drops the
    partial bin, so no output sample mixes data from both sides of a gap.
    """

    def __init__(self, factor: int) -> None:
        if factor < 1:
            raise ValueError(f"decimation factor must be >= 1, got {factor}")
        self.factor = int(factor)
        self._t: np.ndarray | None = None
        self._x: np.ndarray | None = None

    def reset(self) -> None:
        self._t = self._x = None

    def push(self, t_ns: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decimate ``data`` (n, channels) with times ``t_ns``; returns ``(t_ns, data)`` of whole bins."""
        if self._x is not None and len(self._x):
            if self._x.shape[1] != data.shape[1]:
                self.reset()
            else:
                t_ns = np.concatenate([self._t, t_ns])
                data = np.concatenate([self._x, data])
        k = self.factor
        n = (len(data) // k) * k
        self._t, self._x = t_ns[n:].copy(), data[n:].copy()
        if n == 0:
            return np.zeros(0, np.int64), np.zeros((0, data.shape[1]), np.float32)
        y = data[:n].reshape(n // k, k, data.shape[1]).mean(axis=1, dtype=np.float32)
        return t_ns[k // 2:n:k].astype(np.int64, copy=False), y


class IQReducer:
    """Subsample IQ for the IQ-plane display: every ``stride``-th point plus each block's excursion.

    Uniform points show the noise blob at the operating point; the point farthest
    from the block mean (per tone) keeps pulses visible as arcs along the
    resonance loop, which a uniform subsample at a few hundred Hz would miss.
    """

    def __init__(self, stride: int) -> None:
        if stride < 1:
            raise ValueError(f"IQ stride must be >= 1, got {stride}")
        self.stride = int(stride)
        self._offset = 0

    def push(self, iq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``iq`` (n, tones) -> ``(points (m, tones), operating point (tones,))``."""
        n = len(iq)
        if n == 0:
            return np.zeros((0, iq.shape[1]), np.complex64), np.zeros(iq.shape[1], np.complex64)
        uniform = iq[self._offset::self.stride]
        self._offset = (self._offset - n) % self.stride
        op = iq.mean(axis=0)
        far = np.abs(iq - op).argmax(axis=0)
        extreme = iq[far, np.arange(iq.shape[1])][None, :]
        return np.concatenate([uniform, extreme]).astype(np.complex64, copy=False), op.astype(np.complex64)
