"""Provenance helpers every writer of run metadata shares: JSON-safe values and software versions."""

from __future__ import annotations

import functools
import json
import platform
import subprocess
from datetime import date, datetime
from importlib.metadata import PackageNotFoundError, distribution, version
from pathlib import Path
from typing import Any

import numpy as np

import cryodaq

__all__ = ["jsonable", "software_commit", "software_versions"]

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


@functools.lru_cache(maxsize=1)
def software_commit() -> dict[str, Any]:
    """The commit cryodaq runs from: ``{"commit": sha or None, "dirty": bool or None, "source": how it was found}``.

    From ``git`` when cryodaq is a checkout (an editable install), else from the install's PEP 610
    ``direct_url.json`` (``pip install git+...`` records the commit), else unknown. Looked up once
    per process.
    """
    here = Path(cryodaq.__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=5, check=True).stdout
        return {"commit": sha, "dirty": bool(status.strip()), "source": "git"}
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        info = json.loads(distribution("cryodaq").read_text("direct_url.json") or "{}")
        vcs = info.get("vcs_info") or {}
        if vcs.get("commit_id"):
            return {"commit": vcs["commit_id"], "dirty": None, "source": "direct_url.json"}
    except (PackageNotFoundError, ValueError):
        pass
    return {"commit": None, "dirty": None, "source": "unknown"}


def software_versions() -> dict[str, str]:
    """Versions of cryodaq (and its commit, :func:`software_commit`; ``+dirty`` with uncommitted changes),
    Python and the numerical packages that made a result."""
    out = {"cryodaq": cryodaq.__version__, "python": platform.python_version()}
    commit = software_commit()
    if commit["commit"]:
        out["cryodaq_commit"] = commit["commit"] + ("+dirty" if commit["dirty"] else "")
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out
