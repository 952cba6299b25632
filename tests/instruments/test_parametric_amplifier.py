"""ParametricAmplifier measurements against the simulated world, through the real qcodes drivers.

Pump: R&S SGS100A (and Keysight N51x1), flux: Yokogawa GS200, noise: Keysight N9030B and the
hot/cold load switch, all over pyvisa-py TCP on simulator faces. S21 comes from the Keysight PNA
simulator through the qcodes N5222B driver, and from ``FakeVNA`` — the VNA adapter protocol
implemented straight on the world — for the unit tests of the measurement logic.

The truth is ``world.paramp`` (sim_instruments/world/paramp.py): what the simulated JPA was given.
The grids — tune-up and Y-factor noise temperature — are sweeps, tested with the procedures
(tests/sweeps/test_paramp_procedures.py); here the single-shot measurements and the Y-factor arithmetic.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from scipy.constants import h as PLANCK_H
from scipy.constants import k as BOLTZMANN_K
from qcodes.instrument_drivers.Keysight import KeysightN5222B, KeysightN9030B
from qcodes.instrument_drivers.Keysight.N51x1 import KeysightN51x1
from qcodes.instrument_drivers.rohde_schwarz import RohdeSchwarzSGS100A
from qcodes.instrument_drivers.yokogawa import YokogawaGS200

from cryodaq.acquisition.session import StreamSession
from cryodaq.station.bringup import with_simulator_ports
from cryodaq.errors import SafetyLimitError
from cryodaq.instruments import (
    NoiseLoadSwitch,
    ParametricAmplifier,
    RohdeSchwarzZNBSocket,
)
from cryodaq.instruments.analyzer_adapters import VNA, vna_adapter
from cryodaq.instruments.parametric_amplifier import cw_temperature_k, yfactor_noise_temperature
from cryodaq.station import build_station, close_station, load_station_config
from cryodaq.storage import open_run
from cryodaq.sweeps.procedures import NoisePlan, run_noise_temperature
from sim_instruments.faces.keysight_n51x1 import KeysightN51x1Face
from sim_instruments.servers.launcher import serve
from sim_instruments.servers.simulated_station import SimulatedStation
from sim_instruments.world.world import World

DEMO = Path(__file__).resolve().parents[2] / "stations" / "demo_paramp.yaml"
_names = itertools.count()
ANY = "TCPIP0::127.0.0.1::0::SOCKET"
FLUX_A = 3.2954e-4  # puts f0 at 5.0004 GHz (f_max 7 GHz, 1 Φ0/mA)
PUMP_DBM = -20.5  # ≈ 19.3 dB of gain on resonance (threshold -70 dBm + 50 dB of line)


class FakeVNA:
    """The VNA adapter protocol on the world: S21 = g · chain_s21(f, P − attenuation) + noise.

    Noise: complex Gaussian of rms ``noise`` relative to the off-resonance S21 at -70 dBm and
    1 kHz IF bandwidth, scaling as √IFBW / √(P · averages) — a HEMT-limited VNA.
    """

    def __init__(self, world: World, attenuation_db: float = 60.0, noise: float = 0.01, seed: int = 5) -> None:
        self.world, self.attenuation_db, self.noise = world, attenuation_db, noise
        self.rng = np.random.default_rng(seed)
        self.freqs = np.linspace(4.9e9, 5.1e9, 201)
        self.power_dbm, self.ifbw, self.averages = -70.0, 1e3, 1
        self.sweeps = 0

    def setup(self, start_hz, stop_hz, points, *, power_dbm=None, if_bandwidth_hz=None, averages=None):
        self.freqs = np.linspace(start_hz, stop_hz, int(points))
        if power_dbm is not None:
            self.power_dbm = float(power_dbm)
        if if_bandwidth_hz is not None:
            self.ifbw = float(if_bandwidth_hz)
        if averages is not None:
            self.averages = int(averages)

    def sweep_s21(self):
        self.sweeps += 1
        s = self.world.chain_s21(self.freqs, self.power_dbm - self.attenuation_db)
        sigma = self.noise * math.sqrt(self.ifbw / 1e3 / self.averages / 10 ** ((self.power_dbm + 70) / 10))
        n = self.rng.normal(0, sigma / math.sqrt(2), (2, self.freqs.size))
        return self.freqs.copy(), s + n[0] + 1j * n[1]


@dataclass
class Bench:
    sim: object
    world: World
    pump: RohdeSchwarzSGS100A
    flux: YokogawaGS200
    pna: KeysightN5222B
    amp: ParametricAmplifier  # through the PNA simulator
    amp_znb: ParametricAmplifier  # through the ZNB simulator
    fake: ParametricAmplifier  # through FakeVNA

    def operate(self, pump_dbm: float = PUMP_DBM, detuning_hz: float = 0.0) -> None:
        """The operating point: f0 = 5.0004 GHz, pump at 2 f0 (+ detuning)."""
        self.amp.set_flux(FLUX_A)
        self.amp.flux_on(True)
        f0 = self.world.paramp.resonance_hz()
        self.amp.set_pump(frequency_hz=2 * f0 + detuning_hz, power_dbm=pump_dbm, on=True)


def _visa(cls, sim, name, **kw):
    return cls(f"{name}_{next(_names)}", sim.address(name), visalib="@py", timeout=5, **kw)


@pytest.fixture(scope="module")
def bench():
    cfg = {"world": {"seed": 3, "paramp": {"enabled": True}},
           "instruments": {"pump": {"face": "rs_sgs100a", "address": ANY},
                           "flux": {"face": "yokogawa_gs200", "address": ANY},
                           "vna": {"face": "keysight_pna", "address": ANY},
                           "znb": {"face": "rs_znb", "address": ANY},
                           "analyzer": {"face": "keysight_n9030b", "address": ANY},
                           "load_switch": {"face": "noise_source_switch", "address": ANY}}}
    with serve(cfg) as sim:
        pump = _visa(RohdeSchwarzSGS100A, sim, "pump")
        flux = _visa(YokogawaGS200, sim, "flux")
        pna = _visa(KeysightN5222B, sim, "vna")
        sa = _visa(KeysightN9030B, sim, "analyzer")
        znb = RohdeSchwarzZNBSocket(f"znb_{next(_names)}", sim.address("znb"), timeout=5)
        sw = NoiseLoadSwitch(f"sw_{next(_names)}", sim.address("load_switch"), timeout=5)
        flux.current_range(1e-3)
        amp = ParametricAmplifier(f"jpa_{next(_names)}", pump, flux, pna, analyzer=sa, load_switch=sw,
                                  input_attenuation_db=60.0, probe_power_dbm=-70.0, if_bandwidth_hz=100.0)
        amp_znb = ParametricAmplifier(f"jpa_znb_{next(_names)}", pump, flux, znb, input_attenuation_db=60.0,
                                      probe_power_dbm=-55.0, if_bandwidth_hz=100.0)
        fake = ParametricAmplifier(f"jpa_fake_{next(_names)}", pump, flux, FakeVNA(sim.world),
                                   input_attenuation_db=60.0, probe_power_dbm=-70.0, if_bandwidth_hz=1e3)
        b = Bench(sim, sim.world, pump, flux, pna, amp, amp_znb, fake)
        b.operate()
        yield b
        for inst in (fake, amp_znb, amp, sw, znb, sa, pna, flux, pump):
            inst.close()


def test_parameters_delegate_to_the_sources_with_units(bench):
    """pump_power/pump_frequency/flux_current are the sources' parameters (SI units); pump_on is the RF output."""
    amp, pa = bench.amp, bench.world.paramp
    bench.operate()
    assert amp.pump_power.unit == "dBm" and amp.flux_current.unit == "A" and amp.pump_frequency.unit == "Hz"
    assert amp.pump_power() == PUMP_DBM and bench.pump.power() == PUMP_DBM
    assert amp.pump_on() is True and bench.pump.status() is True
    amp.pump_on(False)  # waits for *OPC? on the source: the world has it when the call returns
    assert pa.state.pump_on is False and bench.pump.status() is False
    amp.pump_on(True)
    assert amp.flux_current() == pytest.approx(FLUX_A) and pa.state.flux_current_a == pytest.approx(FLUX_A)
    assert amp.signal_center_hz() == pytest.approx(pa.center_hz())
    snap = amp.snapshot(update=True)["parameters"]
    assert snap["pump_power"]["value"] == PUMP_DBM and snap["flux_on"]["value"] is True
    assert isinstance(vna_adapter(bench.fake._vna_instrument), VNA)
    with pytest.raises(TypeError, match="no VNA adapter for int"):
        vna_adapter(3)


