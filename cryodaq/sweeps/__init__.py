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

from cryodaq.storage.sweep_store import SweepMismatchError, SweepResumeError, SweepRun
from cryodaq.sweeps.api import sweep
from cryodaq.sweeps.axes import ArraySweep, Axis, LinSweep, LogSweep, TogetherSweep, zip_axes
from cryodaq.sweeps.control import Decision, SweepAborted, SweepControl, SweepStopped
from cryodaq.sweeps.engine import InterlockTimeout, Point, SweepEngine, SweepResult, SweepState
from cryodaq.sweeps.interlocks import Condition, DiskNearlyFull, InstrumentNotAnswering, Interlock, TemperatureAbove
from cryodaq.sweeps.script import ScriptError, SweepContext, SweepOutcome, run_script

__all__ = [
    "ArraySweep", "Axis", "Condition", "Decision", "DiskNearlyFull", "InstrumentNotAnswering", "Interlock",
    "InterlockTimeout", "LinSweep", "LogSweep", "Point", "ScriptError", "SweepAborted", "SweepContext", "SweepControl",
    "SweepEngine", "SweepMismatchError", "SweepOutcome", "SweepResult", "SweepResumeError", "SweepRun", "SweepState",
    "SweepStopped", "TemperatureAbove", "TogetherSweep", "run_script", "sweep", "zip_axes",
]
