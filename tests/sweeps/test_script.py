"""``cryodaq sweep SCRIPT.py``: a script error aborts the run with everything before it readable;
SIGKILL mid-sweep, then ``--resume``, gives the same result as an uninterrupted run; Ctrl-C
without a terminal stops cleanly and the run resumes; SIGTERM and SIGHUP stop it as Ctrl-C does,
and stdout has only the run's path (or its ``--json`` summary)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from cryodaq.storage import open_run
from cryodaq.sweeps import ScriptError, run_script

REPO = Path(__file__).resolve().parents[2]

STATION = """
instruments:
  dac:
    type: qcodes.instrument_drivers.mock_instruments.DummyInstrument
    init: {gates: [dac1, dac2]}
cryodaq:
  name: dummy_bench
  readout: {instrument: dac}
  publish: {enabled: false}
"""

# Deterministic measurements of the setpoints; every call is logged as "<pid> <sweep> <flat index>".
SCRIPT = '''
import os
import time
from pathlib import Path

from cryodaq.sweeps import ArraySweep, Axis, LinSweep


def main(ctx):
    dac = ctx["dac"]
    calls = Path(ctx.option("calls_file"))
    delay = ctx.option("delay_s", 0.0)
    fail_at = ctx.option("fail_at")

    def measure(p):
        with calls.open("a") as fh:
            fh.write(f"{os.getpid()} grid {p.flat}\\n")
        if p.flat == fail_at:
            raise RuntimeError(f"script bug at point {p.flat}")
        time.sleep(delay)
        x, y = p["dac_dac1"], p["dac_dac2"]
        return {"z": x * x - y, "trace": (("k",), [x, y, x * y])}

    ctx.sweep(LinSweep(dac.dac1, 0, 1, 4), ArraySweep(dac.dac2, [0.5, 1.5, 2.5]), measure, name="grid")

    def tail(p):
        with calls.open("a") as fh:
            fh.write(f"{os.getpid()} tail {p.flat}\\n")
        return {"w": 2.0 * p["n"]}

    ctx.sweep(Axis("n", [1, 2, 3]), tail, name="tail")
'''

EXPECTED_Z = np.array([[x * x - y for y in (0.5, 1.5, 2.5)] for x in np.linspace(0, 1, 4)])


@pytest.fixture
def bench(tmp_path):
    station = tmp_path / "station.yaml"
    station.write_text(textwrap.dedent(STATION))
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    return station, script


def calls(path: Path) -> list[tuple[int, str, int]]:
    if not path.exists():
        return []
    return [(int(a), b, int(c)) for a, b, c in (line.split() for line in path.read_text().splitlines())]


def cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "cryodaq", "sweep", *args], cwd=REPO, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_points(run: Path, n: int, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"sweep exited early: {proc.communicate()}"
        try:
            if int(open_run(run).dataset("sweeps/grid")["done"].values.sum()) >= n:
                return
        except (KeyError, FileNotFoundError, ValueError, OSError):
            pass  # the run or its group does not exist yet
        time.sleep(0.05)
    raise AssertionError(f"{run}: fewer than {n} points after {timeout_s} s")


def final_arrays(run: Path) -> dict[str, np.ndarray]:
    r = open_run(run)
    grid, tail = r.dataset("sweeps/grid"), r.dataset("sweeps/tail")
    return {"z": grid["z"].values, "trace": grid["trace"].values, "done": grid["done"].values,
            "w": tail["w"].values, "tail_done": tail["done"].values}


def test_a_script_error_aborts_the_run_with_the_points_before_it_readable(bench, tmp_path):
    station, script = bench
    out = run_script(script, station, tmp_path / "runs", options={"calls_file": str(tmp_path / "c.txt"),
                                                                   "fail_at": 7})
    assert out.status == "aborted" and not out.interrupted and out.exit_code == 1
    assert "RuntimeError: script bug at point 7" in out.end_reason and "Traceback" in out.end_reason
    run = open_run(out.path)
    assert run.status.value == "aborted"
    grid = run.dataset("sweeps/grid")
    done = grid["done"].values.ravel()
    assert done[:7].all() and not done[7:].any()
    np.testing.assert_allclose(grid["z"].values.ravel()[:7], EXPECTED_Z.ravel()[:7])
    assert grid.attrs["status"] == "error"
    assert "script bug at point 7" in (out.path / "sweep.log").read_text()


def test_load_script_refuses_a_script_without_main(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\n")
    with pytest.raises(ScriptError, match="main"):
        run_script(bad, tmp_path / "no_station.yaml", tmp_path)


@pytest.mark.timeout(120)
def test_sigkill_then_resume_gives_the_uninterrupted_result(bench, tmp_path):
    station, script = bench
    out_dir, calls_file = tmp_path / "runs", tmp_path / "calls.txt"
    opts = ["-p", f"calls_file={calls_file}", "-p", "delay_s=0.15"]
    proc = cli(str(script), "--station", str(station), "--out", str(out_dir), "--run-id", "night", "-q", *opts)
    run = out_dir / "night.zarr"
    try:
        wait_for_points(run, 5, proc)
        proc.kill()  # SIGKILL: no cleanup at all
    finally:
        proc.wait(timeout=30)
    assert open_run(run).status.value == "crashed"
    done_at_kill = open_run(run).dataset("sweeps/grid")["done"].values.ravel().copy()
    assert 5 <= done_at_kill.sum() < 12
    first_pid = calls(calls_file)[0][0]

    resumed = cli(str(script), "--station", str(station), "--out", str(out_dir), "--resume", "night", "-q",
                  "-p", "delay_s=0")
    stdout, stderr = resumed.communicate(timeout=90)
    assert resumed.returncode == 0, stderr
    assert stdout.strip().endswith("night.zarr")

    r = open_run(run)
    assert r.status.value == "complete" and not r.attrs["interrupted"]
    assert r.attrs["resumes"][0]["previous_status"] == "crashed"
    assert r.attrs["config"]["options"]["calls_file"] == str(calls_file)  # stored options were reused
    second = [(s, i) for pid, s, i in calls(calls_file) if pid != first_pid]
    # the resumed session measured exactly the grid points not committed before the kill, once each
    assert sorted(i for s, i in second if s == "grid") == sorted(np.flatnonzero(~done_at_kill).tolist())
    assert Counter(second)[("tail", 0)] == 1

    reference = run_script(script, station, tmp_path / "ref", options={"calls_file": str(tmp_path / "ref.txt")})
    assert reference.status == "complete"
    got, want = final_arrays(run), final_arrays(reference.path)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    np.testing.assert_allclose(got["z"], EXPECTED_Z)
    log = (run / "sweep.log").read_text()
    assert "resumed run" in log and "already done" in log


@pytest.mark.timeout(120)
def test_ctrl_c_without_a_terminal_stops_cleanly_and_the_run_resumes(bench, tmp_path):
    station, script = bench
    out_dir, calls_file = tmp_path / "runs", tmp_path / "calls.txt"
    proc = cli(str(script), "--station", str(station), "--out", str(out_dir), "--run-id", "evening", "-q",
               "-p", f"calls_file={calls_file}", "-p", "delay_s=0.15")
    run = out_dir / "evening.zarr"
    try:
        wait_for_points(run, 3, proc)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "stopping cleanly" in stderr
    r = open_run(run)
    assert r.status.value == "complete" and r.attrs["interrupted"]
    assert "stopped by the operator" in r.attrs["end_reason"]
    grid = r.dataset("sweeps/grid")
    n_done = int(grid["done"].values.sum())
    assert 3 <= n_done < 12 and grid.attrs["status"] == "stopped"
    # every committed point is a whole point: the values match the setpoints
    np.testing.assert_allclose(grid["z"].values.ravel()[:n_done], EXPECTED_Z.ravel()[:n_done])

    out = run_script(script, station, out_dir, resume="evening", options={"delay_s": 0})
    assert out.status == "complete" and not out.interrupted and out.resumed
    np.testing.assert_allclose(final_arrays(run)["z"], EXPECTED_Z)
    measured = [i for _, s, i in calls(calls_file) if s == "grid"]
    assert sorted(measured) == list(range(12))  # nothing measured twice, nothing lost


# An instrument that greets on stdout when it connects, as qcodes' drivers do ("Connected to: ...").
CHATTY = """\
from qcodes.instrument_drivers.mock_instruments import DummyInstrument


