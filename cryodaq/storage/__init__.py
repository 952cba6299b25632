"""cryodaq.storage: the Zarr v3 run format (docs/run-format.md).

- :class:`RunWriter` writes a run crash-safely (buffered appends, committed lengths, heartbeat).
- :func:`open_run` reads one; datasets stop at the committed lengths; dead writers show as crashed.
- :func:`recover_run` marks a dead run crashed on disk; :func:`run_info` summarises a run.
"""

from cryodaq.storage.format import FORMAT_VERSION, RunKind, RunStatus
from cryodaq.storage.info import RunInfo, run_info
from cryodaq.storage.reader import Run, open_run
from cryodaq.storage.recover import recover_run
from cryodaq.storage.writer import RunWriter

__all__ = ["FORMAT_VERSION", "Run", "RunInfo", "RunKind", "RunStatus", "RunWriter", "open_run", "recover_run", "run_info"]
