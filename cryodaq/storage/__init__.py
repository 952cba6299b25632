"""cryodaq.storage: the Zarr v3 run format (docs/run-format.md).

- :class:`RunWriter` writes a run crash-safely (buffered appends, committed lengths, heartbeat).
- :func:`open_run` reads one; datasets stop at the committed lengths; dead writers show as crashed; a damaged
  run raises :class:`~cryodaq.errors.RunDamagedError` (or, with ``damaged="mask"``, reads around the damage).
- :func:`verify_run` checks every chunk (present, decodable, checksum); :func:`recover_run` rebuilds damaged
  metadata and marks a dead run crashed on disk; :func:`run_info` summarises a run.
- :func:`write_derived` / :class:`DerivedWriter` add ``reprocessed/<label>/`` groups to a finished run.
- :class:`Catalog` indexes the runs of a data directory (``catalog.sqlite``, kept current by writers).
- :func:`export_hdf5` / :func:`import_hdf5`, :func:`import_ljh` (NIST LJH pulse records),
  :func:`import_off` (DASTARD OFF optimal-filter projections, with :func:`read_experiment_state`) and
  :func:`import_touchstone` (VNA sweeps) convert runs from and to other formats; they load h5py /
  scikit-rf on first use only.
"""

from typing import TYPE_CHECKING

from cryodaq._lazy import lazy_exports

if TYPE_CHECKING:  # the public names (explicit re-exports); lazy_exports imports each on first use
    from cryodaq.storage.catalog import Catalog as Catalog, CatalogEntry as CatalogEntry
    from cryodaq.storage.derived import DerivedWriter as DerivedWriter, write_derived as write_derived
    from cryodaq.storage.format import (
        FORMAT_VERSION as FORMAT_VERSION,
        RunKind as RunKind,
        RunStatus as RunStatus,
    )
    from cryodaq.storage.hdf5 import export_hdf5 as export_hdf5, import_hdf5 as import_hdf5
    from cryodaq.storage.info import RunInfo as RunInfo, run_info as run_info
    from cryodaq.storage.experiment_state import (
        ExperimentStates as ExperimentStates,
        read_experiment_state as read_experiment_state,
    )
    from cryodaq.storage.integrity import Damage as Damage
    from cryodaq.storage.ljh import import_ljh as import_ljh, read_ljh as read_ljh
    from cryodaq.storage.off import import_off as import_off, read_off as read_off
    from cryodaq.storage.reader import Run as Run, open_run as open_run
    from cryodaq.storage.recover import recover_run as recover_run
    from cryodaq.storage.touchstone import import_touchstone as import_touchstone
    from cryodaq.storage.verify import VerifyReport as VerifyReport, verify_run as verify_run
    from cryodaq.storage.writer import RunWriter as RunWriter

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
