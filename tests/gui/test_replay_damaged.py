"""Replaying a damaged run refuses it, naming what is lost, instead of drawing fill values as data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cryodaq.errors import RunDamagedError
from cryodaq.storage import RunWriter


def test_replay_of_a_run_missing_a_chunk_is_refused(qt_ok: None, tmp_path: Path) -> None:
    from cryodaq.gui.sources import ReplaySource

    w = RunWriter.create(tmp_path, station_name="s", station_snapshot={}, config={}, run_id="r", catalog=False)
    w.declare_stream("phase", n_channels=2, sample_rate_hz=1000.0, units="rad", chunk_time=100)
    si = np.arange(500)
    w.append_stream("phase", np.ones((500, 2), np.float32), si, si * 10**6)
    w.close()
    (w.path / "stream" / "phase" / "c" / "2" / "0").unlink()
    with pytest.raises(RunDamagedError, match=r"stream/phase: 1 chunk missing \(c/2/0\): time rows 200\.\.299"):
        ReplaySource(w.path)
