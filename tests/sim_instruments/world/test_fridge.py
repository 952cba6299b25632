"""The fridge model (FridgeModel): thermal dynamics on a scripted clock."""

from __future__ import annotations

import math

import pytest

from sim_instruments.world.fridge import FridgeConfig, FridgeModel


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make(tau: float = 0.1) -> tuple[FridgeModel, Clock]:
    clock = Clock()
    return FridgeModel(FridgeConfig(tau_s=tau), clock, seed=1), clock


def test_heater_moves_mxc_to_its_equilibrium_with_time_constant():
    fridge, clock = make(tau=0.1)
    base = fridge.mxc_k()
    assert base == pytest.approx(0.012)
    fridge.set_heater_power(100e-6)
    t_eq = fridge.equilibrium_k(100e-6)
    assert t_eq == pytest.approx(math.sqrt(0.012**2 + 100e-6 / 0.01))
    clock.t += 0.1  # one time constant
    assert fridge.mxc_k() == pytest.approx(t_eq + (base - t_eq) * math.exp(-1), rel=1e-9)
    clock.t += 1.0
    assert fridge.mxc_k() == pytest.approx(t_eq, rel=1e-4)
    fridge.set_heater_power(0.0)
    clock.t += 2.0
    assert fridge.mxc_k() == pytest.approx(base, rel=1e-3)


def test_power_for_k_inverts_equilibrium():
    fridge, _ = make()
    assert fridge.equilibrium_k(fridge.power_for_k(0.2)) == pytest.approx(0.2)
    assert fridge.power_for_k(0.001) == 0.0


def test_warm_up_fault_beats_the_controller():
    fridge, clock = make(tau=0.1)
    # a controller that would hold 50 mK: it can only heat, never cool
    fridge.set_controller(lambda t, temp: max(0.0, 1e-3 * (0.05 - temp)))
    clock.t += 1.0
    held = fridge.mxc_k()
    fridge.warm_up(rate_k_per_s=0.1, target_k=0.5)
    clock.t += 2.0
    warm = fridge.mxc_k()
    assert warm > held + 0.1
    assert fridge.heater_power_w == 0.0  # the controller gave up heating
    clock.t += 10.0
    assert fridge.mxc_k() == pytest.approx(0.5, rel=0.01)  # stops at the target
    fridge.stop_warm_up()
    clock.t += 5.0
    assert fridge.mxc_k() < 0.06


def test_readings_are_noisy_but_close_and_plates_are_plausible():
    fridge, _ = make()
    reads = [fridge.read("mxc") for _ in range(200)]
    assert min(reads) != max(reads)
    assert sum(reads) / len(reads) == pytest.approx(0.012, rel=1e-3)
    assert 0.5 < fridge.read("still") < 1.2
    assert 2.5 < fridge.read("4k") < 4.5
    with pytest.raises(ValueError, match="unknown fridge stage"):
        fridge.read("50k")


def test_long_idle_gap_is_cheap_and_settles():
    fridge, clock = make(tau=0.1)
    fridge.set_controller(lambda t, temp: 50e-6)
    clock.t += 1e6  # eleven days without a read
    assert fridge.mxc_k() == pytest.approx(fridge.equilibrium_k(50e-6), rel=1e-6)
