"""A pixel array of calorimeters on one substrate, read out by a demultiplexing board with its own clock.

The arrays of a multi-station world (``world.arrays``, one per ``detector_array_board`` face, keyed by
the instrument's name). Each pixel is a TES-like calorimeter at a fixed operating point (the bias
and SQUID physics of :mod:`sim_instruments.world.tes_array` are left out: these arrays are about
time): a hit of energy ``E`` lowers the current by ``A_sat · tanh(pulse_a_per_ev · E · p(t) / A_sat)``
with the two-pole shape ``p`` of :func:`~sim_instruments.world.photons.pulse_peak` (peak 1), plus
white current noise. The board digitises ``counts_per_ampere · I`` and streams all pixels in each
packet, like the TES board (same commands: ``CHAN:COUN?``, ``CHAN:CPA?``, ``ADC:CPV?``).

Hits come from the world's :class:`~sim_instruments.world.particles.ParticleSource` in true UTC;
the board's :class:`~sim_instruments.world.board_clock.BoardClock` turns them into sample positions
(its ADC crystal may run off nominal) and stamps the packets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim_instruments.world.board_clock import BoardClock, BoardClockConfig
from sim_instruments.world.noise import WhiteNoise
from sim_instruments.world.particles import ArrayGeometry, ParticleSource
from sim_instruments.world.photons import pulse_peak

#: spawn key of the arrays' noise streams under the world seed
_SEED_KEY = 0xA77
INT16_MIN, INT16_MAX = -32768, 32767


@dataclass
class DetectorArrayConfig:
    """One array (SI units but for the geometry in mm): layout, substrate, response, noise, sources, clock."""

    n_x: int = 4
    n_y: int = 4
    pitch_mm: float = 2.5
    centre_mm: list[float] = field(default_factory=lambda: [0.0, 0.0])
    z_mm: float = 0.0
    #: substrate beyond the outer pixels' centres, on each side
    substrate_margin_mm: float = 2.5
    substrate_thickness_mm: float = 0.5
    phonon_collection: float = 0.01
    phonon_length_mm: float = 2.0
    phonon_speed_mm_per_us: float = 6.0
    fs_hz: float = 50_000.0
    samples_per_packet: int = 512
    pulse_a_per_ev: float = 1.5e-9
    saturation_a: float = 30e-6
    tau_rise_s: float = 30e-6
    tau_fall_s: float = 300e-6
    pulse_length_taus: float = 10.0
    white_noise_a_per_rthz: float = 20e-12
    counts_per_ampere: float = 4.1e8
    photon_rate_hz: float = 1.0
    photon_lines_ev: list[float] = field(default_factory=lambda: [5898.8, 6490.5])
    photon_weights: list[float] = field(default_factory=lambda: [0.88, 0.12])
    glitch_rate_hz: float = 0.01
    glitch_energy_kev: list[float] = field(default_factory=lambda: [30.0, 300.0])
    clock: BoardClockConfig = field(default_factory=BoardClockConfig)

    def __post_init__(self) -> None:
        if isinstance(self.clock, dict):
            self.clock = BoardClockConfig(**self.clock)
        for name in ("pitch_mm", "substrate_thickness_mm", "phonon_length_mm", "phonon_speed_mm_per_us", "fs_hz",
                     "pulse_a_per_ev", "saturation_a", "counts_per_ampere"):
            if not getattr(self, name) > 0:
                raise ValueError(f"arrays: {name} must be > 0, got {getattr(self, name)!r}")
        if not (isinstance(self.n_x, int) and isinstance(self.n_y, int) and 1 <= self.n_x * self.n_y <= 1024):
            raise ValueError(f"arrays: n_x x n_y must be 1..1024 pixels, got {self.n_x} x {self.n_y}")
        lo, hi = self.glitch_energy_kev
        if not 0 < lo <= hi:
            raise ValueError(f"arrays: glitch_energy_kev must be [low, high] with 0 < low <= high, got {self.glitch_energy_kev}")

    @property
    def n_channels(self) -> int:
        return self.n_x * self.n_y

    def pixel_xy_mm(self) -> np.ndarray:
        """(n_channels, 2) pixel centres, channel = iy * n_x + ix."""
        ix, iy = np.meshgrid(np.arange(self.n_x), np.arange(self.n_y))
        x = self.centre_mm[0] + (ix.ravel() - (self.n_x - 1) / 2) * self.pitch_mm
        y = self.centre_mm[1] + (iy.ravel() - (self.n_y - 1) / 2) * self.pitch_mm
        return np.stack([x, y], axis=1)

    def geometry(self, name: str) -> ArrayGeometry:
        half = ((self.n_x - 1) / 2 * self.pitch_mm + self.substrate_margin_mm,
                (self.n_y - 1) / 2 * self.pitch_mm + self.substrate_margin_mm)
        return ArrayGeometry(
            name=name, pixel_xy_mm=self.pixel_xy_mm(), z_mm=float(self.z_mm), half_size_mm=half,
            centre_mm=(float(self.centre_mm[0]), float(self.centre_mm[1])), thickness_mm=self.substrate_thickness_mm,
            phonon_collection=self.phonon_collection, phonon_length_mm=self.phonon_length_mm,
            phonon_speed_mm_per_us=self.phonon_speed_mm_per_us, glitch_rate_hz=self.glitch_rate_hz,
            glitch_energy_kev=(float(self.glitch_energy_kev[0]), float(self.glitch_energy_kev[1])),
            photon_rate_hz=self.photon_rate_hz, photon_lines_ev=tuple(self.photon_lines_ev),
            photon_weights=tuple(self.photon_weights),
        )


class DetectorArrayModel:
    """One array of the world: its configuration, its index among the particle source's arrays, its streams."""

    def __init__(self, name: str, config: DetectorArrayConfig, particles: ParticleSource, seed: int) -> None:
        self.name = name
        self.config = config
        self.particles = particles
        self.index = particles.index(name)
        self.seed = int(seed)
        self._n_streams = 0

    @property
    def n_channels(self) -> int:
        return self.config.n_channels

    def counts_per_ampere(self) -> np.ndarray:
        return np.full(self.n_channels, float(self.config.counts_per_ampere))

    def new_stream(self, start_ns: int) -> DetectorArrayStream:
        """A stream whose sample 0 is taken at true UTC ``start_ns``."""
        stream = DetectorArrayStream(self, self._n_streams, start_ns)
        self._n_streams += 1
        return stream