def test_parts_by_name_and_clear_errors_for_missing_ones(bench):
    with pytest.raises(ValueError, match="has no parameter 'bias' for the flux current"):
        ParametricAmplifier("jpa_bad", bench.pump, bench.flux, FakeVNA(bench.world), flux_current_param="bias")
    with pytest.raises(KeyError, match="no instrument named 'nope' for the pump"):
        ParametricAmplifier("jpa_bad", "nope", bench.flux, FakeVNA(bench.world))
    amp = ParametricAmplifier("jpa_bad", bench.pump.name, bench.flux.name, FakeVNA(bench.world))  # name still free
    try:
        assert amp.pump is bench.pump and amp.flux is bench.flux
        with pytest.raises(ValueError, match="needs a spectrum analyzer"):
            amp.snr_improvement(5e9)
        with pytest.raises(ValueError, match="needs a spectrum analyzer"):
            amp.noise_power_mw(5e9)
        assert "load" not in amp.parameters and "load_temperature" not in amp.parameters  # no switch, no load
        with pytest.raises(ValueError, match="needs a hot/cold load switch"):
            run_noise_temperature(None, paramp=amp, plan=NoisePlan([5e9]))
    finally:
        amp.close()


def test_gain_and_bandwidth_with_the_fake_vna(bench):
    """Peak gain within ±0.5 dB, −3 dB bandwidth within ±10 % and centre within 5 % of the bandwidth
    of the world's truth (fit of 201 points with 1 % VNA noise)."""
    bench.operate()
    pa = bench.world.paramp
    result = bench.fake.gain_and_bandwidth(span_hz=60e6, points=201)
    assert result.peak_gain_db == pytest.approx(10 * math.log10(pa.peak_gain()), abs=0.5)
    assert result.bandwidth_hz == pytest.approx(pa.bandwidth_hz(), rel=0.10)
    assert result.center_hz == pytest.approx(pa.center_hz(), abs=0.05 * pa.bandwidth_hz())
    assert result.gain_bandwidth_product_hz == pytest.approx(pa.config.linewidth_hz, rel=0.10)
    # the curve is the ratio pump on / pump off; the pump is back on afterwards
    np.testing.assert_allclose(result.curve.gain_db, pa.gain_db(result.curve.frequencies_hz), atol=0.5)
    assert bench.amp.pump_on() is True
    # a detuned pump gives less gain: 2δ = κ/3 -> threshold x 10/9
    bench.operate(detuning_hz=2 * pa.config.linewidth_hz / 6)
    detuned = bench.fake.gain_and_bandwidth(span_hz=60e6, points=201)
    assert detuned.peak_gain_db == pytest.approx(10 * math.log10(pa.peak_gain()), abs=0.5)
    assert detuned.peak_gain_db < result.peak_gain_db - 3


