"""The resistance thermometer every simulated fridge face reads: one illustrative RuOx curve."""

from __future__ import annotations

import math


def ruox_ohm(temperature_k: float) -> float:
    """Illustrative RuOx-like sensor curve R = 1 kΩ exp((1 K / T)**0.25) (the faces' resistance readings)."""
    return 1000.0 * math.exp((1.0 / max(temperature_k, 1e-4)) ** 0.25)
