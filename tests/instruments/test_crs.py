"""CRSBoard driver over a small Tuber server on loopback (real HTTP; answers in the reference tuberd's
style: no ``"error"`` on success, method descriptions as a dict).

The fake board keeps the settings it is given and answers ``get_samples`` with notch resonators
(:func:`cryodaq.dsp.resonator.resonator_model`) behind a cable delay, so the calibration sweep
(:mod:`cryodaq.readout.tone_sweep`) can be checked against known resonances in a second.
The same driver against rfmux's mock: tests/readout/test_crs_mock.py.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cryodaq.config import CalibrationConfig, SearchConfig
from cryodaq.dsp.resonator import resonator_model
from cryodaq.errors import InstrumentError, SafetyLimitError
from cryodaq.instruments.crs import CRSBoard
from cryodaq.instruments.tuber import TuberClient, TuberError
from cryodaq.readout.loop_sweep import calibrate_source
from cryodaq.readout.source import ReadoutSource, ToneSweepSource
from cryodaq.readout.tone_sweep import calibrate_tones
from cryodaq.station import build_station, load_station_config
from cryodaq.station.limits import SafetyLimit
from cryodaq.station.loader import close_station

RESONANCES = np.array([1.2012e9, 1.2031e9, 1.2044e9])
QL, QC = 3.0e4, 3.5e4


class FakeCRS:
    """Settings in dicts, a list of every call received."""

    def __init__(self) -> None:
        self.freq: dict[tuple[int, int], float] = {}
        self.amp: dict[tuple[int, int], float] = {}
        self.phase: dict[tuple[int, int], float] = {}
        self.nco: dict[int, float] = {}
        self.stage, self.short = 6, False
        self.calls: list[tuple[str, list, dict]] = []

    def s21(self, f: np.ndarray, module: int = 1) -> np.ndarray:
        """Module 1's feedline has the resonators; the others have none."""
        z = np.ones_like(f, dtype=complex)
        for fr in RESONANCES if module == 1 else ():
            z *= resonator_model(f, fr, QL, QC, 0.1)
        return 3000 * z * np.exp(-2j * np.pi * f * 40e-9)

    def handle(self, method: str, args: list, kwargs: dict) -> Any:
        self.calls.append((method, args, kwargs))
        key = (kwargs.get("module"), kwargs.get("channel"))
        if method == "set_frequency":
            if abs(args[0]) > 313.5e6:
                raise ValueError("The set frequency must be between -313.5 MHz and +313.5 MHz of the NCO frequency.")
            self.freq[key] = args[0]
        elif method == "set_amplitude":
            self.amp[key] = args[0]
        elif method == "set_phase":
            self.phase[key] = args[0]
        elif method in ("get_frequency", "get_amplitude", "get_phase"):
            return {"get_frequency": self.freq, "get_amplitude": self.amp, "get_phase": self.phase}[method].get(key)
        elif method == "set_nco_frequency":
            self.nco[kwargs["module"]] = args[0]
        elif method == "get_nco_frequency":
            return self.nco.get(kwargs["module"], 0)
        elif method == "set_decimation":
            self.stage, self.short = args[0], kwargs.get("short", False)
        elif method == "get_decimation":
            return self.stage
        elif method == "get_firmware_release":
            return {"version": "FAKE.0"}
        elif method == "get_motherboard_temperature":
            return 41.5
        elif method == "get_samples":
            m = kwargs["module"]
            n_ch = 128  # the channels of a short packet: enough here, and a smaller answer
            f = np.array([self.nco.get(m, 0) + self.freq.get((m, c), 0.0) for c in range(1, n_ch + 1)])
            a = np.array([self.amp.get((m, c), 0.0) for c in range(1, n_ch + 1)])
            z = self.s21(f, m) * a / 0.0015
            return {"mean": {"i": z.real.tolist(), "q": z.imag.tolist()}, "i": [], "q": [], "ts": []}
        else:
            raise KeyError(method)
        return None


