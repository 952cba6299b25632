"""``cryodaq run`` under the signals that end programs: a terminal's Ctrl-C (SIGINT), a service
manager's, batch system's, ``timeout``'s or ``docker stop``'s SIGTERM, a closed terminal's SIGHUP.

Each is sent, as those senders do, to the whole process group (the run and its simulator child);
each must end the run as the first Ctrl-C does: status ``complete``, ``interrupted``, the data
received kept, the run's path (or its ``--json`` summary) alone on stdout, no traceback on stderr, the
simulator child gone. While
the runs stream, every socket they listen on is on loopback. The three runs stream at once
(one module fixture), so the three signals cost about one run's time.
"""

from __future__ import annotations

import json
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
from cryodaq.wire.addresses import is_loopback

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

pytestmark = pytest.mark.slow


def committed(out: Path, min_events: int) -> Path | None:
    runs = list(out.glob("*.zarr"))
    if not runs:
        return None
    try:
        run = open_run(runs[0])
        if run.committed("events") >= min_events and run.committed("stream") > 0:
            return runs[0]
    except Exception:  # the run is still being created
        pass
    return None


def listening(pid: int) -> list[tuple[str, int]]:
    """(host, port) of every socket the process and its children listen on (TCP) or are bound to (UDP)."""
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    found = []
    for proc in procs:
        for conn in proc.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN or (conn.type == 2 and not conn.raddr):  # 2: SOCK_DGRAM
                found.append((conn.laddr.ip, conn.laddr.port))
    return found


@pytest.fixture(scope="module")
def signalled_runs(tmp_path_factory: pytest.TempPathFactory, quick_station: Path) -> dict[signal.Signals, dict]:
    base = tmp_path_factory.mktemp("signals")
    station = quick_station
    env = {**os.environ, "CRYODAQ_BACKEND": "numpy"}
    procs = {}
    for sig in SIGNALS:
        out = base / sig.name
        json_out = ["--json"] if sig == signal.SIGINT else []  # that one prints its summary instead of its path
        # a session of its own: the signal goes to the run and its simulator child, as from a terminal or systemd
        procs[sig] = (out, subprocess.Popen(
            [sys.executable, "-m", "cryodaq", "run", str(station), "--out", str(out), "-q", *json_out],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True))
    results: dict[signal.Signals, dict] = {}
    try:
        deadline = time.monotonic() + 120
        while len(results) < len(procs) and time.monotonic() < deadline:
            for sig, (out, proc) in procs.items():
                if sig in results:
                    continue
                assert proc.poll() is None, proc.communicate()
                path = committed(out, min_events=5)
                if path is None:
                    continue
                children = proc_children(proc.pid)
                sockets = listening(proc.pid)
                os.killpg(proc.pid, sig)
                results[sig] = {"path": path, "children": children, "sockets": sockets}
            time.sleep(0.2)
        assert len(results) == len(procs), "a run never committed data"
        for sig, (_, proc) in procs.items():
            stdout, stderr = proc.communicate(timeout=60)
            results[sig].update(returncode=proc.returncode, stdout=stdout, stderr=stderr)
    finally:
        for _, proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return results


def proc_children(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_a_stop_signal_ends_the_run_complete_and_interrupted(signalled_runs, sig):
    result = signalled_runs[sig]
    err = result["stderr"]
    assert result["returncode"] == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    name = "Ctrl-C" if sig == signal.SIGINT else sig.name
    assert f"{name}: stopping the run cleanly" in err, err
    if sig == signal.SIGINT:  # --json: the summary is all stdout has
        summary = json.loads(result["stdout"])
        assert summary["path"] == str(result["path"]) and summary["status"] == "complete"
        assert summary["interrupted"] is True and summary["samples"] > 0
        assert summary["housekeeping"]["mxc_temperature"]["unit"] == "K"
    else:
        assert result["stdout"] == f"{result['path']}\n"  # stdout: the run's path only
    assert "Connected to: LSCI 372" in err  # qcodes' connect messages went to stderr
    run = open_run(result["path"])
    assert run.status.value == "complete" and run.attrs["interrupted"] is True
    assert name in run.attrs["end_reason"]
    assert run.committed("events") >= 5
    phase = run.stream("phase")["phase"].values
    assert phase.shape[0] == run.committed("stream") > 0 and np.all(np.isfinite(phase))
    # the simulator child stopped with its parent, quietly
    _, alive = psutil.wait_procs(result["children"], timeout=10)
    assert not alive, [p.cmdline() for p in alive]


def test_every_listener_of_a_run_is_on_loopback(signalled_runs):
    sockets = [s for result in signalled_runs.values() for s in result["sockets"]]
    # the simulators' control ports, the UDP data receiver and the live publisher of each run
    assert len(sockets) >= 3 * 4, sockets
    assert all(is_loopback(host) for host, _ in sockets), sockets
