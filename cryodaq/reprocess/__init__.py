"""cryodaq.reprocess: re-run pulse finding / optimal filtering on stored runs, in parallel with Dask.

``reprocess_run(run, config)`` reads a run's stored timestreams, re-runs the acquisition's own
trigger (:func:`cryodaq.acquisition.pipeline.make_trigger`) with new settings on chunks in
parallel, resolves hold-off across chunk edges so no pulse is lost or counted twice, optionally
runs the optimal filter, and writes ``reprocessed/<label>/`` into the run with the config and
source it came from. The raw data is never modified. See docs/reprocessing.md.
"""

from cryodaq._lazy import lazy_getattr

# Everything loads on first use; Dask workers import this package for their tasks
# (cryodaq.reprocess._tasks) and need none of the orchestration (storage, rich, Dask client).
_EXPORTS = {
    "OptimalFilterConfig": "cryodaq.reprocess.config",
    "ReprocessConfig": "cryodaq.reprocess.config",
    "ReprocessResult": "cryodaq.reprocess._run",
    "default_label": "cryodaq.reprocess._run",
    "load_reprocess_config": "cryodaq.reprocess.config",
    "parse_reprocess_config": "cryodaq.reprocess.config",
    "reprocess_run": "cryodaq.reprocess._run",
}

__getattr__ = lazy_getattr(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
