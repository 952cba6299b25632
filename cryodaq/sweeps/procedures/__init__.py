"""Standard characterisation procedures, one module each, usable from a sweep script's ``main(ctx)``
and as ready scripts under ``stations/scripts/``.

Each procedure is a function ``run_<procedure>(ctx, ...)`` that takes a
:class:`~cryodaq.sweeps.script.SweepContext`, measures into named ``sweeps/<name>`` groups (so a
resumed run continues where it stopped) and writes tables (CSV) and PNG plots to
``ctx.results_dir``; an ``analyse_<procedure>_run(run_path)`` function redoes the analysis from a
stored run.

- :mod:`~cryodaq.sweeps.procedures.resonators` — resonator scan → find → fit versus temperature and
  readout power (Qi, Qc, fr).
- :mod:`~cryodaq.sweeps.procedures.paramp` — paramp tune-up (gain map over flux × pump frequency ×
  pump power, operating point) and noise temperature versus frequency (Y factor).
- :mod:`~cryodaq.sweeps.procedures.tes` — TES IV curves versus bath temperature (R_n, R_p, P_sat(T),
  thermal conductance G) and noise PSD versus bias, from the streaming readout board.
"""

from cryodaq.sweeps.procedures.paramp import (
    NoisePlan,
    ParampReport,
    ParampTunePlan,
    analyse_paramp_run,
    pick_operating_point,
    run_noise_temperature,
    run_paramp_tuneup,
)
from cryodaq.sweeps.procedures.resonators import (
    ResonatorPlan,
    ResonatorReport,
    analyse_resonator_run,
    locate_resonators,
    run_resonator_characterisation,
)
from cryodaq.sweeps.procedures.tes import (
    IVPlan,
    NoiseBiasPlan,
    TESReport,
    ThermalFit,
    analyse_tes_run,
    fit_psat_vs_temperature,
    run_noise_vs_bias,
    run_tes_iv,
)

__all__ = [
    "IVPlan", "NoiseBiasPlan", "NoisePlan", "ParampReport", "ParampTunePlan", "ResonatorPlan", "ResonatorReport",
    "TESReport", "ThermalFit", "analyse_paramp_run", "analyse_resonator_run", "analyse_tes_run",
    "fit_psat_vs_temperature", "locate_resonators", "pick_operating_point", "run_noise_temperature",
    "run_noise_vs_bias", "run_paramp_tuneup", "run_resonator_characterisation", "run_tes_iv",
]
