"""An overnight resonator run: every resonator's fr, Qi and Qc again and again, with the fridge as it is.

    cryodaq sweep stations/scripts/resonator_repeat.py --station demo_sweep
    cryodaq report runs/<run>.zarr --output resonator-report/

A wide VNA scan locates the resonators (sweep ``wide_scan``, with the fridge held at
``hold_temperature_k``), then sweep ``repeat`` scans and fits each every ``interval_s`` (default
600 s) for ``repeats`` times (default 48: a night), reading the mixing chamber before and after.
The report gives each resonator's fr and Qi over time, their histograms, Allan deviations and
their drift against time and against the fridge temperature.

Options: every field of ``ResonatorPlan`` (the wide scan, ``span_hz``, ``points``, ``ifbw_hz``) and
``RepeatPlan``; ``power_dbm`` (VNA power of the scans), ``fridge``/``vna`` (instrument names),
``limit_k``/``clear_below_k`` (the warm-up interlock), ``analyze`` (default true: tables and plots in
``<run>.results/``). Resumes with ``--resume RUN``.
"""

from __future__ import annotations

from cryodaq.sweeps import DiskNearlyFull, InstrumentNotAnswering, TemperatureAbove
from cryodaq.sweeps.procedures import RepeatPlan, ResonatorPlan, locate_resonators, resonator_figures, run_repeat

DEFAULTS = {"temperatures_k": [0.015], "powers_dbm": [-40.0], "wide_start_hz": 4.99e9, "wide_stop_hz": 5.04e9,
            "wide_points": 5001, "min_separation_hz": 2e6, "span_hz": 2e6, "points": 801, "ifbw_hz": 1e3,
            "tolerance_k": 1e-3, "hold_time_s": 1.0, "timeout_s": 120.0, "poll_s": 0.05}
REPEAT = {"interval_s": 600.0, "repeats": 48}


def main(ctx) -> None:
    fridge = ctx[ctx.option("fridge", "fridge")]
    vna = ctx[ctx.option("vna", "vna")]
    ctx.add_interlock(TemperatureAbove(fridge.mxc, ctx.option("limit_k", 0.40), ctx.option("clear_below_k", 0.33),
                                       safe_state=[fridge.heater_off]))
    ctx.add_interlock(InstrumentNotAnswering(vna))
    ctx.add_interlock(DiskNearlyFull(ctx.run.path, ctx.option("min_free_gb", 0.2) * 1e9))
    plan = ResonatorPlan.from_options(ctx.options, **DEFAULTS)
    f0 = locate_resonators(ctx, fridge, vna, plan)
    figures = resonator_figures(vna, f0, span_hz=plan.span_hz, points=plan.points,
                                power_dbm=ctx.option("power_dbm", plan.powers_dbm[0]), ifbw_hz=plan.ifbw_hz,
                                averages=plan.averages, geometry=plan.geometry)
    run_repeat(ctx, figures=figures, plan=RepeatPlan.from_options(ctx.options, **REPEAT), temperature=fridge.mxc,
               attrs={"resonators_hz": [float(f) for f in f0], "instrument": vna.name},
               analyze=bool(ctx.option("analyze", True)))
