"""cryodaq.reprocess: re-run pulse finding / optimal filtering on stored runs, in parallel with Dask.

``reprocess_run(run, config)`` reads a run's stored timestreams, re-runs the acquisition's own
trigger (:func:`cryodaq.acquisition.pipeline.make_trigger`) with new settings on chunks in
parallel, resolves hold-off across chunk edges so no pulse is lost or counted twice, optionally
runs the optimal filter, and writes ``reprocessed/<label>/`` into the run with the config and
source it came from. The raw data is never modified. See docs/reprocessing.md.
"""

from typing import TYPE_CHECKING

from cryodaq._lazy import lazy_exports

# Everything loads on first use; Dask workers import this package for their tasks
# (cryodaq.reprocess._tasks) and need none of the orchestration (storage, rich, Dask client).
if TYPE_CHECKING:  # the public names (explicit re-exports); lazy_exports imports each on first use
    from cryodaq.reprocess._run import (
        ReprocessResult as ReprocessResult,
        default_label as default_label,
        reprocess_run as reprocess_run,
    )
    from cryodaq.reprocess.cluster import dask_client as dask_client, local_cluster as local_cluster
    from cryodaq.reprocess.config import (
        ReprocessConfig as ReprocessConfig,
        load_reprocess_config as load_reprocess_config,
        parse_reprocess_config as parse_reprocess_config,
    )

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
