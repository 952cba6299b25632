"""Sweep scripts: ``cryodaq sweep SCRIPT.py --station FILE [--resume RUN]``.

A script is a Python file with ``main(ctx)``; ``ctx`` (:class:`SweepContext`) gives the station,
the run, ``ctx.sweep(...)``, interlocks, options and a folder for plots. :func:`run_script`
loads the script (before touching anything: a syntax error costs nothing), brings the station
up (its simulators too when simulated), creates the run — or reopens it with ``resume`` —,
runs ``main(ctx)`` with Ctrl-C, SIGTERM and SIGHUP handled (:mod:`cryodaq.sweeps.control`) and closes the run:

=================================  =========  ============  =============================================
how ``main`` ended                 status     interrupted   end_reason
=================================  =========  ============  =============================================
returned                           complete   false         ""
operator stop (Ctrl-C, no tty)     complete   true          "stopped by the operator (Ctrl-C)"
SIGTERM or SIGHUP                  complete   true          "stopped by the operator (SIGTERM)", ...
operator abort (second signal)     aborted    true          "aborted by the operator ..."
an exception                       aborted    false         the traceback
process killed                     running on disk; read as crashed; ``--resume`` continues it
=================================  =========  ============  =============================================

Resume re-runs the script from the top: each ``ctx.sweep(name=...)`` finds its group, checks
the axes are the same, and measures only the points whose ``done`` flag is not set. Options
(``-p key=value``) given at the start are stored in the run and reused on resume.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import xarray as xr
from qcodes.station import Station

from cryodaq.errors import CryodaqError
from cryodaq.station import StationConfig, load_station_config
from cryodaq.station.bringup import station_up
from cryodaq.station.preflight import DEFAULT_MIN_FREE_BYTES, preflight
from cryodaq.storage import open_run
from cryodaq.storage.format import RunStatus, results_dir_for
from cryodaq.storage.sweep_store import SweepRun, read_sweep
from cryodaq.sweeps.api import sweep
from cryodaq.sweeps.control import (
    SweepAborted,
    SweepControl,
    SweepStopped,
    terminal_prompt,
)
from cryodaq.sweeps.engine import SweepObserver, SweepResult
from cryodaq.sweeps.interlocks import InterlockLike

__all__ = ["ScriptError", "SweepContext", "SweepOutcome", "load_script", "resolve_run", "results_dir_for",
           "run_script"]

log = logging.getLogger("cryodaq.sweeps.script")

_MAX_SOURCE = 200_000  # characters of the script kept in the run's attrs


class ScriptError(CryodaqError, ValueError):
    """A sweep script cannot be loaded (missing, a syntax error, no ``main(ctx)``)."""


class SweepContext:
    """What a script's ``main(ctx)`` gets.

    - ``ctx.station`` (qcodes Station), ``ctx[name]`` (an instrument), ``ctx.config`` (StationConfig);
    - ``ctx.run`` (:class:`~cryodaq.storage.sweep_store.SweepRun`), ``ctx.resumed`` (bool);
    - ``ctx.sweep(*axes_and_measurements, name=..., ...)``: :func:`cryodaq.sweeps.sweep` into the run,
      with the context's interlocks, Ctrl-C control and progress display;
    - ``ctx.add_interlock(il)``: checked around every point of every later sweep;
    - ``ctx.option(key, default)``: ``-p key=value`` from the command line (kept for resume);
    - ``ctx.results_dir``: folder for PNG plots and CSV tables, beside the run;
    - ``ctx.dataset(name)``: a stored sweep as xarray; ``ctx.log``: a logger writing to the run's log;
    - ``ctx.simulators``: the simulators of a simulated station (``SimServers`` in-process, whose
      ``.world`` a test may inspect, or the ``SimulatedStation`` child process), else None;
    - ``ctx.clock`` / ``ctx.sleep``: the time base of scheduled procedures (repeats, the TWPA hold):
      ``time.time`` / ``time.sleep``; a test may swap in a simulated clock (with the world's, for
      the simulators) to run a night in seconds.
    """

    def __init__(self, station: Station, run: SweepRun, *, config: StationConfig | None = None,
                 options: Mapping[str, Any] | None = None, control: SweepControl | None = None,
                 observer: SweepObserver | None = None, sweep_defaults: Mapping[str, Any] | None = None,
                 simulators: Any = None) -> None:
        self.station = station
        self.simulators = simulators
        self.run = run
        self.config = config
        self.options = dict(options or {})
        self.control = control
        self.observer = observer
        self.interlocks: list[InterlockLike] = []
        self.sweep_defaults = dict(sweep_defaults or {})
        self.log = logging.getLogger("cryodaq.sweeps.script")
        self.results: dict[str, SweepResult] = {}
        self.clock: Callable[[], float] = time.time
        self.sleep: Callable[[float], Any] = time.sleep

    @property
    def resumed(self) -> bool:
        return self.run.resumed_from is not None

    def __getitem__(self, instrument: str) -> Any:
        try:
            return self.station.components[instrument]
        except KeyError:
            raise KeyError(f"no instrument {instrument!r} on the station; it has {sorted(self.station.components)}") \
                from None

    def option(self, key: str, default: Any = None) -> Any:
        """An option given with ``-p key=value`` (YAML value), else ``default``."""
        return self.options.get(key, default)

    def add_interlock(self, interlock: InterlockLike) -> InterlockLike:
        """Check ``interlock`` around every point of the sweeps that follow; returns it."""
        if not isinstance(interlock, InterlockLike):
            raise TypeError(f"{interlock!r} is not an interlock (needs name, safe_state and check())")
        self.interlocks.append(interlock)
        log.info("interlock added: %s", interlock.name)
        return interlock

    @property
    def results_dir(self) -> Path:
        path = results_dir_for(self.run.path)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def sweep(self, *args: Any, name: str, interlocks: Sequence[InterlockLike] = (), **kwargs: Any) -> SweepResult:
        """:func:`cryodaq.sweeps.sweep` into ``sweeps/<name>`` of the run (skipping points done before a resume)."""
        options = {**self.sweep_defaults, **kwargs}
        result = sweep(*args, name=name, run=self.run, interlocks=[*self.interlocks, *interlocks],
                       control=self.control, observer=self.observer, **options)
        self.results[name] = result
        return result

    def dataset(self, name: str) -> xr.Dataset:
        """``sweeps/<name>`` as stored now (``done`` marks measured points)."""
        return read_sweep(self.run.path, name)


@dataclass
class SweepOutcome:
    """How a script run ended (the run's status, as written)."""

    path: Path
    status: str
    interrupted: bool
    end_reason: str
    resumed: bool
    results_dir: Path

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe summary (``cryodaq sweep --json``)."""
        return {"path": str(self.path), "status": self.status, "interrupted": self.interrupted,
                "end_reason": self.end_reason, "resumed": self.resumed, "results_dir": str(self.results_dir),
                "exit_code": self.exit_code}

    @property
    def exit_code(self) -> int:
        """0 complete, 130 stopped/aborted by the operator, 1 aborted by an error."""
        if self.status == RunStatus.COMPLETE.value and not self.interrupted:
            return 0
        return 130 if self.interrupted else 1


def load_script(path: str | Path) -> ModuleType:
    """Import the script (not as ``__main__``) and check it defines ``main(ctx)``."""
    path = Path(path)
    if not path.is_file():
        raise ScriptError(f"{path}: no such sweep script")
    spec = importlib.util.spec_from_file_location(f"cryodaq_sweep_script_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ScriptError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise ScriptError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from exc
    except Exception as exc:
        raise ScriptError(f"{path}: failed to load: {type(exc).__name__}: {exc}") from exc
    if not callable(getattr(module, "main", None)):
        raise ScriptError(f"{path}: defines no main(ctx); a sweep script's entry point is main(ctx)")
    return module


def resolve_run(run: str | Path, out_dir: str | Path) -> Path:
    """A run to resume: a path to ``<run>.zarr``, or a run id in ``out_dir``."""
    for candidate in (Path(run), Path(out_dir) / str(run), Path(out_dir) / f"{run}.zarr"):
        if (candidate / "zarr.json").is_file():
            return candidate
    raise ScriptError(f"no run {str(run)!r} to resume (looked for it as a path and in {out_dir})")


class _RunLog:
    """The run's ``sweep.log``: INFO and above from every cryodaq logger, for the length of the run."""

    def __init__(self, path: Path) -> None:
        self.handler = logging.FileHandler(path, mode="a", encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.handler.setLevel(logging.INFO)
        self.logger = logging.getLogger("cryodaq")
        self._level = self.logger.level

    def __enter__(self) -> _RunLog:
        self.logger.addHandler(self.handler)
        if self.logger.getEffectiveLevel() > logging.INFO:
            self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self._level)
        self.handler.close()


def _script_info(path: Path) -> dict[str, Any]:
    text = path.read_text(errors="replace")
    return {"path": str(path.resolve()), "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "source": text[:_MAX_SOURCE]}


def run_script(
    script: str | Path,
    station: str | Path | StationConfig,
    out_dir: str | Path = "runs",
    *,
    resume: str | Path | None = None,
    simulate: bool | None = None,
    in_process_simulators: bool = False,
    options: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    tags: Sequence[str] = (),
    control: SweepControl | None = None,
    progress: Any = None,
    sweep_defaults: Mapping[str, Any] | None = None,
    on_ready: Callable[[SweepContext], Any] | None = None,
    min_free_bytes: float = DEFAULT_MIN_FREE_BYTES,
) -> SweepOutcome:
    """Run a sweep script against a station into a new run, or into ``resume`` (see the module docstring).

    ``progress``: a :class:`~cryodaq.sweeps.progress.SweepProgress` (used as context manager
    around the script) or None. ``sweep_defaults`` are keyword arguments for every
    ``ctx.sweep`` (e.g. ``poll_s``). ``on_ready(ctx)`` runs just before ``main(ctx)``. Before the
    station comes up, :func:`~cryodaq.station.preflight.preflight` checks the output folder
    (``min_free_bytes`` free) and the simulators' fixed ports.
    """
    script = Path(script)
    module = load_script(script)
    config = station if isinstance(station, StationConfig) else load_station_config(station)
    out_dir = Path(out_dir)
    run_path = resolve_run(resume, out_dir) if resume is not None else None
    stored_options: dict[str, Any] = {}
    if run_path is not None:
        stored = open_run(run_path).attrs.get("config", {})
        stored_options = dict(stored.get("options") or {})
        old = (stored.get("script") or {}).get("sha256")
        if old and old != _script_info(script)["sha256"]:
            log.warning("resuming %s with a changed script %s (the sweeps' axes must still match)", run_path, script)
    opts = {**stored_options, **dict(options or {})}
    control = control or SweepControl()
    # before any instrument is touched: the run's folder takes data, the simulators' fixed ports are free
    simulated = config.simulation.enabled if simulate is None else bool(simulate)
    for warning in preflight(config, run_path.parent if run_path is not None else out_dir, simulate=simulated,
                             min_free_bytes=min_free_bytes):
        log.warning("%s", warning)
    with station_up(config, simulate=simulate, in_process=in_process_simulators) as live:
        run_config = {"script": _script_info(script), "station_file": str(config.path), "options": opts,
                      "simulated": live.simulated,
                      "calibrations": {n: c.as_dict() for n, c in live.config.calibrations.items()}}
        if run_path is None:
            run = SweepRun.create(out_dir, station_name=config.name,
                                  station_snapshot=live.station.snapshot(update=True), config=run_config,
                                  run_id=run_id, tags=tags)
        else:
            run = SweepRun.resume(run_path)
            run.update_attrs(config={**open_run(run_path).attrs.get("config", {}), "options": opts},
                             last_session={"script": run_config["script"]["path"],
                                           "script_sha256": run_config["script"]["sha256"]})
        run.start_heartbeat()
        with _RunLog(run.log_path):
            log.info("%s run %s: script %s, station %s%s, options %s", "resumed" if run.resumed_from else "new",
                     run.path, script, config.path, " (simulated)" if live.simulated else "", opts)
            ctx = SweepContext(live.station, run, config=live.config, options=opts, control=control,
                               observer=progress, sweep_defaults=sweep_defaults, simulators=live.simulators)
            if progress is not None and control.prompt is terminal_prompt:
                control.prompt = lambda: progress.suspended(terminal_prompt)
            status, interrupted, reason = RunStatus.COMPLETE, False, ""
            try:
                with control.signals(), (progress if progress is not None else nullcontext()):
                    if on_ready is not None:
                        on_ready(ctx)
                    module.main(ctx)
            except SweepStopped as exc:
                interrupted, reason = True, str(exc) or "stopped by the operator"
            except (SweepAborted, KeyboardInterrupt) as exc:
                status, interrupted = RunStatus.ABORTED, True
                reason = str(exc) or "aborted by the operator (Ctrl-C)"
            except Exception:
                status, reason = RunStatus.ABORTED, traceback.format_exc()
                log.error("script %s failed; the run is aborted, everything committed is readable:\n%s", script,
                          reason)
            log.info("run %s ends: %s%s%s", run.path, status.value, " (interrupted)" if interrupted else "",
                     f": {reason.strip().splitlines()[-1]}" if reason else "")
            if not run.closed:
                run.close(status, interrupted=interrupted, end_reason=reason)
    final = open_run(run.path)
    return SweepOutcome(run.path, final.stored_status.value, bool(final.attrs.get("interrupted")),
                        str(final.attrs.get("end_reason", "")), run.resumed_from is not None, results_dir_for(run.path))
