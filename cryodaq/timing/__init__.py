"""cryodaq.timing: time you can trust — clock models with uncertainty, host clock monitoring, coincidences.

- :class:`ClockTracker` fits a stream's sample index -> UTC map while it runs (offset, drift, jitter;
  jumps recorded, never turned into non-monotonic times); :class:`ClockModel` is the stored fit.
- :data:`TIME_SOURCES`: the kinds of time source (board counter, host NTP, PTP, PPS, White Rabbit,
  IRIG-B) and what each is worth.
- :func:`read_host_clock`: the host's chrony / ntpd offset and error estimate, logged as housekeeping.
- :func:`coincide` (``cryodaq coincide``): runs joined in time on Dask, clock offsets between stations
  estimated from the coincidences, accidentals expected vs measured; :func:`timing_report`
  (``cryodaq info --timing``).
- docs/timing.md tells the whole story.
"""

from typing import TYPE_CHECKING

from cryodaq._lazy import lazy_exports

if TYPE_CHECKING:  # the public names (explicit re-exports); lazy_exports imports each on first use
    from cryodaq.timing.clock import (
        ClockJump as ClockJump,
        ClockModel as ClockModel,
        ClockSegment as ClockSegment,
        ClockTracker as ClockTracker,
    )
    from cryodaq.timing.coincidences import (
        Accidentals as Accidentals,
        CoincidenceResult as CoincidenceResult,
        OffsetEstimate as OffsetEstimate,
        coincide as coincide,
        estimate_offset as estimate_offset,
    )
    from cryodaq.timing.host_clock import (
        HostClockMonitor as HostClockMonitor,
        HostClockReading as HostClockReading,
        parse_chronyc_tracking as parse_chronyc_tracking,
        parse_ntpq_rv as parse_ntpq_rv,
        read_host_clock as read_host_clock,
    )
    from cryodaq.timing.report import timing_report as timing_report
    from cryodaq.timing.sources import (
        TIME_SOURCES as TIME_SOURCES,
        TimeSourceKind as TimeSourceKind,
        stated_uncertainty_s as stated_uncertainty_s,
    )

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