@pytest.mark.parametrize("vna", ["pna", "znb"])
def test_gain_and_bandwidth_on_the_vna_simulators(bench, vna):
    """Through the qcodes N5222B / ZNB20 drivers and their simulators: gain ±0.5 dB, bandwidth ±10 %."""
    bench.operate()
    pa = bench.world.paramp
    amp = bench.amp if vna == "pna" else bench.amp_znb
    result = amp.gain_and_bandwidth(span_hz=60e6, points=201)
    assert result.peak_gain_db == pytest.approx(10 * math.log10(pa.peak_gain()), abs=0.5)
    assert result.bandwidth_hz == pytest.approx(pa.bandwidth_hz(), rel=0.10)
    assert result.center_hz == pytest.approx(pa.center_hz(), abs=0.05 * pa.bandwidth_hz())
    assert amp.vna.power_dbm == amp.probe_power()


@pytest.mark.parametrize(("vna", "start_dbm"), [("pna", -75.0), ("znb", -60.0)])
def test_p1db_on_the_vna_simulators(bench, vna, start_dbm):
    """Input 1 dB compression point within ±1 dB of the world's (VNA power swept in ≤ 2 dB steps,
    60 dB of line attenuation); the small-signal gain within ±0.5 dB."""
    bench.operate()
    pa = bench.world.paramp
    amp = bench.amp if vna == "pna" else bench.amp_znb
    fc = pa.center_hz()
    previous = amp.vna.power_dbm
    result = amp.p1db(fc, start_dbm, -25.0, 26)
    assert result.compressed
    assert result.p1db_input_dbm == pytest.approx(pa.p1db_dbm(fc), abs=1.0)
    assert result.small_signal_gain_db == pytest.approx(float(pa.gain_db(fc)), abs=0.5)
    assert result.p1db_output_dbm == pytest.approx(result.p1db_input_dbm + result.small_signal_gain_db - 1)
    np.testing.assert_allclose(result.input_powers_dbm, result.source_powers_dbm - 60.0)
    # below the compression point the gain is flat, beyond it it keeps falling
    assert np.ptp(result.gain_db[:5]) < 0.5 and result.gain_db[-1] < result.small_signal_gain_db - 3
    assert amp.vna.power_dbm == previous  # the VNA power is put back (a strong tone would saturate the JPA)
    # a sweep that stays far below P1dB reports no compression
    low = amp.p1db(fc, -60.0, -50.0, 6)
    assert not low.compressed and math.isnan(low.p1db_input_dbm)


