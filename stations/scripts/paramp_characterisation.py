"""Characterise the paramp the way a round robin asks: tune-up, noise temperature with its uncertainty
budget across the band, then every figure again and again to get their distributions over time.

    cryodaq sweep stations/scripts/paramp_characterisation.py --station demo_paramp
    cryodaq report runs/<run>.zarr --output paramp-report/

1. Tune-up (sweep ``paramp_gain_map``, as ``paramp_tuneup.py``): the operating point, applied.
2. Y-factor noise temperature at ``target_hz`` + ``noise_offsets_hz`` (sweeps ``paramp_yfactor``
   and ``paramp_noise``): T_n, the paramp's added noise, gain and SNR improvement with their GUM
   budgets, from the readings and the station's ``cryodaq.calibrations``.
3. Repeat (sweep ``repeat``): every ``interval_s`` (default 600 s) for ``repeats`` times (default
   48: a night), the peak gain, centre and −3 dB bandwidth, P1dB at the target, and T_n ± U, the
   added noise, the gain and the SNR improvement at the target; with the mixing-chamber
   temperature read before and after each.

Every field of ``ParampTunePlan``, ``NoisePlan``, ``ParampFiguresPlan`` and ``RepeatPlan``
(cryodaq.sweeps.procedures) is a ``-p`` option (``-p interval_s=300 -p repeats=96``);
``analyze`` (default true) writes tables and plots after each step, ``temperature`` names the
mixing-chamber parameter, ``watch`` the instruments whose silence
pauses the sweeps, ``limit_k`` the mixing-chamber temperature above which they pause. Every sweep
resumes (``--resume RUN``): the repeats keep their schedule.
"""

from __future__ import annotations

from cryodaq.station import resolve_parameter
from cryodaq.sweeps import InstrumentNotAnswering, TemperatureAbove
from cryodaq.sweeps.procedures import (
    NoisePlan,
    ParampFiguresPlan,
    ParampTunePlan,
    RepeatPlan,
    paramp_figures,
    run_noise_temperature,
    run_paramp_tuneup,
    run_repeat,
)
from cryodaq.sweeps.procedures.paramp import calibrations_of

FLUX_A, PUMP_HZ, TARGET_HZ = 3.2954e-4, 10.0008e9, 5.0004e9  # the demo JPA's operating point

TUNE = {"target_hz": TARGET_HZ, "flux_currents_a": [FLUX_A], "pump_frequencies_hz": [PUMP_HZ],
        "pump_powers_dbm": [-21.0, -20.5], "max_gain_db": 25.0}
NOISE = {"span_hz": 1e6, "points": 201, "rbw_hz": 10e3, "sweep_time_s": 1.0, "s21_points": 21}
FIGURES = {"bandwidth_span_hz": 60e6, "bandwidth_points": 201, "p1db_start_dbm": -80.0, "p1db_stop_dbm": -30.0,
           "p1db_points": 21}
REPEAT = {"interval_s": 600.0, "repeats": 48}


def main(ctx) -> None:
    paramp = ctx[ctx.option("paramp", "paramp")]
    mxc = resolve_parameter(ctx.station, ctx.option("temperature", "fridge_thermometer.ch01.temperature"),
                            file="paramp_characterisation.py", key="-p temperature")
    for name in ctx.option("watch", ["vna", "pump", "flux", "analyzer", "load_switch"]):
        ctx.add_interlock(InstrumentNotAnswering(ctx[name]))
    ctx.add_interlock(TemperatureAbove(mxc, ctx.option("limit_k", 0.1), ctx.option("clear_below_k", 0.05),
                                       safe_state=[lambda: paramp.pump_on(False)]))
    tune = ParampTunePlan.from_options(ctx.options, **TUNE)
    analyze = bool(ctx.option("analyze", True))  # tables and plots in <run>.results/ after each step
    run_paramp_tuneup(ctx, paramp=paramp, plan=tune, analyze=analyze)
    offsets = ctx.option("noise_offsets_hz", [-4e6, -2e6, 0.0, 2e6, 4e6])
    noise = NoisePlan.from_options(ctx.options, frequencies_hz=[tune.target_hz + df for df in offsets], **NOISE)
    run_noise_temperature(ctx, paramp=paramp, plan=noise, analyze=analyze)
    figures_plan = ParampFiguresPlan(frequency_hz=tune.target_hz, noise=NoisePlan.from_options(
        ctx.options, frequencies_hz=[tune.target_hz], **NOISE), **{k: ctx.option(k, v) for k, v in FIGURES.items()})
    run_repeat(ctx, figures=paramp_figures(paramp, figures_plan, calibrations_of(ctx)),
               plan=RepeatPlan.from_options(ctx.options, **REPEAT), temperature=mxc,
               attrs={"frequency_hz": tune.target_hz, "instrument": paramp.name}, analyze=analyze)
