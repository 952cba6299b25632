"""One simulated physical world shared by every simulated instrument in a process.

``World`` holds the components (``world.fridge``, ``world.feedline``, the readout
chain state set by the board) and makes ADC streams. It is deterministic given the
seed and the clock: pass ``clock=lambda: 0.0`` (or any callable) to freeze or script
time in tests; by default time is ``time.monotonic``.

New components (paramps, TES, ...) are added as attributes built from their own
section of :class:`WorldConfig`.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
import typing
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim_instruments.world.adc_stream import AdcChainConfig, AdcStream, ReadoutState
from sim_instruments.world.detector_array import DetectorArrayConfig, DetectorArrayModel
from sim_instruments.world.feedline import FeedlineConfig, FeedlineModel
from sim_instruments.world.fridge import FridgeConfig, FridgeModel
from sim_instruments.world.noise import NoiseConfig
from sim_instruments.world.paramp import ParampConfig, ParampModel
from sim_instruments.world.particles import CosmicsConfig, ParticleSource
from sim_instruments.world.photons import TRUTH_DTYPE, PhotonConfig
from sim_instruments.world.tes_array import TESArrayModel, TESConfig


@dataclass
class WorldConfig:
    """Everything that defines the world; the defaults are the demo station."""

    seed: int = 1
    fs_hz: float = 2_048_000.0
    lo_hz: float = 5.0e9
    fridge: FridgeConfig = field(default_factory=FridgeConfig)
    feedline: FeedlineConfig = field(default_factory=FeedlineConfig)
    photons: PhotonConfig = field(default_factory=PhotonConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    readout: AdcChainConfig = field(default_factory=AdcChainConfig)
    paramp: ParampConfig = field(default_factory=ParampConfig)
    tes: TESConfig = field(default_factory=TESConfig)
    #: muons common to every array of ``arrays``
    cosmics: CosmicsConfig = field(default_factory=CosmicsConfig)
    #: detector arrays, each read by a ``detector_array_board`` face of the same instrument name
    arrays: dict[str, DetectorArrayConfig] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "world") -> WorldConfig:
        """Defaults overridden by ``data`` (nested dicts); unknown keys raise ValueError naming them."""
        return _build(cls, data or {}, where)

    @classmethod
    def from_yaml(cls, path: str | Path) -> WorldConfig:
        import yaml

        with open(path) as fh:
            return cls.from_dict(yaml.safe_load(fh) or {}, where=str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping of {cls.__name__} fields, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        args = typing.get_args(hint)
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, f"{where}.{key}")
        elif typing.get_origin(hint) is dict and len(args) == 2 and dataclasses.is_dataclass(args[1]):
            if not isinstance(value, Mapping):
                raise ValueError(f"{where}.{key}: expected a mapping of names to {args[1].__name__} fields, got {value!r}")
            kwargs[key] = {name: _build(args[1], item or {}, f"{where}.{key}.{name}") for name, item in value.items()}
        else:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None


class World:
    """Fridge + MKID feedline + photon source + readout chain, behind one lock."""

    def __init__(
        self,
        config: WorldConfig | Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(config, WorldConfig):
            config = WorldConfig.from_dict(config)
        self.config = config
        self.clock = clock
        self._lock = threading.RLock()
        ss = np.random.SeedSequence(config.seed)
        layout_ss, fridge_ss = ss.spawn(2)
        layout = np.random.default_rng(layout_ss)
        self.fridge = FridgeModel(config.fridge, clock, fridge_ss)
        self.feedline = FeedlineModel(config.feedline, config.fs_hz, config.lo_hz, layout)
        self._default_phases = layout.uniform(0, 2 * np.pi, self.feedline.n_resonators)
        self._readout = self.default_readout_state()
        #: (world time, settings) of recent changes: a stream generated late still uses the settings of the
        #: time each sample stands for, as hardware would (time-consistent even when the simulator lags)
        self._readout_history: deque[tuple[float, ReadoutState]] = deque([(-math.inf, self._readout)], maxlen=256)
        self._stream: AdcStream | None = None
        self._n_streams = 0
        self._drift_s = 0.0  # the feedline's drift time at the end of the last drifting stream
        # Components between the feedline and the readout/VNA (a paramp, ...): each has
        # ``s21(freqs_hz, input_power_dbm) -> complex``; see ``chain_s21``.
        self.amplifiers: list[Any] = []
        # The paramp and its noise chain always exist (pump/flux/analyzer faces talk to it);
        # only an enabled one amplifies what the VNA sees.
        self.paramp = ParampModel(config.paramp, self.fridge, clock=lambda: self.clock())
        if config.paramp.enabled:
            self.amplifiers.append(self.paramp)
        # The TES array (bias, SQUIDs, demultiplexed stream) exists only when enabled; its bath is the MXC.
        self.tes: TESArrayModel | None = (
            TESArrayModel(config.tes, self.fridge.mxc_k, config.seed) if config.tes.enabled else None)
        # Detector arrays with their own clocks, and the particles (muons, glitches, photons) that hit them.
        self.particles = ParticleSource(config.cosmics, [cfg.geometry(name) for name, cfg in config.arrays.items()],
                                        config.seed)
        self.arrays: dict[str, DetectorArrayModel] = {
            name: DetectorArrayModel(name, cfg, self.particles, config.seed) for name, cfg in config.arrays.items()}

    def set_clock(self, clock: Callable[[], float]) -> None:
        """Run the world on another clock from now on (a test's simulated night): the fridge continues
        from its present state, drifts (the paramp's pump line) follow the new clock's elapsed time."""
        with self._lock:
            elapsed = self.paramp.drift_time_s()
            self.clock = clock
            self.fridge.set_clock(clock)
            self.paramp.set_drift_time(elapsed)

    # -- physics ---------------------------------------------------------------
    def temperature_k(self) -> float:
        """True mixing-chamber temperature now (what the resonators feel)."""
        return self.fridge.mxc_k()

    def resonator_params(self, temperature_k: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fr, Qi, Qc) of every resonator at ``temperature_k`` (default: the MXC temperature now)."""
        t = self.temperature_k() if temperature_k is None else temperature_k
        return self.feedline.resonator_params(t)

    def feedline_s21(self, freqs_hz: np.ndarray, temperature_k: float | None = None) -> np.ndarray:
        """Complex S21 of the feedline at ``freqs_hz`` (no pulses, no noise): what a VNA sees."""
        t = self.temperature_k() if temperature_k is None else temperature_k
        return self.feedline.s21(np.asarray(freqs_hz, dtype=float), t)

    def chain_s21(self, freqs_hz: np.ndarray, input_power_dbm: float = -100.0,
                  temperature_k: float | None = None) -> np.ndarray:
        """S21 through the whole cryogenic chain: feedline x every amplifier after it."""
        freqs = np.asarray(freqs_hz, dtype=float)
        s21 = self.feedline_s21(freqs, temperature_k)
        for amp in self.amplifiers:
            s21 = s21 * amp.s21(freqs, input_power_dbm)
        return s21

    # -- readout chain (set by the board face) -----------------------------------------
    def default_readout_state(self) -> ReadoutState:
        """Tones on the resonances at base temperature, default amplitudes, phases and attenuators."""
        c = self.config
        fr, _, _ = self.feedline.resonator_params(c.fridge.t_base_k)
        phases = c.readout.tone_phases
        if isinstance(phases, str):
            if phases != "random":
                raise ValueError(f"world.readout.tone_phases: expected 'random' or a list of radians, got {phases!r}")
            ph = self._default_phases.copy()
        else:
            ph = np.asarray(phases, dtype=float)
            if ph.shape != fr.shape:
                raise ValueError(f"world.readout.tone_phases: expected {fr.size} values, got {ph.size}")
        return ReadoutState(
            lo_hz=float(c.lo_hz),
            tone_freqs_hz=fr.copy(),
            tone_amps=np.full(fr.size, float(c.readout.tone_amplitude)),
            tone_phases_rad=ph,
            att_dac_db=float(c.readout.att_dac_db),
            att_adc_db=float(c.readout.att_adc_db),
        )

    def readout_state(self) -> ReadoutState:
        """A copy of the readout chain settings."""
        with self._lock:
            return self._readout.copy()

    def set_readout(self, state: ReadoutState) -> None:
        """Replace the readout settings (the board validates them first)."""
        with self._lock:
            new = state.copy()
            new.version = self._readout.version + 1
            self._readout = new
            self._readout_history.append((self.clock(), new))

    def readout_state_at(self, t: float) -> ReadoutState:
        """A copy of the readout settings as they were at world time ``t``."""
        with self._lock:
            for since, state in reversed(self._readout_history):
                if since <= t:
                    return state.copy()
            return self._readout_history[0][1].copy()

    def readout_power_dbm(self) -> np.ndarray:
        """Power of each tone at the resonators (dBm): DAC power - ATT:DAC - line attenuation."""
        s = self.readout_state()
        r = self.config.readout
        with np.errstate(divide="ignore"):
            return r.dac_full_scale_dbm + 20 * np.log10(s.tone_amps) - s.att_dac_db - r.line_attenuation_db

    # -- ADC streams -------------------------------------------------------------------
    def new_adc_stream(self) -> AdcStream:
        """Start a new ADC stream (sample 0 = now); it becomes the current one."""
        with self._lock:
            c = self.config
            last = self._stream
            if last is not None and last.drift_from_s is not None:  # the drift goes on where that stream left it
                self._drift_s = last.drift_from_s + last.next_sample / c.fs_hz
            drifts = bool(c.feedline.drift_hz_per_s) and self._n_streams >= c.feedline.drift_from_stream
            self._stream = AdcStream(
                self._n_streams, fs_hz=c.fs_hz, seed=c.seed, noise=c.noise, photons=c.photons, chain=c.readout,
                feedline=self.feedline, readout_state=self.readout_state, temperature_k=self.fridge.mxc_k,
                drift_from_s=self._drift_s if drifts else None, t0=self.clock(), readout_state_at=self.readout_state_at)
            self._n_streams += 1
            return self._stream

    def adc_block(self, first_sample: int, n: int) -> np.ndarray:
        """int16 ADC samples of the current stream (started on first use); blocks must move forward."""
        with self._lock:
            stream = self._stream if self._stream is not None else self.new_adc_stream()
        return stream.block(first_sample, n)

    def detuning_truth(self) -> tuple[int, np.ndarray, np.ndarray]:
        """While the resonances drift (``feedline.drift_hz_per_s``): the current stream's id, and for its
        recent blocks the first sample and each tone's detuning from its resonance in linewidths
        ((tone - fr) Q_l / fr, (blocks, tones)) as generated — the truth resonator tracking is judged by."""
        with self._lock:
            stream = self._stream
        if stream is None or not stream.detuning_log:
            return -1, np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        log = list(stream.detuning_log)
        return stream.stream_id, np.array([b[0] for b in log], np.int64), np.stack([b[1] for b in log])

    def truth(self) -> np.ndarray:
        """Photon arrivals of the current stream: fields sample, t_sample, resonator, energy_ev."""
        with self._lock:
            if self._stream is None:
                return np.empty(0, dtype=TRUTH_DTYPE)
            return self._stream.photons.truth()
