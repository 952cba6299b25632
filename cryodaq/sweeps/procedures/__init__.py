"""Standard characterisation procedures, one module each, usable from a sweep script's ``main(ctx)``
and as ready scripts under ``stations/scripts/``.

Each procedure is a function ``run_<procedure>(ctx, ...)`` that takes a
:class:`~cryodaq.sweeps.script.SweepContext`, measures into named ``sweeps/<name>`` groups (so a
resumed run continues where it stopped) and writes tables (CSV) and PNG plots to
``ctx.results_dir``; an ``analyze_<procedure>_run(run_path)`` function redoes the analysis from a
stored run.

- :mod:`~cryodaq.sweeps.procedures.resonators` — resonator scan → find → fit versus temperature and
  readout power (Qi, Qc, fr).
- :mod:`~cryodaq.sweeps.procedures.paramp` — paramp tune-up (gain map over flux × pump frequency ×
  pump power, operating point) and noise temperature versus frequency (Y-factor sweep over load ×
  pump × frequency).
- :mod:`~cryodaq.sweeps.procedures.repeat` — distributions, not single numbers: any figures (the paramp's
  gain, bandwidth, P1dB, T_n with its budget; each resonator's fr, Qi) every N minutes, their time
  traces, histograms, statistics, Allan deviation and drift against time and the fridge temperature.
- :mod:`~cryodaq.sweeps.procedures.twpa` — travelling-wave paramps: gain map over pump frequency × pump
  power, 1 dB compression over the band, noise rise with the pump on, and the overnight tune-up that
  finds and then holds a target gain against pump drift.
- :mod:`~cryodaq.sweeps.procedures.tes` — TES IV curves versus bath temperature (R_n, R_p, P_sat(T),
  thermal conductance G) and noise PSD versus bias, from the streaming readout board; the
  computations on measured data in :mod:`~cryodaq.sweeps.procedures.tes_analysis`, tables and
  plots in :mod:`~cryodaq.sweeps.procedures.tes_report` (which imports the analysis, not the reverse).
"""

from typing import TYPE_CHECKING

from cryodaq._lazy import lazy_exports

if TYPE_CHECKING:  # the public names (explicit re-exports); lazy_exports imports each on first use
    from cryodaq.sweeps.procedures.paramp import (
        NoisePlan as NoisePlan,
        ParampFiguresPlan as ParampFiguresPlan,
        ParampReport as ParampReport,
        ParampTunePlan as ParampTunePlan,
        analyze_paramp_run as analyze_paramp_run,
        measure_yfactor_point as measure_yfactor_point,
        noise_budget_table as noise_budget_table,
        paramp_figures as paramp_figures,
        pick_operating_point as pick_operating_point,
        run_noise_temperature as run_noise_temperature,
        run_paramp_tuneup as run_paramp_tuneup,
        yfactor_analysis as yfactor_analysis,
    )
    from cryodaq.sweeps.procedures.repeat import (
        RepeatPlan as RepeatPlan,
        RepeatReport as RepeatReport,
        analyze_repeat_run as analyze_repeat_run,
        repeat_statistics as repeat_statistics,
        run_repeat as run_repeat,
    )
    from cryodaq.sweeps.procedures.resonators import (
        ResonatorPlan as ResonatorPlan,
        ResonatorReport as ResonatorReport,
        analyze_resonator_run as analyze_resonator_run,
        fit_scan as fit_scan,
        locate_resonators as locate_resonators,
        resonator_figures as resonator_figures,
        run_resonator_characterisation as run_resonator_characterisation,
    )
    from cryodaq.sweeps.procedures.tes import (
        IVPlan as IVPlan,
        NoiseBiasPlan as NoiseBiasPlan,
        run_noise_vs_bias as run_noise_vs_bias,
        run_tes_iv as run_tes_iv,
    )
    from cryodaq.sweeps.procedures.twpa import (
        Band as Band,
        TWPACompressionPlan as TWPACompressionPlan,
        TWPAHoldPlan as TWPAHoldPlan,
        TWPAMapPlan as TWPAMapPlan,
        TWPANoisePlan as TWPANoisePlan,
        analyze_twpa_run as analyze_twpa_run,
        noise_rise_analysis as noise_rise_analysis,
        run_twpa_compression as run_twpa_compression,
        run_twpa_gain_map as run_twpa_gain_map,
        run_twpa_hold as run_twpa_hold,
        run_twpa_noise_rise as run_twpa_noise_rise,
    )
    from cryodaq.sweeps.procedures.tes_analysis import (
        ThermalFit as ThermalFit,
        fit_psat_vs_temperature as fit_psat_vs_temperature,
    )
    from cryodaq.sweeps.procedures.tes_report import (
        TESReport as TESReport,
        analyze_tes_run as analyze_tes_run,
    )

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
