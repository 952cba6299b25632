"""The Python environment that runs rfmux's mock CRS: ``$RFMUX_PYTHON``, or a cached venv built once.

rfmux (PyPI, BSD-3-Clause) carries the mock CRS that serves a CRS board's real network
interface, but it imports PyQt6, Jupyter and numba: it cannot share a process with cryodaq's
PySide6 GUI, and it is no dependency of cryodaq. So the mock runs in an environment of its own:

- ``RFMUX_PYTHON`` (environment variable): a Python that has ``rfmux==1.7.0`` installed; or
- ``~/.cache/cryodaq/rfmux-venv`` (``CRYODAQ_CACHE`` moves ``~/.cache/cryodaq``): made on first
  use with ``python -m venv`` and ``pip install rfmux==1.7.0`` (about 2 minutes and 1.2 GB,
  once), under a file lock so that two processes (e.g. two test runs) never build it at once.

Which packages pip picked is kept in ``rfmux-venv/cryodaq-ready.json``; a venv without it is
rebuilt. ``python -m sim_instruments.servers.rfmux_mock`` builds it ahead of time and warms the
mock's numba cache (``.ci/run`` does, so the build is not counted in the test suite's time).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import venv
from collections.abc import Callable, Iterator
from pathlib import Path

from cryodaq.station.simulators import SimulatorUnavailableError

__all__ = ["ENV_VAR", "RFMUX_VERSION", "RfmuxUnavailableError", "cache_dir", "environment_lock", "rfmux_python"]

RFMUX_VERSION = "1.7.0"
ENV_VAR = "RFMUX_PYTHON"
INSTALL_HINT = (f"install it once with 'python -m sim_instruments.servers.rfmux_mock' (needs PyPI), or set "
                f"{ENV_VAR} to a Python that has 'pip install rfmux=={RFMUX_VERSION}'")
_READY = "cryodaq-ready.json"


class RfmuxUnavailableError(SimulatorUnavailableError):
    """rfmux's mock cannot run here (one line: why, and how to install rfmux); ``index_unreachable``
    says whether PyPI could not be reached."""

    def __init__(self, problem: str, *, index_unreachable: bool = False) -> None:
        self.index_unreachable = index_unreachable
        super().__init__(f"the rfmux mock CRS is unavailable: {problem}; {INSTALL_HINT}")


def cache_dir() -> Path:
    """``$CRYODAQ_CACHE`` or ``~/.cache/cryodaq``: where the venv and the warm-up markers live."""
    return Path(os.environ.get("CRYODAQ_CACHE") or Path.home() / ".cache" / "cryodaq")


def venv_dir() -> Path:
    return cache_dir() / "rfmux-venv"


@contextlib.contextmanager
def environment_lock() -> Iterator[None]:
    """An exclusive lock across processes while the environment is built or warmed."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / "rfmux-venv.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _venv_python(root: Path) -> Path:
    return root / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _has_rfmux(python: str | Path) -> str | None:
    """rfmux's installed version in ``python``'s environment (None when it has none); fast: no import of rfmux."""
    try:
        out = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('rfmux'))"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def index_reachable(host: str = "pypi.org", timeout_s: float = 5.0) -> bool:
    """Whether the package index answers on HTTPS (pip's failure is then not the network's)."""
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def rfmux_python(*, build: bool = True, progress: Callable[[str], None] | None = None) -> Path:
    """The Python that runs the mock: ``$RFMUX_PYTHON`` if set, else the cached venv, built if ``build``.

    Raises :class:`RfmuxUnavailableError` (one line: what failed and how to install rfmux).
    """
    given = os.environ.get(ENV_VAR)
    if given:
        version = _has_rfmux(given)
        if version is None:
            raise RfmuxUnavailableError(f"{ENV_VAR}={given} is not a Python with rfmux installed")
        return Path(given)
    python = _venv_python(venv_dir())
    if (venv_dir() / _READY).is_file() and python.is_file():
        return python
    if not build:
        raise RfmuxUnavailableError(f"no rfmux environment at {venv_dir()}")
    with environment_lock():
        if (venv_dir() / _READY).is_file() and python.is_file():  # another process built it meanwhile
            return python
        _build(progress or (lambda msg: print(msg, file=sys.stderr, flush=True)))
    return python


def _build(progress: Callable[[str], None]) -> None:
    root = venv_dir()
    if root.exists():
        shutil.rmtree(root)  # a half-built venv from an interrupted build
    progress(f"building the rfmux environment for the mock CRS at {root} (once; about 2 minutes, 1.2 GB)")
    started = time.monotonic()
    venv.EnvBuilder(with_pip=True).create(root)
    python = _venv_python(root)
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", f"rfmux=={RFMUX_VERSION}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        unreachable = not index_reachable()
        raise RfmuxUnavailableError(
            f"'pip install rfmux=={RFMUX_VERSION}' failed ({'PyPI is unreachable' if unreachable else tail})",
            index_unreachable=unreachable)
    freeze = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True).stdout.split()
    (root / _READY).write_text(json.dumps({"rfmux": RFMUX_VERSION, "python": sys.version.split()[0],
                                           "built_s": round(time.monotonic() - started, 1), "packages": freeze},
                                          indent=1))
    progress(f"rfmux environment ready in {time.monotonic() - started:.0f} s")