class DetectorArrayStream:
    """(n, n_channels) int16 blocks of one stream, forward in sample index; any block split gives the same
    samples (hits by true time, noise by fixed seeded chunks)."""

    def __init__(self, array: DetectorArrayModel, stream_id: int, start_ns: int) -> None:
        c = array.config
        self.array = array
        self.fs = float(c.fs_hz)
        key = (array.index, stream_id)
        self.clock = BoardClock(c.clock, self.fs, start_ns, array.seed, key)
        self._noise = WhiteNoise(array.seed, (_SEED_KEY, *key, 1))
        self._sigma = c.white_noise_a_per_rthz * math.sqrt(self.fs / 2.0)
        self._tr, self._tf = c.tau_rise_s * self.fs, c.tau_fall_s * self.fs  # in samples
        self._peak = pulse_peak(c.tau_rise_s, c.tau_fall_s)
        self._len = c.pulse_length_taus * self._tf
        self._next = 0

    def block(self, first: int, n: int) -> np.ndarray:
        if first < self._next:
            raise ValueError(f"array {self.array.name}: block at sample {first} goes back before {self._next}")
        self._next = first + n
        c = self.array.config
        n_ch = c.n_channels
        lin = np.zeros((n, n_ch))
        t0 = int(self.clock.true_ns(first - self._len)) - 1
        t1 = int(self.clock.true_ns(first + n)) + 1
        hits = self.array.particles.hits(t0, t1, self.array.index)
        if hits.size:
            # every (hit, sample) pair of the pulses in this block at once, then one scatter-add
            pos = self.clock.sample_of(hits["t_ns"])
            scale = c.pulse_a_per_ev * hits["energy_ev"] / self._peak
            lo = np.maximum(np.ceil(pos).astype(np.int64) - first, 0)
            hi = np.minimum(np.ceil(pos + self._len).astype(np.int64) - first, n)
            count = np.maximum(hi - lo, 0)
            if count.sum():
                which = np.repeat(np.arange(hits.size), count)
                row = lo[which] + (np.arange(which.size) - np.repeat(np.cumsum(count) - count, count))
                tt = (first + row) - pos[which]
                values = scale[which] * (np.exp(-tt / self._tf) - np.exp(-tt / self._tr))
                np.add.at(lin, (row, hits["channel"][which].astype(np.int64)), values)
        current = -c.saturation_a * np.tanh(lin / c.saturation_a)  # pulses lower the current, and saturate
        if self._sigma > 0:
            current += self._sigma * self._noise.take(first * n_ch, n * n_ch).reshape(n, n_ch)
        counts = np.rint(current * c.counts_per_ampere)
        np.clip(counts, INT16_MIN, INT16_MAX, out=counts)
        return counts.astype(np.int16)
