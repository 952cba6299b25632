"""The station files and sweep scripts that ship with cryodaq, found by name (``demo_mkid``) or by path.

They live in ``stations/`` at the top of the repository, which setup.py installs as the
package ``cryodaq.stations``; this module finds them through :mod:`importlib.resources`, so a
non-editable install (``pip install .``) finds them from any directory. It is the one place
that knows where they are.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["SCRIPTS_DIR", "STATIONS_DIR", "script_path", "shipped_scripts", "shipped_stations", "station_path"]


def _shipped_dir() -> Path:
    try:
        root = files("cryodaq.stations")
    except ModuleNotFoundError:
        # An editable install made before stations/ was mapped into the package (its import
        # finder does not know cryodaq.stations): the source tree's folder is the same one.
        return Path(__file__).resolve().parents[2] / "stations"
    return Path(str(root))  # pip installs unpacked: a folder on disk


#: the shipped station files (the ``cryodaq.stations`` package: ``stations/`` of the source tree)
STATIONS_DIR = _shipped_dir()
#: the shipped sweep scripts
SCRIPTS_DIR = STATIONS_DIR / "scripts"


def shipped_stations() -> list[str]:
    """Names of the shipped stations (``demo_mkid``, ``demo_tes``, ...)."""
    return sorted(p.stem for p in STATIONS_DIR.glob("*.yaml"))


def shipped_scripts() -> list[str]:
    """Names of the shipped sweep scripts (``resonator_overnight``, ``tes_iv``, ...)."""
    return sorted(p.stem for p in SCRIPTS_DIR.glob("*.py") if not p.name.startswith("_"))


def _find(name: str | Path, folder: Path, suffix: str) -> Path:
    path = Path(name)
    if path.exists():
        return path
    for candidate in (folder / path.name, folder / f"{path.name}{suffix}"):
        if candidate.is_file():
            return candidate
    return path


def station_path(name: str | Path) -> Path:
    """A station file: ``name`` if that file exists, else the shipped station of that name (with or
    without ``.yaml``), else ``name`` unchanged (loading it then names the missing file)."""
    return _find(name, STATIONS_DIR, ".yaml")


def script_path(name: str | Path) -> Path:
    """A sweep script: ``name`` if that file exists, else the shipped script of that name (with or
    without ``.py``), else ``name`` unchanged (loading it then names the missing file)."""
    return _find(name, SCRIPTS_DIR, ".py")
