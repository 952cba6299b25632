"""What a simulated VNA (Keysight PNA, R&S ZNB) measures: S-parameters of the world and their noise.

Measured S21 (port 1 -> cryostat -> port 2), for source power ``P`` (dBm)::

    P_in   = P - line_attenuation_db                         (power at the feedline input)
    S21(f) = g · e^{j(φ0 - 2π f τ)} · world.chain_s21(f, P_in)   (feedline x world.amplifiers)
    g      = 10^((output_gain_db - line_attenuation_db)/20)

plus complex Gaussian noise, independent per point and sweep, of variance

    σ² = (k_B T_n G_out + N_rx) · IFBW / P_W / n_avg

(``T_n`` the noise temperature at the input of the first amplifier *after* the world's
amplifiers — a HEMT —, ``G_out`` its gain to port 2, ``N_rx`` the receiver's own noise
density, ``P_W`` the source power in W): noise ∝ √IFBW, ∝ 1/√averages, and relative to
the signal it falls as the source power rises. The receiver's dynamic accuracy (a level L dB
read as L + s·(L − ref), ``world.paramp.bench.vna_scale_error``) applies to S21. A paramp in
``world.amplifiers`` raises
the signal (gain, compression at high ``P_in``) but not this noise, as a quantum-limited
preamplifier in front of a HEMT does. With the RF output off the signal is 0 (noise only).

The other S-parameters carry no world physics: reflections S11, S22, ... are a
-20 dB mismatch with twice the cable delay, reverse and cross transmissions a -100 dB
isolation, each with the same noise.

The world's MKID readout (tones, attenuators) is not touched: the VNA only reads the world.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
from scipy import constants

from sim_instruments.world.noise_bench import scale_error_db
from sim_instruments.world.world import World

#: |S_ii| of the room-temperature reflections, and |S_ij| (i != j, not S21) of the isolation
REFLECTION = 0.1
ISOLATION = 1e-5


@dataclass
class VnaFrontEnd:
    """The setup between the VNA ports and the world; these are the faces' options (all optional)."""

    #: attenuation from port 1 to the feedline input (cryogenic attenuators + cables), dB
    line_attenuation_db: float = 60.0
    #: gain from the output of the world's amplifiers to port 2 (HEMT + room-temperature amplifiers), dB
    output_gain_db: float = 70.0
    #: extra cable delay and phase of the room-temperature cables (on top of the feedline's)
    cable_delay_s: float = 30e-9
    phase_offset_rad: float = 0.0
    #: noise temperature at the HEMT input (after the world's amplifiers), K
    noise_temperature_k: float = 4.0
    #: the VNA receiver's own noise density at port 2, dBm/Hz
    receiver_noise_dbm_per_hz: float = -125.0
    #: sweeps take ``sweep_time_scale`` × their nominal time (0 = instant; 1 = as a real VNA)
    sweep_time_scale: float = 0.0

    def __post_init__(self) -> None:
        for key in ("line_attenuation_db", "output_gain_db", "cable_delay_s", "phase_offset_rad",
                    "noise_temperature_k", "receiver_noise_dbm_per_hz", "sweep_time_scale"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"VNA option {key}: expected a finite number, got {value!r}")
        if self.noise_temperature_k < 0 or self.sweep_time_scale < 0:
            raise ValueError("VNA options noise_temperature_k and sweep_time_scale must be >= 0")


class VnaModel:
    """S-parameters and their noise for one simulated VNA (own seeded noise generator)."""

    def __init__(self, world: World, frontend: VnaFrontEnd, name: str) -> None:
        self.world = world
        self.frontend = frontend
        self.rng = np.random.default_rng([int(world.config.seed), zlib.crc32(name.encode())])

    def gain(self) -> float:
        fe = self.frontend
        return 10.0 ** ((fe.output_gain_db - fe.line_attenuation_db) / 20.0)

    def background(self, freqs_hz: np.ndarray, delay_factor: float = 1.0) -> np.ndarray:
        """Room-temperature cables: e^{j(φ0 - 2π f τ)} (τ scaled by ``delay_factor``)."""
        fe = self.frontend
        turns = np.mod(np.asarray(freqs_hz, dtype=float) * (fe.cable_delay_s * delay_factor), 1.0)
        return np.exp(1j * (fe.phase_offset_rad - 2.0 * np.pi * turns))

    def input_power_dbm(self, source_power_dbm: float) -> float:
        """Power at the feedline input for a source power (dBm)."""
        return source_power_dbm - self.frontend.line_attenuation_db

    def s_parameter(self, name: str, freqs_hz: np.ndarray, source_power_dbm: float) -> np.ndarray:
        """Noise-free ``S<i><j>`` at ``freqs_hz`` (S21 from the world, see the module docstring)."""
        f = np.asarray(freqs_hz, dtype=float)
        out_port, in_port = int(name[1]), int(name[2])
        if (out_port, in_port) == (2, 1):
            chain = self.world.chain_s21(f, self.input_power_dbm(source_power_dbm))
            return self.gain() * self.background(f) * chain
        if out_port == in_port:
            return REFLECTION * self.background(f, 2.0)
        return ISOLATION * self.background(f)

    def noise_rms(self, source_power_dbm: float, ifbw_hz: float, n_avg: int = 1) -> float:
        """RMS of the complex noise on each point of a trace (in S-parameter units)."""
        fe = self.frontend
        density_w = (constants.k * fe.noise_temperature_k * 10.0 ** (fe.output_gain_db / 10.0)
                     + 10.0 ** (fe.receiver_noise_dbm_per_hz / 10.0) * 1e-3)
        source_w = 10.0 ** (source_power_dbm / 10.0) * 1e-3
        return math.sqrt(density_w * ifbw_hz / source_w / max(1, n_avg))

    def measure(self, name: str, freqs_hz: np.ndarray, source_power_dbm: float, ifbw_hz: float,
                n_sweeps: int = 1, rf_on: bool = True) -> np.ndarray:
        """The mean of ``n_sweeps`` noisy sweeps of ``S<i><j>`` (the world is read once, now)."""
        f = np.asarray(freqs_hz, dtype=float)
        signal = self.s_parameter(name, f, source_power_dbm) if rf_on else np.zeros(f.size, complex)
        bench = self.world.paramp.config.bench
        if bench.vna_scale_error and rf_on and name == "S21":  # receiver dynamic accuracy (world.paramp.bench)
            with np.errstate(divide="ignore"):
                level = source_power_dbm + 20 * np.log10(np.abs(signal))
            error_db = np.nan_to_num(scale_error_db(level, bench.vna_scale_error, bench.reference_level_dbm) - level)
            signal = signal * 10 ** (error_db / 20)
        sigma = self.noise_rms(source_power_dbm, ifbw_hz, n_sweeps) / math.sqrt(2.0)
        noise = self.rng.normal(0.0, sigma, (2, f.size))
        return signal + (noise[0] + 1j * noise[1])
