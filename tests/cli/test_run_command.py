"""``cryodaq run`` as a user starts it: a subprocess killed outright (stop signals: test_signals.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from cryodaq.storage import open_run

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "stations" / "demo_mkid.yaml"

pytestmark = pytest.mark.slow


def _wait_for_commits(out: Path, proc: subprocess.Popen, min_events: int, timeout: float = 120.0) -> Path:
    """The run, once it has committed ``min_events`` events and some stream (~13 s on a quiet 2-core machine,
    start-up and the first commit; several times that on one loaded by other tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        runs = list(out.glob("*.zarr"))
        if runs:
            try:
                run = open_run(runs[0])
                if run.committed("events") >= min_events and run.committed("stream") > 0:
                    return runs[0]
            except Exception:  # the run is still being created
                pass
        time.sleep(0.2)
    raise AssertionError("the run never committed data")


def _cli(out: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "CRYODAQ_BACKEND": "numpy"}
    return subprocess.Popen(
        [sys.executable, "-m", "cryodaq", "run", str(DEMO), "--out", str(out), "-q", "--publish", "tcp://127.0.0.1:0",
         *args],  # any free port for the live view: tests run side by side
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def test_killed_run_reads_back_to_last_commit(tmp_path):
    proc = _cli(tmp_path, "--duration", "300")  # killed long before: the duration only outlasts the wait
    try:
        path = _wait_for_commits(tmp_path, proc, min_events=20)
        children = psutil.Process(proc.pid).children(recursive=True)
        time.sleep(0.7)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    # the simulator process notices its parent died and exits (no orphan streaming on)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [p.cmdline() for p in alive]
    run = open_run(path)
    assert run.stored_status == "running"
    assert run.status == "crashed"  # detected by the reader, not written
    events = run.events()
    n = run.committed("events")
    assert events.sizes["event"] == n >= 20
    assert np.all(np.isfinite(events["amplitude"].values))
    phase = run.stream("phase")["phase"].values
    assert phase.shape[0] == run.committed("stream") and np.all(np.isfinite(phase))
    assert open_run(path, mark_crashed=True).stored_status == "crashed"
