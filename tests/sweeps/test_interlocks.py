"""Interlocks: hysteresis and fail-safe checks; a tripped interlock pauses the sweep, runs the safe
state, resumes when clear and redoes the interrupted point — on a fake clock and on the simulated
fridge (an injected warm-up through the Lakeshore 372's SIM:FAULT:WARMUP)."""

from __future__ import annotations

import textwrap
import threading
import time
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from cryodaq.errors import InstrumentError
from cryodaq.station import load_station_config
from cryodaq.station.bringup import station_up
from cryodaq.storage import open_run
from cryodaq.storage.sweep_store import SweepRun
from cryodaq.sweeps import (
    Axis,
    Condition,
    DiskNearlyFull,
    InstrumentNotAnswering,
    InterlockTimeout,
    SweepControl,
    SweepStopped,
    TemperatureAbove,
    sweep,
)


class FakeClock:
    """monotonic() and sleep() that only move when slept."""

    def __init__(self) -> None:
        self.t = 0.0
        self.hooks: list = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s
        for hook in list(self.hooks):
            hook(self.t)


def test_temperature_above_has_hysteresis_and_fails_safe():
    reading = [0.1]
    il = TemperatureAbove(lambda: reading[0], limit_k=0.3, clear_below_k=0.2)
    assert il.check() is None
    reading[0] = 0.31
    assert "above the limit 0.3 K" in il.check()
    reading[0] = 0.25  # below the limit but not below the clear level: still holds
    assert "not yet below 0.2 K" in il.check()
    reading[0] = 0.19
    assert il.check() is None
    reading[0] = 0.25  # not tripped now: 0.25 is fine
    assert il.check() is None

    def broken() -> float:
        raise InstrumentError("ls", "TCPIP0::x::1::SOCKET", "no answer")

    assert "cannot check" in TemperatureAbove(broken, 0.3).check()
    with pytest.raises(ValueError, match="clear_below_k"):
        TemperatureAbove(lambda: 0.0, 0.3, 0.4)


def test_disk_nearly_full_and_instrument_not_answering(tmp_path):
    free = [5e9]
    disk = DiskNearlyFull(tmp_path / "not_yet" / "run.zarr", 1e9, 2e9,
                          disk_usage=lambda p: SimpleNamespace(free=free[0]))
    assert disk.check() is None
    free[0] = 0.5e9
    assert "0.5 GB free" in disk.check()
    free[0] = 1.5e9  # above the trip level, below the clear level
    assert disk.check() is not None
    free[0] = 2.5e9
    assert disk.check() is None

    alive = [True]

    def ping() -> str:
        if not alive[0]:
            raise InstrumentError("vna", "TCPIP0::h::1::SOCKET", "no answer to '*IDN?'")
        return "ok"

    vna = SimpleNamespace(name="vna")
    il = InstrumentNotAnswering(vna, ping=ping)
    assert il.check() is None  # no polling while nothing went wrong
    alive[0] = False
    assert il.check() is None
    il.notice(RuntimeError("elsewhere"))
    assert il.check() is None
    try:
        raise RuntimeError("getting vna_trace") from InstrumentError("vna", "TCPIP0::h::1::SOCKET", "timeout")
    except RuntimeError as exc:
        il.notice(exc)
    assert "'vna' does not answer" in il.check()
    alive[0] = True
    assert il.check() is None


def test_a_tripped_interlock_pauses_runs_the_safe_state_and_redoes_the_point(tmp_path):
    clock = FakeClock()
    hot = [False]
    safe_calls: list = []
    calls: Counter = Counter()

    def measure(p):
        calls[p.index] += 1
        if p.index == (1, 0) and calls[p.index] == 1:
            hot[0] = True  # the fridge warms up while this point is measured
            clock.hooks.append(lambda t: hot.__setitem__(0, t < 30.0))  # ... and recovers at t = 30 s
        return {"y": 10.0 * p["a"] + p["b"]}

    interlock = Condition("fridge hot", lambda: "mxc 0.5 K above 0.3 K" if hot[0] else None,
                          safe_state=[lambda: safe_calls.append(clock.t)])
    run = SweepRun.create(tmp_path, station_name="bench", station_snapshot={}, config={}, catalog=False)
    sets: list = []
    res = sweep(Axis("a", [0, 1, 2], sets.append), Axis("b", [0, 1]), measure, name="s", run=run,
                interlocks=[interlock], poll_s=1.0, resume_hold_s=2.0, clock=clock, sleep=clock.sleep)
    run.close()
    assert calls[(1, 0)] == 2 and all(n == 1 for idx, n in calls.items() if idx != (1, 0))
    assert res.measured == 6 and len(res.pauses) == 1 and safe_calls == [0.0]
    assert sets == [0, 1, 1, 2]  # every axis set again after the pause
    ds = open_run(run.path).dataset("sweeps/s")
    np.testing.assert_allclose(ds["y"].values, [[0, 1], [10, 11], [20, 21]])
    assert bool(ds["done"].all())
    pauses = open_run(run.path).dataset("sweeps/s/pauses")
    assert pauses.sizes["pause"] == 1
    assert int(pauses["point"][0]) == 2 and str(pauses["source"].values[0]) == "fridge hot"
    assert "0.5 K" in str(pauses["reason"].values[0])
    assert int(pauses["t_end"][0]) >= int(pauses["t_start"][0]) > 0
    assert 32.0 <= res.pauses[0].ended_s - res.pauses[0].started_s <= 34.0  # recovered at 30 s, then held 2 s


