"""The Y-factor measurement model and its GUM budget (cryodaq.metrology.noise).

The coverage test repeats the demo paramp station's noise measurement many times in-process: each
repeat draws a new bench (line loss, line temperature, hot/cold mismatch, thermometer errors,
analyzer and VNA scale errors) from the distributions the station's calibrations state, draws the
analyzer's and the VNA's readings from the simulated world (sim_instruments.world.yfactor_bench:
the same physics the instrument faces serve), and checks the stated interval ±U (k = 2) against the
world's truth. The full 200-repeat figure over several seeds is printed by
``python benchmarks/noise_coverage.py``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from cryodaq.instruments.parametric_amplifier import yfactor_noise_temperature
from cryodaq.metrology.calibrations import Calibration
from cryodaq.metrology.noise import (
    NoiseReading,
    S21Reading,
    YFactorPoint,
    cw_temperature_k,
    noise_source_model,
    yfactor_budget,
    yfactor_model,
)
from cryodaq.station import load_station_config
from sim_instruments.world.noise_bench import NoiseBenchConfig
from sim_instruments.world.vna import VnaFrontEnd, VnaModel
from sim_instruments.world.world import World
from sim_instruments.world.yfactor_bench import yfactor_readings

REPO = Path(__file__).resolve().parents[2]
STATION = REPO / "stations" / "demo_paramp.yaml"
FLUX_A, PUMP_HZ, PUMP_DBM, F_HZ = 3.2954e-4, 10.0008e9, -20.5, 5.0004e9
NEUTRAL = {"line_loss_db": 0.0, "line_temperature_k": 0.0, "source_mismatch": 1.0, "analyzer_linearity": 0.0,
           "vna_linearity": 0.0}


def demo_world(seed: int = 1) -> World:
    """The demo station's JPA at its operating point, ideal bench."""
    world = World({"seed": seed, "paramp": {"enabled": True, "hot_load": "4k", "linewidth_hz": 1e8}})
    world.paramp.set_flux_current(FLUX_A)
    world.paramp.set_pump(frequency_hz=PUMP_HZ, power_dbm=PUMP_DBM, on=True)
    return world


def draw_bench(rng: np.random.Generator, cals: dict[str, Calibration]) -> NoiseBenchConfig:
    """A bench as it could truly be, given what the calibrations say about it."""
    def draw(role: str, value: float = 0.0) -> float:
        return float(cals[role].as_input("x", value).sample(rng, 1)[0])

    return NoiseBenchConfig(
        line_loss_db=max(0.0, draw("input_line_loss", cals["input_line_loss"].value)),
        line_temperature_k=max(0.0, draw("input_line_temperature", cals["input_line_temperature"].value)),
        hot_mismatch=draw("source_mismatch", 1.0), hot_thermometer_offset_k=draw("hot_load_temperature"),
        cold_thermometer_offset_k=draw("cold_load_temperature"), analyzer_scale_error=draw("analyzer_linearity"),
        vna_scale_error=draw("vna_linearity"))


def measure(world: World, vna: VnaModel, rng: np.random.Generator, cals: dict[str, Calibration]) -> dict:
    """One Y-factor measurement at F_HZ and its budgets."""
    r = yfactor_readings(world, F_HZ, rng, vna)
    noise = {key: NoiseReading.from_trace_mw(trace) for key, trace in r.traces_mw.items()}
    s21 = {key: S21Reading.from_trace(points) for key, points in r.s21.items()}
    return yfactor_budget(YFactorPoint.from_readings(F_HZ, noise, s21, r.t_hot_k, r.t_cold_k), cals)


def coverage(n: int, seed: int, cals: dict[str, Calibration]) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(covered?, dominant input, normalised error) of T_n (pump on) over ``n`` repeats, each on a new bench."""
    world = demo_world(seed)
    vna = VnaModel(world, VnaFrontEnd(), f"vna{seed}")
    rng = np.random.default_rng(seed)
    covered, dominant, z = [], [], []
    for _ in range(n):
        world.paramp.config.bench = draw_bench(rng, cals)
        b = measure(world, vna, rng, cals)["receiver_noise_on_k"]
        truth = float(world.paramp.noise_temperature_k(F_HZ))
        covered.append(b.covers(truth))
        dominant.append(b.dominant().name)
        z.append((b.value - truth) / b.u)
    return np.array(covered), dominant, np.array(z)


@pytest.fixture(scope="module")
def calibrations() -> dict[str, Calibration]:
    return load_station_config(STATION).calibrations


def test_200_repeats_cover_the_simulated_truth_at_the_stated_rate(calibrations):
    """93-97 % of 200 repeated measurements have the world's T_n within ±U (k = 2), and the normalised
    errors (x − truth)/u_c scatter as a unit normal: the stated uncertainty is neither too small
    nor too large; the input the simulation makes dominant (the line loss) leads the budget."""
    covered, dominant, z = coverage(200, seed=11, cals=calibrations)
    assert 0.93 <= covered.mean() <= 0.97, covered.mean()
    assert abs(np.mean(z)) < 0.25 and 0.85 < np.std(z) < 1.15
    assert max(set(dominant), key=dominant.count) == "line_loss_db"
    assert dominant.count("line_loss_db") > 0.9 * len(dominant)


def test_the_dominant_term_follows_what_the_simulation_makes_dominant(calibrations):
    """State (and draw) a poor hot-load thermometer and a well-known line: the budget's leading term moves
    to the hot load's temperature, and the intervals still cover the truth."""
    cals = dict(calibrations)
    cals["hot_load_temperature"] = dataclasses.replace(cals["hot_load_temperature"], uncertainty=0.2)  # u = 0.1 K
    cals["input_line_loss"] = dataclasses.replace(cals["input_line_loss"], uncertainty=0.01)
    covered, dominant, _ = coverage(40, seed=3, cals=cals)
    assert dominant.count("t_hot_k") == len(dominant)
    assert covered.mean() >= 0.85  # 40 repeats: the binomial scatter is ±3 %


