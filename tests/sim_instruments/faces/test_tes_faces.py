"""The TES faces (Keithley 2450 bias source, SQUID controller, TES readout board) at protocol level."""

from __future__ import annotations

import itertools
import socket

import numpy as np
import pytest

from cryodaq.wire.packet import decode
from sim_instruments.faces.keithley2450 import Keithley2450Face
from sim_instruments.faces.registry import FACES
from sim_instruments.faces.squid_controller import SquidControllerFace
from sim_instruments.faces.tes_readout_board import TesReadoutBoardFace
from sim_instruments.world.world import World

FROZEN = {"clock": lambda: 0.0}


BIAS = 3.5e-4


def tes_world(**tes: object) -> World:
    return World({"tes": {"enabled": True, **tes}}, **FROZEN)


def biased(**tes: object) -> World:
    w = tes_world(**tes)
    w.tes.set_bias(w.tes.channels, BIAS)
    return w


def test_tes_is_disabled_by_default_and_faces_say_how_to_enable_it():
    w = World(**FROZEN)
    assert w.tes is None
    for face in (SquidControllerFace, TesReadoutBoardFace):
        with pytest.raises(ValueError, match="world.tes.enabled"):
            face(w)
    assert {"keithley2450", "squid_controller", "tes_readout_board"} <= set(FACES)
    # the 2450 works without a TES array too: a plain resistive load
    k = Keithley2450Face(w, load_ohm=500.0, reading_noise_fraction=0.0)
    k.handle(":SOUR:FUNC CURR;:SOUR:CURR 2e-3;:OUTP ON")
    assert k.measure("VOLT") == pytest.approx(1.0) and k.measure("RES") == pytest.approx(500.0)


def test_bias_lines_are_claimed_once():
    w = World({"tes": {"enabled": True, "bias_lines": {"bias_a": [0, 1, 2, 3]}}}, **FROZEN)
    a = Keithley2450Face(w, name="bias_a")
    b = Keithley2450Face(w, name="bias_b", channels=[4, 5, 6, 7])
    assert a.channels.tolist() == [0, 1, 2, 3] and b.channels.tolist() == [4, 5, 6, 7]
    with pytest.raises(ValueError, match="already biased by 'bias_a'"):
        Keithley2450Face(w, name="bias_c", channels=[3])
    with pytest.raises(ValueError, match="channels must be in"):
        Keithley2450Face(w, name="bias_d", channels=[8])


# -- Keithley 2450 face -------------------------------------------------------------------------

@pytest.fixture
def k2450(line_client):
    w = tes_world()
    with Keithley2450Face(w, port=0, name="tes_bias", reading_noise_fraction=0.0) as face:
        yield face, line_client(face.port)


def test_keithley_accepts_long_short_and_lower_case_headers(k2450):
    face, c = k2450
    c.write(":SOURce1:FUNCtion:MODE current")
    assert c.ask(":sour:func?") == "CURR"
    c.write(":SOURce:CURRent:LEVel:IMMediate:AMPLitude 1e-4;:OUTPut:STATe ON")
    assert c.ask("SOUR:CURR?;:OUTP?") == "0.0001;1"
    assert c.ask(":SOURce:current:DELay:USER3?") == "0.0"
    assert face.received(r"OUTPut:STATe ON") and np.all(face.world.tes.bias_current() == 1e-4)


def test_keithley_defaults_and_current_bias_reach_the_tes(k2450):
    face, c = k2450
    assert c.ask("*LANG?") == "SCPI"
    assert c.ask(":SOUR:FUNC?") == "VOLT" and c.ask(":SENS:FUNC?") == '"CURR:DC"'
    assert c.ask(":OUTP?") == "0"
    c.write(":SOUR:FUNC CURR")
    c.write(':SENS:FUNC "VOLT:DC"')
    c.write("SOUR:current 3.5e-4")
    assert c.ask("*OPC?") == "1"  # commands before it are done
    assert np.all(face.world.tes.bias_current() == 0)  # output still off
    c.write(":OUTP ON")
    assert c.ask("*OPC?") == "1"
    assert np.all(face.world.tes.bias_current() == 3.5e-4)
    volts = float(c.ask(":MEASure? 'defbuffer1'"))
    assert volts == pytest.approx(3.5e-4 * face.load_resistance(3.5e-4), rel=1e-12)
    assert volts == pytest.approx(3.5e-4 * 2.0, rel=0.01)  # mostly the line wiring
    assert c.ask(":TRACe:ACTual? 'defbuffer1'") == "1"
    assert c.ask("SYST:ERR?") == '0,"No error"'


def test_keithley_compliance_limits_the_bias(k2450):
    face, c = k2450
    c.write(":SOUR:FUNC CURR")
    c.write("SOUR:CURR:VLIM 1e-3")  # 1 mV into ~2 Ω: at most ~0.5 mA
    c.write("SOUR:CURR 8e-4")
    c.write(":OUTP 1")
    assert c.ask(":SOUR:CURR:VLIM:TRIP?") == "1"
    i = face.world.tes.bias_current()[0]
    assert i * face.load_resistance(i) == pytest.approx(1e-3, rel=1e-6)
    c.write("SOUR:CURR:VLIM 21")
    assert c.ask(":SOUR:CURR:VLIM:TRIP?") == "0"  # answered after the write: it is applied
    assert face.world.tes.bias_current()[0] == 8e-4


