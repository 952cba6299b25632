"""A TES (transition-edge sensor) microcalorimeter array, SQUID-read, as a world component.

Each pixel ``k`` is a voltage-biased TES: the bias current ``I_bias`` from the bias
source flows into a shunt ``R_sh`` in parallel with the TES branch (parasitic
``R_p`` in series with the TES resistance ``R``); the TES sits on a weak thermal
link to the bath (the fridge's mixing chamber). Formulas (Irwin & Hilton,
"Transition-Edge Sensors", Cryogenic Particle Detection, Springer 2005, §2):

Circuit (Thevenin): ``V = I_bias R_sh``, ``R_L = R_sh + R_p``, ``I = V / (R_L + R)``.

Transition: a smooth, current-dependent superconducting edge::

    R(T, I) = R_n · ½ (1 + tanh x),   x = (T − T_c + c |I|) / ΔT_c

(``c`` = ``tc_current_k_per_a``: current suppresses T_c), so
``α = ∂lnR/∂lnT = 2 T (1 − R/R_n) / ΔT_c`` and ``β = ∂lnR/∂ln|I| = 2 c |I| (1 − R/R_n) / ΔT_c``.

Thermal: the link carries ``P_bath = K (T^n − T_bath^n)`` (``G = n K T^(n−1)``);
the steady state solves ``I² R = P_bath``. Parametrised by ``x``, every quantity is
explicit (``R(x)``, ``I(x) = V/(R_L + R)``, ``T(x) = T_c − c|I| + x ΔT_c``), so the
power balance ``h(x) = I² R − P_bath`` is scanned on a grid and refined by
bisection. Where several roots exist (the transition and the superconducting
state below the bias where ``R`` would fall under ``R_L``), the one with the
highest ``x`` is taken: it is the stable branch an IV sweep from high bias
follows; below the minimum transition bias the TES is superconducting. The IV
curve therefore has the three textbook branches (normal, transition at ~constant
Joule power, superconducting) and ``cryodaq.dsp.analyze_iv`` recovers R_n and R_p.
With the defaults and a 12 mK bath (the demo fridge): P ≈ 3.1 pW in the
transition, G(T_c) ≈ 110 pW/K, superconducting below I_bias ≈ 0.23 mA, normal
above ≈ 0.63 mA, R ≈ 0.27 R_n at I_bias = 0.35 mA with α ≈ 145, β ≈ 0.5, loop
gain ℒ ≈ 41 (at a 50 mK bath: 2.8 pW, 0.21 / 0.60 mA, 0.31 R_n, ℒ ≈ 36).

Pulses: a particle of energy E deposits heat; the small-signal (DC) current
responsivity at the operating point, from the linearised electrical and thermal
equations (inductance and heat capacity drop out at DC)::

    s_I = ∂I/∂P_in = −ℒ / ( I [ (1 − ℒ)(R_L + R(1 + β)) + ℒ R (2 + β) ] ),   ℒ = P α / (G T)

(→ −1/V_tes·ℒ/(ℒ+1) for R_L → 0, β → 0; → 0 in the normal and superconducting
states). A two-pole pulse whose integral is ``s_I · E`` follows; its peak is
``a = |s_I| E · peak / (τ_fall − τ_rise)`` (``peak`` of the unit shape
``exp(−t/τ_fall) − exp(−t/τ_rise)``). Large pulses saturate: the TES cannot lose
more current than going normal costs, ``A_sat = |I| − V/(R_L + R_n)``, so the
current change is ``δI(t) = −sign(I_bias) · A_sat · tanh(a(t)/A_sat)`` (``a(t)``: the
linear sum of every pulse at t, so pile-ups saturate too). At the demo bias a
5.9 keV photon gives ≈ 8.8 µA (5 % below linear; 6.49 keV gives 1.089× that, not
1.100×). ``saturation: false`` makes pulses exactly linear in E. τ_rise and τ_fall
are fixed configuration values (the ETF-shortened fall time is not recomputed
from the operating point). Arrivals: a Poisson process per pixel
(:mod:`sim_instruments.world.photons`; the truth log's ``resonator`` field is the TES
channel).

Noise, referred to the TES current, one-sided (A²/Hz): a lumped white level
``S_w = white_noise_a_per_rthz²`` (TES Johnson and phonon noise plus the SQUID's
input-referred noise) plus 1/f with knee ``f_knee``, made as a sum of
equal-variance AR(1) processes with corners log-spaced between
``one_over_f_min_hz`` and ``one_over_f_max_hz`` (:class:`sim_instruments.world.noise.TLSNoise`)::

    S_I(f) = S_w [1 + Σ_k (2σ²/π) f_k / (f_k² + f²)],   σ² = f_knee ln r
           ≈ S_w (1 + f_knee / f)       for f_min ≪ f ≪ f_max      (:meth:`TESArrayModel.noise_psd_a2_per_hz`)

SQUID readout (flux-locked loop, one per pixel): input flux ``Φ = I / I_Φ0``
(``input_current_per_phi0_a``, A per flux quantum). Locked, the FLL output is
``V = G_fb (Φ − k − Φ_off)`` (``G_fb`` = ``feedback_gain`` in V/Φ0, ``Φ_off`` =
``flux_offset`` in Φ0, ``k`` an integer fixed when the loop locks); unlocked, the
output is the SQUID's periodic V–Φ curve, ``V = V_swing sin(2π(Φ − Φ_off))``.
Locking (``lock``) or resetting (``reset``) the loop sets ``k = round(Φ_now −
Φ_off) + j`` with ``j`` drawn from {−1, 0, +1}: the output baseline may jump by
an integer number of ``G_fb`` volts, as real FLLs relock on a different flux
quantum — the pipeline must treat the step as a new baseline (and a reset as a
gap). The ADC digitises ``V`` at ``adc_counts_per_volt`` (±1 V full scale by
default), rounds (quantisation noise 1/12 count²) and clips to int16. So, locked:
``counts = counts_per_ampere · I + const`` with
``counts_per_ampere = G_fb / I_Φ0 · adc_counts_per_volt`` (4.1e8 counts/A by
default: white noise ≈ 1.85 counts RMS at 100 kS/s with quantisation, a 5.9 keV
pulse ≈ −3600 counts at the demo bias). SQUID settings take effect at the next stream block.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

from sim_instruments.world.noise import NoiseConfig, TLSNoise, WhiteNoise, tls_corners
from sim_instruments.world.photons import TRUTH_DTYPE, PhotonConfig, PhotonTrains, pulse_peak, resolve_line_shapes

#: spawn key of the TES array's random streams under the world seed (distinct from other components)
_SEED_KEY = 0x7E5
E_CHARGE = 1.602176634e-19
INT16_MIN, INT16_MAX = -32768, 32767


@dataclass
class TESConfig:
    """TES array, bias network, pulses, noise and SQUID readout (SI units; defaults in the module doc)."""

    enabled: bool = False
    n_channels: int = 8
    #: sample rate of the demultiplexed readout, per channel (Hz), and samples per UDP packet
    fs_hz: float = 100_000.0
    samples_per_packet: int = 512
    tc_k: float = 0.100
    #: per-pixel Gaussian scatter of T_c (fixed by the seed)
    tc_spread_k: float = 0.3e-3
    #: ΔT_c, the width of the tanh edge
    transition_width_k: float = 1.0e-3
    #: T_c(I) = T_c − c |I|
    tc_current_k_per_a: float = 10.0
    rn_ohm: float = 10e-3
    r_shunt_ohm: float = 0.3e-3
    r_parasitic_ohm: float = 0.1e-3
    thermal_exponent: float = 3.5
    #: K in P = K (T^n − T_bath^n): 1e-8 W/K^3.5 gives P_sat ≈ 2.9 pW at a 50 mK bath
    k_w_per_k_n: float = 1.0e-8
    #: wiring resistance of a bias line, in series with its pixels' shunt networks (what the source sees)
    r_line_ohm: float = 2.0
    #: bias-source instrument name -> the TES channels on its line; a source not listed biases every channel
    bias_lines: dict[str, list[int]] = field(default_factory=dict)
    #: particle arrivals per pixel (Hz); 0 disables pulses
    rate_hz: float = 5.0
    lines_ev: list[float] = field(default_factory=lambda: [5898.8, 6490.5])  # Mn Kα, Kβ (⁵⁵Fe)
    weights: list[float] = field(default_factory=lambda: [0.88, 0.12])
    #: per line: a published natural shape to draw energies from (e.g. [MnKAlpha, MnKBeta]); [] = monochromatic
    line_shapes: list[str | None] = field(default_factory=list)
    tau_rise_s: float = 80e-6
    tau_fall_s: float = 1.0e-3
    pulse_length_taus: float = 12.0
    saturation: bool = True
    truth_max: int = 1_000_000
    white_noise_a_per_rthz: float = 20e-12
    one_over_f_knee_hz: float = 10.0
    one_over_f_min_hz: float = 0.1
    one_over_f_max_hz: float = 2000.0
    one_over_f_corners_per_decade: float = 2.0
    #: the 1/f grid runs at fs / one_over_f_decimation (must exceed 2 × one_over_f_max_hz);
    #: None: the largest decimation keeping the grid at >= 5 × one_over_f_max_hz
    one_over_f_decimation: int | None = None
    input_current_per_phi0_a: float = 20e-6
    feedback_gain_v_per_phi0: float = 0.25
    unlocked_swing_v: float = 0.1
    adc_counts_per_volt: float = 32768.0


@dataclass(frozen=True)
class OperatingPoint:
    """Steady state of TES pixels (arrays of one shape; SI units).

    ``i_tes`` has the sign of the bias; ``responsivity_a_per_w`` is s_I (negative for
    positive bias); ``pulse_a_per_ev`` the small-signal pulse peak per eV (≥ 0);
    ``saturation_a`` the largest possible current drop A_sat.
    """

    i_bias: np.ndarray
    t_bath: float
    i_tes: np.ndarray
    r_tes: np.ndarray
    t_tes: np.ndarray
    v_tes: np.ndarray
    p_joule: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    g_w_per_k: np.ndarray
    loop_gain: np.ndarray
    responsivity_a_per_w: np.ndarray
    pulse_a_per_ev: np.ndarray
    saturation_a: np.ndarray
    rn_ohm: float

    @property
    def frac_rn(self) -> np.ndarray:
        return self.r_tes / self.rn_ohm


@dataclass
class SquidState:
    """Per-channel FLL settings (copies are handed to stream blocks)."""

    locked: np.ndarray
    feedback_gain: np.ndarray
    flux_offset: np.ndarray
    k: np.ndarray

    def copy(self) -> SquidState:
        return SquidState(self.locked.copy(), self.feedback_gain.copy(), self.flux_offset.copy(), self.k.copy())


def _validate(c: TESConfig) -> None:
    positive = ["fs_hz", "tc_k", "transition_width_k", "rn_ohm", "r_shunt_ohm", "thermal_exponent",
                "k_w_per_k_n", "r_line_ohm", "input_current_per_phi0_a", "adc_counts_per_volt"]
    for name in positive:
        if not getattr(c, name) > 0:
            raise ValueError(f"world.tes.{name} must be > 0, got {getattr(c, name)!r}")
    for name in ["r_parasitic_ohm", "tc_spread_k", "tc_current_k_per_a", "rate_hz", "white_noise_a_per_rthz",
                 "one_over_f_knee_hz", "unlocked_swing_v"]:
        if not getattr(c, name) >= 0:
            raise ValueError(f"world.tes.{name} must be >= 0, got {getattr(c, name)!r}")
    if not (isinstance(c.n_channels, int) and 1 <= c.n_channels <= 1024):
        raise ValueError(f"world.tes.n_channels must be an integer 1..1024, got {c.n_channels!r}")
    if not (isinstance(c.samples_per_packet, int) and c.samples_per_packet >= 1):
        raise ValueError(f"world.tes.samples_per_packet must be a positive integer, got {c.samples_per_packet!r}")
    for line, chans in c.bias_lines.items():
        if not isinstance(chans, (list, tuple)) or not all(isinstance(k, int) and 0 <= k < c.n_channels for k in chans):
            raise ValueError(f"world.tes.bias_lines.{line}: expected a list of channels 0..{c.n_channels - 1}, got {chans!r}")
    try:
        resolve_line_shapes(list(c.line_shapes), len(c.lines_ev))
    except ValueError as exc:
        raise ValueError(f"world.tes.{str(exc).removeprefix('photons.')}") from None


class TESArrayModel:
    """The TES pixels, their bias, SQUIDs and readout streams, behind one lock.

    ``bath_k`` is called for the bath temperature (the world passes the fridge's
    MXC temperature); ``seed`` is the world seed.
    """

    def __init__(self, config: TESConfig, bath_k: Callable[[], float], seed: int) -> None:
        _validate(config)
        self.config = config
        self._bath_k = bath_k
        self._seed = seed
        c = config
        n = c.n_channels
        ss = np.random.SeedSequence(seed, spawn_key=(_SEED_KEY,))
        layout_ss, squid_ss = ss.spawn(2)
        self.tc_k = c.tc_k + c.tc_spread_k * np.random.default_rng(layout_ss).standard_normal(n)
        self.channels = np.arange(n)
        self._squid_rng = np.random.default_rng(squid_ss)
        self._lock = threading.RLock()
        self._bias = np.zeros(n)
        self._bias_version = 0
        self._claims: dict[str, np.ndarray] = {}
        self._squid = SquidState(
            locked=np.ones(n, dtype=bool),
            feedback_gain=np.full(n, float(c.feedback_gain_v_per_phi0)),
            flux_offset=np.zeros(n),
            k=np.zeros(n, dtype=np.int64),
        )
        self._op_cache: tuple[int, float, OperatingPoint] | None = None
        self._stream: TESStream | None = None
        self._n_streams = 0
        self._peak = pulse_peak(c.tau_rise_s, c.tau_fall_s)
        decimation = c.one_over_f_decimation
        if decimation is None:
            decimation = max(1, int(c.fs_hz // (5.0 * c.one_over_f_max_hz)))
        if not (isinstance(decimation, int) and decimation >= 1 and c.fs_hz / decimation > 2 * c.one_over_f_max_hz):
            raise ValueError(f"world.tes.one_over_f_decimation={decimation!r}: fs_hz / decimation must exceed "
                             f"2 × one_over_f_max_hz ({2 * c.one_over_f_max_hz:g} Hz)")
        if not 0 < c.one_over_f_min_hz < c.one_over_f_max_hz:
            raise ValueError("world.tes: need 0 < one_over_f_min_hz < one_over_f_max_hz, got "
                             f"{c.one_over_f_min_hz}, {c.one_over_f_max_hz}")
        self._noise_cfg = NoiseConfig(
            tls_sxx_at_1hz=float(c.one_over_f_knee_hz), tls_corner_min_hz=c.one_over_f_min_hz,
            tls_corner_max_hz=c.one_over_f_max_hz, tls_corners_per_decade=c.one_over_f_corners_per_decade,
            tls_decimation=decimation,
        )

    @property
    def n_channels(self) -> int:
        return self.config.n_channels

    def bath_k(self) -> float:
        """The bath (MXC) temperature now."""
        return float(self._bath_k())

    # -- steady state ----------------------------------------------------------------
    def _solve(self, v: np.ndarray, tc: np.ndarray, t_bath: float) -> dict[str, np.ndarray]:
        """Highest-x root of the power balance for Thevenin voltages ``v`` ≥ 0 (flat arrays)."""
        c = self.config
        dt, rn, cur = c.transition_width_k, c.rn_ohm, c.tc_current_k_per_a
        rl = c.r_shunt_ohm + c.r_parasitic_ohm
        n_exp, k = c.thermal_exponent, c.k_w_per_k_n
        tb_n = t_bath**n_exp

        def balance(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            s = expit(2.0 * x)
            r = rn * s
            i = v / (rl + r)
            t = tc - cur * i + x * dt
            h = i * i * r - k * (np.maximum(t, 0.0) ** n_exp - tb_n)
            return h, s, i, t

        i_n = v / (rl + rn)
        t_n = (tb_n + i_n**2 * rn / k) ** (1.0 / n_exp)
        x_hi = np.maximum((t_n - tc + cur * i_n) / dt, 20.0) + 2.0
        x_lo = np.minimum((t_bath - tc) / dt, -20.0) - 2.0
        u = np.linspace(0.0, 1.0, 64)[:, None]
        grid = np.concatenate([
            x_lo + (-20.0 - x_lo) * u,
            np.linspace(-20.0, 20.0, 1601)[:, None] + 0.0 * v,
            20.0 + (x_hi - 20.0) * u,
        ])
        h, *_ = balance(grid)
        pos = h > 0
        cross = pos[:-1] & ~pos[1:]
        last = cross.shape[0] - 1 - np.argmax(cross[::-1], axis=0)
        cols = np.arange(v.size)
        lo, hi = grid[last, cols], grid[last + 1, cols]
        for _ in range(48):
            mid = 0.5 * (lo + hi)
            above = balance(mid)[0] > 0
            lo = np.where(above, mid, lo)
            hi = np.where(above, hi, mid)
        x = 0.5 * (lo + hi)
        _, s, i, t = balance(x)
        return {"s": s, "i": i, "t": t}

    def operating_point(self, i_bias: float | np.ndarray, t_bath: float | None = None,
                        channel: int | None = None) -> OperatingPoint:
        """Steady state at bias current(s) ``i_bias`` (A) and bath ``t_bath`` (K; default: the fridge now).

        ``channel=None``: every pixel, ``i_bias`` a scalar or one value per channel;
        ``channel=k``: pixel k at every value of ``i_bias`` (any shape).
        """
        c = self.config
        tb = self.bath_k() if t_bath is None else float(t_bath)
        ib = np.asarray(i_bias, dtype=float)
        if channel is None:
            ib = np.broadcast_to(ib, (c.n_channels,)).astype(float)
            tc = self.tc_k.copy()
        else:
            if not 0 <= int(channel) < c.n_channels:
                raise ValueError(f"TES channel {channel} out of range 0..{c.n_channels - 1}")
            tc = np.full(ib.shape, self.tc_k[int(channel)])
        shape = ib.shape
        flat_ib, flat_tc = ib.ravel(), tc.ravel()
        sign = np.where(flat_ib < 0, -1.0, 1.0)
        v = np.abs(flat_ib) * c.r_shunt_ohm
        sol = self._solve(v, flat_tc, tb)
        s, i_abs, t = sol["s"], sol["i"], sol["t"]
        rl = c.r_shunt_ohm + c.r_parasitic_ohm
        r = c.rn_ohm * s
        p = i_abs**2 * r
        alpha = 2.0 * t * (1.0 - s) / c.transition_width_k
        beta = 2.0 * c.tc_current_k_per_a * i_abs * (1.0 - s) / c.transition_width_k
        g = c.thermal_exponent * c.k_w_per_k_n * np.maximum(t, 1e-12) ** (c.thermal_exponent - 1.0)
        loop = p * alpha / (g * np.maximum(t, 1e-12))
        denom = i_abs * ((1.0 - loop) * (rl + r * (1.0 + beta)) + loop * r * (2.0 + beta))
        with np.errstate(divide="ignore", invalid="ignore"):
            s_i = np.where((i_abs > 0) & (denom > 0), -loop / denom, 0.0)
        pulse = np.abs(s_i) * E_CHARGE * self._peak / (c.tau_fall_s - c.tau_rise_s)
        sat = np.maximum(i_abs - v / (rl + c.rn_ohm), 0.0)

        def out(a: np.ndarray) -> np.ndarray:
            return a.reshape(shape)

        return OperatingPoint(
            i_bias=out(flat_ib), t_bath=tb, i_tes=out(sign * i_abs), r_tes=out(r), t_tes=out(t),
            v_tes=out(sign * i_abs * r), p_joule=out(p), alpha=out(alpha), beta=out(beta), g_w_per_k=out(g),
            loop_gain=out(loop), responsivity_a_per_w=out(sign * s_i), pulse_a_per_ev=out(pulse),
            saturation_a=out(sat), rn_ohm=float(c.rn_ohm),
        )

    def iv_curve(self, i_bias: np.ndarray, t_bath: float | None = None, channel: int = 0) -> np.ndarray:
        """True TES current (A) of pixel ``channel`` at each bias current of ``i_bias`` (A)."""
        return self.operating_point(np.asarray(i_bias, dtype=float), t_bath, channel).i_tes

    def pulse_height_a(self, energy_ev: float | np.ndarray, op: OperatingPoint | None = None) -> np.ndarray:
        """Peak |δI| (A) of an isolated pulse of ``energy_ev`` on every channel (saturation included),
        shaped ``energy_ev.shape + (n_channels,)``; ``op`` defaults to the present operating point."""
        op = self.current_operating_point() if op is None else op
        e = np.asarray(energy_ev, dtype=float)[..., None]
        lin = op.pulse_a_per_ev * e
        if not self.config.saturation:
            return lin
        sat = op.saturation_a
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(sat > 0, sat * np.tanh(lin / np.where(sat > 0, sat, 1.0)), 0.0)

    def current_operating_point(self) -> OperatingPoint:
        """Operating point of every pixel at the present bias and bath (cached; refreshed when the
        bias changes or the bath moves by more than 1 µK)."""
        tb = self.bath_k()
        with self._lock:
            cached = self._op_cache
            if cached is not None and cached[0] == self._bias_version and abs(cached[1] - tb) <= 1e-6:
                return cached[2]
            op = self.operating_point(self._bias.copy(), tb)
            self._op_cache = (self._bias_version, tb, op)
            return op

    # -- bias ---------------------------------------------------------------------------
    def bias_line(self, name: str, channels: Sequence[int] | None = None) -> np.ndarray:
        """Claim the channels a bias source called ``name`` drives: ``channels`` if given, else
        ``config.bias_lines[name]``, else every channel. Two sources may not share a channel."""
        c = self.config
        if channels is None:
            channels = c.bias_lines.get(name, range(c.n_channels))
        chans = np.unique(np.asarray(list(channels), dtype=int))
        if chans.size == 0 or chans.min() < 0 or chans.max() >= c.n_channels:
            raise ValueError(f"{name}: bias-line channels must be in 0..{c.n_channels - 1}, got {list(channels)}")
        with self._lock:
            for other, taken in self._claims.items():
                shared = np.intersect1d(taken, chans)
                if other != name and shared.size:
                    raise ValueError(f"{name}: TES channel(s) {shared.tolist()} are already biased by {other!r}")
            self._claims[name] = chans
        return chans

    def set_bias(self, channels: np.ndarray, i_bias: float) -> None:
        """Set the bias current (A) of ``channels`` (a bias line carries one current through all its shunts)."""
        with self._lock:
            new = self._bias.copy()
            new[np.asarray(channels, dtype=int)] = float(i_bias)
            if not np.array_equal(new, self._bias):
                self._bias = new
                self._bias_version += 1

    def bias_current(self) -> np.ndarray:
        with self._lock:
            return self._bias.copy()

    def load_resistance(self, channels: np.ndarray, i_bias: float, t_bath: float | None = None) -> float:
        """Resistance (Ω) a bias source sees on a line carrying ``i_bias`` through ``channels``:
        the line's wiring plus each pixel's shunt in parallel with its TES branch."""
        c = self.config
        op = self.operating_point(float(i_bias), t_bath)
        branch = c.r_parasitic_ohm + op.r_tes[np.asarray(channels, dtype=int)]
        return float(c.r_line_ohm + np.sum(c.r_shunt_ohm * branch / (c.r_shunt_ohm + branch)))

    # -- SQUIDs -------------------------------------------------------------------------
    def squid_state(self) -> SquidState:
        with self._lock:
            return self._squid.copy()

    def _check_channel(self, channel: int) -> int:
        if not 0 <= int(channel) < self.config.n_channels:
            raise ValueError(f"SQUID channel {channel} out of range 0..{self.config.n_channels - 1}")
        return int(channel)

    def _relock(self, ch: int) -> None:
        phi = self.current_operating_point().i_tes[ch] / self.config.input_current_per_phi0_a
        jump = int(self._squid_rng.integers(-1, 2))
        self._squid.k[ch] = round(float(phi - self._squid.flux_offset[ch])) + jump
        self._squid.locked[ch] = True

    def set_locked(self, channel: int, locked: bool) -> None:
        """Close (lock) or open the flux-locked loop of ``channel``; locking picks a flux quantum."""
        ch = self._check_channel(channel)
        with self._lock:
            if locked and not self._squid.locked[ch]:
                self._relock(ch)
            elif not locked:
                self._squid.locked[ch] = False

    def reset(self, channel: int) -> None:
        """Reset the FLL integrator: the loop relocks, possibly one flux quantum away."""
        ch = self._check_channel(channel)
        with self._lock:
            self._relock(ch)

    def set_feedback_gain(self, channel: int, gain_v_per_phi0: float) -> None:
        ch = self._check_channel(channel)
        with self._lock:
            self._squid.feedback_gain[ch] = float(gain_v_per_phi0)

    def set_flux_offset(self, channel: int, offset_phi0: float) -> None:
        ch = self._check_channel(channel)
        with self._lock:
            self._squid.flux_offset[ch] = float(offset_phi0)

    def counts_per_ampere(self) -> np.ndarray:
        """ADC counts per ampere of TES current on each channel while locked (sign included)."""
        c = self.config
        with self._lock:
            return self._squid.feedback_gain / c.input_current_per_phi0_a * c.adc_counts_per_volt

    # -- noise --------------------------------------------------------------------------
    def noise_psd_a2_per_hz(self, freqs_hz: np.ndarray) -> np.ndarray:
        """One-sided current-noise PSD (A²/Hz) of the model at ``freqs_hz`` (continuous-time Lorentzian sum)."""
        c = self.config
        f = np.asarray(freqs_hz, dtype=float)
        s_w = c.white_noise_a_per_rthz**2
        if c.one_over_f_knee_hz <= 0:
            return np.full(f.shape, s_w)
        corners = tls_corners(self._noise_cfg)
        ratio = corners[1] / corners[0] if corners.size > 1 else 10.0
        sigma2 = c.one_over_f_knee_hz * math.log(ratio)
        lorentz = (2.0 * sigma2 / math.pi) * corners / (corners**2 + f[..., None] ** 2)
        return s_w * (1.0 + lorentz.sum(axis=-1))

    def noise_psd_counts(self, freqs_hz: np.ndarray) -> np.ndarray:
        """One-sided PSD (counts²/Hz) of the locked ADC stream without pulses, (n_channels, n_freqs):
        the current noise times counts_per_ampere² plus ADC quantisation, 1/(6 fs)."""
        s_i = self.noise_psd_a2_per_hz(freqs_hz)
        cpa = self.counts_per_ampere()
        return cpa[:, None] ** 2 * s_i[None, :] + 1.0 / (6.0 * self.config.fs_hz)

    # -- streams ------------------------------------------------------------------------
    def new_stream(self) -> TESStream:
        """Start a readout stream (sample 0 = now); it becomes the current one."""
        with self._lock:
            self._stream = TESStream(self, self._n_streams)
            self._n_streams += 1
            return self._stream

    def block(self, first_sample: int, n: int) -> np.ndarray:
        """int16 samples (n, n_channels) of the current stream (started on first use)."""
        with self._lock:
            stream = self._stream if self._stream is not None else self.new_stream()
        return stream.block(first_sample, n)

    def truth(self) -> np.ndarray:
        """Particle arrivals of the current stream (fields sample, t_sample, resonator = channel, energy_ev)."""
        with self._lock:
            if self._stream is None:
                return np.empty(0, dtype=TRUTH_DTYPE)
            return self._stream.photons.truth()


class TESStream:
    """One demultiplexed readout stream, produced forward in blocks of (n, n_channels) int16.

    Block-invariant like the MKID ADC stream: white noise by fixed seeded chunks, the
    1/f grid in sequence, arrivals per channel in sequence, so any split (or a jump
    forward) gives the same samples for the same settings.
    """

    def __init__(self, tes: TESArrayModel, stream_id: int) -> None:
        c = tes.config
        self._tes = tes
        self.fs = float(c.fs_hz)
        self.stream_id = stream_id
        key = (_SEED_KEY, stream_id)
        n = c.n_channels
        self._white = WhiteNoise(tes._seed, key + (1,))
        self._one_over_f = TLSNoise(tes._noise_cfg, self.fs, n, tes._seed, key + (2,))
        photon_cfg = PhotonConfig(rate_hz=c.rate_hz, lines_ev=list(c.lines_ev), weights=list(c.weights),
                                  tau_rise_s=c.tau_rise_s, tau_fall_s=c.tau_fall_s,
                                  pulse_length_taus=c.pulse_length_taus, truth_max=c.truth_max,
                                  line_shapes=list(c.line_shapes))
        self.photons = PhotonTrains(photon_cfg, self.fs, n, tes._seed, key + (3,))
        self._sigma_white = c.white_noise_a_per_rthz * math.sqrt(self.fs / 2.0)
        self._sqrt_sw = c.white_noise_a_per_rthz
        self._next = 0

    def block(self, first: int, n: int) -> np.ndarray:
        if first < self._next:
            raise ValueError(
                f"TES stream {self.stream_id}: block at sample {first} goes back before sample {self._next}; "
                "streams only move forward (start a new stream to begin again)"
            )
        tes, c = self._tes, self._tes.config
        op = tes.current_operating_point()
        squid = tes.squid_state()
        if first > self._next:
            self._one_over_f.advance_to(first)
        self._next = first + n
        n_ch = c.n_channels
        current = np.repeat(op.i_tes[:, None], n, axis=1)
        profile, active = self.photons.profile(first, n)
        if active.any():
            lin = op.pulse_a_per_ev[:, None] * profile
            sign = np.where(op.i_bias < 0, -1.0, 1.0)[:, None]
            sat = op.saturation_a[:, None]
            if c.saturation:
                safe = np.where(sat > 0, sat, 1.0)
                lin = np.where(sat > 0, sat * np.tanh(lin / safe), 0.0)
            current -= sign * lin
        if self._sigma_white > 0:
            current += self._sigma_white * self._white.take(first * n_ch, n * n_ch).reshape(n, n_ch).T
        if self._one_over_f.enabled:
            current += self._sqrt_sw * self._one_over_f.take(first, n)
        phi = current / c.input_current_per_phi0_a - squid.flux_offset[:, None]
        volts = np.where(
            squid.locked[:, None],
            squid.feedback_gain[:, None] * (phi - squid.k[:, None]),
            c.unlocked_swing_v * np.sin(2.0 * np.pi * phi),
        )
        counts = np.rint(volts * c.adc_counts_per_volt)
        np.clip(counts, INT16_MIN, INT16_MAX, out=counts)
        return np.ascontiguousarray(counts.T.astype(np.int16))
