"""cryodaq.sweeps: resumable, interlocked sweeps over QCoDeS parameters (docs/sweeps.md).

- :func:`sweep` — ``dond``-like: axes (qcodes ``LinSweep``/``LogSweep``/``ArraySweep``/
  ``TogetherSweep`` or :class:`Axis`) nest outer first; qcodes parameters and callables
  ``f(point) -> dict`` are measured at each point (scalars or arrays); into ``sweeps/<name>`` of a
  :class:`~cryodaq.storage.sweep_store.SweepRun`, or in memory.
- :class:`Axis`, :func:`zip_axes` — axes with any setter (or none), log/linear/list values.
- Interlocks — :class:`TemperatureAbove`, :class:`InstrumentNotAnswering`, :class:`DiskNearlyFull`,
  :class:`Condition`: pause the sweep, put hardware in a safe state, resume and redo the point.
- :class:`SweepControl` — pause / resume / stop / abort, Ctrl-C handling.
- Scripts — ``cryodaq sweep SCRIPT.py --station FILE [--resume RUN]``: :func:`run_script`,
  :class:`SweepContext` (what ``main(ctx)`` gets).
- Procedures — :mod:`cryodaq.sweeps.procedures` (resonator characterisation, ...).
"""

from typing import TYPE_CHECKING

from cryodaq._lazy import lazy_exports

if TYPE_CHECKING:  # the public names (explicit re-exports); lazy_exports imports each on first use
    from cryodaq.storage.sweep_store import (
        SweepMismatchError as SweepMismatchError,
        SweepResumeError as SweepResumeError,
        SweepRun as SweepRun,
    )
    from cryodaq.sweeps.api import sweep as sweep
    from cryodaq.sweeps.axes import (
        ArraySweep as ArraySweep,
        Axis as Axis,
        LinSweep as LinSweep,
        LogSweep as LogSweep,
        TogetherSweep as TogetherSweep,
        zip_axes as zip_axes,
    )
    from cryodaq.sweeps.control import (
        Decision as Decision,
        SweepAborted as SweepAborted,
        SweepControl as SweepControl,
        SweepStopped as SweepStopped,
    )
    from cryodaq.sweeps.engine import (
        InterlockTimeout as InterlockTimeout,
        Point as Point,
        SweepEngine as SweepEngine,
        SweepResult as SweepResult,
        SweepState as SweepState,
    )
    from cryodaq.sweeps.interlocks import (
        Condition as Condition,
        DiskNearlyFull as DiskNearlyFull,
        InstrumentNotAnswering as InstrumentNotAnswering,
        Interlock as Interlock,
        TemperatureAbove as TemperatureAbove,
    )
    from cryodaq.sweeps.script import (
        ScriptError as ScriptError,
        SweepContext as SweepContext,
        SweepOutcome as SweepOutcome,
        run_script as run_script,
    )

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
