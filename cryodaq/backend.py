"""The one place that chooses the array module (numpy or cupy).

Every DSP object takes a :class:`Backend` and uses ``backend.xp`` / ``backend.fft``;
nothing else in cryodaq imports cupy. Choose once per process with
``get_backend()`` (reads ``CRYODAQ_BACKEND=auto|numpy|cupy``) and pass it down.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np
import scipy.fft

BACKEND_ENV = "CRYODAQ_BACKEND"
_CHOICES = ("auto", "numpy", "cupy")


@dataclass(frozen=True)
class Backend:
    """An array module and its FFT module.

    ``xp`` is numpy or cupy; ``fft`` is ``scipy.fft`` on CPU (numpy's FFT is ~2.6x
    slower) and ``cupy.fft`` on GPU. ``fft_workers`` is passed to scipy's FFT.
    """

    name: str
    xp: ModuleType
    fft: ModuleType
    fft_workers: int | None = None

    @property
    def is_gpu(self) -> bool:
        return self.name == "cupy"

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """Move ``a`` onto this backend's device."""
        return self.xp.asarray(a, dtype=dtype)

    def to_numpy(self, a: Any) -> np.ndarray:
        """Bring ``a`` back to host memory as a numpy array."""
        if self.is_gpu and hasattr(a, "get"):
            return a.get()
        return np.asarray(a)

    def fft_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for ``self.fft`` calls (``workers`` on scipy)."""
        if not self.is_gpu and self.fft_workers:
            return {"workers": self.fft_workers}
        return {}


def _cupy_backend(fft_workers: int | None) -> Backend:
    import cupy  # the only cupy import in cryodaq
    import cupy.fft

    cupy.cuda.runtime.getDeviceCount()  # raises when there is no usable device
    return Backend("cupy", cupy, cupy.fft, fft_workers)


@lru_cache(maxsize=None)
def get_backend(name: str | None = None, fft_workers: int | None = None) -> Backend:
    """Return the backend called ``name`` (default: ``$CRYODAQ_BACKEND`` or ``auto``).

    ``auto`` picks cupy when it imports and sees a GPU, numpy otherwise;
    ``cupy`` fails loudly when cupy or a GPU is missing.
    """
    choice = (name or os.environ.get(BACKEND_ENV) or "auto").lower()
    if choice not in _CHOICES:
        raise ValueError(f"{BACKEND_ENV}={choice!r}: expected one of {', '.join(_CHOICES)}")
    if choice in ("cupy", "auto"):
        try:
            return _cupy_backend(fft_workers)
        except Exception as exc:  # ImportError, CUDA errors: fall back only under 'auto'
            if choice == "cupy":
                raise RuntimeError(f"{BACKEND_ENV}=cupy but cupy/GPU is unusable: {exc}") from exc
    return Backend("numpy", np, scipy.fft, fft_workers)


def numpy_backend(fft_workers: int | None = None) -> Backend:
    """The CPU backend, whatever the environment says (tests, file-based tools)."""
    return get_backend("numpy", fft_workers)


def gpu_available() -> bool:
    """True when cupy imports and a CUDA device answers."""
    try:
        _cupy_backend(None)
    except Exception:
        return False
    return True
