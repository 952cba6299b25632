"""Overnight resonator characterisation: temperature steps × readout powers × resonator scans.

    cryodaq sweep stations/scripts/resonator_overnight.py --station demo_sweep
    cryodaq sweep stations/scripts/resonator_overnight.py --station demo_sweep --resume RUN   # after a crash

On the simulated demo station (fast fridge) it takes about half a minute. Every field of
:class:`cryodaq.sweeps.procedures.ResonatorPlan` can be set with ``-p``, e.g.
``-p temperatures_k=[0.05,0.1,0.2] -p powers_dbm=[-40] -p hold_time_s=60``; the options of a run
are stored in it and reused by ``--resume``. Other options: ``fridge`` and ``vna`` (instrument
names), ``limit_k`` / ``clear_below_k`` (the warm-up interlock), ``min_free_gb`` (disk interlock).

Interlocks: the mixing chamber above ``limit_k`` (heater off, wait until it is back below
``clear_below_k``, redo the point), the VNA or the thermometer not answering, the disk nearly
full. Results: ``<run>.results/`` — resonator_fits.csv, Qi/Qc/fr vs T tables, PNG plots.
"""

from __future__ import annotations

from cryodaq.sweeps import DiskNearlyFull, InstrumentNotAnswering, TemperatureAbove
from cryodaq.sweeps.procedures import ResonatorPlan, run_resonator_characterisation

DEFAULTS = {
    "temperatures_k": [0.05, 0.10, 0.15, 0.20, 0.25, 0.30],
    "powers_dbm": [-50.0, -40.0, -30.0],
    "wide_start_hz": 4.99e9,
    "wide_stop_hz": 5.04e9,
    "wide_points": 5001,
    "min_separation_hz": 2e6,
    "span_hz": 2e6,
    "points": 801,
    "ifbw_hz": 1e3,
    "tolerance_k": 1e-3,
    "hold_time_s": 1.0,      # a real fridge: minutes (set -p hold_time_s=120 -p timeout_s=3600)
    "timeout_s": 120.0,
    "poll_s": 0.05,
}


def main(ctx) -> None:
    fridge = ctx[ctx.option("fridge", "fridge")]
    vna = ctx[ctx.option("vna", "vna")]
    ctx.add_interlock(TemperatureAbove(fridge.mxc, ctx.option("limit_k", 0.40), ctx.option("clear_below_k", 0.33),
                                       safe_state=[fridge.heater_off]))
    ctx.add_interlock(InstrumentNotAnswering(vna))
    ctx.add_interlock(InstrumentNotAnswering(fridge.thermometry))
    ctx.add_interlock(DiskNearlyFull(ctx.run.path, ctx.option("min_free_gb", 0.2) * 1e9))
    plan = ResonatorPlan.from_options(ctx.options, **DEFAULTS)
    report = run_resonator_characterisation(ctx, fridge=fridge, vna=vna, plan=plan)
    ctx.log.info("resonator tables and plots: %s", [str(p) for p in report.tables + report.plots])
