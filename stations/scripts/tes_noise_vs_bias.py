"""TES current-noise PSD versus bias, per pixel.

    cryodaq sweep stations/scripts/tes_noise_vs_bias.py --station stations/demo_tes_sweep.yaml

At each bias current (set through the bias source's current parameter; station safety limits
apply) ``capture_s`` of the readout stream is cut into records of ``nperseg`` samples; records
holding a particle pulse are left out and the periodograms of the rest averaged (A²/Hz). With
``-p bath_temperature_k=0.05`` the fridge is first brought to that temperature.

Every field of :class:`cryodaq.sweeps.procedures.NoiseBiasPlan` is a ``-p`` option, e.g.
``-p bias_currents_a=[3e-4,3.5e-4,4e-4] -p capture_s=5 -p nperseg=8192``. Instruments: ``bias``,
``readout``, ``fridge`` (used when the station has one; ``-p fridge=`` for none), so it also runs
on ``stations/demo_tes.yaml``. On the demo station the defaults take about
15 s. Results in ``<run>.results/``: tes_noise_vs_bias.csv, tes_noise_psd.csv, tes_noise_psd.png,
tes_noise_white_vs_bias.png.
"""

from __future__ import annotations

from cryodaq.sweeps import InstrumentNotAnswering
from cryodaq.sweeps.procedures import NoiseBiasPlan, run_noise_vs_bias

DEFAULTS = {
    # demo: the transition spans ~0.23-0.63 mA at 12 mK (0.35 mA is the operating point), normal above
    "bias_currents_a": [0.30e-3, 0.35e-3, 0.40e-3, 0.50e-3, 0.80e-3],
    "capture_s": 1.0,
    "nperseg": 2048,
}


def main(ctx) -> None:
    bias = ctx[ctx.option("bias", "tes_bias")]
    readout = ctx[ctx.option("readout", "tes_readout")]
    fridge_name = ctx.option("fridge", "fridge" if "fridge" in ctx.station.components else None)
    fridge = ctx[fridge_name] if fridge_name else None
    ctx.add_interlock(InstrumentNotAnswering(bias))
    ctx.add_interlock(InstrumentNotAnswering(readout))
    bath = ctx.option("bath_temperature_k")
    if bath is not None:
        if fridge is None:
            raise ValueError("-p bath_temperature_k needs a fridge (-p fridge=NAME)")
        fridge.setpoint(float(bath))
        fridge.wait_until_stable(tolerance_k=ctx.option("tolerance_k", 3e-4), hold_time_s=ctx.option("hold_time_s", 1.0),
                                 timeout_s=ctx.option("timeout_s", 120.0), poll_s=ctx.option("poll_s", 0.05))
    plan = NoiseBiasPlan.from_options(ctx.options, **DEFAULTS)
    report = run_noise_vs_bias(ctx, bias_source=bias, readout=readout, plan=plan, fridge=fridge)
    ctx.log.info("TES noise tables and plots: %s", [str(p) for p in report.tables + report.plots])