@pytest.fixture
def fake_board():
    board = FakeCRS()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if isinstance(body, dict) and "method" not in body:  # describe the object (tuberd: a dict of methods)
                methods = ["set_frequency", "get_frequency", "set_amplitude", "get_amplitude", "set_phase",
                           "get_phase", "set_nco_frequency", "get_nco_frequency", "set_decimation",
                           "get_decimation", "get_samples", "get_firmware_release", "get_motherboard_temperature"]
                answer: Any = {"result": {"methods": {m: {"__doc__": ""} for m in methods}, "properties": {}}}
            else:
                answer = []
                for call in body:
                    try:
                        answer.append({"result": board.handle(call["method"], call.get("args", []),
                                                              call.get("kwargs", {}))})
                    except KeyError:
                        answer.append({"error": {"message": f"Method '{call['method']}' not found"}})
                    except Exception as exc:  # the board's own refusal, per call
                        answer.append({"result": None, "error": {"message": f"{type(exc).__name__}: {exc}"}})
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    board.address = f"127.0.0.1:{server.server_address[1]}"
    yield board
    server.shutdown()
    server.server_close()


@pytest.fixture
def crs(fake_board: FakeCRS):
    board = CRSBoard("crs_fake", fake_board.address, channels_per_module=4, modules=(1, 2))
    yield board
    board.close()


def test_station_safety_limit_on_every_channel_amplitude_refuses_before_any_tuber_call(fake_board, tmp_path):
    station_file = tmp_path / "crs.yaml"
    station_file.write_text(yaml.safe_dump({
        "instruments": {"crs": {"type": "cryodaq.instruments.CRSBoard", "address": fake_board.address,
                                "init": {"modules": [1, 2], "channels_per_module": 4}}},
        "cryodaq": {"readout": {"instrument": "crs"},
                    "safety_limits": {"crs.channels.amplitude": [-0.01, 0.01], "crs.tone_amplitude": [0, 0.01]}},
    }))
    station = build_station(load_station_config(station_file))
    try:
        board = station.components["crs"]
        assert isinstance(board, ReadoutSource) and isinstance(board, ToneSweepSource)
        board.module2.ch4.amplitude(0.005)
        assert fake_board.amp[(2, 4)] == 0.005
        sent = board.tuber.requests
        for channel in board.channels:  # the one station key covers every channel of every module
            with pytest.raises(SafetyLimitError, match=r"crs\.module\d_ch\d_amplitude.*nothing was sent"):
                channel.amplitude(0.5)
        with pytest.raises(SafetyLimitError, match="tone_amplitude"):
            board.tone_amplitude(0.05)
        assert board.tuber.requests == sent and fake_board.amp[(2, 4)] == 0.005
    finally:
        close_station(station)


def test_sweeps_check_amplitudes_and_frequencies_before_sending(crs, fake_board):
    crs.module1.nco_frequency(1.2e9)
    crs.channels[0].amplitude.add_validator(SafetyLimit(-0.001, 0.001, "crs_fake", "module1_ch1_amplitude"))
    sent = crs.tuber.requests
    with pytest.raises(SafetyLimitError):  # tone_amplitude 0.0015 breaks the channels' limit of 0.001
        crs.measure_iq(1, np.full((3, 2), 1.2e9))
    crs.tone_amplitude(0.0005)
    with pytest.raises(ValueError, match="313500000"):  # past the NCO's reach
        crs.set_tones(1, np.array([1.2e9 + 400e6]))
    assert crs.tuber.requests == sent
    with pytest.raises(InstrumentError, match="stage 2 needs short packets"):
        crs.decimation(2)
    assert crs.tuber.requests == sent


