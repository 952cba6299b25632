"""A readout board's clocks: the ADC sample clock (a crystal, a little off nominal) and the clock that
stamps its packets (disciplined to UTC, or its own free-running counter).

True time is the host's UTC (``time.time_ns()`` in the simulator process): the physics happens then.
Sample ``n`` of a stream started at true time ``start_ns`` is taken at::

    T(n) = start_ns + n * 1e9 / (fs * (1 + drift_ppm * 1e-6))

and the packet holding it is stamped with

- ``disciplined``: ``T(n) + offset + step(T) + jitter`` — a clock that follows UTC (NTP on the host,
  PTP, a PPS input, White Rabbit): the stamps show the ADC crystal's drift, and the offset is the
  clock's error (host clock error, cable delay);
- not disciplined: ``start_ns + offset + n * 1e9 / fs`` — the board's counter at the nominal rate,
  set from the host clock at start: the drift is invisible in the stamps and grows as an error.

``steps`` are sudden changes of the stamping clock (an NTP step after ``after_s`` seconds of the
stream). Two boards "share a PPS" by both being disciplined ``pps`` clocks: their offsets are then
their cable delays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: spawn key of the stamp-jitter random streams under the world seed
_SEED_KEY = 0xC10C


@dataclass
class BoardClockConfig:
    """One board's clocks (module docstring). ``source`` and ``uncertainty_s`` are what the board
    reports (``TIME:SOUR?``); None: it states no uncertainty."""

    source: str = "board_counter"
    disciplined: bool = False
    offset_s: float = 0.0
    drift_ppm: float = 0.0
    jitter_s: float = 0.0
    uncertainty_s: float | None = None
    steps: list[list[float]] = field(default_factory=list)  # [[after_s, size_s], ...]

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source or "," in self.source:
            raise ValueError(f"clock.source must be a name without commas, got {self.source!r}")
        if self.jitter_s < 0:
            raise ValueError(f"clock.jitter_s must be >= 0, got {self.jitter_s}")
        if not -1000 < self.drift_ppm < 1000:
            raise ValueError(f"clock.drift_ppm must be within +-1000 ppm, got {self.drift_ppm}")
        for step in self.steps:
            if not (isinstance(step, (list, tuple)) and len(step) == 2 and step[0] >= 0):
                raise ValueError(f"clock.steps: each step is [after_s >= 0, size_s], got {step!r}")


class BoardClock:
    """Sample times and packet stamps of one stream (started at true UTC ``start_ns``)."""

    def __init__(self, config: BoardClockConfig, fs_hz: float, start_ns: int, seed: int, key: tuple[int, ...]) -> None:
        self.config = config
        self.fs = float(fs_hz)
        self.start_ns = int(start_ns)
        self.true_rate_hz = self.fs * (1.0 + config.drift_ppm * 1e-6)
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(_SEED_KEY, *key))))
        self._steps = sorted((float(a), float(s)) for a, s in config.steps)

    def true_ns(self, sample: float | np.ndarray) -> np.ndarray:
        """True UTC (int64 ns) of sample index(es); computed relative to the start (a float64 of the
        absolute time would keep only ~256 ns)."""
        return self.start_ns + np.rint(np.asarray(sample, dtype=np.float64) * (1e9 / self.true_rate_hz)).astype(np.int64)

    def sample_of(self, t_ns: np.ndarray) -> np.ndarray:
        """Fractional sample index at true UTC ``t_ns`` (int64 ns)."""
        return (np.asarray(t_ns, np.int64) - self.start_ns).astype(np.float64) * (self.true_rate_hz / 1e9)

    def stamp(self, sample: int) -> int:
        """The stamp of a packet whose first sample is ``sample`` (called once per packet, in order)."""
        c = self.config
        rel = sample * (1e9 / (self.true_rate_hz if c.disciplined else self.fs))  # ns since start, float
        elapsed_s = sample / self.true_rate_hz
        rel += c.offset_s * 1e9 + sum(size for after, size in self._steps if elapsed_s >= after) * 1e9
        if c.jitter_s:
            rel += self._rng.normal(0.0, c.jitter_s * 1e9)
        return self.start_ns + int(round(rel))

    def describe(self) -> str:
        """``TIME:SOUR?`` reply: ``source,uncertainty_s|UNKNOWN,disciplined``."""
        c = self.config
        unc = "UNKNOWN" if c.uncertainty_s is None else repr(float(c.uncertainty_s))
        return f"{c.source},{unc},{1 if c.disciplined else 0}"
