"""What hits the detector arrays: cosmic muons through all of them, substrate glitches and photons in one.

Common physics of a world with several arrays (:mod:`sim_instruments.world.detector_array`). Every
energy deposit is a *hit*: an energy reaching one pixel of one array at a true UTC time. Hits are
generated per second of true time, each second from its own seed, so any process asking for any
time range gets the same hits (the board streams of two arrays, a test or a benchmark rebuilding
the truth from the same configuration).

- **Muons** cross a horizontal plane at ``muon_flux_per_cm2_min`` (about 1 /cm²/min at sea level),
  thrown uniformly over the arrays' footprint plus ``margin_mm``, with zenith angles from
  I(θ) ∝ cos²θ (through a horizontal surface: pdf(cos θ) ∝ cos³θ, so cos θ = U^(1/4)). A muon
  crossing an array's substrate (thickness t) deposits a Moyal (Landau-like) energy with most
  probable value 0.7 × dE/dx × t / cos θ (dE/dx = 388 keV/mm, a minimum-ionising particle in
  silicon). Arrays are stacked along z: one muon crosses several if its track stays inside them.
- **Substrate glitches** (radioactivity in the chip and holder, stress relaxation) in one array at
  ``glitch_rate_hz``, log-uniform energies, uniform position.
- A substrate deposit ``E`` at distance ``r`` from a pixel reaches it as
  ``E × phonon_collection × exp(-r / phonon_length_mm)``, ``r / phonon_speed`` later: one event
  lights up many pixels. **Photons** hit one pixel each (Poisson per pixel, energies from lines).
"""

from __future__ import annotations

import math
import threading
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

PHOTON, MUON, GLITCH = 0, 1, 2
KIND_NAMES = {PHOTON: "photon", MUON: "muon", GLITCH: "glitch"}
HIT_DTYPE = np.dtype([("t_ns", "i8"), ("array", "i2"), ("channel", "i2"), ("energy_ev", "f8"),
                      ("event", "i8"), ("kind", "i1")])
EVENT_DTYPE = np.dtype([("event", "i8"), ("kind", "i1"), ("t_ns", "i8"), ("x_mm", "f8"), ("y_mm", "f8"),
                        ("cos_theta", "f8"), ("energy_ev", "f8"), ("arrays", "i8")])

_SEED_KEY = 0xC05
_CHUNK_NS = 1_000_000_000
_C_MM_PER_NS = 299.792458
_MIN_HIT_EV = 0.5  # deposits smaller than this reach no pixel worth simulating


@dataclass
class CosmicsConfig:
    """Muons common to every array (``world.cosmics``)."""

    muon_flux_per_cm2_min: float = 1.0
    muon_dedx_kev_per_mm: float = 388.0
    margin_mm: float = 5.0

    def __post_init__(self) -> None:
        if self.muon_flux_per_cm2_min < 0 or self.muon_dedx_kev_per_mm <= 0 or self.margin_mm < 0:
            raise ValueError("world.cosmics: need muon_flux_per_cm2_min >= 0, muon_dedx_kev_per_mm > 0, margin_mm >= 0")


