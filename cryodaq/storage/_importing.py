"""Shared plumbing of the importers: build a run in a hidden sibling folder, rename it into place on success.

An import that fails half-way (corrupt input, full disk, Ctrl-C) leaves nothing that looks like a
run: the partial folder is hidden (its name starts with '.', so catalog scans skip it) and is
removed on failure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import zarr
from zarr.storage import LocalStore

from cryodaq.errors import CryodaqError, ImportFormatError, one_line
from cryodaq.storage.format import ROOT_ATTR, check_name

RUN_SUFFIX = ".zarr"


def run_folder(out_run_path: str | Path) -> Path:
    """The run folder to create: ``out_run_path`` with ``.zarr`` appended if missing; its stem must be a valid run id."""
    path = Path(out_run_path)
    if path.suffix != RUN_SUFFIX:
        path = path.with_name(path.name + RUN_SUFFIX)
    check_name(path.name[: -len(RUN_SUFFIX)], "run id (from the output folder name)")
    return path


def check_built_run(path: Path, source: str) -> None:
    """Refuse a built run that does not read back: it opens, intact, and every group makes a dataset (so an
    input whose own metadata contradicts its data never becomes a run that fails later)."""
    from cryodaq.storage.reader import open_run

    try:
        run = open_run(path)
        for group in run.groups:
            run.dataset(group)
    except (CryodaqError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ImportFormatError(f"{source}: the run it describes does not read back ({type(exc).__name__}: "
                                f"{one_line(exc, 300)})") from None


@contextmanager
def staged_run(out_run_path: str | Path, *, source: str = "input") -> Iterator[tuple[Path, str]]:
    """Yield ``(staging_dir, run_id)``; the caller writes ``staging_dir/<run_id>.zarr``, which is checked
    (:func:`check_built_run`; ``source`` names the input in its error) and renamed to the final run folder
    when the block ends without an exception. The staging folder is always removed."""
    final = run_folder(out_run_path)
    if final.exists():
        raise FileExistsError(f"{final} already exists; choose another output run path")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield staging, final.name[: -len(RUN_SUFFIX)]
        built = staging / final.name
        if not (built / "zarr.json").is_file():
            raise RuntimeError(f"import into {final}: no run was built in {staging}")
        check_built_run(built, source)
        if final.exists():
            raise FileExistsError(f"{final} appeared while importing; the import is discarded")
        os.rename(built, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def update_run_meta(run_path: str | Path, **fields: Any) -> None:
    """Set fields of a finished run's root ``cryodaq`` attrs (consolidated metadata is kept as it is).

    Importers use it before the run is renamed into place, e.g. to set ``started``/``ended`` to the
    time span of the imported data rather than the time of the import.
    """
    root = zarr.open_group(LocalStore(run_path), mode="r+", use_consolidated=True)
    meta = dict(root.attrs[ROOT_ATTR])
    meta.update(fields)
    root.attrs[ROOT_ATTR] = meta