def test_describe_streams_the_channels_with_a_tone(crs, fake_board):
    crs.module1.nco_frequency(1.2e9)
    crs.module2.nco_frequency(1.3e9)
    crs.module1.ch2.frequency(1.5e6)
    crs.module1.ch2.amplitude(0.002)
    crs.module2.ch1.frequency(-2e6)
    crs.module2.ch1.amplitude(0.001)
    crs.module2.ch3.frequency(5e6)  # a frequency but no amplitude: no tone
    crs.configure(decimation=5)
    d = crs.describe()
    assert d.kind == "iq" and d.n_channels == 2 and d.sample_dtype == "complex64"
    assert d.sample_rate_hz == pytest.approx(625e6 / 256 / 64 / 32)
    np.testing.assert_allclose(d.channel_coords["tone_frequency_hz"], [1.2015e9, 1.298e9])
    assert d.channel_coords["module"].tolist() == [1, 2] and d.channel_coords["crs_channel"].tolist() == [2, 1]
    assert d.time_base.source == "irig_b"
    snap = crs.snapshot(update=True)  # one request for every value, not one per parameter
    assert snap["submodules"]["module1"]["submodules"]["ch2"]["parameters"]["amplitude"]["value"] == 0.002
    assert snap["parameters"]["fpga_temperature"]["value"] == 41.5
    receiver = crs.open_receiver("127.0.0.1", 0, packets_per_block=4, queue_blocks=8)
    try:
        assert receiver.channels == [(1, 2), (2, 1)] and receiver.stage == 5
    finally:
        receiver.stop(drain_s=0)


def test_tuber_errors_name_the_board_the_call_and_its_message(crs, fake_board):
    with pytest.raises(TuberError, match=r"'crs_fake' at 127\.0\.0\.1:\d+: set_frequency\(400000000\.0, channel=1, module=1\) failed: .*313\.5 MHz"):
        crs.tuber.call("set_frequency", 4e8, channel=1, module=1)
    with pytest.raises(TuberError, match="no_such_method.*not found"):
        crs.tuber.call("no_such_method")
    dead = TuberClient("127.0.0.1:9", name="gone", timeout_s=2)
    with pytest.raises(TuberError, match=r"'gone' at 127\.0\.0\.1:9: could not be reached"):
        dead.call("get_decimation")
    with pytest.raises(InstrumentError, match="is no CRS answering Tuber"):
        CRSBoard("crs_absent", "127.0.0.1:9", timeout_s=2)


def test_calibration_sweep_finds_fits_and_tunes_the_resonances(crs, fake_board):
    crs.module1.nco_frequency(1.203e9)
    crs.module2.nco_frequency(1.5e9)  # a feedline without resonances: it streams nothing
    cal = CalibrationConfig(method="resonator_fit", span_hz=60e3, points=41,
                            search=SearchConfig(start_hz=1.2e9, stop_hz=1.206e9, step_hz=10e3, tones=100))
    sweep, calibration = calibrate_tones(crs, cal)
    fr = np.array([f["fr_hz"] for f in sweep.detail["fits"]])
    linewidth = RESONANCES / QL
    assert np.all(np.abs(fr - RESONANCES) < 0.05 * linewidth)
    np.testing.assert_allclose([f["Ql"] for f in sweep.detail["fits"]], QL, rtol=0.02)
    assert np.all(calibration.sign == -1)  # pulses positive (cryodaq.dsp.iqcal)
    assert sweep.iq.shape == (41, 3) and len(sweep.detail["searches"]) == 2
    # the tones now sit on the fitted resonances, channels 1-3 of module 1; the search comb is off
    tones = crs.tones(1)
    np.testing.assert_allclose(tones, fr)
    assert all(fake_board.amp.get((1, c), 0) == 0 for c in range(4, 101))
    assert crs.describe().n_channels == 3
    # the resting IQ of each tone is phase 0 of the calibration
    rest = fake_board.s21(tones)
    np.testing.assert_allclose(calibration.phase(rest[None, :], unwrap=False), 0, atol=0.02)
    # the run's dispatch: a board that sweeps itself gets this sweep
    again = calibrate_source(crs, _pipeline(cal))
    assert again is not None and again[0].detail["method"] == "resonator_fit"


def _pipeline(cal: CalibrationConfig):  # noqa: ANN202
    from cryodaq.config import PipelineConfig

    return PipelineConfig(calibration=cal)


def test_station_file_rejects_what_a_board_cannot_do(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((Path(__file__).resolve().parents[2] / "stations" / "demo_crs.yaml").read_text()
                   .replace("points: 25", "points: 11"))
    with pytest.raises(Exception, match=r"calibration\.points: expected at least 21 points"):
        load_station_config(bad)
