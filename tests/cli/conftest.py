"""Helpers for the command-line tests: a quick variant of the demo station."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "stations" / "demo_mkid.yaml"


def write_quick_station(folder: Path) -> Path:
    """The demo MKID station with its live view on a free port (runs in parallel do not collide on
    5556) and no IQ-loop sweep (its 5 s wall-clock limit per step fails on a machine too loaded for the
    simulator to keep real time; the sweep has tests of its own)."""
    doc = yaml.safe_load(DEMO.read_text())
    doc["cryodaq"]["publish"]["address"] = "tcp://127.0.0.1:0"
    doc["cryodaq"]["pipeline"]["calibration"] = {"method": "baseline"}
    path = folder / "quick_station.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def quick_station(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_quick_station(tmp_path_factory.mktemp("station"))
