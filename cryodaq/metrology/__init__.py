"""cryodaq.metrology: characterisation a metrology institute would sign (docs/metrology.md).

- :mod:`~cryodaq.metrology.gum` — GUM uncertainty budgets: a measurement model + its inputs →
  sensitivity coefficients, contributions, shares, u_c, ν_eff (Welch–Satterthwaite), U (k = 2).
- :mod:`~cryodaq.metrology.calibrations` — the station file's ``cryodaq.calibrations``: what each
  budget input is worth and on whose authority (reference, date, due date).
- :mod:`~cryodaq.metrology.noise` — the Y-factor model of a paramp's noise temperature, gain and
  SNR improvement (loads or an ENR noise source, line loss and temperature, mismatch, analyzer
  and VNA linearity, the scatter of the readings) and its budget.
- :mod:`~cryodaq.metrology.stability` — distributions over time: statistics, Allan deviation,
  drift against time and against the fridge temperature.
- :mod:`cryodaq.report` — ``cryodaq report RUN``: a self-contained characterisation
  report (JSON + CSV + PNG) in a versioned schema (docs/report-format.md).
"""

from typing import TYPE_CHECKING

from cryodaq._lazy import lazy_exports

if TYPE_CHECKING:  # the public names (explicit re-exports); lazy_exports imports each on first use
    from cryodaq.metrology.calibrations import (
        KNOWN_ROLES as KNOWN_ROLES,
        Calibration as Calibration,
        parse_calibrations as parse_calibrations,
    )
    from cryodaq.metrology.gum import (
        Budget as Budget,
        BudgetRow as BudgetRow,
        Input as Input,
        effective_count as effective_count,
        evaluate as evaluate,
        welch_satterthwaite as welch_satterthwaite,
    )
    from cryodaq.metrology.noise import (
        NoiseReading as NoiseReading,
        S21Reading as S21Reading,
        YFactorPoint as YFactorPoint,
        cw_temperature_k as cw_temperature_k,
        yfactor_budget as yfactor_budget,
        yfactor_model as yfactor_model,
    )

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
