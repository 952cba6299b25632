"""TES IV curves versus bath temperature: R_n, R_p, P_sat(T) and the thermal conductance G.

    cryodaq sweep stations/scripts/tes_iv.py --station stations/demo_tes_sweep.yaml
    cryodaq sweep stations/scripts/tes_iv.py --station stations/demo_tes_sweep.yaml --resume RUN   # after a crash

At each bath temperature (fridge setpoint, wait until stable) the bias current is swept from
high to low (normal branch first) through the bias source's current parameter (station safety
limits apply); a short capture of the readout stream gives each pixel's TES current. Then R_n,
R_p and P_sat at ``p_sat_fraction`` × R_n per temperature and pixel, and a fit of
P_sat = K (T_c^n − T_bath^n) per pixel for K, n, T_c and G = n K T_c^(n−1).

Every field of :class:`cryodaq.sweeps.procedures.IVPlan` is a ``-p`` option, e.g.
``-p bath_temperatures_k=[0.04,0.07,0.09] -p bias_points=81 -p hold_time_s=120``; ``r_shunt_ohm`` is
the demo's 0.3 mΩ — give your setup's. Instruments: ``fridge``, ``bias``, ``readout``, ``squid``
(``-p squid=`` to leave the FLL gain alone); interlocks: ``limit_k`` / ``clear_below_k``,
``min_free_gb``. On the demo station (fast fridge) the defaults take about a minute. Results in
``<run>.results/``: tes_iv_results.csv, tes_iv_points.csv, tes_thermal_fit.csv, tes_iv_curves.png,
tes_pr_curves.png, tes_psat_vs_t.png.
"""

from __future__ import annotations

from cryodaq.sweeps import DiskNearlyFull, InstrumentNotAnswering, TemperatureAbove
from cryodaq.sweeps.procedures import IVPlan, run_tes_iv

DEFAULTS = {
    "bath_temperatures_k": [0.040, 0.060, 0.075, 0.085, 0.092],
    "r_shunt_ohm": 0.3e-3,       # the demo TES shunt
    "bias_max_a": 0.9e-3,        # normal at every bath temperature above (demo: normal above ~0.63 mA at 12 mK)
    "bias_min_a": 0.0,
    "bias_points": 61,
    "capture_s": 0.05,
    # the superconducting branch carries 0.75 x I_bias: 0.1 V/phi0 keeps up to ~200 uA inside the ADC range
    "squid_feedback_gain_v_per_phi0": 0.1,
    "tolerance_k": 3e-4,
    "hold_time_s": 1.0,          # a real fridge: minutes (-p hold_time_s=120 -p timeout_s=3600)
    "timeout_s": 120.0,
    "poll_s": 0.05,
}


def main(ctx) -> None:
    fridge_name = ctx.option("fridge", "fridge")
    if fridge_name not in ctx.station.components:
        raise ValueError(f"tes_iv needs a cryodaq.instruments.Fridge on the station to set bath temperatures; "
                         f"there is no {fridge_name!r} (-p fridge=NAME; stations/demo_tes_sweep.yaml has one)")
    fridge = ctx[fridge_name]
    bias = ctx[ctx.option("bias", "tes_bias")]
    readout = ctx[ctx.option("readout", "tes_readout")]
    squid_name = ctx.option("squid", "squid")
    ctx.add_interlock(TemperatureAbove(fridge.mxc, ctx.option("limit_k", 0.15), ctx.option("clear_below_k", 0.12),
                                       safe_state=[fridge.heater_off]))
    ctx.add_interlock(InstrumentNotAnswering(bias))
    ctx.add_interlock(InstrumentNotAnswering(readout))
    ctx.add_interlock(DiskNearlyFull(ctx.run.path, ctx.option("min_free_gb", 0.2) * 1e9))
    squid = ctx[squid_name] if squid_name else None
    defaults = DEFAULTS if squid is not None else {**DEFAULTS, "squid_feedback_gain_v_per_phi0": None}
    plan = IVPlan.from_options(ctx.options, **defaults)
    report = run_tes_iv(ctx, fridge=fridge, bias_source=bias, readout=readout, plan=plan, squid=squid)
    for fit in report.thermal or []:
        ctx.log.info("channel %d: G = %.4g W/K, Tc = %.5g K, n = %.3g", fit.channel, fit.g_w_per_k, fit.tc_k, fit.n)
    ctx.log.info("TES IV tables and plots: %s", [str(p) for p in report.tables + report.plots])
