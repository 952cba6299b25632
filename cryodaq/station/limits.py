"""Hardware safety limits from the station file, enforced as qcodes validators.

qcodes runs every validator before a set command is formatted and written, so a
value outside a limit never reaches the instrument. qcodes' own ``limits:`` key
*replaces* a parameter's validator; these are *added* to the driver's own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qcodes.parameters import ParameterBase
from qcodes.validators import Validator

from cryodaq.errors import SafetyLimitError


class SafetyLimit(Validator[Any]):
    """Refuse values (or any element of an array value) outside ``[low, high]``."""

    is_numeric = True

    def __init__(self, low: float, high: float, instrument: str, parameter: str) -> None:
        self.low, self.high = float(low), float(high)
        self.instrument, self.parameter = instrument, parameter
        self._valid_values = (self.low,)

    def validate(self, value: Any, context: str = "") -> None:
        arr = np.asarray(value, dtype=float)
        if arr.size == 0:
            return
        if not (np.all(np.isfinite(arr)) and arr.min() >= self.low and arr.max() <= self.high):
            raise SafetyLimitError(self.instrument, self.parameter, value, f"[{self.low:g}, {self.high:g}]")

    def __repr__(self) -> str:
        return f"<SafetyLimit [{self.low:g}, {self.high:g}]>"


def apply_safety_limit(parameter: ParameterBase, low: float, high: float) -> SafetyLimit:
    """Add a station safety limit to ``parameter`` (and to what it delegates to)."""
    instrument = getattr(parameter.root_instrument, "name", "?")
    name = parameter.full_name.removeprefix(f"{instrument}_") if instrument != "?" else parameter.full_name
    limit = SafetyLimit(low, high, instrument, name)
    parameter.add_validator(limit)
    return limit
