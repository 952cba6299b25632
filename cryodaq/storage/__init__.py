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

from cryodaq._lazy import lazy_getattr

_EXPORTS = {
    "Catalog": "cryodaq.storage.catalog",
    "CatalogEntry": "cryodaq.storage.catalog",
    "DerivedWriter": "cryodaq.storage.derived",
    "FORMAT_VERSION": "cryodaq.storage.format",
    "Run": "cryodaq.storage.reader",
    "RunInfo": "cryodaq.storage.info",
    "RunKind": "cryodaq.storage.format",
    "RunStatus": "cryodaq.storage.format",
    "RunWriter": "cryodaq.storage.writer",
    "export_hdf5": "cryodaq.storage.hdf5",
    "import_hdf5": "cryodaq.storage.hdf5",
    "import_ljh": "cryodaq.storage.ljh",
    "import_touchstone": "cryodaq.storage.touchstone",
    "open_run": "cryodaq.storage.reader",
    "read_ljh": "cryodaq.storage.ljh",
    "recover_run": "cryodaq.storage.recover",
    "run_info": "cryodaq.storage.info",
    "write_derived": "cryodaq.storage.derived",
}

__getattr__ = lazy_getattr(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
