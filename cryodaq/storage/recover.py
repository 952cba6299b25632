"""``cryodaq recover``: make a run readable again and say what state it is in.

- metadata: a damaged root or group ``zarr.json`` is rebuilt from what survives
  (:mod:`cryodaq.storage.rebuild`), and the run attrs record it under ``recovered``;
- a run whose writer died is marked ``crashed``, so it stops looking live;
- what cannot be repaired (chunks lost below a committed length) is reported, never filled in;
- a complete, intact run is left exactly as it is, and said to be so.
"""

from __future__ import annotations

from pathlib import Path

from cryodaq.errors import RunFormatError
from cryodaq.storage._nodes import looks_like_run
from cryodaq.storage.catalog import update_catalog
from cryodaq.storage.format import RunStatus
from cryodaq.storage.info import RunInfo, summarize
from cryodaq.storage.reader import open_run
from cryodaq.storage.rebuild import rebuild_metadata


def _check_folder(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run folder")
    if not path.is_dir():
        raise RunFormatError(f"{path}: is a file, not a run; expected a <run_id>.zarr folder")
    if not looks_like_run(path):
        raise RunFormatError(f"{path}: not a run (no zarr.json); expected a <run_id>.zarr folder")


def recover_run(path: str | Path) -> RunInfo:
    """Recover the run at ``path`` (see the module docstring) and return its summary.

    Data are left as they are: readers already stop at the committed lengths, so nothing is
    trimmed. The only files removed are the ``*.partial`` temporaries zarr's LocalStore
    leaves when a write is killed before its rename (never part of the run's data); each
    damaged ``zarr.json`` that is rebuilt is kept beside it as ``zarr.json.damaged``. A run
    whose writer is still alive is left untouched. The catalog of the run's folder is updated.
    """
    path = Path(path)
    _check_folder(path)
    rebuilt = rebuild_metadata(path)
    notes = [r.describe() for r in rebuilt]
    before = open_run(path, damaged="mask")
    was_running = before.stored_status is RunStatus.RUNNING
    run = open_run(path, mark_crashed=True, damaged="mask")
    changed = bool(rebuilt)
    if was_running and run.stored_status is RunStatus.CRASHED:
        changed = True
        notes.append("marked crashed: the writer process is gone")
        leftovers = [p for p in Path(run.path).rglob("*.partial") if p.is_file()]
        for p in leftovers:
            p.unlink()
        if leftovers:
            notes.append(f"removed {len(leftovers)} temporary *.partial file(s) of interrupted writes")
    elif was_running:
        notes.append("left as is: the writer is still alive")
    info = summarize(run)
    if changed:
        update_catalog(run.path)  # best effort: the catalog of the run's folder now says what the run says
    if info.damage:
        notes.append(f"{len(info.damage)} finding(s) remain (listed above): lost chunks cannot be restored; "
                     "open_run(path, damaged='mask') reads the rest, `cryodaq verify` checks every chunk")
    elif not changed and not was_running:
        notes.append(f"{info.status.value} and intact: all metadata readable and every chunk below the committed "
                     "lengths present; nothing to recover, nothing changed")
    info.notes += notes
    return info
