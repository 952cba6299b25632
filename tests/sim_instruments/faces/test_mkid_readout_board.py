"""The MKID readout board: control over TCP (socket and pyvisa-py) and the UDP stream."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from cryodaq.wire.packet import decode
from sim_instruments.faces.mkid_readout_board import IDN, MkidReadoutBoardFace
from sim_instruments.world.world import World


@pytest.fixture
def board():
    with MkidReadoutBoardFace(World(), port=0) as b:
        yield b


@pytest.fixture
def client(board, line_client):
    return line_client(board.port)


@pytest.fixture
def udp():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    yield sock
    sock.close()


def receive(sock: socket.socket, n: int) -> list:
    return [decode(sock.recv(65536)) for _ in range(n)]


def test_identity_and_fixed_queries(client):
    assert client.ask("*IDN?") == IDN
    assert float(client.ask("ADC:RATE?")) == 2_048_000.0
    assert client.ask("STRM:PKTS?") == "4096"
    assert client.ask("STRM:DEST?") == "127.0.0.1,50000"
    assert client.ask("STRM:STAT?") == "0"
    assert client.ask("SYST:ERR?") == '0,"No error"'


def test_tones_round_trip_at_full_precision(client, board):
    n = int(client.ask("TONE:COUN?"))
    freqs = [float(x) for x in client.ask("TONE:FREQ?").split(",")]
    truth = [float(x) for x in client.ask("SIM:TRUTH:RES?").split(",")]
    assert n == 8 and len(freqs) == 8
    assert np.allclose(freqs, truth, rtol=0, atol=1.0)  # default tones sit on the resonances
    new = [5.0e9 + 100e3 + 1 / 3, 5.0e9 + 333333.3333333]
    client.write("TONE:FREQ " + ",".join(repr(f) for f in new))
    assert [float(x) for x in client.ask("TONE:FREQ?").split(",")] == new
    assert client.ask("TONE:COUN?") == "2"
    client.write("TONE:AMPL 0.25,0.5")
    client.write("TONE:PHAS 0.1,-1.5")
    assert [float(x) for x in client.ask("TONE:AMPL?").split(",")] == [0.25, 0.5]
    assert [float(x) for x in client.ask("TONE:PHAS?").split(",")] == [0.1, -1.5]
    assert np.array_equal(board.world.readout_state().tone_amps, [0.25, 0.5])
    assert client.ask("SYST:ERR?") == '0,"No error"'


def test_bad_commands_queue_errors_and_change_nothing(client):
    before = client.ask("TONE:AMPL?")
    client.write("TONE:AMPL 0.1,0.2")  # wrong count
    client.write("TONE:AMPL " + ",".join(["2"] * 8))  # out of range
    client.write("ATT:DAC abc")
    client.write("FOO:BAR 1")
    client.write("TONE:FREQ 1e9")  # below the LO
    errors = [client.ask("SYST:ERR?") for _ in range(6)]
    assert [int(e.split(",")[0]) for e in errors] == [-221, -222, -104, -113, -222, 0]
    assert client.ask("TONE:AMPL?") == before
    assert client.ask("ATT:DAC?") == "0.0"


def test_attenuators_round_to_quarter_db(client, board):
    client.write("ATT:DAC 10.1")
    client.write("ATT:ADC 31.75")
    assert float(client.ask("ATT:DAC?")) == 10.0
    assert float(client.ask("ATT:ADC?")) == 31.75
    client.write("ATT:ADC 32")
    assert client.ask("SYST:ERR?").startswith("-222")
    assert board.world.readout_state().att_adc_db == 31.75


def test_lo_and_reset(client):
    client.write("LO:FREQ 4.5e9")
    assert float(client.ask("LO:FREQ?")) == 4.5e9
    client.write("*RST")
    assert float(client.ask("LO:FREQ?")) == 5.0e9
    assert client.ask("TONE:COUN?") == "8"


def test_stream_sequence_timestamps_and_samples(client, board, udp):
    client.write(f"STRM:DEST 127.0.0.1,{udp.getsockname()[1]}")
    client.write("STRM:STAT ON")
    assert client.ask("STRM:STAT?") == "1"
    packets = receive(udp, 30)
    client.write("STRM:STAT OFF")
    assert client.ask("STRM:STAT?") == "0"
    heads = [h for h, _ in packets]
    assert [h.sequence for h in heads] == list(range(30))
    assert [h.first_sample for h in heads] == [4096 * i for i in range(30)]
    fs = 2_048_000
    t0 = heads[0].t_ns
    assert all(h.t_ns - t0 == round(h.first_sample * 1e9 / fs) for h in heads)
    assert abs(t0 - board.stream_start_ns) < 1000
    samples = np.concatenate([s for _, s in packets])
    assert samples.dtype == np.int16 and samples.std() > 100
    # the packets carry exactly the world's signal (same seed, same frozen fridge)
    ref = World(clock=lambda: 0.0).adc_block(0, 4096)
    assert np.array_equal(ref, packets[0][1])


def test_skip_fault_makes_a_gap_of_exactly_n_packets(client, udp):
    client.write(f"STRM:DEST 127.0.0.1,{udp.getsockname()[1]}")
    client.write("STRM:STAT ON")
    first = receive(udp, 5)
    client.write("SIM:FAULT:SKIP 7")
    rest = receive(udp, 25)
    client.write("STRM:STAT OFF")
    heads = [h for h, _ in first + rest]
    seq = np.array([h.sequence for h in heads])
    steps = np.diff(seq)
    assert sorted(steps.tolist()).count(8) == 1 and set(steps.tolist()) == {1, 8}
    assert np.array_equal(np.array([h.first_sample for h in heads]), seq * 4096)


def test_restart_begins_a_new_stream_at_zero(client, udp):
    client.write(f"STRM:DEST 127.0.0.1,{udp.getsockname()[1]}")
    client.write("STRM:STAT ON")
    receive(udp, 3)
    client.write("STRM:STAT OFF")
    client.ask("STRM:STAT?")  # the stream thread has stopped once this answers
    udp.settimeout(0.05)
    try:
        while True:
            udp.recv(65536)
    except socket.timeout:
        pass
    udp.settimeout(2.0)
    client.write("STRM:STAT 1")
    head, _ = receive(udp, 1)[0]
    client.write("STRM:STAT 0")
    assert head.sequence == 0 and head.first_sample == 0


def test_loss_fault_drops_packets_but_keeps_numbering(client, board, udp):
    client.write("SIM:FAULT:LOSS 0.5")
    assert float(client.ask("SIM:FAULT:LOSS?")) == 0.5
    client.write(f"STRM:DEST 127.0.0.1,{udp.getsockname()[1]}")
    client.write("STRM:STAT ON")
    heads = [h for h, _ in receive(udp, 20)]
    client.write("STRM:STAT OFF")
    seq = [h.sequence for h in heads]
    assert seq == sorted(seq) and seq[-1] > 20
    assert board.stats["dropped"] > 0


def test_pyvisa_py_talks_to_the_board(board):
    pyvisa = pytest.importorskip("pyvisa")
    rm = pyvisa.ResourceManager("@py")
    inst = rm.open_resource(f"TCPIP0::127.0.0.1::{board.port}::SOCKET",
                            read_termination="\n", write_termination="\n", timeout=2000)
    try:
        assert inst.query("*IDN?") == IDN
        inst.write("TONE:FREQ 5000100000.5")
        assert inst.query("TONE:FREQ?") == "5000100000.5"
        assert inst.query("SYST:ERR?") == '0,"No error"'
    finally:
        inst.close()
        rm.close()
