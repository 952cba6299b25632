"""A device-like array module for tests: numpy underneath, but no implicit host round-trips.

cupy's arrays refuse implicit conversion to numpy (``numpy.asarray(a)`` raises; ``a.get()`` is
the explicit way) and refuse to mix with host arrays in arithmetic. Code that runs on cupy must
therefore cross the host/device boundary only where it means to. CI has no GPU, so this module
gives the suite an array type with the same rules: :class:`StrictArray` wraps a numpy array,
computes with numpy (ufuncs and the ``__array_function__`` protocol, as cupy does), and raises
:class:`ImplicitTransferError` wherever data would silently cross between "device" and host:

- ``numpy.asarray(a)``, ``a.tolist()`` and buffer access (device -> host);
- a host ``numpy.ndarray`` (or list) mixed into arithmetic, used as an index, assigned into a
  strict array, or passed to this namespace's ``asarray`` (host -> device).

Explicit transfers go through :class:`cryodaq.backend.Backend` (``asarray``, ``to_numpy``,
``to_host``), which counts them; :func:`upload` and :func:`download` are its hooks here. Python
and numpy scalars mix freely, and size-1 arrays convert with ``float()``/``int()``/``bool()``, as on
cupy (each such conversion is a synchronising scalar read: :data:`SCALAR_READS` counts them).

Hand-written: no library offers a numpy-backed array that refuses host conversion. The namespace
(:data:`xp`) exposes only names cupy also has, so code written against it runs on cupy.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.fft
from numpy.lib.mixins import NDArrayOperatorsMixin

__all__ = ["ImplicitTransferError", "SCALAR_READS", "StrictArray", "download", "fft", "upload", "xp"]

#: size-1 arrays read back as Python scalars (float(a), int(a), bool(a), a.item()) since import
SCALAR_READS = [0]


class ImplicitTransferError(TypeError):
    """Data would cross between host and device without an explicit, counted transfer."""


def _refuse(what: str) -> ImplicitTransferError:
    return ImplicitTransferError(
        f"strict backend: {what}; cross between host and device only through Backend.asarray / "
        "Backend.to_numpy / Backend.to_host (as on cupy, where this is a hidden host round-trip)")


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (numbers.Number, np.generic, bool)) and not isinstance(v, np.ndarray)


def _unwrap(v: Any, what: str) -> Any:
    """The numpy array under ``v``; scalars, slices and dtypes pass; host arrays and lists are refused."""
    if isinstance(v, StrictArray):
        return v._a
    if isinstance(v, np.ndarray):
        raise _refuse(f"a host numpy array {v.shape} {v.dtype} was used as {what}")
    if isinstance(v, (list, tuple)):
        if what == "an argument":  # sequences of arrays (concatenate, stack): unwrap each
            return type(v)(_unwrap(x, what) for x in v)
        raise _refuse(f"a host {type(v).__name__} was used as {what}")
    return v


def _wrap(v: Any) -> Any:
    """Results as strict arrays; numpy scalars become 0-d arrays, as cupy's reductions return."""
    if isinstance(v, np.ndarray):
        return StrictArray(v)
    if isinstance(v, np.generic):
        return StrictArray(np.asarray(v))
    if isinstance(v, tuple):
        return tuple(_wrap(x) for x in v)
    if isinstance(v, list):
        return [_wrap(x) for x in v]
    return v


def _index(key: Any) -> Any:
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    if isinstance(key, StrictArray):
        return key._a
    if isinstance(key, (np.ndarray, list)):
        raise _refuse(f"a host {type(key).__name__} was used as an index")
    return key


