"""The host's clock as its time daemon sees it: chrony (``chronyc -c tracking``) or ntpd (``ntpq -c rv``).

Stamps taken from the host's clock (``host_ntp`` sources, and counters set from it at stream
start) are only as good as the host's synchronisation. Where the host runs chrony or ntpd, a run
logs the daemon's view as housekeeping (``host_clock_offset`` and ``host_clock_error``, in s) and
keeps a summary in its clock model; where it runs neither, the model says so.

- ``offset_s``: host clock minus the daemon's estimate of true time (positive: the host is ahead).
  chrony reports the correction to apply ("System time": positive when the host is slow), ntpd the
  offset of the reference from the host (positive when the host is behind): both are turned around.
- ``error_s``: the bound chrony documents for the clock's error,
  ``|offset| + root dispersion + root delay / 2`` (applied to ntpd's ``rootdisp``/``rootdelay`` too).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["HostClockMonitor", "HostClockReading", "parse_chronyc_tracking", "parse_ntpq_rv", "read_host_clock"]


@dataclass(frozen=True)
class HostClockReading:
    """One reading of the host's time daemon (module docstring for the signs)."""

    daemon: str  # "chrony" or "ntpd"
    offset_s: float
    error_s: float
    stratum: int
    reference: str
    synchronized: bool
    leap: str


class HostClockParseError(ValueError):
    """The daemon's output was not in the expected format."""


def parse_chronyc_tracking(text: str) -> HostClockReading:
    """A reading from the CSV line ``chronyc -c tracking`` prints (14 fields: reference ID, name,
    stratum, reference time, system-time correction, last offset, RMS offset, frequency, residual
    frequency, skew, root delay, root dispersion, update interval, leap status)."""
    line = text.strip().splitlines()[-1] if text.strip() else ""
    fields = line.split(",")
    if len(fields) != 14:
        raise HostClockParseError(f"chronyc -c tracking: expected 14 comma-separated fields, got {len(fields)}: {line!r}")
    try:
        stratum = int(fields[2])
        correction = float(fields[4])  # to add to the host's time: > 0 when the host is slow
        root_delay, root_dispersion = float(fields[10]), float(fields[11])
    except ValueError as exc:
        raise HostClockParseError(f"chronyc -c tracking: a number did not parse ({exc}): {line!r}") from None
    leap = fields[13].strip()
    offset = -correction
    return HostClockReading("chrony", offset, abs(offset) + root_dispersion + root_delay / 2, stratum,
                            fields[1] or fields[0], leap != "Not synchronised" and 0 < stratum < 16, leap)


_NTPQ_PAIR = re.compile(r'(\w+)=("[^"]*"|[^,\s]+)')
_NTPQ_LEAP = {"00": "Normal", "01": "Insert second", "10": "Delete second", "11": "Not synchronised"}


def parse_ntpq_rv(text: str) -> HostClockReading:
    """A reading from ``ntpq -c rv`` (the system variables: ``offset``, ``rootdelay`` and ``rootdisp`` in ms)."""
    pairs = {k: v.strip('"') for k, v in _NTPQ_PAIR.findall(text)}
    missing = [k for k in ("offset", "rootdelay", "rootdisp", "stratum") if k not in pairs]
    if missing:
        raise HostClockParseError(f"ntpq -c rv: no {', '.join(missing)} in {text.strip()[:200]!r}")
    try:
        offset_ms = float(pairs["offset"])  # reference minus host: > 0 when the host is behind
        delay_ms, disp_ms = float(pairs["rootdelay"]), float(pairs["rootdisp"])
        stratum = int(pairs["stratum"])
    except ValueError as exc:
        raise HostClockParseError(f"ntpq -c rv: a number did not parse ({exc})") from None
    leap = _NTPQ_LEAP.get(pairs.get("leap", ""), pairs.get("leap", "unknown"))
    offset = -offset_ms * 1e-3
    synced = leap != "Not synchronised" and 0 < stratum < 16 and "sync_unspec" not in text
    return HostClockReading("ntpd", offset, abs(offset) + (disp_ms + delay_ms / 2) * 1e-3, stratum,
                            pairs.get("refid", ""), synced, leap)


Runner = Callable[[list[str]], str]


def _run(command: list[str], timeout_s: float) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=True)
    return done.stdout


def read_host_clock(*, which: Callable[[str], str | None] = shutil.which, runner: Runner | None = None,
                    timeout_s: float = 2.0) -> tuple[HostClockReading | None, str]:
    """(reading, how) from chrony if its client is on PATH, else ntpd's; (None, why not) when neither
    answers. ``which``/``runner`` stand in for the system in tests."""
    run = runner or (lambda cmd: _run(cmd, timeout_s))
    tried = []
    for tool, command, parse in (("chronyc", ["chronyc", "-c", "tracking"], parse_chronyc_tracking),
                                 ("ntpq", ["ntpq", "-c", "rv"], parse_ntpq_rv)):
        path = which(tool)
        if path is None:
            tried.append(f"no {tool} on PATH")
            continue
        try:
            return parse(run([path, *command[1:]])), " ".join(command)
        except (OSError, subprocess.SubprocessError, HostClockParseError) as exc:
            tried.append(f"{' '.join(command)} failed: {exc}")
    return None, "; ".join(tried)


class HostClockMonitor:
    """Reads the host clock now and then (the session's housekeeping thread) and keeps a summary.

    The first failure to find a daemon is remembered: a host without one is not asked again.
    """

    def __init__(self, reader: Callable[[], tuple[HostClockReading | None, str]] = read_host_clock) -> None:
        self._reader = reader
        self.last: HostClockReading | None = None
        self.how = ""
        self.unavailable = ""
        self.readings = 0
        self.max_abs_offset_s = 0.0
        self.max_error_s = 0.0
        self.unsynchronized = 0

    def read(self) -> HostClockReading | None:
        """A new reading (None when no daemon answers)."""
        if self.unavailable:
            return None
        reading, how = self._reader()
        if reading is None:
            self.unavailable = how or "no time daemon answered"
            return None
        self.last, self.how = reading, how
        self.readings += 1
        self.max_abs_offset_s = max(self.max_abs_offset_s, abs(reading.offset_s))
        self.max_error_s = max(self.max_error_s, reading.error_s)
        self.unsynchronized += 0 if reading.synchronized else 1
        return reading

    def summary(self) -> dict[str, Any]:
        """What the clock model stores as ``host_clock``."""
        if self.last is None:
            return {"daemon": None, "detail": self.unavailable or "not read"}
        r = self.last
        return {"daemon": r.daemon, "command": self.how, "readings": self.readings, "offset_s": r.offset_s,
                "error_s": r.error_s, "max_abs_offset_s": self.max_abs_offset_s, "max_error_s": self.max_error_s,
                "stratum": r.stratum, "reference": r.reference, "leap": r.leap,
                "unsynchronized_readings": self.unsynchronized}