def test_snr_improvement(bench):
    """ΔSNR = G/(N_on/N_off) within ±0.3 dB of T_sys,off/T_sys,on (cold load; analyzer 1 MHz span,
    201 points, RBW 10 kHz, 1 s sweep: ~1 % per noise floor)."""
    bench.operate()
    pa = bench.world.paramp
    fc = pa.center_hz()
    result = bench.amp.snr_improvement(fc)
    assert result.snr_improvement_db == pytest.approx(10 * math.log10(pa.snr_improvement(fc)), abs=0.3)
    assert result.gain_db == pytest.approx(float(pa.gain_db(fc)), abs=0.3)
    assert result.noise_rise_db == pytest.approx(result.gain_db - result.snr_improvement_db)
    assert bench.amp.pump_on() is True


def test_single_shot_noise_power_s21_and_load_readings(bench):
    """The readings the Y-factor sweep is made of, each at the present state and changing nothing:
    the analyzer's mean noise power within 4 % of the simulated trace's (201 points x ~14 % each), at the
    frequency asked for even when the analyzer first refuses the centre,
    the S21 ratio pump on/off within ±0.3 dB of the world's gain, the load and its thermometer."""
    bench.operate()
    pa, amp = bench.world.paramp, bench.amp
    fc = pa.center_hz()
    face = bench.sim.faces["analyzer"]
    face.start_hz, face.stop_hz = 10e6, 26.5e9  # as after a reset: a 5 GHz centre is refused while this wide
    amp.load("hot")
    assert pa.state.load == "hot" and bench.sim.faces["load_switch"].values["load"] == "HOT"
    assert amp.load_temperature.unit == "K" and amp.load_temperature() == pytest.approx(pa.load_temperature_k("hot"))
    p_hot = amp.noise_power_mw(fc)
    truth_hot = float(np.mean(10 ** (face.expected_dbm(face.frequencies()) / 10)))
    assert p_hot == pytest.approx(truth_hot, rel=0.04)
    assert (face.start_hz, face.stop_hz) == pytest.approx((fc - 0.5e6, fc + 0.5e6))  # measured where asked
    amp.load("cold")
    assert amp.load_temperature() == pytest.approx(bench.world.temperature_k(), rel=0.01)
    p_cold = amp.noise_power_mw(fc)
    assert p_cold == pytest.approx(float(np.mean(10 ** (face.expected_dbm(face.frequencies()) / 10))), rel=0.04)
    assert p_hot > 2 * p_cold  # 4 K against 12 mK, through a paramp adding ~0.3 K
    s_on = amp.s21_at(fc)
    assert pa.state.pump_on and pa.state.load == "cold"  # nothing was switched
    amp.pump_on(False)
    s_off = amp.s21_at(fc)
    amp.pump_on(True)
    gain_db = 10 * math.log10(abs(s_on) ** 2 / abs(s_off) ** 2)
    assert gain_db == pytest.approx(float(pa.gain_db(fc)), abs=0.3)
    assert gain_db == pytest.approx(amp.gain_at(fc), abs=0.3)


