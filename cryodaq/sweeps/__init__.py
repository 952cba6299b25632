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

from cryodaq._lazy import lazy_getattr

_EXPORTS = {
    "ArraySweep": "cryodaq.sweeps.axes",
    "Axis": "cryodaq.sweeps.axes",
    "Condition": "cryodaq.sweeps.interlocks",
    "Decision": "cryodaq.sweeps.control",
    "DiskNearlyFull": "cryodaq.sweeps.interlocks",
    "InstrumentNotAnswering": "cryodaq.sweeps.interlocks",
    "Interlock": "cryodaq.sweeps.interlocks",
    "InterlockTimeout": "cryodaq.sweeps.engine",
    "LinSweep": "cryodaq.sweeps.axes",
    "LogSweep": "cryodaq.sweeps.axes",
    "Point": "cryodaq.sweeps.engine",
    "ScriptError": "cryodaq.sweeps.script",
    "SweepAborted": "cryodaq.sweeps.control",
    "SweepContext": "cryodaq.sweeps.script",
    "SweepControl": "cryodaq.sweeps.control",
    "SweepEngine": "cryodaq.sweeps.engine",
    "SweepMismatchError": "cryodaq.storage.sweep_store",
    "SweepOutcome": "cryodaq.sweeps.script",
    "SweepResult": "cryodaq.sweeps.engine",
    "SweepResumeError": "cryodaq.storage.sweep_store",
    "SweepRun": "cryodaq.storage.sweep_store",
    "SweepState": "cryodaq.sweeps.engine",
    "SweepStopped": "cryodaq.sweeps.control",
    "TemperatureAbove": "cryodaq.sweeps.interlocks",
    "TogetherSweep": "cryodaq.sweeps.axes",
    "run_script": "cryodaq.sweeps.script",
    "sweep": "cryodaq.sweeps.api",
    "zip_axes": "cryodaq.sweeps.axes",
}

__getattr__ = lazy_getattr(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
