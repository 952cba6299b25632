"""TES readout instruments through their qcodes drivers over TCP (pyvisa-py) against sim_instruments,
and the demo TES station."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from qcodes.instrument import Instrument
from qcodes.instrument_drivers.Keithley import Keithley2450

from cryodaq.wire.packet import decode
from cryodaq.station.bringup import with_simulator_ports
from cryodaq.errors import SafetyLimitError
from cryodaq.instruments import SQUIDController, TESReadoutBoard
from cryodaq.station import build_station, close_station, load_station_config
from sim_instruments.servers.launcher import serve

STATION = "stations/demo_tes.yaml"


@pytest.fixture
def sim():
    cfg = {
        "world": {"tes": {"enabled": True}},
        "instruments": {
            name: {"face": face, "address": "TCPIP0::127.0.0.1::0::SOCKET"}
            for name, face in (("bias", "keithley2450"), ("squid", "squid_controller"),
                               ("board", "tes_readout_board"))
        },
    }
    with serve(cfg, clock=lambda: 0.0) as servers:
        yield servers
    Instrument.close_all()


@pytest.fixture
def keithley(sim):
    k = Keithley2450("tes_bias_k", sim.address("bias"), visalib="@py")
    yield k
    k.close()


def test_keithley2450_driver_biases_the_tes_and_reads_the_line_voltage(sim, keithley):
    face = sim.faces["bias"]
    keithley.source_function("current")
    keithley.sense_function("voltage")
    assert keithley.source_function() == "current" and keithley.sense_function() == "voltage"
    keithley.source.limit(0.5)
    keithley.source.current(3.5e-4)
    keithley.output_enabled(True)
    assert keithley.output_enabled() is True
    assert keithley.source.current() == pytest.approx(3.5e-4)
    assert keithley.source.limit() == 0.5 and keithley.source.limit_tripped() is False
    np.testing.assert_array_equal(sim.world.tes.bias_current(), 3.5e-4)
    volts = keithley.sense.voltage()
    assert volts == pytest.approx(3.5e-4 * face.load_resistance(3.5e-4), rel=1e-4)
    op = sim.world.tes.current_operating_point()
    assert np.all((op.frac_rn > 0.15) & (op.frac_rn < 0.5))  # biased in the transition
    keithley.output_enabled(False)
    assert keithley.output_enabled() is False  # the query also waits for the write before it
    np.testing.assert_array_equal(sim.world.tes.bias_current(), 0.0)


def test_keithley2450_driver_sweep(sim, keithley):
    keithley.source_function("current")
    keithley.sense_function("current")
    keithley.source.sweep_setup(0.0, 1e-3, 21)
    currents = keithley.sense.sweep()
    np.testing.assert_allclose(currents, np.linspace(0, 1e-3, 21), rtol=1e-4, atol=1e-12)
    np.testing.assert_allclose(keithley.source.sweep_axis(), np.linspace(0, 1e-3, 21))


def test_squid_controller_driver_round_trips(sim):
    tes = sim.world.tes
    squid = SQUIDController("squid_drv", sim.address("squid"))
    try:
        assert squid.n_channels() == 8 and len(squid.channels) == 8
        ch = squid.ch3
        assert ch.locked() is True
        ch.locked(False)
        assert ch.locked() is False and not tes.squid_state().locked[2]
        ch.reset()
        assert ch.locked() is True
        ch.feedback_gain(0.5)
        ch.flux_offset(-1.25)
        assert ch.feedback_gain() == 0.5 and ch.flux_offset() == -1.25
        assert tes.squid_state().feedback_gain[2] == 0.5 and tes.squid_state().flux_offset[2] == -1.25
        assert ch.input_current_per_phi0() == tes.config.input_current_per_phi0_a
        assert ch.volts_per_ampere() == pytest.approx(0.5 / tes.config.input_current_per_phi0_a)
        with pytest.raises(ValueError):
            ch.feedback_gain(100.0)  # the validator refuses it before anything is sent
        assert tes.squid_state().feedback_gain[2] == 0.5
        squid.reset_all()
        assert all(c.locked() for c in squid.channels)
        snap = squid.snapshot(update=True)
        assert snap["submodules"]["ch3"]["parameters"]["feedback_gain"]["value"] == 0.5
    finally:
        squid.close()


def test_tes_readout_board_driver_streams_and_calibrates(sim):
    tes = sim.world.tes
    tes.set_bias(tes.channels, 3.5e-4)
    board = TESReadoutBoard("tes_board_drv", sim.address("board"))
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2.0)
    try:
        assert board.n_channels() == 8
        assert board.sample_rate() == 100_000.0 and board.samples_per_packet() == 512
        cpa = board.counts_per_ampere()
        np.testing.assert_allclose(cpa, tes.counts_per_ampere())
        assert board.counts_per_volt() == tes.config.adc_counts_per_volt
        np.testing.assert_allclose(board.counts_to_amperes(np.full(8, 4096.0)), 4096.0 / cpa)
        board.start_stream("127.0.0.1", rx.getsockname()[1])
        packets = [decode(rx.recv(65536)) for _ in range(20)]
        board.stop_stream()
        assert board.streaming() is False
    finally:
        rx.close()
        board.close()
    assert [h.sequence for h, _ in packets] == list(range(20))
    assert all(h.n_streams == 8 and s.shape == (512, 8) for h, s in packets)


def test_demo_tes_station_loads_snapshots_and_enforces_limits():
    cfg = load_station_config(STATION)
    assert cfg.readout.instrument == "tes_readout"
    with serve(cfg.simulation_dict(free_ports=True)) as sim:
        station = build_station(with_simulator_ports(cfg, sim.ports))
        try:
            snap = station.snapshot(update=True)
            assert {"fridge_thermometer", "tes_bias", "squid", "tes_readout"} <= set(snap["instruments"])
            # the initial values bias every pixel in its transition, with the SQUIDs locked
            tes = sim.world.tes
            np.testing.assert_array_equal(tes.bias_current(), 3.5e-4)
            assert np.all((tes.current_operating_point().frac_rn > 0.15) & (tes.current_operating_point().frac_rn < 0.5))
            assert station.components["squid"].ch1.locked()
            # a bias beyond the safety limit is refused and never reaches the instrument
            bias = station.components["tes_bias"]
            face = sim.faces["tes_bias"]
            with pytest.raises(SafetyLimitError, match=r"tes_bias.*0\.002.*\[-0\.001, 0\.001\]"):
                bias.source.current(2e-3)
            with pytest.raises(SafetyLimitError):
                bias._source_voltage.voltage(0.1)
            assert bias.output_enabled() is True  # a query: everything written before it has arrived
            assert not face.received(r"SOUR:current 0\.002") and not face.received(r"SOUR:voltage 0\.1")
            np.testing.assert_array_equal(tes.bias_current(), 3.5e-4)
            bias.source.current(4e-4)  # within the limit: sent
            assert bias.source.current() == 4e-4
            assert face.received(r"SOUR:current 0\.0004")
        finally:
            close_station(station)