def test_yfactor_noise_temperature_is_the_y_factor_arithmetic():
    """Powers made from known noise temperatures give them back: T_n = (T_hot − Y T_cold)/(Y − 1) with
    Callen–Welton load temperatures, T_paramp = T_n,on − T_n,off/G; the system noise with the cold load."""
    f, t_hot, t_cold, t_hemt, t_amp, gain_db = 5e9, 4.0, 0.012, 4.0, 0.3, 20.0
    g = 10 ** (gain_db / 10)
    hot_cw, cold_cw = float(cw_temperature_k(t_hot, f)), float(cw_temperature_k(t_cold, f))
    assert cold_cw == pytest.approx(PLANCK_H * f / (2 * BOLTZMANN_K), rel=1e-6)  # zero-point noise dominates
    t_on = t_amp + t_hemt / g
    scale = 1e-9  # any chain gain: only ratios matter
    p_hot = (scale * (hot_cw + t_hemt), scale * g * (hot_cw + t_on))
    p_cold = (scale * (cold_cw + t_hemt), scale * g * (cold_cw + t_on))
    r = yfactor_noise_temperature(p_hot, p_cold, t_hot, t_cold, f, gain_db)
    assert r.frequency_hz == f and (r.t_hot_k, r.t_cold_k) == (t_hot, t_cold)
    assert (r.t_hot_cw_k, r.t_cold_cw_k) == (pytest.approx(hot_cw), pytest.approx(cold_cw))
    assert r.y_pump_off == pytest.approx((hot_cw + t_hemt) / (cold_cw + t_hemt))
    assert r.receiver_noise_off_k == pytest.approx(t_hemt, rel=1e-9)
    assert r.receiver_noise_on_k == pytest.approx(t_on, rel=1e-9)
    assert r.paramp_added_noise_k == pytest.approx(t_amp, rel=1e-9)
    assert r.system_noise_on_k == pytest.approx(cold_cw + t_on) and r.gain_db == gain_db
    assert r.y_pump_on > r.y_pump_off > 1
    flat = yfactor_noise_temperature((1.0, 1.0), (1.0, 1.0), t_hot, t_cold, f, gain_db)  # Y = 1: no information
    assert math.isinf(flat.receiver_noise_off_k)
    missing = yfactor_noise_temperature((math.nan, 1.0), (1.0, 1.0), t_hot, t_cold, f, gain_db)
    assert math.isnan(missing.paramp_added_noise_k)
    with pytest.raises(ValueError, match=r"p_hot must be \(pump off, pump on\)"):
        yfactor_noise_temperature((1.0,), (1.0, 2.0), t_hot, t_cold, f, gain_db)


