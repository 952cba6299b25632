"""``cryodaq recover``: mark runs whose writer died as crashed, so they stop looking live."""

from __future__ import annotations

from pathlib import Path

from cryodaq.storage.catalog import update_catalog
from cryodaq.storage.format import RunStatus
from cryodaq.storage.info import RunInfo, summarize
from cryodaq.storage.reader import open_run


def recover_run(path: str | Path) -> RunInfo:
    """Mark a dead 'running' run as 'crashed' on disk and return its summary.

    Data is left as it is: readers already stop at the committed lengths, so nothing is
    trimmed. The only files removed are the ``*.partial`` temporaries zarr's LocalStore
    leaves when a write is killed before its rename (never part of the run's data).
    A run whose writer is still alive is left untouched. The catalog of the run's folder is updated.
    """
    before = open_run(path)
    was_running = before.stored_status is RunStatus.RUNNING
    run = open_run(path, mark_crashed=True)
    notes: list[str] = []
    if was_running and run.stored_status is RunStatus.CRASHED:
        notes.append("marked crashed: the writer process is gone")
        leftovers = [p for p in Path(run.path).rglob("*.partial") if p.is_file()]
        for p in leftovers:
            p.unlink()
        if leftovers:
            notes.append(f"removed {len(leftovers)} temporary *.partial file(s) of interrupted writes")
        update_catalog(run.path)  # best effort: the catalog of the run's folder now says crashed
    elif was_running:
        notes.append("left as is: the writer is still alive")
    info = summarize(run)
    info.notes += notes
    return info
