"""What a simulated VNA measures (world.vna): the world's S21 through the front end, and its noise."""

from __future__ import annotations

import numpy as np
import pytest

from sim_instruments.world.vna import VnaFrontEnd, VnaModel
from sim_instruments.world.world import World

FRONTEND = VnaFrontEnd()


def expected_s21(world: World, freqs: np.ndarray, source_dbm: float, fe: VnaFrontEnd = FRONTEND) -> np.ndarray:
    """What the module docstring of sim_instruments.world.vna promises, written out independently."""
    gain = 10 ** ((fe.output_gain_db - fe.line_attenuation_db) / 20)
    background = np.exp(1j * (fe.phase_offset_rad - 2 * np.pi * freqs * fe.cable_delay_s))
    return gain * background * world.chain_s21(freqs, source_dbm - fe.line_attenuation_db)


def noise_sigma(source_dbm: float, ifbw_hz: float, n_avg: int = 1, fe: VnaFrontEnd = FRONTEND) -> float:
    k_b = 1.380649e-23
    density = k_b * fe.noise_temperature_k * 10 ** (fe.output_gain_db / 10) + 10 ** (fe.receiver_noise_dbm_per_hz / 10) * 1e-3
    return float(np.sqrt(density * ifbw_hz / (10 ** (source_dbm / 10) * 1e-3) / n_avg))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.abs(x) ** 2)))


@pytest.fixture
def world():
    return World({}, clock=lambda: 0.0)


def test_physics_noise_scales_with_ifbw_averages_and_power(world):
    phys = VnaModel(world, VnaFrontEnd(), "vna")
    base = phys.noise_rms(-30, 1e3)
    assert base == pytest.approx(noise_sigma(-30, 1e3), rel=1e-12)
    assert phys.noise_rms(-30, 1e5) == pytest.approx(10 * base)
    assert phys.noise_rms(-30, 1e3, 16) == pytest.approx(base / 4)
    assert phys.noise_rms(-10, 1e3) == pytest.approx(base / 10)
    f = np.linspace(4.9e9, 5.1e9, 4001)
    z = phys.measure("S21", f, -30, 1e3)
    assert rms(z - expected_s21(world, f, -30)) == pytest.approx(base, rel=0.05)
    off = phys.measure("S21", f, -30, 1e3, rf_on=False)
    assert rms(off) == pytest.approx(base, rel=0.05)