class StrictArray(NDArrayOperatorsMixin):
    """A numpy array that behaves like a cupy array at the host boundary (see the module docstring)."""

    __slots__ = ("_a",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    # --- the boundary -----------------------------------------------------------
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise _refuse("implicit conversion of a device array to a numpy array")

    def tolist(self) -> Any:
        raise _refuse("tolist() of a device array")

    def _scalar(self) -> Any:
        if self._a.size != 1:
            raise TypeError(f"only size-1 arrays convert to Python scalars, got shape {self._a.shape}")
        SCALAR_READS[0] += 1
        return self._a.reshape(()).item()

    def __float__(self) -> float:
        return float(self._scalar())

    def __int__(self) -> int:
        return int(self._scalar())

    def __complex__(self) -> complex:
        return complex(self._scalar())

    def __bool__(self) -> bool:
        return bool(self._scalar())

    def item(self) -> Any:
        return self._scalar()

    # --- numpy protocols ----------------------------------------------------------
    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        args = [_unwrap(x, "an operand") for x in inputs]
        if method == "at":  # ufunc.at(a, indices, b): the indices are an index
            args[1] = _index(inputs[1])
        outs = kwargs.get("out")
        if outs is not None:
            kwargs["out"] = tuple(_unwrap(o, "an output") for o in outs)
        if "where" in kwargs:
            kwargs["where"] = _unwrap(kwargs["where"], "a where= mask")
        result = getattr(ufunc, method)(*args, **kwargs)
        if method == "at":
            return None
        if outs is not None:  # the caller's own output arrays, as numpy returns them
            return outs[0] if len(outs) == 1 else tuple(outs)
        return _wrap(result)

    def __array_function__(self, func: Callable[..., Any], types: Any, args: Any, kwargs: Any) -> Any:
        a = [_unwrap(x, "an argument") for x in args]
        kw = {k: _unwrap(v, "an argument") for k, v in kwargs.items()}
        return _wrap(func(*a, **kw))

    # --- array attributes -----------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: StrictArray(self._a.T))
    real = property(lambda self: StrictArray(self._a.real))
    imag = property(lambda self: StrictArray(self._a.imag))

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        for i in range(len(self._a)):
            yield self[i]

    def __getitem__(self, key: Any) -> StrictArray:
        return StrictArray(np.asarray(self._a[_index(key)]))

    def __setitem__(self, key: Any, value: Any) -> None:
        if not (isinstance(value, StrictArray) or _is_scalar(value)):
            raise _refuse(f"a host {type(value).__name__} was assigned into a device array")
        self._a[_index(key)] = value._a if isinstance(value, StrictArray) else value

    def __repr__(self) -> str:
        return f"StrictArray({self._a!r})"

    # --- methods (those cupy.ndarray has) ------------------------------------------------
    def astype(self, dtype: Any, copy: bool = True, **kw: Any) -> StrictArray:
        return StrictArray(self._a.astype(dtype, copy=copy, **kw))

    def copy(self) -> StrictArray:
        return StrictArray(self._a.copy())

    def view(self, dtype: Any = None) -> StrictArray:
        return StrictArray(self._a.view(dtype))

    def reshape(self, *shape: Any, **kw: Any) -> StrictArray:
        return StrictArray(self._a.reshape(*shape, **kw))

    def fill(self, value: Any) -> None:
        if not _is_scalar(value):
            raise _refuse("fill() with a non-scalar")
        self._a.fill(value)

    def _method(name: str) -> Callable[..., Any]:  # type: ignore[misc]  # noqa: N805
        def method(self: StrictArray, *args: Any, **kwargs: Any) -> Any:
            a = [_unwrap(x, "an argument") for x in args]
            kw = {k: _unwrap(v, "an argument") for k, v in kwargs.items()}
            return _wrap(getattr(self._a, name)(*a, **kw))

        method.__name__ = name
        return method

    for _name in ("ravel", "flatten", "transpose", "swapaxes", "squeeze", "conj", "conjugate", "sum", "mean",
                  "max", "min", "argmax", "argmin", "any", "all", "cumsum", "prod", "std", "var", "round",
                  "clip", "nonzero", "take", "repeat", "sort", "argsort", "dot", "diagonal", "trace"):
        locals()[_name] = _method(_name)
    del _name, _method


def upload(a: Any, dtype: Any = None) -> StrictArray:
    """Host data -> a strict array (a copy, as a host-to-device transfer makes). The Backend counts it."""
    if isinstance(a, StrictArray):
        return a if dtype is None else a.astype(dtype, copy=False)
    return StrictArray(np.array(a, dtype=dtype, copy=True))


def download(a: Any) -> np.ndarray:
    """A strict array -> a host numpy copy. The Backend counts it."""
    if isinstance(a, StrictArray):
        return a._a.copy()
    return np.asarray(a)


# --- the namespace ------------------------------------------------------------------------
# Names cupy has (checked against cupy 13's namespace); anything else is refused, so code that
# passes here does not reach for a numpy-only function on a GPU.
_FUNCTIONS = frozenset("""
abs absolute add all angle any arange arctan arctan2 argmax argmin argsort around atleast_1d atleast_2d
bincount broadcast_to ceil clip concatenate conj conjugate copy cos count_nonzero cumsum diff divide dot
einsum empty empty_like equal exp expand_dims eye flatnonzero flip floor floor_divide full full_like
greater greater_equal hypot imag isclose iscomplexobj isfinite isnan less less_equal lexsort linspace
log log10 log1p logical_and logical_not logical_or matmul max maximum mean median min minimum mod
moveaxis multiply nanmax nanmean nanmin negative nonzero not_equal ones ones_like outer power prod ravel
real remainder repeat reshape rint roll round searchsorted sign sin sort sqrt square squeeze stack std
subtract sum swapaxes take take_along_axis tensordot tile transpose unwrap var vstack hstack where zeros
zeros_like cumprod unique
""".split())
_PASS = frozenset("""
bool_ int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64 complex64 complex128
dtype finfo iinfo issubdtype result_type can_cast pi e inf nan newaxis
""".split())


class _StrideTricks:
    @staticmethod
    def as_strided(x: StrictArray, shape: Any = None, strides: Any = None, **kw: Any) -> StrictArray:
        return StrictArray(np.lib.stride_tricks.as_strided(_unwrap(x, "an argument"), shape, strides, **kw))


class _Lib:
    stride_tricks = _StrideTricks()


class _Namespace:
    """``xp`` of the strict backend: numpy's functions on strict arrays, results as strict arrays."""

    __name__ = "cryodaq.strict_backend.xp"
    ndarray = StrictArray
    lib = _Lib()

    def __init__(self) -> None:
        self.fft = _FFT()

    def __getattr__(self, name: str) -> Any:
        if name in _PASS:
            return getattr(np, name)
        if name not in _FUNCTIONS:
            raise AttributeError(f"strict backend: cupy has no {name!r} (or cryodaq does not use it on a device)")
        func = getattr(np, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            a = [_unwrap(x, "an argument") for x in args]
            kw = {k: _unwrap(v, "an argument") for k, v in kwargs.items()}
            return _wrap(func(*a, **kw))

        call.__name__ = name
        return call

    def asarray(self, a: Any, dtype: Any = None, **kw: Any) -> StrictArray:
        """A strict array stays one (cast to ``dtype``); a scalar becomes a 0-d array; host arrays are refused."""
        if isinstance(a, StrictArray):
            return a if dtype is None else a.astype(dtype, copy=False)
        if _is_scalar(a):
            return StrictArray(np.asarray(a, dtype=dtype))
        raise _refuse(f"xp.asarray() of a host {type(a).__name__}")

    array = asarray

    def ascontiguousarray(self, a: Any, dtype: Any = None) -> StrictArray:
        return StrictArray(np.ascontiguousarray(_unwrap(self.asarray(a), "an argument"), dtype=dtype))


class _FFT:
    """``cupy.fft``'s face over ``scipy.fft`` for strict arrays."""

    def __getattr__(self, name: str) -> Any:
        if name not in ("fft", "ifft", "rfft", "irfft", "fftfreq", "rfftfreq", "fftshift", "ifftshift"):
            raise AttributeError(f"strict backend fft has no {name!r}")
        func = getattr(scipy.fft, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            a = [_unwrap(x, "an argument") for x in args]
            kw = {k: _unwrap(v, "an argument") for k, v in kwargs.items()}
            return _wrap(func(*a, **kw))

        return call


xp = _Namespace()
fft = xp.fft