def test_keithley_voltage_source_mode_and_bad_commands(k2450):
    face, c = k2450
    c.write("SOUR:VOLT:ILIM 1e-3")
    c.write("SOUR:VOLT 0.5e-3")
    c.write("OUTP ON")
    assert c.ask("*OPC?") == "1"
    i = face.world.tes.bias_current()[0]
    assert i * face.load_resistance(i) == pytest.approx(0.5e-3, rel=1e-6)
    c.write("SOUR:VOLT 300")        # beyond the instrument
    c.write(":SOURce:current:DELay:USERNone?")  # the driver's unset user_number: never answered
    c.write("SOUR:CURR:RANG 1e-6")  # range fixed (autorange off) ...
    c.write("SOUR:CURR 1e-3")       # ... so this level does not fit
    codes = [int(c.ask("SYST:ERR?").split(",")[0]) for _ in range(4)]
    assert codes == [-222, -113, -222, 0]
    assert float(c.ask("SOUR:VOLT?")) == 0.5e-3 and float(c.ask("SOUR:CURR?")) == 0.0
    c.write("*RST")
    assert c.ask("OUTP?") == "0" and np.all(face.world.tes.bias_current() == 0)


def test_keithley_sweep_fills_the_buffer(k2450):
    face, c = k2450
    c.write(":SOUR:FUNC CURR")
    c.write(':SENS:FUNC "CURR:DC"')
    c.ask(":MEAS?")  # a stale reading the sweep must clear
    c.write(":SOURce:SWEep:CURR:LINear 0,1e-3,11,0,1,AUTO,ON,OFF,'defbuffer1'")
    c.write(":INITiate")
    c.write("*WAI")
    data = c.ask(":TRACe:DATA? 1, 11, 'defbuffer1', READ, SOUR").split(",")
    readings, sources = np.array(data[0::2], float), np.array(data[1::2], float)
    np.testing.assert_allclose(sources, np.linspace(0, 1e-3, 11))
    np.testing.assert_allclose(readings, sources)
    assert face.world.tes.bias_current()[0] == pytest.approx(1e-3)


# -- SQUID controller and TES board faces -------------------------------------------------------

def test_squid_controller_protocol(line_client):
    w = biased()
    with SquidControllerFace(w, port=0) as face:
        c = line_client(face.port)
        try:
            assert c.ask("CHAN:COUN?") == "8"
            assert c.ask("CH1:LOCK?") == "1"
            c.write("CH1:LOCK OFF")
            assert c.ask("CH1:LOCK?") == "0" and not w.tes.squid_state().locked[0]
            c.write("CH1:RESET")
            assert c.ask("CH1:LOCK?") == "1"
            c.write("CH8:FB:GAIN 0.5")
            c.write("CH8:FLUX:OFFS -1.5")
            assert float(c.ask("CH8:FB:GAIN?")) == 0.5 and float(c.ask("CH8:FLUX:OFFS?")) == -1.5
            assert float(c.ask("CH2:MIN?")) == w.tes.config.input_current_per_phi0_a
            c.write("CH9:LOCK ON")
            c.write("CH1:FB:GAIN 50")
            c.write("CH1:BOGUS 1")
            codes = [int(c.ask("SYST:ERR?").split(",")[0]) for _ in range(4)]
            assert codes == [-114, -222, -113, 0]
            assert w.tes.squid_state().feedback_gain[0] == w.tes.config.feedback_gain_v_per_phi0
        finally:
            c.close()


def test_tes_board_streams_demultiplexed_packets(line_client):
    w = biased(rate_hz=50.0, fs_hz=50_000.0, samples_per_packet=256)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2.0)
    with TesReadoutBoardFace(w, port=0) as board:
        c = line_client(board.port)
        try:
            assert c.ask("CHAN:COUN?") == "8" and float(c.ask("ADC:RATE?")) == 50_000.0
            assert c.ask("STRM:PKTS?") == "256"
            cpa = np.array(c.ask("CHAN:CPA?").split(","), float)
            np.testing.assert_allclose(cpa, w.tes.counts_per_ampere())
            c.write(f"STRM:DEST 127.0.0.1,{rx.getsockname()[1]}")
            c.write("STRM:STAT ON")
            packets = [decode(rx.recv(65536)) for _ in range(80)]  # 0.41 s
            c.write("SIM:FAULT:SKIP 3")
            assert c.ask("STRM:STAT?") == "1"  # the skip is armed once this is answered
            later = [packets[-1][0]]  # read on until the first jump in sequence numbers
            for _ in range(400):
                later.append(decode(rx.recv(65536))[0])
                if later[-1].sequence - later[-2].sequence != 1:
                    break
            c.write("STRM:STAT OFF")
            c.write("STRM:PKTS 9000")  # more than a datagram holds for 8 streams
            assert c.ask("SYST:ERR?").startswith("-222")
        finally:
            c.close()
            rx.close()
    seqs = [h.sequence for h, _ in packets]
    assert seqs == list(range(80))
    assert all(h.n_streams == 8 and h.n_samples == 256 for h, _ in packets)
    assert [h.first_sample for h, _ in packets] == [256 * s for s in seqs]
    steps = [b.sequence - a.sequence for a, b in itertools.pairwise(later)]
    assert steps[-1] == 4 and set(steps[:-1]) <= {1}  # one gap of 3 skipped packets, no loss elsewhere
    assert later[-1].first_sample - later[-2].first_sample == 4 * 256
    data = np.concatenate([s for _, s in packets])
    assert data.shape == (80 * 256, 8)
    # every logged arrival in the received span shows as a negative-going pulse on its channel
    truth = w.tes.truth()
    truth = truth[(truth["sample"] > 20) & (truth["sample"] < data.shape[0] - 100)]
    assert truth.size > 0
    for rec in truth:
        i, ch = int(rec["sample"]), int(rec["resonator"])
        assert data[i:i + 100, ch].min() < data[i - 20:i - 2, ch].mean() - 500
