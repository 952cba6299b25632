"""Save snapshot: the window and each dock as PNG, and the data behind each plot as a small Zarr group.

Written to ``<dir>/snapshot-<UTC time>/``: ``window.png``, ``<Dock>.png`` for each
dock, and ``data.zarr`` with one group per dock (arrays as plotted, attrs with
units and the source), readable with ``zarr.open_group`` or ``xarray`` — for lab
notebooks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from pyqtgraph.Qt import QtWidgets

from cryodaq.gui.docks.base import Dock
from cryodaq.provenance import jsonable


def save_snapshot(window: QtWidgets.QWidget, docks: Iterable[Dock], directory: str | Path,
                  *, info: dict[str, Any] | None = None) -> Path:
    """Write a snapshot folder under ``directory``; returns its path."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    folder = Path(directory) / f"snapshot-{stamp}"
    folder.mkdir(parents=True)
    if not window.grab().save(str(folder / "window.png")):
        raise OSError(f"could not write {folder / 'window.png'}")
    root = zarr.open_group(str(folder / "data.zarr"), mode="w")
    root.attrs.update({"created": stamp, "source": jsonable(info or {})})
    for dock in docks:
        name = dock.objectName()
        if not dock.widget().grab().save(str(folder / f"{name}.png")):
            raise OSError(f"could not write {folder / f'{name}.png'}")
        grp = root.create_group(name, attributes=jsonable(dock.snapshot_attrs()))
        for key, arr in dock.snapshot_data().items():
            arr = np.asarray(arr)
            grp.create_array(key.replace("/", "_"), data=arr)
    return folder
