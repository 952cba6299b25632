"""Characterise a travelling-wave paramp, then hold its gain overnight.

    cryodaq sweep stations/scripts/twpa_characterisation.py --station demo_twpa
    cryodaq report runs/<run>.zarr --output twpa-report/

1. The pump-off reference of the band (sweep ``twpa_reference``) and the gain map over pump
   frequency × pump power (``twpa_gain_map``: gain across the band, its mean, ripple).
2. 1 dB compression at ``compression_frequencies_hz`` (``twpa_compression``).
3. Noise rise with the pump on at ``noise_frequencies_hz`` (``twpa_noise_rise``): noise rise, gain
   and SNR improvement with their uncertainty budgets.
4. With ``-p hold=true`` (the default), the overnight tune-up: a pump-power scan finds the power for
   ``target_gain_db`` band-mean gain (``twpa_tune``), then every ``check_interval_s`` (default
   300 s) for ``checks`` times (default 96: 8 h) the band is checked and the pump re-tuned when the
   gain is more than ``tolerance_db`` off (``twpa_hold``).

Options: ``band_start_hz``, ``band_stop_hz``, ``band_points``, ``map_pump_frequencies_hz``,
``map_pump_powers_dbm``, the fields of ``TWPACompressionPlan``/``TWPANoisePlan`` (their frequencies as
``compression_frequencies_hz``/``noise_frequencies_hz``, the compression's points as
``compression_points``) and of ``TWPAHoldPlan``; ``twpa`` names the
instrument, ``watch`` the instruments whose silence pauses the sweeps. Everything resumes
(``--resume RUN``): the hold continues from its last pump power, on its schedule.
"""

from __future__ import annotations

from cryodaq.sweeps import InstrumentNotAnswering
from cryodaq.sweeps.procedures.twpa import (
    Band,
    TWPACompressionPlan,
    TWPAHoldPlan,
    TWPAMapPlan,
    TWPANoisePlan,
    run_twpa_compression,
    run_twpa_gain_map,
    run_twpa_hold,
    run_twpa_noise_rise,
)

BAND = {"band_start_hz": 5.1e9, "band_stop_hz": 5.9e9, "band_points": 17}
HOLD = {"target_gain_db": 20.0, "pump_frequency_hz": 6.0e9, "pump_powers_dbm": [-11.0, -10.5, -10.0, -9.5, -9.0],
        "tolerance_db": 0.15, "check_interval_s": 300.0, "checks": 96, "pump_power_range_dbm": [-20.0, -6.0]}


def main(ctx) -> None:
    twpa = ctx[ctx.option("twpa", "twpa")]
    for name in ctx.option("watch", ["vna", "pump", "analyzer"]):
        ctx.add_interlock(InstrumentNotAnswering(ctx[name]))
    b = {k: ctx.option(k, v) for k, v in BAND.items()}
    band = Band(float(b["band_start_hz"]), float(b["band_stop_hz"]), int(b["band_points"]))
    run_twpa_gain_map(ctx, twpa=twpa, plan=TWPAMapPlan(
        band, ctx.option("map_pump_frequencies_hz", [5.9e9, 6.0e9, 6.1e9]),
        ctx.option("map_pump_powers_dbm", [-11.0, -10.5, -10.0, -9.5])))
    twpa.set_pump(frequency_hz=6.0e9, power_dbm=-10.0, on=True)
    run_twpa_compression(ctx, twpa=twpa, plan=TWPACompressionPlan(
        ctx.option("compression_frequencies_hz", [5.2e9, 5.5e9, 5.8e9]), points=ctx.option("compression_points", 23),
        **{k: ctx.option(k) for k in ("power_start_dbm", "power_stop_dbm") if ctx.option(k) is not None}))
    run_twpa_noise_rise(ctx, twpa=twpa, plan=TWPANoisePlan(
        ctx.option("noise_frequencies_hz", [5.2e9, 5.5e9, 5.8e9]),
        **{k: ctx.option(k) for k in ("span_hz", "points", "rbw_hz", "sweep_time_s", "s21_points")
           if ctx.option(k) is not None}))
    if ctx.option("hold", True):
        run_twpa_hold(ctx, twpa=twpa, plan=TWPAHoldPlan.from_options(ctx.options, **BAND, **HOLD))
    if ctx.option("analyze", True):
        from cryodaq.sweeps.procedures.twpa import analyze_twpa_run

        analyze_twpa_run(ctx.run.path, ctx.results_dir)
