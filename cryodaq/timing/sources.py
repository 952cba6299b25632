"""Where a stream's timestamps come from, and what each kind of time source is worth.

A readout source states its time base (:class:`cryodaq.readout.source.TimeBase`: a source name,
an uncertainty, a "disciplined" flag). The names are the ones below; each has a typical absolute
uncertainty, used when the source states none, and a rate uncertainty: how fast the stamps may
wander from UTC when nothing disciplines them (a free-running crystal). The figures are typical
values (docs/timing.md lists their origin), not guarantees: a station that knows better states
its own ``uncertainty_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryodaq.readout.source import TimeBase

__all__ = ["TIME_SOURCES", "TimeSourceKind", "source_kind", "stated_uncertainty_s"]


@dataclass(frozen=True)
class TimeSourceKind:
    """One kind of time source: what it is, its typical absolute uncertainty, its rate uncertainty."""

    name: str
    description: str
    typical_uncertainty_s: float | None  # None: the stamps say nothing absolute (e.g. undisciplined IRIG-B)
    rate_uncertainty_ppm: float = 0.0  # > 0: stamps that nothing disciplines drift from UTC this fast at most


TIME_SOURCES: dict[str, TimeSourceKind] = {k.name: k for k in (
    TimeSourceKind("board_counter", "the board's free-running sample counter, set from the host clock at stream "
                   "start", 10e-3, rate_uncertainty_ppm=20.0),
    TimeSourceKind("host_ntp", "the host's system clock, disciplined by NTP (chrony or ntpd)", 10e-3),
    TimeSourceKind("ptp", "IEEE 1588 precision time protocol", 1e-6),
    TimeSourceKind("pps", "a pulse-per-second input (GPS-disciplined)", 100e-9),
    TimeSourceKind("white_rabbit", "White Rabbit (sub-ns PTP over synchronous Ethernet)", 1e-9),
    TimeSourceKind("irig_b", "an IRIG-B decoder (CRS boards); UTC only while disciplined", 1e-6),
    # cryodaq's boards before timing was modelled: the host's UTC at stream start, then the counter
    TimeSourceKind("host_utc", "the host's UTC at stream start, then the board's counter", 10e-3,
                   rate_uncertainty_ppm=20.0),
)}


def source_kind(time_base: TimeBase) -> TimeSourceKind:
    """The kind of ``time_base.source`` (an unknown name: no stated figures, no rate bound)."""
    kind = TIME_SOURCES.get(time_base.source)
    if kind is None:
        return TimeSourceKind(time_base.source, time_base.detail or "a time source cryodaq does not know", None)
    return kind


def stated_uncertainty_s(time_base: TimeBase) -> float | None:
    """The absolute 1-sigma uncertainty of the stamps: what the source states, else its kind's typical value.

    An IRIG-B (or any) source that is not disciplined and states nothing has none: its stamps are a
    counter, not UTC.
    """
    if time_base.uncertainty_s is not None:
        return float(time_base.uncertainty_s)
    kind = source_kind(time_base)
    if time_base.source == "irig_b" and not time_base.disciplined:
        return None
    return kind.typical_uncertainty_s
