"""Provenance helpers every writer of run metadata shares: JSON-safe values and software versions."""

from __future__ import annotations

import json
import platform
from datetime import date, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

import cryodaq

__all__ = ["jsonable", "software_versions"]

#: packages whose versions a stored result records (those that are installed)
_PACKAGES = ("numpy", "scipy", "zarr", "xarray", "dask", "distributed", "qcodes")


def jsonable(obj: Any) -> Any:
    """``obj`` in plain JSON types (for zarr attributes): numpy scalars and arrays, dates, paths, ...

    Unknown objects become their ``str``; NaN and infinities are kept (zarr writes them).
    """

    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, datetime | date):
            return o.isoformat()
        return str(o)

    return json.loads(json.dumps(obj, default=default, allow_nan=True))


def software_versions() -> dict[str, str]:
    """Versions of cryodaq, Python and the numerical packages that made a result."""
    out = {"cryodaq": cryodaq.__version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out
