"""Robust statistics shared by triggers, pipelines and procedures."""

from __future__ import annotations

from typing import Any

from cryodaq.backend import Backend, numpy_backend

MAD_TO_SIGMA = 1.4826  # sigma of a Gaussian per unit median absolute deviation


def robust_sigma(x: Any, axis: int = 0, backend: Backend | None = None) -> Any:
    """Noise sigma along ``axis`` from the median absolute deviation: pulses barely move it."""
    xp = (backend or numpy_backend()).xp
    med = xp.median(x, axis=axis, keepdims=True)
    return MAD_TO_SIGMA * xp.median(xp.abs(x - med), axis=axis)
