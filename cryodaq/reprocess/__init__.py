"""cryodaq.reprocess: re-run pulse finding / optimal filtering on stored runs, in parallel with Dask.

``reprocess_run(run, config)`` reads a run's stored timestreams, re-runs the acquisition's own
trigger (:func:`cryodaq.acquisition.pipeline.make_trigger`) with new settings on chunks in
parallel, resolves hold-off across chunk edges so no pulse is lost or counted twice, optionally
runs the optimal filter, and writes ``reprocessed/<label>/`` into the run with the config and
source it came from. The raw data is never modified. See docs/reprocessing.md.
"""

from importlib import import_module
from typing import Any

from cryodaq.reprocess.config import (
    OptimalFilterConfig,
    ReprocessConfig,
    load_reprocess_config,
    parse_reprocess_config,
)

# The orchestration (storage, rich, Dask client) loads on first use: Dask workers import this
# package for their tasks (cryodaq.reprocess._tasks) and need none of it.
_LAZY = {"ReprocessResult": "cryodaq.reprocess._run", "default_label": "cryodaq.reprocess._run",
         "reprocess_run": "cryodaq.reprocess._run"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "OptimalFilterConfig", "ReprocessConfig", "ReprocessResult", "default_label", "load_reprocess_config",
    "parse_reprocess_config", "reprocess_run",
]
