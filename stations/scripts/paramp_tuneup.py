"""Paramp tune-up, then its noise temperature across the gain band.

    cryodaq sweep stations/scripts/paramp_tuneup.py --station demo_paramp

1. Gain at ``target_hz`` over flux current × pump frequency × pump power (sweep
   ``paramp_gain_map``); the operating point is the highest gain not above ``max_gain_db``
   (near the parametric threshold the gain is unstable), applied with the pump on.
2. Y-factor noise temperature at ``target_hz`` + ``noise_offsets_hz``: sweep ``paramp_yfactor``
   over load (hot, cold) × pump (off, on) × frequency of noise-power and S21 readings, analyzed
   into ``paramp_noise`` (added noise, receiver noise pump off/on, gain per frequency). Pump and
   load are put back afterwards.

Every field of ``ParampTunePlan`` / ``NoisePlan`` (cryodaq.sweeps.procedures) is a ``-p`` option,
e.g. ``-p pump_powers_dbm=[-22,-21,-20.5] -p max_gain_db=22``; ``paramp`` names the instrument,
``watch`` the instruments whose silence pauses the sweeps (default vna, pump, flux, analyzer,
load_switch). Both sweeps resume (``--resume RUN``) without measuring a committed point again.
Results in ``<run>.results/``: gain map and operating point (CSV, PNG), raw Y-factor readings
(CSV), noise table and plot.
"""

from __future__ import annotations

from cryodaq.sweeps import InstrumentNotAnswering
from cryodaq.sweeps.procedures import NoisePlan, ParampTunePlan, run_noise_temperature, run_paramp_tuneup

FLUX_A = 3.2954e-4  # the demo JPA at 5.0004 GHz (f_max 7 GHz, one flux quantum per mA)
PUMP_HZ = 10.0008e9  # 3-wave mixing: twice the signal frequency

TUNE = {
    "target_hz": 5.0004e9,
    "flux_currents_a": [FLUX_A - 3e-6, FLUX_A, FLUX_A + 3e-6],
    "pump_frequencies_hz": [PUMP_HZ - 20e6, PUMP_HZ, PUMP_HZ + 20e6],
    "pump_powers_dbm": [-23.0, -22.0, -21.0, -20.5, -20.0],
    "max_gain_db": 25.0,
}
NOISE = {"span_hz": 1e6, "points": 201, "rbw_hz": 10e3, "sweep_time_s": 1.0}


def main(ctx) -> None:
    paramp = ctx[ctx.option("paramp", "paramp")]
    for name in ctx.option("watch", ["vna", "pump", "flux", "analyzer", "load_switch"]):
        ctx.add_interlock(InstrumentNotAnswering(ctx[name]))
    tune = ParampTunePlan.from_options(ctx.options, **TUNE)
    report = run_paramp_tuneup(ctx, paramp=paramp, plan=tune)
    ctx.log.info("paramp operating point: %s", report.operating_point)
    offsets = ctx.option("noise_offsets_hz", [-4e6, -2e6, 0.0, 2e6, 4e6])
    noise = NoisePlan.from_options(ctx.options, frequencies_hz=[tune.target_hz + df for df in offsets], **NOISE)
    run_noise_temperature(ctx, paramp=paramp, plan=noise)
