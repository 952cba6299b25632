"""Shared pytest setup: no display, no GPU needed, paths to the shared data sets, synthetic stream pieces
(no instruments needed) for sink, live-view and GUI tests, a Qt guard, and a DASTARD written by the tests
(:class:`FakeDastard`) for the DASTARD readout's tests."""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import zmq

from cryodaq.acquisition.pipeline import PipelineOutput
from cryodaq.acquisition.sinks import StreamInfo
from cryodaq.dsp import EventBatch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("CRYODAQ_BACKEND", "numpy")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
STATIONS = PROJECT_ROOT / "stations"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it skip with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA

RATE = 16_000.0
T0 = 1_800_000_000_000_000_000


def make_info(n_channels: int = 8, run_path: str | None = None) -> StreamInfo:
    coords = {"channel": np.arange(n_channels, dtype=np.int32),
              "tone_frequency_hz": 5e9 + 1e5 * np.arange(n_channels)}
    return StreamInfo(station="test", stream="phase", units="rad", output_rate_hz=RATE, adc_rate_hz=2.048e6,
                      channel_coords=coords, run_path=run_path)


def make_output(k: int, n: int = 256, n_channels: int = 8, n_events: int = 2, record: int = 64,
                rng: np.random.Generator | None = None) -> PipelineOutput:
    """Block ``k`` of a stream: ``n`` samples per channel, ``n_events`` events with records."""
    rng = rng or np.random.default_rng(k)
    first = k * n
    idx = np.arange(first, first + n, dtype=np.int64)
    t_ns = T0 + np.round(idx * 1e9 / RATE).astype(np.int64)
    data = rng.normal(0, 0.01, (n, n_channels)).astype(np.float32)
    iq = (80 * np.exp(1j * data)).astype(np.complex64)
    ev_idx = np.sort(rng.integers(first, first + n, n_events))
    events = EventBatch(ev_idx * 128, rng.integers(0, n_channels, n_events), rng.normal(0.6, 0.02, n_events),
                        np.zeros(n_events), np.zeros(n_events), rng.normal(0, 0.01, (n_events, record)), presamples=16)
    ev_t = T0 + np.round(ev_idx * 1e9 / RATE).astype(np.int64)
    return PipelineOutput(data, idx, t_ns, events, ev_t, iq)


DEMO = STATIONS / "demo_mkid.yaml"


@pytest.fixture(scope="session")
def synth() -> SimpleNamespace:
    """The synthetic-stream helpers of this module."""
    return SimpleNamespace(make_info=make_info, make_output=make_output, RATE=RATE, T0=T0, DEMO=DEMO)


@pytest.fixture(scope="session")
def qt_ok() -> None:
    """Skip (with the reason) where the Qt binding is missing or would crash the test process."""
    pytest.importorskip("PySide6")
    pytest.importorskip("pyqtgraph")
    from cryodaq.gui.cli import GuiUnavailableError, require_qt

    try:
        require_qt()
    except GuiUnavailableError as exc:
        pytest.skip(str(exc))


# --- rfmux's own environment (tests/wire/test_crs.py: its parser; tests/readout/test_crs_mock.py: its mock CRS)


@pytest.fixture(scope="session")
def rfmux_python() -> Path:
    """The Python with rfmux (``$RFMUX_PYTHON`` or the cached venv, built on first use: ~2 min once).

    Skips only when PyPI cannot be reached to build it; any other failure fails the tests."""
    from sim_instruments.servers.rfmux_env import RfmuxUnavailableError, rfmux_python as find

    try:
        return find()
    except RfmuxUnavailableError as exc:
        if exc.index_unreachable:
            pytest.skip(str(exc))
        raise