@dataclass(frozen=True)
class ArrayGeometry:
    """What the particles need of an array: where its pixels and substrate are, and its own sources."""

    name: str
    pixel_xy_mm: np.ndarray  # (n_pixels, 2)
    z_mm: float
    half_size_mm: tuple[float, float]  # substrate half widths about ``centre_mm``
    centre_mm: tuple[float, float]
    thickness_mm: float
    phonon_collection: float
    phonon_length_mm: float
    phonon_speed_mm_per_us: float
    glitch_rate_hz: float
    glitch_energy_kev: tuple[float, float]
    photon_rate_hz: float  # per pixel
    photon_lines_ev: tuple[float, ...]
    photon_weights: tuple[float, ...]

    def inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (np.abs(x - self.centre_mm[0]) <= self.half_size_mm[0]) & (np.abs(y - self.centre_mm[1]) <= self.half_size_mm[1])

    def spread(self, x: float, y: float, energy_ev: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(channels, energies in eV, delays in ns) of the pixels a substrate deposit at (x, y) reaches."""
        r = np.hypot(self.pixel_xy_mm[:, 0] - x, self.pixel_xy_mm[:, 1] - y)
        e = energy_ev * self.phonon_collection * np.exp(-r / self.phonon_length_mm)
        keep = np.flatnonzero(e >= _MIN_HIT_EV)
        return keep, e[keep], r[keep] / self.phonon_speed_mm_per_us * 1e3


class ParticleSource:
    """The hits of every array (module docstring); thread-safe, chunks cached."""

    def __init__(self, cosmics: CosmicsConfig, arrays: Sequence[ArrayGeometry], seed: int, cache: int = 8) -> None:
        self.cosmics = cosmics
        self.arrays = list(arrays)
        self.seed = int(seed)
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, tuple[list[np.ndarray], np.ndarray]] = OrderedDict()
        self._cache_size = int(cache)
        if self.arrays:
            lo = np.min([a.pixel_xy_mm.min(axis=0) for a in self.arrays] + [np.subtract(a.centre_mm, a.half_size_mm)
                                                                             for a in self.arrays], axis=0)
            hi = np.max([a.pixel_xy_mm.max(axis=0) for a in self.arrays] + [np.add(a.centre_mm, a.half_size_mm)
                                                                             for a in self.arrays], axis=0)
            self.box_mm = (lo - cosmics.margin_mm, hi + cosmics.margin_mm)
            self.z_top_mm = max(a.z_mm for a in self.arrays)
        else:
            self.box_mm = (np.zeros(2), np.zeros(2))
            self.z_top_mm = 0.0
        area_cm2 = float(np.prod(self.box_mm[1] - self.box_mm[0])) / 100.0
        self.muon_rate_hz = cosmics.muon_flux_per_cm2_min / 60.0 * area_cm2

    def index(self, name: str) -> int:
        for k, a in enumerate(self.arrays):
            if a.name == name:
                return k
        raise KeyError(name)

    # --- queries --------------------------------------------------------------------------
    def hits(self, t0_ns: int, t1_ns: int, array: int | None = None) -> np.ndarray:
        """Hits with ``t0_ns <= t_ns < t1_ns`` (of one array, or all), sorted by time."""
        # from the chunk before too: a hit arrives (phonon and flight delays) a little after its event
        out = []
        for c in range(int(t0_ns) // _CHUNK_NS - 1, (int(t1_ns) - 1) // _CHUNK_NS + 1):
            per_array = self._chunk(c)[0]
            for h in (per_array if array is None else [per_array[array]]):
                a, b = np.searchsorted(h["t_ns"], [t0_ns, t1_ns])
                if b > a:
                    out.append(h[a:b])
        if not out:
            return np.empty(0, HIT_DTYPE)
        hits = np.concatenate(out)
        return hits[np.argsort(hits["t_ns"], kind="stable")] if len(out) > 1 else hits

    def events(self, t0_ns: int, t1_ns: int) -> np.ndarray:
        """The truth: every event (muon, glitch, photon) with ``t0_ns <= t_ns < t1_ns``; ``arrays`` is the
        bit mask of the arrays it deposited energy in."""
        out = [self._chunk(c)[1] for c in range(int(t0_ns) // _CHUNK_NS, (int(t1_ns) - 1) // _CHUNK_NS + 1)]
        ev = np.concatenate(out) if out else np.empty(0, EVENT_DTYPE)
        return ev[(ev["t_ns"] >= t0_ns) & (ev["t_ns"] < t1_ns)]

    def match(self, array: int, t_true_ns: np.ndarray, channel: np.ndarray, *, before_ns: int = 300_000,
              after_ns: int = 50_000) -> tuple[np.ndarray, np.ndarray]:
        """The truth behind recorded events (for tests and benchmarks): (event id, kind) of the last hit on
        each event's pixel of ``array`` within ``[t - before_ns, t + after_ns]`` of its true time (a trigger
        fires on a pulse's rise, after the hit); -1 where there is none."""
        t = np.asarray(t_true_ns, np.int64)
        ch = np.asarray(channel, np.int64)
        ids = np.full(t.size, -1, np.int64)
        kinds = np.full(t.size, -1, np.int64)
        if t.size == 0:
            return ids, kinds
        hits = self.hits(int(t.min()) - before_ns, int(t.max()) + after_ns + 1, array)
        if hits.size == 0:
            return ids, kinds
        base = int(t.min()) - before_ns
        keys = (hits["channel"].astype(np.int64) << 40) + (hits["t_ns"] - base)
        order = np.argsort(keys)
        keys = keys[order]
        k = np.searchsorted(keys, (ch << 40) + (t - base + after_ns), "right") - 1
        ok = k >= 0
        ok[ok] = (keys[k[ok]] >> 40) == ch[ok]
        ok[ok] &= (keys[k[ok]] & ((1 << 40) - 1)) >= t[ok] - base - before_ns
        ids[ok] = hits["event"][order][k[ok]]
        kinds[ok] = hits["kind"][order][k[ok]]
        return ids, kinds

    # --- generation -----------------------------------------------------------------------
    def _chunk(self, c: int) -> tuple[list[np.ndarray], np.ndarray]:
        """(hits of each array sorted by time, events sorted by time) of second ``c``."""
        with self._lock:
            got = self._cache.get(c)
            if got is not None:
                self._cache.move_to_end(c)
                return got
        got = self._generate(c)
        with self._lock:
            self._cache[c] = got
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return got

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(self.seed, spawn_key=(_SEED_KEY, *key))))

    def _generate(self, c: int) -> tuple[list[np.ndarray], np.ndarray]:
        hits: list[tuple] = []
        events: list[tuple] = []
        base = c * _CHUNK_NS
        next_id = [c << 24]

        def new_event(kind: int, t: int, x: float, y: float, cos_t: float, e: float, mask: int) -> int:
            eid = next_id[0]
            next_id[0] += 1
            events.append((eid, kind, t, x, y, cos_t, e, mask))
            return eid

        # muons through every array
        rng = self._rng(MUON, c & 0x7FFFFFFF)
        n = rng.poisson(self.muon_rate_hz)
        lo, hi = self.box_mm
        for t in np.sort(rng.integers(0, _CHUNK_NS, n)).tolist():
            x0, y0 = rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1])
            cos_t = rng.random() ** 0.25
            phi = rng.uniform(0.0, 2.0 * math.pi)
            tan_t = math.sqrt(max(1.0 - cos_t**2, 0.0)) / cos_t
            mask, parts = 0, []
            for k, a in enumerate(self.arrays):
                dz = self.z_top_mm - a.z_mm
                x, y = x0 + dz * tan_t * math.cos(phi), y0 + dz * tan_t * math.sin(phi)
                if not a.inside(np.array(x), np.array(y)):
                    continue
                mp = 0.7 * self.cosmics.muon_dedx_kev_per_mm * a.thickness_mm / cos_t * 1e3
                e_dep = float(stats.moyal.rvs(loc=mp, scale=0.12 * mp, random_state=rng))
                mask |= 1 << k
                parts.append((k, x, y, max(e_dep, 0.0), dz / (_C_MM_PER_NS * cos_t)))
            if not mask:
                continue
            eid = new_event(MUON, base + t, x0, y0, cos_t, sum(p[3] for p in parts), mask)
            for k, x, y, e_dep, travel in parts:
                ch, e, delay = self.arrays[k].spread(x, y, e_dep)
                hits += [(base + t + int(round(travel + d)), k, int(j), float(ej), eid, MUON)
                         for j, ej, d in zip(ch.tolist(), e.tolist(), delay.tolist(), strict=True)]
        for k, a in enumerate(self.arrays):
            key = zlib.crc32(a.name.encode())
            # substrate glitches of this array
            rng = self._rng(GLITCH, key, c & 0x7FFFFFFF)
            lo_e, hi_e = a.glitch_energy_kev
            for t in np.sort(rng.integers(0, _CHUNK_NS, rng.poisson(a.glitch_rate_hz))).tolist():
                x = a.centre_mm[0] + rng.uniform(-a.half_size_mm[0], a.half_size_mm[0])
                y = a.centre_mm[1] + rng.uniform(-a.half_size_mm[1], a.half_size_mm[1])
                e_dep = math.exp(rng.uniform(math.log(lo_e), math.log(hi_e))) * 1e3
                eid = new_event(GLITCH, base + t, x, y, 1.0, e_dep, 1 << k)
                ch, e, delay = a.spread(x, y, e_dep)
                hits += [(base + t + int(round(d)), k, int(j), float(ej), eid, GLITCH)
                         for j, ej, d in zip(ch.tolist(), e.tolist(), delay.tolist(), strict=True)]
            # photons: one pixel each
            rng = self._rng(PHOTON, key, c & 0x7FFFFFFF)
            n_pix = a.pixel_xy_mm.shape[0]
            n = rng.poisson(a.photon_rate_hz * n_pix)
            if n and a.photon_lines_ev:
                p = np.asarray(a.photon_weights, float)
                energies = np.asarray(a.photon_lines_ev, float)[rng.choice(len(a.photon_lines_ev), n, p=p / p.sum())]
                for t, j, e in zip(rng.integers(0, _CHUNK_NS, n).tolist(), rng.integers(0, n_pix, n).tolist(),
                                   energies.tolist(), strict=True):
                    xy = a.pixel_xy_mm[j]
                    eid = new_event(PHOTON, base + t, float(xy[0]), float(xy[1]), 1.0, e, 1 << k)
                    hits.append((base + t, k, j, e, eid, PHOTON))
        h = np.array(hits, dtype=HIT_DTYPE) if hits else np.empty(0, HIT_DTYPE)
        ev = np.array(events, dtype=EVENT_DTYPE) if events else np.empty(0, EVENT_DTYPE)
        h = h[np.argsort(h["t_ns"], kind="stable")]
        return [h[h["array"] == k] for k in range(len(self.arrays))], ev[np.argsort(ev["t_ns"], kind="stable")]