def test_neutral_corrections_reproduce_the_plain_yfactor_arithmetic():
    """No line, no mismatch, no linearity error: the model is yfactor_noise_temperature's formula."""
    powers = {"p_hot_off": 2.0, "p_cold_off": 1.1, "p_hot_on": 9.0, "p_cold_on": 1.2}
    out = yfactor_model(freq_hz=5e9, t_hot_k=3.3, t_cold_k=0.012, s21_sq_on=100.0, s21_sq_off=1.0, **powers, **NEUTRAL)
    plain = yfactor_noise_temperature((2.0, 9.0), (1.1, 1.2), 3.3, 0.012, 5e9, 20.0)
    assert float(out["receiver_noise_on_k"]) == pytest.approx(plain.receiver_noise_on_k, rel=1e-12)
    assert float(out["paramp_added_noise_k"]) == pytest.approx(plain.paramp_added_noise_k, rel=1e-12)
    assert float(out["snr_improvement_db"]) == pytest.approx(20.0 - 10 * math.log10(1.2 / 1.1))


def test_line_loss_and_an_enr_noise_source_are_undone_exactly():
    """Powers made from a known receiver noise through a 1 dB line at 20 mK give that noise back; so do
    powers from a noise source of 15 dB ENR (T_hot = T_off + 290 K·10^1.5), whose ENR uncertainty then
    dominates the budget."""
    f, t_n, loss, t_line = 6e9, 2.5, 1.0, 0.02
    a = 10 ** (-loss / 10)
    line = (1 - a) * float(cw_temperature_k(t_line, f))
    t_hot, t_cold = a * float(cw_temperature_k(4.0, f)) + line, a * float(cw_temperature_k(0.015, f)) + line
    out = yfactor_model(freq_hz=f, t_hot_k=4.0, t_cold_k=0.015, p_hot_off=t_hot + t_n, p_cold_off=t_cold + t_n,
                        p_hot_on=t_hot + t_n, p_cold_on=t_cold + t_n, s21_sq_on=1.0, s21_sq_off=1.0,
                        **{**NEUTRAL, "line_loss_db": loss, "line_temperature_k": t_line})
    assert float(out["receiver_noise_on_k"]) == pytest.approx(t_n, rel=1e-9)

    t_off, enr = 296.0, 15.0
    hot, cold = t_off + 290.0 * 10 ** 1.5, float(cw_temperature_k(t_off, f))
    out = noise_source_model(freq_hz=f, enr_db=enr, t_off_k=t_off, p_hot_off=hot + 50, p_cold_off=cold + 50,
                             p_hot_on=hot + 50, p_cold_on=cold + 50, s21_sq_on=1.0, s21_sq_off=1.0, **NEUTRAL)
    assert float(out["receiver_noise_on_k"]) == pytest.approx(50.0, rel=1e-6)
    import datetime as dt

    source = Calibration("noise_source_enr", "346C SN TEST, certificate 1", dt.date(2024, 5, 2),
                         uncertainty=0.1, unit="dB", table=((4e9, 14.8), (8e9, 15.2)), parameters={"t_off_k": t_off})
    point = YFactorPoint(f, (hot + 50, 0.1, 200), (cold + 50, 0.05, 200), (hot + 50, 0.1, 200), (cold + 50, 0.05, 200),
                         (1.0, 0.0, math.inf), (1.0, 0.0, math.inf), math.nan, t_off)
    budget = yfactor_budget(point, {"noise_source_enr": source})["receiver_noise_on_k"]
    assert budget.row("enr_db").value == pytest.approx(15.0)  # interpolated at 6 GHz
    assert budget.dominant().name == "enr_db"
    assert "346C SN TEST" in budget.row("enr_db").source
    with pytest.raises(ValueError, match="outside its table"):
        yfactor_budget(dataclasses.replace(point, freq_hz=9e9), {"noise_source_enr": source})


def test_missing_calibrations_enter_as_exact_and_say_so():
    point = YFactorPoint(F_HZ, (2.0, 0.01, 200), (1.0, 0.01, 200), (9.0, 0.05, 200), (1.2, 0.01, 200),
                         (100.0, 0.5, 20), (1.0, 0.005, 20), 3.3, 0.012)
    b = yfactor_budget(point, {})["receiver_noise_on_k"]
    assert b.row("line_loss_db").u == 0 and "not stated" in b.row("line_loss_db").source
    assert {r.name for r in b.rows if r.kind == "A"} == {"p_hot_off", "p_cold_off", "p_hot_on", "p_cold_on",
                                                         "s21_sq_on", "s21_sq_off"}
    assert b.u > 0 and math.isfinite(b.dof)
