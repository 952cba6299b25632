"""The readout board's real ADC signal: tones through the feedline, mixed down by one LO.

ADC(t) = Σ_k A_k |S21_k(t)| cos(2π(f_k - f_LO) t + φ_k + arg S21_k(t)) + noise, at t = sample/fs,
rounded and clipped (never wrapped) to int16.

Per tone k, S21 is the nearest resonator's notch evaluated per sample (it moves with
photon pulses and 1/f noise) times a per-block constant: the other resonators' notches
at the tone frequency and the cable delay/gain/phase, at the fridge temperature of the
block. Carriers come from 64-bit phase accumulators (a DDS, as a real board has):
exact integer phase, so the signal does not depend on how it is split into blocks.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim_instruments.world.feedline import FeedlineModel
from sim_instruments.world.noise import NoiseConfig, TLSNoise, WhiteNoise
from sim_instruments.world.photons import PhotonConfig, PhotonTrains

_LUT_BITS = 16
_TURN = 1 << 64
_LUT = np.exp(2j * np.pi * np.arange(1 << _LUT_BITS) / (1 << _LUT_BITS)).astype(np.complex64)
INT16_MAX = 32767
INT16_MIN = -32768


@dataclass
class AdcChainConfig:
    """Board defaults and the analog chain between DAC and ADC."""

    #: default amplitude of each tone, fraction of DAC full scale
    tone_amplitude: float = 0.1
    att_dac_db: float = 0.0
    att_adc_db: float = 0.0
    #: a full-scale tone off resonance, with 0 dB attenuation, fills the ADC full scale times this gain
    loop_gain_db: float = 0.0
    #: for the readout-power bookkeeping (no power nonlinearity is modelled)
    dac_full_scale_dbm: float = -10.0
    line_attenuation_db: float = 70.0
    #: tone phases: "random" (fixed by the seed) or a list of radians
    tone_phases: str | list[float] = "random"
    samples_per_packet: int = 4096


@dataclass
class ReadoutState:
    """What the board has set: LO, tone comb and attenuators (RF frequencies in Hz)."""

    lo_hz: float
    tone_freqs_hz: np.ndarray
    tone_amps: np.ndarray
    tone_phases_rad: np.ndarray
    att_dac_db: float
    att_adc_db: float
    version: int = 0

    def copy(self) -> ReadoutState:
        return ReadoutState(self.lo_hz, self.tone_freqs_hz.copy(), self.tone_amps.copy(),
                            self.tone_phases_rad.copy(), self.att_dac_db, self.att_adc_db, self.version)


class AdcStream:
    """One ADC stream (sample index 0 at its start), produced forward in blocks.

    ``block(first, n)`` must be called with non-decreasing ``first``; a jump forward
    (skipped samples) keeps photons and 1/f noise continuous without computing the
    skipped samples.
    """

    def __init__(self, stream_id: int, *, fs_hz: float, seed: int, noise: NoiseConfig, photons: PhotonConfig,
                 chain: AdcChainConfig, feedline: FeedlineModel, readout_state: Callable[[], ReadoutState],
                 temperature_k: Callable[[], float], drift_from_s: float | None = None, t0: float | None = None,
                 readout_state_at: Callable[[float], ReadoutState] | None = None) -> None:
        """Stream ``stream_id`` (its noise and photon seeds) of the world's pieces: the configs, the
        resonators, and the two things read at every block, the board's settings and the MXC temperature.
        ``drift_from_s``: the feedline's drift time at this stream's sample 0 (None: it does not drift).
        ``t0`` and ``readout_state_at``: the world time of sample 0 and the settings at a world time, so that a
        block made late still has the settings of the time it stands for (default: the settings now)."""
        self._t0, self._readout_state_at = t0, readout_state_at
        self.drift_from_s = drift_from_s
        #: (first sample, each tone's detuning from its resonance in linewidths) of recent blocks, while drifting
        self.detuning_log: deque[tuple[int, np.ndarray]] = deque(maxlen=65536)
        self._feedline = feedline
        self._chain = chain
        self._readout_state = readout_state
        self._temperature_k = temperature_k
        self.fs = float(fs_hz)
        self.stream_id = stream_id
        n_res = feedline.n_resonators
        self._noise_cfg: NoiseConfig = noise
        self._photon_cfg: PhotonConfig = photons
        key = (stream_id,)
        self._white = WhiteNoise(seed, key + (1,))
        self._tls = TLSNoise(noise, self.fs, n_res, seed, key + (2,))
        self.photons = PhotonTrains(photons, self.fs, n_res, seed, key + (3,))
        self._next = 0
        self._version = -1
        self._acc0: np.ndarray = np.zeros(0, dtype=np.uint64)
        self._inc: np.ndarray = np.zeros(0, dtype=np.uint64)
        self._idx0 = 0
        self._const_key: tuple | None = None
        self._const: dict = {}

    @property
    def next_sample(self) -> int:
        """The first sample the next in-order block would start at."""
        return self._next

    def _update_dds(self, state: ReadoutState, at: int) -> None:
        """Phase accumulators for the tones; a frequency change keeps each tone's phase continuous."""
        if_turns = np.mod((state.tone_freqs_hz - state.lo_hz) / self.fs, 1.0)
        inc = np.array([int(x * _TURN) % _TURN for x in if_turns], dtype=np.uint64)
        if inc.size == self._inc.size and inc.size:
            acc0 = self._phase_at(at)
        else:
            acc0 = np.zeros(inc.size, dtype=np.uint64)
        self._acc0, self._inc, self._idx0 = acc0, inc, at
        self._version = state.version

    def _phase_at(self, sample: int) -> np.ndarray:
        with np.errstate(over="ignore"):
            return self._acc0 + self._inc * np.uint64(sample - self._idx0)

    def block(self, first: int, n: int) -> np.ndarray:
        """int16 ADC samples ``first .. first+n-1`` of this stream."""
        if first < self._next:
            raise ValueError(
                f"ADC stream {self.stream_id}: block at sample {first} goes back before sample {self._next}; "
                "streams only move forward (start a new stream to begin again)"
            )
        if self._t0 is not None and self._readout_state_at is not None:
            state = self._readout_state_at(self._t0 + first / self.fs)
        else:
            state = self._readout_state()
        temperature = self._temperature_k()
        if self.drift_from_s is not None:
            self._feedline.drift_s = self.drift_from_s + first / self.fs
        if state.version != self._version:
            self._update_dds(state, max(first, self._next))
        if first > self._next:
            self._tls.advance_to(first)
        self._next = first + n
        signal = self._signal(state, temperature, first, n)
        if self.drift_from_s is not None and self._const:  # the truth a tracking test compares with
            self.detuning_log.append((first, self._const["detuning"]))
        nc = self._noise_cfg
        adc_gain = 10.0 ** (-state.att_adc_db / 20.0)
        sigma = math.hypot(nc.white_counts_rms * adc_gain, nc.adc_counts_rms)
        if sigma > 0:
            signal += np.float32(sigma) * self._white.take(first, n)
        np.rint(signal, out=signal)
        np.clip(signal, INT16_MIN, INT16_MAX, out=signal)
        return signal.astype(np.int16)

    def _constants(self, state: ReadoutState, temperature: float) -> dict:
        """Per-block constants of each tone, recomputed only when the settings, the temperature or the
        injected resonance drift change (a drifting stream recomputes them every block)."""
        key = (state.version, temperature, self._feedline.drift_hz())
        if self._const_key == key:
            return self._const
        feedline = self._feedline
        rcfg = self._chain
        fr, qi, qc = feedline.resonator_params(temperature)
        f = state.tone_freqs_hz
        nearest = np.argmin(np.abs(f[:, None] - fr[None, :]), axis=1)
        # constant part of S21 at each tone: environment and the other resonators
        static = feedline.s21(f, temperature, exclude=nearest)
        amp_counts = (INT16_MAX * state.tone_amps
                      * 10.0 ** ((rcfg.loop_gain_db - state.att_dac_db - state.att_adc_db) / 20.0))
        coef = amp_counts * static * np.exp(1j * state.tone_phases_rad)
        inv_ql0 = 1.0 / qi[nearest] + 1.0 / qc[nearest]
        self._const = {
            "res": nearest,
            # the constant phase of each tone's coefficient, folded into its phase accumulator
            "off": np.array([int((np.angle(c) / (2 * np.pi)) % 1.0 * _TURN) % _TURN for c in coef], dtype=np.uint64),
            "mag": np.abs(coef).astype(np.float32),
            "x0": ((f - fr[nearest]) / fr[nearest]).astype(np.float32),
            "inv_ql0": inv_ql0,
            "inv_qc": (1.0 / qc[nearest]),
        }
        self._const["detuning"] = ((f - fr[nearest]) / (fr[nearest] * inv_ql0)).astype(np.float32)  # linewidths
        self._const_key = key
        return self._const

    def _signal(self, state: ReadoutState, temperature: float, first: int, n: int) -> np.ndarray:
        n_tones = state.tone_freqs_hz.size
        if n_tones == 0:
            return np.zeros(n, dtype=np.float32)
        c = self._constants(state, temperature)
        res = c["res"]

        # carriers: cos/sin of the DDS phase (plus the coefficient's phase) from a 16-bit table
        rel = np.arange(n, dtype=np.uint64)
        with np.errstate(over="ignore"):
            base = self._phase_at(first) + c["off"]
            phase = self._inc[:, None] * rel[None, :]
            phase += base[:, None]
        phase >>= np.uint64(64 - _LUT_BITS)
        carrier = np.take(_LUT, phase.astype(np.intp))
        cos, sin = carrier.real, carrier.imag

        # detuning x = (f - fr(t))/fr(t) ≈ x0 - tls + rf*E*p  (|δ| << 1), per tone's own resonator
        x = self._tls.take(first, n, rows=res)
        np.subtract(c["x0"][:, None], x, out=x)
        pulses, active = self.photons.profile(first, n)
        pc = self._photon_cfg
        # y = 2 Ql x and r = Ql/Qc; Ql changes only while a pulse is on
        y = x
        r = np.empty((n_tones, 1), dtype=np.float32)
        rows_r: dict[int, np.ndarray] = {}
        for k in range(n_tones):
            p_row = res[k]
            if active[p_row]:
                p = pulses[p_row].astype(np.float32)
                ql = 1.0 / (np.float32(c["inv_ql0"][k]) + np.float32(pc.rq_per_ev) * p)
                y[k] += np.float32(pc.rf_per_ev) * p
                y[k] *= 2.0 * ql
                rows_r[k] = ql * np.float32(c["inv_qc"][k])
                r[k] = 0.0
            else:
                # the same float32 operations as above with p = 0, so a row's values do not
                # depend on whether a pulse happens to share its block
                ql = np.float32(1.0) / np.float32(c["inv_ql0"][k])
                y[k] *= np.float32(2.0) * ql
                r[k] = ql * np.float32(c["inv_qc"][k])
        # S = 1 - r/(1 + j y):  Re S = 1 - r d, Im S = r d y, d = 1/(1 + y^2)
        rd = y * y
        rd += 1.0
        if rows_r:
            rr = np.broadcast_to(r, (n_tones, n)).copy()
            for k, row in rows_r.items():
                rr[k] = row
            np.divide(rr, rd, out=rd)
        else:
            np.divide(r, rd, out=rd)
        # Re(|c| e^{jθ} S) = |c| (cos θ - r d (cos θ + y sin θ))
        sin *= y
        sin += cos
        sin *= rd
        cos -= sin
        # sum over tones row by row (not BLAS: its summation order depends on alignment,
        # which would make the result depend on the block split)
        mag = c["mag"]
        out = cos[0] * mag[0]
        for k in range(1, n_tones):
            out += cos[k] * mag[k]
        return out
