"""The simulators' child process under a terminal's Ctrl-C: the parent decides, the child stays quiet."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[3]

# A parent that owns a SimulatedStation and handles Ctrl-C itself, as cryodaq's run does.
PARENT = textwrap.dedent("""
    import signal, sys, time
    from sim_instruments.servers.simulated_station import SimulatedStation

    config = {"instruments": {"therm": {"face": "lakeshore372", "address": "TCPIP0::127.0.0.1::0::SOCKET"}}}
    interrupted = []
    signal.signal(signal.SIGINT, lambda *_: interrupted.append(1))
    with SimulatedStation(config, timeout_s=60) as station:
        print("ready", flush=True)
        while not interrupted:
            time.sleep(0.05)
        time.sleep(1.0)  # the child got the same SIGINT: time to die or to print a traceback
        print("child alive" if station.alive else "child died", flush=True)
    print("stopped", flush=True)
""")


@pytest.mark.slow
def test_the_child_ignores_the_terminals_ctrl_c_and_stops_when_the_parent_says_so():
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    # a session of its own, so that the SIGINT goes to this process group only, as a terminal sends it
    proc = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=PROJECT_ROOT, start_new_session=True)
    try:
        line = proc.stdout.readline()
        assert line == "ready\n", proc.stderr.read() if proc.poll() is not None else line
        os.killpg(proc.pid, signal.SIGINT)  # parent and child, like Ctrl-C in a terminal
        out, err = proc.communicate(timeout=30)
        assert out == "child alive\nstopped\n", (out, err)
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
