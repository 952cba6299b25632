"""measure_s21 on both VNA families (real qcodes drivers against the simulators over TCP)."""

from __future__ import annotations

import contextlib
import itertools
import json

import numpy as np
import pytest

from cryodaq.dsp import fit_resonator
from cryodaq.errors import InstrumentError, SafetyLimitError
from cryodaq.instruments.rs_znb import RohdeSchwarzZNBSocket
from cryodaq.instruments.vna import VNASweep, measure_s21
from cryodaq.station.limits import apply_safety_limit
from sim_instruments.faces.keysight_pna import KeysightPnaFace
from sim_instruments.faces.rs_znb import RohdeSchwarzZnbFace
from sim_instruments.world.vna import VnaFrontEnd
from sim_instruments.world.world import World

keysight = pytest.importorskip("qcodes.instrument_drivers.Keysight")

_names = itertools.count()
#: resonators far apart (the demo layout packs them ~3 linewidths apart): one per scan
SPARSE = {"fridge": {"tau_s": 0.05}, "feedline": {"frequencies_hz": [5.0e9, 5.01e9, 5.02e9]}}


@contextlib.contextmanager
def open_vna(kind: str, world: World, **init):
    """A simulator face and the qcodes driver connected to it over pyvisa-py TCP."""
    face_cls = KeysightPnaFace if kind == "pna" else RohdeSchwarzZnbFace
    with face_cls(world, port=0) as face:
        address = f"TCPIP0::127.0.0.1::{face.port}::SOCKET"
        name = f"{kind}_{next(_names)}"
        if kind == "pna":
            inst = keysight.KeysightN5222B(name, address, visalib="@py", timeout=3, **init)
        else:
            inst = RohdeSchwarzZNBSocket(name, address, timeout=3, **init)
        try:
            yield face, inst
        finally:
            inst.close()


def chain_expectation(world: World, freqs: np.ndarray, power_dbm: float) -> np.ndarray:
    """The world's chain S21 seen through the default front end (line attenuation, gain, cables)."""
    fe = VnaFrontEnd()
    gain = 10 ** ((fe.output_gain_db - fe.line_attenuation_db) / 20)
    background = np.exp(1j * (fe.phase_offset_rad - 2 * np.pi * freqs * fe.cable_delay_s))
    return gain * background * world.chain_s21(freqs, power_dbm - fe.line_attenuation_db)


@pytest.mark.parametrize("kind", ["pna", "znb"])
def test_measure_s21_reads_the_world_and_the_settings_back(kind):
    world = World(SPARSE, clock=lambda: 0.0)
    readout_version = world.readout_state().version
    with open_vna(kind, world) as (face, vna):
        sweep = measure_s21(vna, 4.99e9, 5.03e9, 401, -30.0, 1000.0)
        assert world.readout_state().version == readout_version  # the VNA only reads the world
        assert isinstance(sweep, VNASweep)
        assert sweep.freqs.shape == sweep.s21.shape == (401,)
        assert sweep.freqs[0] == 4.99e9 and sweep.freqs[-1] == 5.03e9
        assert (sweep.power_dbm, sweep.ifbw_hz, sweep.averages) == (-30.0, 1000.0, 1)
        want = chain_expectation(world, sweep.freqs, -30.0)
        sigma = face.physics.noise_rms(-30.0, 1000.0)
        assert np.sqrt(np.mean(np.abs(sweep.s21 - want) ** 2)) == pytest.approx(sigma, rel=0.2)
        meta = sweep.metadata()
        assert json.loads(json.dumps(meta)) == meta and meta["points"] == 401
        assert meta["instrument"].startswith(kind)
        # averaging: the same sweep with 16 averages is 4x quieter
        avg = measure_s21(vna, 4.99e9, 5.03e9, 401, -30.0, 1000.0, averages=16)
        assert np.sqrt(np.mean(np.abs(avg.s21 - want) ** 2)) == pytest.approx(sigma / 4, rel=0.2)
        # a second sweep below the first (start below the old start: no crossing trouble)
        low = measure_s21(vna, 4.0e9, 4.5e9, 201, -40.0, 100.0)
        assert low.freqs[0] == 4.0e9 and low.power_dbm == -40.0 and low.ifbw_hz == 100.0
        vna.snapshot(update=True)  # the driver's whole state still reads back
        assert vna.ask("SYST:ERR?").strip() == '0,"No error"'


def test_measure_s21_switches_a_preset_pna_to_s21_and_reports_the_rounded_bandwidth():
    world = World(SPARSE, clock=lambda: 0.0)
    with open_vna("pna", world) as (_face, pna):
        assert pna.traces[0].trace() == "S11"
        sweep = measure_s21(pna, 5.0e9, 5.001e9, 101, -20.0, 1234.0)
        assert pna.traces[0].trace() == "S21"
        assert sweep.ifbw_hz == 1500.0  # what the PNA really used


