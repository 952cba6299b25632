"""IQ to phase and dissipation, relative to a resonance-circle centre and rotation.

Conventions: ``iq`` has tones on the last axis (``(n_samples, n_tones)``) or is 1-D
for one tone.  Phase = angle of ``(iq - centre) * exp(-i rotation)``, unwrapped along
time (axis 0), so the operating point sits at 0 rad and a pulse is a phase excursion.
Dissipation = ``|iq - centre| / radius - 1``: the fractional radial deviation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backend import Backend, numpy_backend


def iq_to_phase(
    iq: Any, centre: Any = 0, rotation: Any = None, unwrap: bool = True, backend: Backend | None = None
) -> Any:
    """Phase (rad, float32) of ``(iq - centre) exp(-i rotation)``; ``rotation`` defaults to
    the angle of the mean of ``(iq - centre)`` over time, so the mean operating point is 0 rad."""
    b = backend or numpy_backend()
    xp = b.xp
    z = b.asarray(iq) - (b.asarray(centre) if np.ndim(centre) else complex(centre))
    rotation = xp.angle(z.mean(axis=0)) if rotation is None else b.asarray(rotation)
    phase = xp.angle(z * xp.exp(-1j * rotation))
    if unwrap and phase.shape[0] > 1:
        phase = xp.unwrap(phase, axis=0)
    return phase.astype(np.float32)


def iq_to_dissipation(iq: Any, centre: Any = 0, radius: Any = None, backend: Backend | None = None) -> Any:
    """Fractional radial deviation ``|iq - centre| / radius - 1`` (float32); ``radius``
    defaults to the mean of ``|iq - centre|`` over time."""
    b = backend or numpy_backend()
    r = b.xp.abs(b.asarray(iq) - (b.asarray(centre) if np.ndim(centre) else complex(centre)))
    radius = r.mean(axis=0) if radius is None else b.asarray(radius)
    return (r / radius - 1.0).astype(np.float32)


@dataclass
class IQCalibration:
    """Per-tone circle centre (complex), rotation (rad), radius and phase sense, as host arrays over tones.

    Built from a quiet baseline (:meth:`from_baseline`) or from a resonator fit / IQ-loop
    sweep (:func:`cryodaq.dsp.iqcal.loop_calibration`); applied to streams with
    :meth:`phase` / :meth:`dissipation`. ``sign`` (+1 or -1 per tone, default +1) multiplies
    the phase, so a calibration can choose the sense in which pulses come out positive.  Streaming note: ``phase``
    unwraps within the block it is given; blocks of a live stream stay well inside
    +-pi of the operating point except for very large pulses.
    """

    centre: np.ndarray
    rotation: np.ndarray
    radius: np.ndarray
    sign: Any = 1.0
    _constants: dict[Any, tuple[Any, Any, Any]] = field(default_factory=dict, init=False, repr=False,
                                                         compare=False)

    def __post_init__(self) -> None:
        self.centre = np.atleast_1d(np.asarray(self.centre, dtype=np.complex128))
        self.rotation = np.atleast_1d(np.asarray(self.rotation, dtype=np.float64))
        self.radius = np.atleast_1d(np.asarray(self.radius, dtype=np.float64))
        self.sign = np.broadcast_to(np.asarray(self.sign, dtype=np.float64), self.centre.shape).copy()
        if not np.all(np.abs(self.sign) == 1):
            raise ValueError(f"IQCalibration sign must be +1 or -1 per tone, got {self.sign.tolist()}")
        n = {self.centre.size, self.rotation.size, self.radius.size}
        if len(n) != 1:
            raise ValueError(
                f"IQCalibration arrays must have one value per tone; got centre {self.centre.size}, "
                f"rotation {self.rotation.size}, radius {self.radius.size}"
            )

    @property
    def n_tones(self) -> int:
        return int(self.centre.size)

    @classmethod
    def from_baseline(cls, iq: Any, backend: Backend | None = None) -> IQCalibration:
        """Centre 0, rotation = angle of the mean IQ, radius = mean |IQ|, per tone (axis 0 is time)."""
        b = backend or numpy_backend()
        z = b.to_numpy(iq).astype(np.complex128)
        if z.ndim == 1:
            z = z[:, None]
        return cls(np.zeros(z.shape[1], complex), np.angle(z.mean(axis=0)), np.abs(z).mean(axis=0))

    def _on(self, backend: Backend) -> tuple[Any, Any, Any]:
        """(centre, exp(-i rotation), sign or None) as complex64/float32 arrays of ``backend``, made
        once per backend: a stream's blocks then upload nothing."""
        if backend not in self._constants:
            centre = backend.asarray(self.centre.astype(np.complex64))
            phasor = backend.asarray(np.exp(-1j * self.rotation).astype(np.complex64))
            sign = None if np.all(self.sign == 1) else backend.asarray(self.sign.astype(np.float32))
            self._constants[backend] = (centre, phasor, sign)
        return self._constants[backend]

    def phase(self, iq: Any, unwrap: bool = True, backend: Backend | None = None) -> Any:
        """Phase (rad, float32) of each tone relative to its operating point, times ``sign``.

        Computed in single precision on the backend (``iq`` stays where it is); on the CPU in one
        fused pass (:func:`cryodaq.dsp.cpu_kernels.iq_phase`)."""
        b = backend or numpy_backend()
        xp = b.xp
        centre, phasor, sign = self._on(b)
        iq = b.asarray(iq)
        if not b.device and iq.ndim == 2:
            from cryodaq.dsp.cpu_kernels import iq_phase

            out = np.empty(iq.shape, np.float32)
            ones = self._constants.setdefault("ones", np.ones(iq.shape[1], np.float32))  # type: ignore[arg-type]
            iq_phase(np.ascontiguousarray(iq, np.complex64), centre, phasor, ones if sign is None else sign,
                     bool(unwrap), out)
            return out
        phase = xp.angle((iq - centre) * phasor)
        if unwrap and phase.shape[0] > 1:
            phase = xp.unwrap(phase, axis=0)
        phase = phase.astype(np.float32, copy=False)
        if sign is not None:
            phase *= sign
        return phase

    def dissipation(self, iq: Any, backend: Backend | None = None) -> Any:
        """Fractional radial deviation of each tone from its calibrated radius."""
        b = backend or numpy_backend()
        centre = self._on(b)[0]
        return iq_to_dissipation(b.asarray(iq), centre, b.asarray(self.radius), b)
