"""cryodaq.storage: the Zarr v3 run format (docs/run-format.md).

- :class:`RunWriter` writes a run crash-safely (buffered appends, committed lengths, heartbeat).
- :func:`open_run` reads one; datasets stop at the committed lengths; dead writers show as crashed.
- :func:`recover_run` marks a dead run crashed on disk; :func:`run_info` summarises a run.
- :func:`write_derived` / :class:`DerivedWriter` add ``reprocessed/<label>/`` groups to a finished run.
- :class:`Catalog` indexes the runs of a data directory (``catalog.sqlite``, kept current by writers).
- :func:`export_hdf5` / :func:`import_hdf5`, :func:`import_ljh` (NIST LJH pulse records) and
  :func:`import_touchstone` (VNA sweeps) convert runs from and to other formats; they load h5py /
  scikit-rf on first use only.
"""

from importlib import import_module
from typing import Any

from cryodaq.storage.catalog import Catalog, CatalogEntry
from cryodaq.storage.derived import DerivedWriter, write_derived
from cryodaq.storage.format import FORMAT_VERSION, RunKind, RunStatus
from cryodaq.storage.info import RunInfo, run_info
from cryodaq.storage.reader import Run, open_run
from cryodaq.storage.recover import recover_run
from cryodaq.storage.writer import RunWriter

_LAZY = {
    "export_hdf5": "cryodaq.storage.hdf5",
    "import_hdf5": "cryodaq.storage.hdf5",
    "import_ljh": "cryodaq.storage.ljh",
    "read_ljh": "cryodaq.storage.ljh",
    "import_touchstone": "cryodaq.storage.touchstone",
}


def __getattr__(name: str) -> Any:
    """Importers and exporters, imported when first used (h5py and scikit-rf take a while to load)."""
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FORMAT_VERSION", "Catalog", "CatalogEntry", "DerivedWriter", "Run", "RunInfo", "RunKind", "RunStatus", "RunWriter",
    "export_hdf5", "import_hdf5", "import_ljh", "import_touchstone", "open_run", "read_ljh", "recover_run", "run_info",
    "write_derived",
]