def test_measure_s21_on_a_znb_channel_and_on_a_znb_without_one():
    world = World(SPARSE, clock=lambda: 0.0)
    with open_vna("znb", world) as (_face, znb):
        sweep = measure_s21(znb.S21, 5.0e9, 5.001e9, 101, -20.0, 1000.0)
        assert sweep.instrument == znb.S21.full_name
        with pytest.raises(ValueError, match="measures S11"):
            measure_s21(znb.S11, 5.0e9, 5.001e9, 101, -20.0, 1000.0)
        with pytest.raises(ValueError):
            measure_s21(znb, 5.0e9, 5.001e9, 101, -20.0, 1234.0)  # the ZNB driver only offers 1-1.5-2-3-5-7
    with open_vna("znb", world, init_s_params=False) as (_face, znb):
        measure_s21(znb, 5.0e9, 5.001e9, 101, -20.0, 1000.0)
        assert [c.short_name for c in znb.channels] == ["S21"]


@pytest.mark.parametrize("kind", ["pna", "znb"])
def test_resonator_fit_recovers_the_world_and_follows_the_fridge(kind):
    clock = [0.0]
    world = World(SPARSE, clock=lambda: clock[0])
    with open_vna(kind, world) as (_face, vna):
        fr0, qi0, _ = world.resonator_params()
        start, stop = fr0[1] - 250e3, fr0[1] + 150e3  # base linewidth ~29 kHz; room for the warm shift
        sweep = measure_s21(vna, start, stop, 401, -60.0, 1000.0)  # -120 dBm at the resonators
        fit = fit_resonator(sweep.freqs, sweep.s21)
        assert fit.success
        assert abs(fit.fr_hz - fr0[1]) < 3 * fit.fr_hz_err
        assert abs(fit.Qi - qi0[1]) < 3 * fit.Qi_err
        assert fit.Qi_err < 0.1 * qi0[1]  # a test that can fail: the errors are small
        # warm the mixing chamber to 250 mK with the heater: fr and Qi fall as Mattis-Bardeen says
        world.fridge.set_heater_power(world.fridge.power_for_k(0.25))
        clock[0] += 5.0  # 100 time constants
        temperature = world.temperature_k()
        assert temperature == pytest.approx(0.25, rel=1e-3)
        warm_sweep = measure_s21(vna, start, stop, 401, -60.0, 1000.0)
        warm = fit_resonator(warm_sweep.freqs, warm_sweep.s21)
        fr1, qi1, _ = world.resonator_params(temperature)
        assert fr1[1] < fr0[1] - 30e3  # the world moves it by about -34 kHz
        assert abs(warm.fr_hz - fr1[1]) < 3 * warm.fr_hz_err
        assert abs(warm.Qi - qi1[1]) < 3 * warm.Qi_err
        assert warm.fr_hz < fit.fr_hz - 30e3 and warm.Qi < 0.3 * fit.Qi


@pytest.mark.parametrize("kind", ["pna", "znb"])
def test_safety_limit_on_power_refuses_before_anything_is_sent(kind):
    world = World(SPARSE, clock=lambda: 0.0)
    with open_vna(kind, world) as (face, vna):
        power = vna.power if kind == "pna" else vna.S21.power
        apply_safety_limit(power, -90.0, -20.0)
        seen: list[str] = []
        handle = face.handle
        face.handle = lambda command: (seen.append(command), handle(command))[1]
        with pytest.raises(SafetyLimitError, match=r"-10"):
            measure_s21(vna, 5.0e9, 5.001e9, 101, -10.0, 1000.0)
        assert [c for c in seen if "?" not in c] == []  # no set command reached the instrument
        assert measure_s21(vna, 5.0e9, 5.001e9, 101, -25.0, 1000.0).power_dbm == -25.0


def test_bad_requests_and_a_dead_vna():
    world = World(SPARSE, clock=lambda: 0.0)
    with open_vna("pna", world) as (face, pna):
        with pytest.raises(ValueError, match="start_hz < stop_hz"):
            measure_s21(pna, 5.0e9, 4.0e9, 101, -20.0, 1000.0)
        with pytest.raises(ValueError, match="points"):
            measure_s21(pna, 4.0e9, 5.0e9, 1, -20.0, 1000.0)
        with pytest.raises(TypeError, match="neither"):
            measure_s21(object(), 4.0e9, 5.0e9, 101, -20.0, 1000.0)
        pna.timeout(0.3)
        face.server.faults.mute = True
        with pytest.raises(InstrumentError, match=pna.name) as err:
            measure_s21(pna, 4.0e9, 5.0e9, 101, -20.0, 1000.0)
        assert str(face.port) in str(err.value)
