"""The station files that ship with cryodaq, found by name (``demo_mkid``) or by path."""

from __future__ import annotations

from pathlib import Path

__all__ = ["STATIONS_DIR", "shipped_stations", "station_path"]

#: the shipped station files (``stations/`` of the source tree)
STATIONS_DIR = Path(__file__).resolve().parents[2] / "stations"


def shipped_stations() -> list[str]:
    """Names of the shipped stations (``demo_mkid``, ``demo_tes``, ...)."""
    return sorted(p.stem for p in STATIONS_DIR.glob("*.yaml"))


def station_path(name: str | Path) -> Path:
    """A station file: ``name`` if that file exists, else the shipped station of that name (with or
    without ``.yaml``), else ``name`` unchanged (loading it then names the missing file)."""
    path = Path(name)
    if path.exists():
        return path
    for candidate in (STATIONS_DIR / path.name, STATIONS_DIR / f"{path.name}.yaml"):
        if candidate.is_file():
            return candidate
    return path
