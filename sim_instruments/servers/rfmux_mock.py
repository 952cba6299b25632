"""rfmux's own mock CRS as a simulated CRS board: the ``rfmux_mock`` launcher of the ``cryodaq.simulators`` entry point.

A station selects it with ``simulation.plugin: rfmux_mock``; its ``simulation`` section then reads::

    instruments: {crs: mock_crs}            # station instrument -> the one face this plugin has
    world:
      resonators: {num_resonances: 4, freq_start: 1.2e9, freq_end: 1.21e9, resonator_random_seed: 42}
      pulses: {mode: periodic, period: 0.5, amplitude: 3.0, tau_decay: 0.02, resonators: all}
      stream_port: 0                        # multicast port of the readout stream (0: a free one)
      serial: "0000"

For each such instrument, :class:`RfmuxMock` runs rfmux's mock (``load_session`` with the
``rfmux.mock`` flavour) in a child process with rfmux's own Python
(:mod:`sim_instruments.servers.rfmux_env`: rfmux never enters cryodaq's process), waits until
its Tuber server answers, asks it for resonators (``generate_resonators``), starts its readout
stream (the mock multicasts to 239.192.0.2, or falls back to loopback unicast where the host
cannot multicast) and then its pulses. A real CRS streams from power-on, and so does this one:
starting the stream before anything else also keeps the mock's pulse clock on stream time
(rfmux 1.7.0 fires no pulses for a while after a ``get_samples`` made while not streaming).

The mock chooses its own Tuber port (9878, or a free one when that is taken), so the entered
launcher reports what the station must use in ``instrument_overrides``: ``{name: {"address":
"127.0.0.1:PORT", "init": {"stream_port": N}}}``, which station bring-up merges into the
instruments' entries. The child exits with its parent (it polls it, and rfmux's server process
polls the child), ignores the terminal's Ctrl-C (own session), and stops on leaving the ``with``.

``python -m sim_instruments.servers.rfmux_mock`` builds the environment (if needed) and warms
the mock's numba cache once, ahead of any test or run.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryodaq.config import CalibrationConfig, SearchConfig
from cryodaq.instruments.crs import CRSBoard
from cryodaq.instruments.tuber import TuberClient, TuberError
from cryodaq.readout.tone_sweep import calibrate_tones
from sim_instruments.servers.rfmux_env import RfmuxUnavailableError, cache_dir, environment_lock, rfmux_python

__all__ = ["FACE", "MockCRSProcess", "RfmuxMock", "launch", "warm_up"]

log = logging.getLogger(__name__)

FACE = "mock_crs"
CHILD = Path(__file__).with_name("rfmux_mock_child.py")
WORLD_KEYS = ("resonators", "pulses", "stream_port", "serial")
#: set_pulse_mode's keyword arguments (rfmux 1.7.0 ignores unknown ones silently; cryodaq refuses them)
PULSE_KEYS = ("mode", "period", "probability", "tau_rise", "tau_decay", "amplitude", "resonators",
              "random_amp_mode", "random_amp_min", "random_amp_max", "random_amp_logmean", "random_amp_logsigma",
              "random_tau_mode", "random_tau_min", "random_tau_max", "random_tau_logmean", "random_tau_logsigma")
PULSE_MODES = ("none", "periodic", "random", "manual")
#: what the numba warm-up asks of the mock: the demo's code paths (resonator search with a 128-tone comb,
#: resonator fits, streaming a few tones with pulses)
WARM_UP_WORLD = {"resonators": {"num_resonances": 3, "freq_start": 1.2005e9, "freq_end": 1.2035e9,
                                "resonator_random_seed": 1},
                 "pulses": {"mode": "periodic", "period": 0.3, "tau_decay": 0.02}}
WARM_UP_CALIBRATION = CalibrationConfig(method="resonator_fit", span_hz=40e3, points=21,
                                        search=SearchConfig(start_hz=1.2e9, stop_hz=1.204e9, step_hz=10e3))


def launch(simulation: Mapping[str, Any], *, in_process: bool = False) -> RfmuxMock:
    """cryodaq's simulator launcher (``cryodaq.station.simulators.SimulatorLauncher``) for rfmux's mock.

    ``in_process`` is not possible (rfmux and cryodaq's Qt binding cannot share a process); the
    mock always runs in a child process, and tests reach it over Tuber as a user would.
    """
    return RfmuxMock(simulation)


def _check_world(world: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(world) - set(WORLD_KEYS))
    if unknown:
        raise ValueError(f"simulation.world: unknown key(s) {unknown} for the rfmux mock; expected {list(WORLD_KEYS)}")
    out = dict(world)
    for key in ("resonators", "pulses"):
        if out.get(key) is not None and not isinstance(out[key], Mapping):
            raise ValueError(f"simulation.world.{key}: expected a mapping, got {out[key]!r}")
    pulses = dict(out.get("pulses") or {})
    bad = sorted(set(pulses) - set(PULSE_KEYS))
    if bad:
        raise ValueError(f"simulation.world.pulses: unknown key(s) {bad}; rfmux's set_pulse_mode takes {list(PULSE_KEYS)}")
    if pulses and pulses.get("mode") not in PULSE_MODES:
        raise ValueError(f"simulation.world.pulses.mode: expected one of {list(PULSE_MODES)}, got {pulses.get('mode')!r}")
    port = out.get("stream_port", 0)
    if not (isinstance(port, int) and not isinstance(port, bool) and 0 <= port <= 65535):
        raise ValueError(f"simulation.world.stream_port: expected a port number (0: a free one), got {port!r}")
    return out


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


class MockCRSProcess:
    """One mock CRS in a child process: started, ready (Tuber answers), stopped.

    ``address`` (``127.0.0.1:PORT``) and ``tuber`` (a :class:`~cryodaq.instruments.tuber.TuberClient`)
    once :meth:`start` returned; ``output`` holds the child's last lines (rfmux's messages).
    """

    def __init__(self, python: Path, *, serial: str = "0000", name: str = "crs", timeout_s: float = 180.0) -> None:
        self.python, self.serial, self.name, self.timeout_s = python, serial, name, timeout_s
        self.output: collections.deque[str] = collections.deque(maxlen=200)
        self.address = ""
        self.info: dict[str, Any] = {}
        self.tuber: TuberClient | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._ready = threading.Event()

    def start(self) -> MockCRSProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1", NUMBA_CACHE_DIR=str(cache_dir() / "numba-cache"))
        started = time.monotonic()
        # its own session: a terminal's Ctrl-C is the run's to handle, not the mock's
        self._proc = subprocess.Popen([str(self.python), str(CHILD), self.serial, str(os.getpid())],
                                      stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=env,
                                      start_new_session=True)
        threading.Thread(target=self._read, name=f"rfmux-mock-{self.name}-output", daemon=True).start()
        deadline = started + self.timeout_s
        while not self._ready.wait(0.1):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                why = (f"exited with code {self._proc.returncode}" if self._proc.poll() is not None
                       else f"did not start within {self.timeout_s:g} s")
                self.stop()
                raise RuntimeError(f"rfmux mock CRS for {self.name!r} {why}; its last output: {self.last_output()}")
        self.tuber = TuberClient(self.address, name=self.name, timeout_s=300.0)
        while True:  # readiness: the Tuber server answers a description of the board object
            try:
                self.tuber.describe(timeout_s=5.0)
                break
            except TuberError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"rfmux mock CRS for {self.name!r} at {self.address} does not answer Tuber; "
                                       f"its last output: {self.last_output()}") from None
                time.sleep(0.2)
        log.info("rfmux mock CRS %s at %s ready in %.1f s (%s)", self.name, self.address,
                 time.monotonic() - started, self.info)
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            line = line.rstrip("\n")
            self.output.append(line)
            if line.startswith("CRYODAQ_MOCK_READY "):
                self.info = json.loads(line.split(" ", 1)[1])
                self.address = str(self.info["address"])
                self._ready.set()
            else:
                log.debug("[mock %s] %s", self.name, line)

    def last_output(self, n: int = 6) -> str:
        return " | ".join(list(self.output)[-n:]) or "(none)"

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def stop(self, timeout_s: float = 10.0, *, wait: bool = True) -> None:
        """SIGTERM (the child exits through rfmux's atexit hook, which stops its server), then SIGKILL
        after ``timeout_s``; ``wait=False`` only sends SIGTERM (the child exits by itself)."""
        proc, self._proc = self._proc, None
        if self.tuber is not None:
            self.tuber.close_connection()
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        if not wait:
            return
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("rfmux mock %s did not stop in %.0f s; killing it", self.name, timeout_s)
            proc.kill()
            proc.wait(5)


class RfmuxMock:
    """The mock CRS boards a station's ``simulation`` section asks for (see the module docstring).

    Entering starts them (each ready, with resonators, streaming, pulses on); leaving stops them.
    ``instrument_overrides`` and ``boards`` (instrument name -> :class:`MockCRSProcess`) after entering.
    """

    def __init__(self, simulation: Mapping[str, Any]) -> None:
        section = simulation.get("simulation", simulation) if isinstance(simulation, Mapping) else None
        if not isinstance(section, Mapping):
            raise ValueError(f"simulation config must be a mapping, got {type(simulation).__name__}")
        unknown = sorted(set(section) - {"world", "instruments"})
        if unknown:
            raise ValueError(f"simulation: unknown key(s) {unknown}; expected 'world' and 'instruments'")
        self.world = _check_world(section.get("world") or {})
        instruments = section.get("instruments") or {}
        if not instruments:
            raise ValueError("simulation.instruments: the rfmux mock needs one instrument with face 'mock_crs'")
        self.names: list[str] = []
        for name, spec in instruments.items():
            face = spec.get("face") if isinstance(spec, Mapping) else spec
            if face != FACE:
                raise ValueError(f"simulation.instruments.{name}: the rfmux_mock plugin has one face, {FACE!r}; "
                                 f"got {face!r}")
            self.names.append(str(name))
        self.boards: dict[str, MockCRSProcess] = {}
        self.instrument_overrides: dict[str, dict[str, Any]] = {}
        self.stream_ports: dict[str, int] = {}

    def start(self) -> RfmuxMock:
        python = rfmux_python()
        warm_up(python)
        try:
            for name in self.names:
                board = MockCRSProcess(python, serial=str(self.world.get("serial", "0000")), name=name).start()
                self.boards[name] = board
                port = int(self.world.get("stream_port") or free_udp_port())
                bring_up(board, self.world, port)
                self.stream_ports[name] = port
                self.instrument_overrides[name] = {"address": board.address, "init": {"stream_port": port}}
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, *, wait: bool = True) -> None:
        """Stop every mock; ``wait=False``: send them SIGTERM and go on (each exits by itself)."""
        for board in self.boards.values():
            board.stop(wait=wait)

    def __enter__(self) -> RfmuxMock:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def bring_up(board: MockCRSProcess, world: Mapping[str, Any], stream_port: int) -> None:
    """Resonators, then the stream (before any sample is read: the mock's pulse clock follows it),
    then pulses, as ``world`` asks."""
    assert board.tuber is not None
    resonators = dict(world.get("resonators") or {})
    if resonators:
        count, freqs = board.tuber.call("generate_resonators", config=resonators)
        log.info("mock %s: %d resonators at %s Hz", board.name, count, [round(f) for f in freqs])
    if not board.tuber.call("start_udp_streaming", port=stream_port):
        raise RuntimeError(f"rfmux mock {board.name!r} was already streaming")
    pulses = dict(world.get("pulses") or {})
    if pulses:
        board.tuber.call("set_pulse_mode", pulses.pop("mode"), **pulses)


def _warm_marker(python: Path) -> Path:
    key = hashlib.sha1(str(Path(python).resolve()).encode()).hexdigest()[:12]
    return cache_dir() / f"rfmux-numba-warm-{key}.json"


def warm_up(python: Path, *, force: bool = False) -> bool:
    """Compile the mock's numba kernels once per cache (``NUMBA_CACHE_DIR`` under the cryodaq cache):
    resonators, a resonator search and fit through the CRS driver while streaming with pulses, as
    a run does (each kernel has a serial and a parallel build, chosen by size: both get compiled).
    Returns whether it ran (False: the cache was warm already)."""
    marker = _warm_marker(python)
    if marker.is_file() and not force:
        return False
    with environment_lock():
        if marker.is_file() and not force:
            return False
        print("warming rfmux's numba cache for the mock CRS (once per cache; up to a few minutes)",
              file=sys.stderr, flush=True)
        started = time.monotonic()
        board = MockCRSProcess(python, name="warm-up").start()
        try:
            port = free_udp_port()
            bring_up(board, WARM_UP_WORLD, port)
            crs = CRSBoard("rfmux_warm_up", board.address, short_packets=True, stream_port=port, timeout_s=600)
            try:
                crs.decimation(6)
                crs.module1.nco_frequency(1.204e9)
                calibrate_tones(crs, WARM_UP_CALIBRATION)  # many tones, then few, while streaming: as a run does
                time.sleep(3.0)
            finally:
                crs.close()
        finally:
            board.stop()
        marker.write_text(json.dumps({"python": str(python), "seconds": round(time.monotonic() - started, 1)}))
        print(f"numba cache warm after {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return True


def main() -> int:
    """Build the rfmux environment if needed and warm its numba cache (CI runs this before the tests)."""
    try:
        python = rfmux_python()
    except RfmuxUnavailableError as err:
        print(err, file=sys.stderr)
        return 1
    warm_up(python)
    print(python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