def test_a_pause_that_lasts_too_long_ends_the_sweep():
    clock = FakeClock()
    il = Condition("stuck", lambda: "always")
    with pytest.raises(InterlockTimeout, match="more than 10 s"):
        sweep(Axis("a", [0, 1]), lambda p: {"y": 1.0}, name="s", interlocks=[il], poll_s=1.0, max_pause_s=10,
              clock=clock, sleep=clock.sleep)


def test_the_operator_can_stop_during_an_interlock_pause():
    clock = FakeClock()
    control = SweepControl(interactive=False, notify=lambda msg: None)
    clock.hooks.append(lambda t: control.request_stop("night over") if t > 5 else None)
    with pytest.raises(SweepStopped, match="night over"):
        sweep(Axis("a", [0, 1]), lambda p: {"y": 1.0}, name="s", interlocks=[Condition("x", lambda: "held")],
              control=control, poll_s=1.0, clock=clock, sleep=clock.sleep)


STATION = """
instruments:
  fridge_thermometer:
    type: qcodes.instrument_drivers.Lakeshore.LakeshoreModel372
    address: TCPIP0::127.0.0.1::1::SOCKET
    init: {visalib: "@py", terminator: "\\r\\n"}
  fridge:
    type: cryodaq.instruments.Fridge
    init: {thermometry: fridge_thermometer, channels: {mxc: ch01}, max_heater_power_w: 1.0e-3}
cryodaq:
  name: warmup_bench
  readout: {instrument: fridge_thermometer}
  publish: {enabled: false}
  simulation:
    world: {fridge: {tau_s: 0.05, max_step_s: 0.01}}
    instruments: {fridge_thermometer: lakeshore372}
"""


def test_an_injected_fridge_warm_up_pauses_the_sweep_and_it_resumes_afterwards(tmp_path):
    path = tmp_path / "station.yaml"
    path.write_text(textwrap.dedent(STATION))
    calls: Counter = Counter()
    safe: list = []
    timers: list[threading.Timer] = []
    with station_up(load_station_config(path), in_process=True) as live:
        world = live.simulators.world
        thermometer, fridge = live.station.components["fridge_thermometer"], live.station.components["fridge"]

        def measure(p):
            calls[p["k"]] += 1
            if p["k"] == 3 and calls[3] == 1:
                # the fault, as the simulator's protocol offers it; the fridge recovers 0.6 s later
                thermometer.write("SIM:FAULT:WARMUP 5,0.5")
                timer = threading.Timer(0.6, world.fridge.stop_warm_up)
                timer.start()
                timers.append(timer)
                time.sleep(0.3)
            return {"y": float(p["k"]) ** 2, "mxc_k": fridge.mxc()}

        interlock = TemperatureAbove(fridge.mxc, limit_k=0.2, clear_below_k=0.05,
                                     safe_state=[fridge.heater_off, lambda: safe.append(world.fridge.mxc_k())])
        run = SweepRun.create(tmp_path, station_name="warmup_bench", station_snapshot={}, config={}, catalog=False)
        res = sweep(Axis("k", range(6)), measure, name="warmup", run=run, interlocks=[interlock], poll_s=0.05)
        run.close()
        heater_mode = thermometer.sample_heater.mode()
    for timer in timers:
        timer.join()
    assert calls[3] == 2 and all(calls[k] == 1 for k in (0, 1, 2, 4, 5))
    assert res.measured == 6 and len(res.pauses) == 1
    assert len(safe) == 1 and safe[0] > 0.2 and heater_mode == "off"
    ds = open_run(run.path).dataset("sweeps/warmup")
    np.testing.assert_allclose(ds["y"].values, np.arange(6) ** 2)  # every point exactly once, none lost
    assert bool(ds["done"].all()) and float(ds["mxc_k"].max()) < 0.05  # the redone point is cold again
    pauses = open_run(run.path).dataset("sweeps/warmup/pauses")
    assert int(pauses["point"][0]) == 3 and "above the limit 0.2 K" in str(pauses["reason"].values[0])
    assert int(pauses["t_end"][0]) - int(pauses["t_start"][0]) > 0.2e9
