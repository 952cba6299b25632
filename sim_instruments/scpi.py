"""Small helpers shared by the SCPI-like faces: an error queue and argument parsing."""

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


def parse_float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ScpiError(-104, f"Data type error; {what} expects a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ScpiError(-104, f"Data type error; {what} expects a finite number, got {text!r}")
    return value


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
