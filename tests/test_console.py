"""The commands' terminal output off a terminal (a log file, a pipe): lines are not wrapped, the last
progress frame ends its line before the summary, counts and readings say what they are."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from rich.console import Console

from cryodaq.acquisition.session import RunSummary
from cryodaq.acquisition.sinks import SessionStats
from cryodaq.console import RunProgress, results_to_stdout, stderr_console

LONG_PATH = "/data/" + "x" * 150 + "/20261207T120000Z-demo_mkid-abcd.zarr"


def stats() -> SessionStats:
    st = SessionStats(samples=4_096_000, packets=1000, events=1087, gaps=1, samples_lost=4096)
    st.events_per_channel = np.array([140, 130, 137, 136, 135, 134, 140, 135])
    st.housekeeping = {"mxc_temperature": 0.012, "still_temperature": 0.8507}
    st.housekeeping_units = {"mxc_temperature": "K", "still_temperature": "K"}
    return st


def test_off_a_terminal_nothing_is_wrapped(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    console = stderr_console()
    assert not console.is_terminal
    message = f"error: {LONG_PATH}: cryodaq.readout.data_port: a long one-line error that must stay one line"
    console.print(message, highlight=False)
    assert err.getvalue() == message + "\n"


def test_the_last_progress_frame_and_the_summary_are_on_lines_of_their_own():
    out = io.StringIO()
    console = Console(file=out, soft_wrap=True, width=100_000)  # what stderr_console gives off a terminal
    session = SimpleNamespace(stats=stats(), writer=SimpleNamespace(path=Path(LONG_PATH)))
    with RunProgress(console, "demo_mkid", 3.0) as progress:
        progress.update(session)  # off a terminal: drawn once, at the end
        assert out.getvalue() == ""
    RunProgress.print_summary(console, RunSummary(Path(LONG_PATH), "complete", False, 3.1, session.stats))
    lines = out.getvalue().splitlines()
    assert any(line.rstrip() == "still_temperature  0.8507 K" for line in lines), lines
    assert any(line.rstrip() == "mxc_temperature    0.012 K" for line in lines), lines
    assert any(line.rstrip() == "events             1087 in all; per channel [140, 130, 137, 136, 135, 134, 140, "
               "135]" for line in lines), lines
    assert any(line.strip() == "run summary" for line in lines), lines  # its title alone on its line
    assert any(f"demo_mkid -> {LONG_PATH}" in line for line in lines)  # the path unbroken
    assert any(LONG_PATH in line and line.startswith("│ run") for line in lines)


def test_results_go_to_the_real_stdout_and_everything_else_to_stderr(capsys):
    with results_to_stdout() as stdout:
        print("Connected to: an instrument")  # what qcodes prints while a station comes up
        print("runs/the-run.zarr", file=stdout)
    captured = capsys.readouterr()
    assert captured.out == "runs/the-run.zarr\n" and captured.err == "Connected to: an instrument\n"
