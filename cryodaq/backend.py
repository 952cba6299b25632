"""The one place that chooses the array module (numpy or cupy) and moves data between host and device.

Every DSP object takes a :class:`Backend` and uses ``backend.xp`` / ``backend.fft``;
nothing else in cryodaq imports cupy. Choose once per process with
``get_backend()`` (reads ``CRYODAQ_BACKEND=auto|numpy|cupy``) and pass it down.

On a device backend (cupy, or the test-only ``strict`` backend) data cross between host
and device only through :meth:`Backend.asarray` (host -> device) and :meth:`Backend.to_numpy`
/ :meth:`Backend.to_host` (device -> host), which count every crossing in
:attr:`Backend.transfers`: a pipeline that keeps its blocks on the device shows one crossing
each way per block. ``strict`` (:mod:`cryodaq.strict_backend`) is numpy underneath with cupy's
rules at the boundary, so CI proves the device path without a GPU.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np
import scipy.fft

BACKEND_ENV = "CRYODAQ_BACKEND"
_CHOICES = ("auto", "numpy", "cupy", "strict")


@dataclass
class TransferLog:
    """Host <-> device crossings of one backend: calls and bytes each way (thread-safe counters)."""

    to_device: int = 0
    to_host: int = 0
    bytes_to_device: int = 0
    bytes_to_host: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, direction: str, nbytes: int) -> None:
        with self._lock:
            if direction == "to_device":
                self.to_device += 1
                self.bytes_to_device += int(nbytes)
            else:
                self.to_host += 1
                self.bytes_to_host += int(nbytes)

    def counts(self) -> tuple[int, int]:
        """``(to_device, to_host)`` crossings so far."""
        return self.to_device, self.to_host


@dataclass(frozen=True)
class Backend:
    """An array module, its FFT module, and the host/device boundary.

    ``xp`` is numpy, cupy or the strict test namespace; ``fft`` is ``scipy.fft`` on CPU
    (numpy's FFT is several times slower) and ``cupy.fft`` on GPU. ``fft_workers`` is passed
    to scipy's FFT and sizes the CPU kernels' thread pools. ``device``: arrays live apart
    from host memory, so DSP objects take the device code path (array operations only, no
    host kernels) and every crossing goes through this object and is counted.
    """

    name: str
    xp: ModuleType
    fft: ModuleType
    fft_workers: int | None = None
    device: bool = False
    transfers: TransferLog = field(default_factory=TransferLog, compare=False, hash=False)

    @property
    def is_gpu(self) -> bool:
        return self.name == "cupy"

    def holds(self, a: Any) -> bool:
        """True when ``a`` is already an array of this backend (no transfer needed)."""
        return isinstance(a, self.xp.ndarray)

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """``a`` as an array of this backend; host data are copied to the device (counted)."""
        if not self.device or self.holds(a):
            return self.xp.asarray(a, dtype=dtype)
        host = np.asarray(a, dtype=dtype)
        self.transfers.add("to_device", host.nbytes)
        return self._upload(host)

    def to_numpy(self, a: Any) -> np.ndarray:
        """``a`` in host memory as a numpy array (one counted crossing when it is a device array)."""
        return self.to_host(a)[0]

    def to_host(self, *arrays: Any) -> tuple[Any, ...]:
        """Bring several arrays back together, as one crossing (``None`` entries pass through).

        On cupy the copies are queued on the current stream and waited for once.
        """
        if not self.device:
            return tuple(a if a is None else np.asarray(a) for a in arrays)
        moving = [a for a in arrays if a is not None and self.holds(a)]
        if moving:
            self.transfers.add("to_host", sum(int(a.nbytes) for a in moving))
        return self._download(arrays)

    def fft_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for ``self.fft`` calls (``workers`` on scipy)."""
        if not self.device and self.fft_workers:
            return {"workers": self.fft_workers}
        return {}

    # --- per-backend hooks ----------------------------------------------------------
    def _upload(self, host: np.ndarray) -> Any:
        if self.is_gpu:
            return self.xp.asarray(host)
        from cryodaq.strict_backend import upload

        return upload(host)

    def _download(self, arrays: tuple[Any, ...]) -> tuple[Any, ...]:
        if self.is_gpu:
            stream = self.xp.cuda.get_current_stream()
            out = tuple(a.get(stream=stream) if self.holds(a) else _host(a) for a in arrays)
            stream.synchronize()
            return out
        from cryodaq.strict_backend import download

        return tuple(download(a) if self.holds(a) else _host(a) for a in arrays)


def _host(a: Any) -> Any:
    return a if a is None else np.asarray(a)


def _cupy_backend(fft_workers: int | None) -> Backend:
    import cupy  # the only cupy import in cryodaq
    import cupy.fft

    cupy.cuda.runtime.getDeviceCount()  # raises when there is no usable device
    return Backend("cupy", cupy, cupy.fft, fft_workers, device=True)


def _strict_backend(fft_workers: int | None) -> Backend:
    from cryodaq import strict_backend

    return Backend("strict", strict_backend.xp, strict_backend.fft, fft_workers, device=True)  # type: ignore[arg-type]


@lru_cache(maxsize=None)
def get_backend(name: str | None = None, fft_workers: int | None = None) -> Backend:
    """Return the backend called ``name`` (default: ``$CRYODAQ_BACKEND`` or ``auto``).

    ``auto`` picks cupy when it imports and sees a GPU, numpy otherwise;
    ``cupy`` fails loudly when cupy or a GPU is missing. ``strict`` is for tests: numpy
    underneath, device rules at the host boundary (:mod:`cryodaq.strict_backend`).
    """
    choice = (name or os.environ.get(BACKEND_ENV) or "auto").lower()
    if choice not in _CHOICES:
        raise ValueError(f"{BACKEND_ENV}={choice!r}: expected one of {', '.join(_CHOICES[:3])} (or strict, for tests)")
    if choice == "strict":
        return _strict_backend(fft_workers)
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