class FakeDastard:
    """A DASTARD written by the tests from DASTARD's documented formats, independent of cryodaq.wire.dastard.

    Binds what DASTARD binds from a free base port: JSON-RPC on base+0 (Go's framing: JSON objects
    back to back; ``SourceControl.SendAllStatus`` publishes STATUS and CHANNELNAMES), status on
    base+1 and records on base+2. The PUB sockets are XPUBs (the same to subscribers) so that a test
    can wait for a subscription before it publishes (:meth:`wait_for_subscription`).
    """

    HEADER = struct.Struct("<HBBIIffqQ")  # channel index, version 0, dtype code, presamples, samples,
    #                                       sample period (s), volts/arb, trigger time (ns), frame index

    def __init__(self, channel_names: list[str], *, nsamples: int, npresamp: int, period_s: float,
                 running: bool = True) -> None:
        self.channel_names, self.nsamples, self.npresamp, self.period_s = channel_names, nsamples, npresamp, period_s
        self.running = running
        self.base = self._free_base(5)
        self.address = f"tcp://127.0.0.1:{self.base}"
        self._ctx = zmq.Context()
        self.status_sock = self._ctx.socket(zmq.XPUB)
        self.records_sock = self._ctx.socket(zmq.XPUB)
        for sock, offset in ((self.status_sock, 1), (self.records_sock, 2)):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 0)  # the tests must not lose what they send
            sock.bind(f"tcp://127.0.0.1:{self.base + offset}")
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.base))
        self._listener.settimeout(0.1)
        self._stop = threading.Event()
        self.rpc_calls: list[str] = []
        self._thread = threading.Thread(target=self._serve_rpc, daemon=True)
        self._thread.start()

    @staticmethod
    def _free_base(n: int) -> int:
        rng = np.random.default_rng()
        for _ in range(200):
            base = int(rng.integers(20000, 60000))
            socks = [socket.socket() for _ in range(n)]
            try:
                for k, s in enumerate(socks):
                    s.bind(("127.0.0.1", base + k))
                return base
            except OSError:
                continue
            finally:
                for s in socks:
                    s.close()
        raise OSError(f"no {n} consecutive free ports")

    def _serve_rpc(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2.0)
                buf, decoder = "", json.JSONDecoder()
                try:
                    while True:
                        data = conn.recv(4096)
                        if not data:
                            break
                        buf += data.decode()
                        try:
                            request, end = decoder.raw_decode(buf.lstrip())
                        except json.JSONDecodeError:
                            continue
                        buf = buf.lstrip()[end:]
                        self.rpc_calls.append(request["method"])
                        if request["method"] == "SourceControl.SendAllStatus":
                            self.send_status("STATUS", {"Running": self.running, "SourceName": "Replay",
                                                        "Nchannels": len(self.channel_names),
                                                        "Nsamples": self.nsamples, "Npresamp": self.npresamp,
                                                        "SamplePeriod": round(self.period_s * 1e9)})
                            if self.running:
                                self.send_status("CHANNELNAMES", self.channel_names)
                            reply = {"id": request["id"], "result": True, "error": None}
                        else:
                            reply = {"id": request["id"], "result": None,
                                     "error": f"rpc: can't find method {request['method']}"}
                        conn.sendall(json.dumps(reply).encode())
                except OSError:
                    pass

    def send_status(self, topic: str, payload: object) -> None:
        with self._lock:
            self.status_sock.send_multipart([topic.encode(), json.dumps(payload).encode()])

    def send_record(self, channel: int, samples: np.ndarray, *, t_ns: int, frame: int, presamples: int | None = None,
                    volts_per_arb: float = 1 / 65535) -> None:
        """One record as DASTARD sends it: [36-byte header, raw samples]; dtype code 3 (uint16) or 2 (int16)."""
        code = {np.dtype("<u2"): 3, np.dtype("<i2"): 2}[samples.dtype]
        header = self.HEADER.pack(channel, 0, code, self.npresamp if presamples is None else presamples,
                                  len(samples), self.period_s, volts_per_arb, t_ns, frame)
        self.records_sock.send_multipart([header, samples.tobytes()])

    def wait_for_subscription(self, timeout: float = 10.0) -> list[bytes]:
        """The record prefixes a subscriber asked for (waits for the first one)."""
        prefixes = []
        if self.records_sock.poll(int(timeout * 1000)):
            while self.records_sock.poll(200):
                msg = self.records_sock.recv()
                if msg[:1] == b"\x01":
                    prefixes.append(msg[1:])
        return prefixes

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()
        self.status_sock.close(linger=0)
        self.records_sock.close(linger=0)
        self._ctx.term()


def _fake_dastards() -> Iterator[Callable[..., FakeDastard]]:
    made: list[FakeDastard] = []

    def make(channel_names: list[str], **kwargs: object) -> FakeDastard:
        made.append(FakeDastard(channel_names, **kwargs))
        return made[-1]

    yield make
    for fake in made:
        fake.close()


@pytest.fixture
def fake_dastard() -> Iterator[Callable[..., FakeDastard]]:
    """Factory of :class:`FakeDastard` publishers, closed after the test."""
    yield from _fake_dastards()


@pytest.fixture(scope="module")
def fake_dastard_module() -> Iterator[Callable[..., FakeDastard]]:
    """Factory of :class:`FakeDastard` publishers for module-scoped fixtures, closed after the module."""
    yield from _fake_dastards()
