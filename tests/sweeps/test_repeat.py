"""The repeat procedure's schedule on a simulated clock: one point per slot, a stop during a wait ends the
sweep at once, and a resumed run keeps its time base (missed slots measured at once, at their real times)."""

from __future__ import annotations

import numpy as np
import pytest
from qcodes.station import Station

from cryodaq.storage.sweep_store import SweepRun
from cryodaq.sweeps import SweepContext, SweepControl, SweepStopped
from cryodaq.sweeps.procedures import RepeatPlan, analyze_repeat_run, run_repeat


class FakeClock:
    """A clock that sleeping advances (a night in no time); ``on_sleep`` runs before each step."""

    def __init__(self, start: float = 1.8e9) -> None:
        self.now = start
        self.on_sleep = None

    def time(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        if self.on_sleep is not None:
            self.on_sleep(self)
        self.now += s


def test_repeats_keep_their_schedule_stop_during_a_wait_and_resume_on_the_same_time_base(tmp_path):
    clock = FakeClock()
    run = SweepRun.create(tmp_path, station_name="bench", station_snapshot={}, config={})
    control = SweepControl(interactive=False)
    ctx = SweepContext(Station(), run, control=control)
    temperature = iter(0.010 + 1e-4 * i for i in range(100))
    counter = iter(range(100))

    def figures() -> dict:
        return {"x": float(next(counter)), "x_U": 0.5}

    def stop_before_slot_3(c: FakeClock) -> None:
        if c.now >= 1.8e9 + 2 * 600 + 1:
            control.request_stop("stopped by the test")

    clock.on_sleep = stop_before_slot_3
    plan = RepeatPlan(interval_s=600.0, repeats=5, poll_s=60.0)
    with pytest.raises(SweepStopped):
        run_repeat(ctx, figures=figures, plan=plan, temperature=lambda: next(temperature), clock=clock.time,
                   sleep=clock.sleep, analyze=False)
    run.close("complete", interrupted=True, end_reason="stopped by the test")
    ds = ctx.dataset("repeat")
    assert ds["done"].values.tolist() == [True, True, True, False, False]
    assert ds["t_s"].values[:3].tolist() == [1.8e9, 1.8e9 + 600, 1.8e9 + 1200]
    assert ds.attrs["schedule_start_s"] == 1.8e9 and ds.attrs["status"] == "stopped"

    clock.on_sleep = None
    clock.now = 1.8e9 + 3 * 600 + 250  # back 250 s after slot 3 was due: it is measured at once, slot 4 on time
    resumed = SweepRun.resume(run.path)
    ctx = SweepContext(Station(), resumed, control=SweepControl(interactive=False))
    run_repeat(ctx, figures=figures, plan=plan, temperature=lambda: next(temperature), clock=clock.time,
               sleep=clock.sleep, analyze=False)
    resumed.close("complete")
    ds = ctx.dataset("repeat")
    assert ds["done"].values.all()
    assert ds["t_s"].values[3:].tolist() == [1.8e9 + 3 * 600 + 250, 1.8e9 + 4 * 600]
    assert ds["x"].values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0] and (ds["x_U"].values == 0.5).all()
    assert ds["temperature_k"].values[0] == pytest.approx(0.01005)  # mean of the readings before and after

    report = analyze_repeat_run(run.path, tmp_path / "out")
    row = report.statistics.set_index("figure").loc["x"]
    assert (row["n"], row["mean"], row["median_expanded_uncertainty"]) == (5, 2.0, 0.5)
    hours = (ds["t_s"].values - 1.8e9) / 3600  # slot 3 came 250 s late: the drift uses the real times
    assert row["drift_per_hour"] == pytest.approx(np.polyfit(hours, ds["x"].values, 1)[0], rel=1e-9)
    assert row["per_kelvin"] > 0 and row["adev_tau0_s"] == 600.0
    assert {p.name for p in report.plots} == {"repeat_timetrace.png", "repeat_histograms.png", "repeat_allan.png",
                                              "repeat_vs_temperature.png"}