class Chatty(DummyInstrument):
    def __init__(self, name, **kwargs):
        super().__init__(name, **kwargs)
        self.connect_message()
"""


@pytest.mark.timeout(120)
def test_sigterm_and_sighup_stop_a_sweep_cleanly_and_stdout_has_only_the_result(bench, tmp_path):
    station, script = bench
    (tmp_path / "chatty.py").write_text(CHATTY)
    station.write_text(station.read_text().replace("qcodes.instrument_drivers.mock_instruments.DummyInstrument",
                                                   "chatty.Chatty"))
    script.write_text(script.read_text().replace("    dac = ctx[\"dac\"]", "    print('the script says hello')\n"
                                                 "    dac = ctx[\"dac\"]"))
    procs = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        json_out = ["--json"] if sig == signal.SIGTERM else []
        procs[sig] = subprocess.Popen(
            [sys.executable, "-m", "cryodaq", "sweep", str(script), "--station", str(station), "-q",
             "--out", str(tmp_path / sig.name), "--run-id", "night", "-p", f"calls_file={tmp_path / sig.name}.txt",
             "-p", "delay_s=0.15", *json_out],
            cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for sig, proc in procs.items():
            wait_for_points(tmp_path / sig.name / "night.zarr", 2, proc)
            os.killpg(proc.pid, sig)  # the whole group, as systemd or a closing terminal sends it
        outputs = {sig: proc.communicate(timeout=60) for sig, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    for sig, (stdout, stderr) in outputs.items():
        run = tmp_path / sig.name / "night.zarr"
        assert procs[sig].returncode == 130, stderr
        assert f"{sig.name}: stopping cleanly" in stderr and "Traceback" not in stderr, stderr
        assert "Connected to: QCoDeS" in stderr and "the script says hello" in stderr  # not on stdout
        r = open_run(run)
        assert r.status.value == "complete" and r.attrs["interrupted"]
        assert r.attrs["end_reason"] == f"stopped by the operator ({sig.name})"
        assert 2 <= int(r.dataset("sweeps/grid")["done"].values.sum()) < 12
        if sig == signal.SIGTERM:
            summary = json.loads(stdout)
            assert summary["path"] == str(run) and summary["interrupted"] and summary["exit_code"] == 130
        else:
            assert stdout == f"{run}\n"
