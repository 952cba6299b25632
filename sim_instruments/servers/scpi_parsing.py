"""Small helpers shared by the SCPI-like faces: an error queue, message splitting, argument parsing."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable

NO_ERROR = '0,"No error"'


class ScpiError(Exception):
    """A command error: SCPI code and message, queued for SYST:ERR?."""

    def __init__(self, code: int, message: str) -> None:
        self.code, self.message = code, message
        super().__init__(f'{code},"{message}"')


def undefined_header(header: str) -> ScpiError:
    return ScpiError(-113, f"Undefined header; {header}")


class ErrorQueue:
    """The instrument's error queue (oldest first, bounded like a real one)."""

    def __init__(self, size: int = 20) -> None:
        self._q: deque[str] = deque()
        self._size = size
        self._lock = threading.Lock()

    def push(self, error: ScpiError) -> None:
        with self._lock:
            if len(self._q) >= self._size:
                self._q[-1] = '-350,"Queue overflow"'
            else:
                self._q.append(str(error))

    def pop(self) -> str:
        with self._lock:
            return self._q.popleft() if self._q else NO_ERROR

    def clear(self) -> None:
        with self._lock:
            self._q.clear()


def split_command(command: str) -> tuple[str, str]:
    """('HEADER', 'args') with the header upper-cased."""
    parts = command.strip().split(None, 1)
    return parts[0].upper(), (parts[1].strip() if len(parts) > 1 else "")


def _split_outside_quotes(text: str, sep: str, keep_quotes: bool) -> list[str]:
    """``text`` cut at ``sep`` where it is not inside '...' or "..." (each part stripped)."""
    parts, current, quote = [], [], ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
                if keep_quotes:
                    current.append(ch)
            else:
                current.append(ch)
        elif ch in "'\"":
            quote = ch
            if keep_quotes:
                current.append(ch)
        elif ch == sep:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    return parts


def split_program(line: str) -> list[str]:
    """The ``;``-separated commands of a program message (quoted strings kept whole)."""
    return [p for p in _split_outside_quotes(line, ";", keep_quotes=True) if p]


def unquote(text: str) -> str:
    """``'Trc1'`` or ``"Trc1"`` -> ``Trc1`` (whitespace around it dropped)."""
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    return t


def split_args(text: str) -> list[str]:
    """Comma-separated arguments, quotes respected and stripped, whitespace around each dropped."""
    return _split_outside_quotes(text, ",", keep_quotes=False) if text.strip() else []


_SI_PREFIX = {"K": "e3", "M": "e6", "G": "e9", "U": "e-6", "N": "e-9", "P": "e-12"}


def split_units(text: str, units: tuple[str, ...] = ("HZ", "DBM", "DB", "S")) -> str:
    """``'5GHz'`` -> ``'5e9'``: strip a unit and apply an SI prefix, as SCPI numeric parameters allow."""
    t = text.strip()
    upper = t.upper()
    for unit in units:
        if upper.endswith(unit) and len(upper) > len(unit):
            body = t[: -len(unit)].strip()
            if body and body[-1].upper() in _SI_PREFIX and unit in ("HZ", "S"):
                # 'MHZ' is mega-hertz but 'MS' is milli-second: SCPI's only ambiguity
                if unit == "S" and body[-1].upper() == "M":
                    return body[:-1] + "e-3"
                return body[:-1] + _SI_PREFIX[body[-1].upper()]
            return body
    return t


def parse_float(text: str, what: str, unit: str = "") -> float:
    """A finite number; with ``unit`` (``"HZ"``) also ``10000000Hz`` or ``5GHz`` (see :func:`split_units`)."""
    try:
        value = float(split_units(text, (unit,)) if unit else text)
    except ValueError:
        raise ScpiError(-104, f"Data type error; {what} expects a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ScpiError(-104, f"Data type error; {what} expects a finite number, got {text!r}")
    return value


def parse_int(text: str, what: str, lo: int, hi: int) -> int:
    """An integer in ``[lo, hi]``; drivers send ``201.0000000`` for 201 (-222 otherwise)."""
    value = parse_float(text, what)
    if value != round(value) or not lo <= value <= hi:
        raise ScpiError(-222, f"Data out of range; {what} must be an integer in [{lo}, {hi}], got {text.strip()!r}")
    return round(value)


def parse_floats(text: str, what: str) -> list[float]:
    if not text.strip():
        raise ScpiError(-109, f"Missing parameter; {what}")
    return [parse_float(p.strip(), what) for p in text.split(",")]


def parse_bool(text: str, what: str) -> bool:
    t = text.strip().upper()
    if t in ("1", "ON"):
        return True
    if t in ("0", "OFF"):
        return False
    if not t:
        raise ScpiError(-109, f"Missing parameter; {what}")
    raise ScpiError(-104, f"Data type error; {what} expects ON|OFF|1|0, got {text!r}")


def no_args(args: str, header: str) -> None:
    if args:
        raise ScpiError(-108, f"Parameter not allowed; {header} takes no parameter")


def fmt_floats(values: Iterable[float]) -> str:
    """Comma list of floats at repr precision (round-trips exactly)."""
    return ",".join(repr(float(v)) for v in values)
