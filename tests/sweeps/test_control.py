"""Operator control: pause / resume / stop / abort requests, the prompt, and what Ctrl-C does."""

from __future__ import annotations

import io
import threading

import pytest

from cryodaq.sweeps import Axis, Decision, SweepAborted, SweepControl, SweepStopped, sweep
from cryodaq.sweeps.control import terminal_prompt


def quiet(**kw) -> SweepControl:
    return SweepControl(notify=lambda msg: None, **kw)


def test_terminal_prompt_reads_a_choice_and_end_of_input_means_stop():
    err = io.StringIO()
    assert terminal_prompt(io.StringIO("what?\nr\n"), err) is Decision.RESUME
    assert err.getvalue().count("[r]esume") == 2
    assert terminal_prompt(io.StringIO("abort\n"), io.StringIO()) is Decision.ABORT
    assert terminal_prompt(io.StringIO(""), io.StringIO()) is Decision.STOP


def test_ctrl_c_without_a_terminal_stops_then_aborts():
    c = quiet(interactive=False)
    c.handle_signal()
    assert c.stop_requested and not c.pause_requested and not c.abort_requested
    with pytest.raises(KeyboardInterrupt):
        c.handle_signal()
    assert c.abort_requested


def test_ctrl_c_on_a_terminal_pauses_and_asks():
    answers = iter([Decision.RESUME, Decision.STOP])
    c = quiet(interactive=True, prompt=lambda: next(answers))
    seen: list = []

    def measure(p):
        seen.append(p["a"])
        if p["a"] in (1, 3):
            c.handle_signal()  # Ctrl-C during these points: pause at the boundary, ask
        return {"y": float(p["a"])}

    with pytest.raises(SweepStopped):
        sweep(Axis("a", range(6)), measure, name="s", control=c)
    assert seen == [0, 1, 2, 3]  # resumed after the first question, stopped after the second

    c2 = quiet(interactive=True, prompt=lambda: Decision.RESUME)
    c2.handle_signal()
    with pytest.raises(KeyboardInterrupt):  # a second press before the boundary aborts at once
        c2.handle_signal()


def test_a_programmatic_pause_waits_for_resume_and_is_recorded():
    c = quiet()
    paused = threading.Event()

    def measure(p):
        if p["a"] == 1 and not paused.is_set():
            c.request_pause("checking the wiring")
            paused.set()
            threading.Timer(0.2, c.request_resume).start()
        return {"y": float(p["a"])}

    res = sweep(Axis("a", range(3)), measure, name="s", control=c)
    assert res.measured == 3 and [(p.source, p.reason, p.point) for p in res.pauses] == [
        ("operator", "checking the wiring", 2)]
    assert res.pauses[0].ended_s - res.pauses[0].started_s >= 0.15
    assert res.sink.pauses()[0]["t_end"] > res.sink.pauses()[0]["t_start"]


def test_abort_request_ends_at_the_next_boundary():
    c = quiet()
    with pytest.raises(SweepAborted):
        sweep(Axis("a", range(3)), lambda p: c.request_abort() or {"y": 0.0}, name="s", control=c)
