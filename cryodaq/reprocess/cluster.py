"""The Dask client offline work on stored runs uses: a running scheduler, a local cluster started for
the job, or none (in this process). One place for it: ``cryodaq reprocess`` and ``cryodaq coincide``."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cryodaq.stop_signals import stop_signals_ignored_by_children
from cryodaq.wire.addresses import LOOPBACK

__all__ = ["dask_client", "local_cluster"]

#: glibc malloc settings of the workers a local cluster starts. Dask's own default
#: (MALLOC_TRIM_THRESHOLD_=65536, against memory a long-lived worker never gives back) also pins
#: glibc's mmap threshold at 128 kB, so every large temporary of a chunk (the trigger's per-block
#: arrays, the records) is mmap'd and page-faulted afresh: chunk processing measured 1.6x slower.
#: A worker runs one chunk at a time, so keeping up to 128 MB of freed heap costs little; 32 MB is
#: the largest mmap threshold glibc accepts. Variables already in the environment still win.
WORKER_MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": str(128 << 20), "MALLOC_MMAP_THRESHOLD_": str(32 << 20)}


def local_cluster(n_workers: int, **kwargs: Any) -> Any:
    """A ``distributed.LocalCluster`` of ``n_workers`` single-threaded worker processes, listening on
    loopback only, its workers started with :data:`WORKER_MALLOC_ENV` (``kwargs`` go to LocalCluster)."""
    import dask
    from dask.distributed import LocalCluster

    options = dict(n_workers=n_workers, threads_per_worker=1, processes=True, host=LOOPBACK,
                   dashboard_address=f"{LOOPBACK}:0", silence_logs=logging.ERROR)
    options.update(kwargs)
    environ = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_MALLOC_ENV.items()}
    with dask.config.set(environ):
        return LocalCluster(**options)


@contextmanager
def dask_client(workers: int | None, scheduler: Any, n_tasks: int) -> Iterator[tuple[Any, int]]:
    """``(client or None, worker count)`` for a ``with`` block.

    ``scheduler``: an address (``tcp://host:8786``) or a ``distributed.Client`` to use; else a
    local cluster of ``workers`` processes (default: one per core, at most ``n_tasks``) started
    for the block; ``workers=0``: no Dask, the work runs in this process.
    """
    if scheduler is not None:
        from dask.distributed import Client

        if isinstance(scheduler, Client):
            yield scheduler, len(scheduler.nthreads())
            return
        with Client(scheduler) as client:
            yield client, len(client.nthreads())
        return
    if workers == 0:
        yield None, 0
        return
    from dask.distributed import Client

    n = int(workers) if workers else min(os.cpu_count() or 1, max(n_tasks, 1))
    # Every listener on loopback (the scheduler, the workers, the dashboard: nobody else's business);
    # the workers ignore the stop signals a terminal or systemd sends the whole group: this process
    # stops them (closing the cluster) when it stops.
    with stop_signals_ignored_by_children():
        cluster = local_cluster(n)
    with cluster, Client(cluster) as client:
        yield client, n