def test_works_with_a_keysight_n51x1_pump(bench):
    """The same measurements with the pump on an N51x1 (on the bench's world): pump_on is its rf_output."""
    with KeysightN51x1Face(bench.world) as face:
        src = KeysightN51x1(f"n51_{next(_names)}", f"TCPIP0::127.0.0.1::{face.port}::SOCKET", visalib="@py",
                            timeout=5)
        amp = ParametricAmplifier(f"jpa_n51_{next(_names)}", src, bench.flux, FakeVNA(bench.world))
        try:
            assert amp._pump_output is src.rf_output
            bench.amp.pump_on(False)  # the SGS100A lets go of the pump (and has, when this returns)
            amp.set_flux(FLUX_A)
            f0 = bench.world.paramp.resonance_hz()
            amp.set_pump(frequency_hz=2 * f0, power_dbm=PUMP_DBM, on=True)
            assert src.rf_output() is True and amp.pump_on() and bench.world.paramp.state.pump_on
            result = amp.gain_and_bandwidth(span_hz=60e6, points=101)
            assert result.peak_gain_db == pytest.approx(10 * math.log10(bench.world.paramp.peak_gain()), abs=0.5)
        finally:
            amp.close()
            src.close()
    bench.operate()


def test_demo_station_safety_limit_on_the_pump_sends_nothing():
    """stations/demo_paramp.yaml builds and snapshots; pump power outside the station's
    [-60, -10] dBm raises SafetyLimitError and no power command reaches the source."""
    cfg = load_station_config(DEMO)
    with serve(cfg.simulation_dict(free_ports=True)) as sim:
        station = build_station(with_simulator_ports(cfg, sim.ports))
        try:
            snap = station.snapshot(update=True)
            assert set(snap["instruments"]) >= {"pump", "flux", "vna", "analyzer", "load_switch", "paramp"}
            assert snap["instruments"]["paramp"]["parameters"]["pump_power"]["value"] == PUMP_DBM
            paramp = station.components["paramp"]
            face = sim.faces["pump"]
            sent_before = face.received(r"POW\S* -?\d")
            for value in (-5.0, -70.0):
                with pytest.raises(SafetyLimitError, match=r"pump.power.*-10"):
                    paramp.pump_power(value)
                with pytest.raises(SafetyLimitError):
                    station.components["pump"].power(value)
            paramp.pump.ask("*OPC?")
            assert face.received(r"POW\S* -?\d") == sent_before  # nothing reached the source
            assert sim.world.paramp.state.pump_power_dbm == PUMP_DBM
            with pytest.raises(SafetyLimitError):
                paramp.flux_current(2e-3)
        finally:
            close_station(station)


@pytest.mark.slow
def test_demo_station_snapshots_against_the_simulator_process():
    """The station file against SimulatedStation (a child process: ~3-6 s to spawn), and a gain
    measurement through it."""
    cfg = load_station_config(DEMO)
    truth = World(cfg.simulation.world).paramp
    truth.set_flux_current(FLUX_A)
    truth.set_pump(frequency_hz=10.0008e9, power_dbm=PUMP_DBM, on=True)
    with SimulatedStation(cfg.simulation_dict(free_ports=True)) as sim:
        station = build_station(with_simulator_ports(cfg, sim.ports))
        try:
            snap = station.snapshot(update=True)
            assert snap["instruments"]["flux"]["parameters"]["current"]["value"] == pytest.approx(FLUX_A)
            assert snap["instruments"]["vna"]["parameters"]["power"]["unit"] == "dBm"
            gain_db = station.components["paramp"].gain_at(truth.center_hz())
            assert gain_db == pytest.approx(float(truth.gain_db(truth.center_hz())), abs=0.5)
        finally:
            close_station(station)


@pytest.mark.slow
def test_demo_station_streams_like_the_mkid_demo(tmp_path):
    """`cryodaq run stations/demo_paramp.yaml --duration 3`: the MKID path streams, housekeeping logs the pump."""
    summary = StreamSession(load_station_config(DEMO), tmp_path, simulate=True).run(3.0)
    run = open_run(summary.path)
    assert run.status == "complete" and summary.stats.samples > 2_000_000 and summary.stats.events > 0
    assert np.all(run.housekeeping("pump_power")["value"].values == PUMP_DBM)
    assert np.allclose(run.housekeeping("flux_current")["value"].values, FLUX_A)
