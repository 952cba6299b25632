"""Reprocessing a damaged run fails loudly, naming what is lost: it reads through open_run (missing chunks)
and its workers read through GuardedArray (chunks that fail their checksum)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cryodaq.cli import main as cli_main
from cryodaq.errors import RunDamagedError
from cryodaq.reprocess import reprocess_run
from cryodaq.reprocess._tasks import _stream_array
from cryodaq.storage import RunWriter


def _run(tmp_path: Path) -> Path:
    w = RunWriter.create(tmp_path, station_name="s", station_snapshot={}, config={}, run_id="r", catalog=False)
    w.declare_stream("phase", n_channels=2, sample_rate_hz=1000.0, units="rad", chunk_time=100)
    si = np.arange(1000)
    w.append_stream("phase", np.zeros((1000, 2), np.float32), si, si * 10**6)
    w.close()
    return w.path


def test_missing_chunk_stops_reprocessing_with_its_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _run(tmp_path)
    (path / "stream" / "phase" / "c" / "3" / "0").unlink()
    with pytest.raises(RunDamagedError, match=r"stream/phase: 1 chunk missing \(c/3/0\): time rows 300\.\.399"):
        reprocess_run(path)
    assert cli_main(["reprocess", str(path)]) == 2
    assert "stream/phase: 1 chunk missing (c/3/0)" in capsys.readouterr().err
    assert not (path / "reprocessed").exists()


def test_a_worker_meeting_a_corrupt_chunk_names_it(tmp_path: Path) -> None:
    path = _run(tmp_path)
    chunk = path / "stream" / "phase" / "c" / "5" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-3] + b"xyz")
    _stream_array.cache_clear()
    with pytest.raises(RunDamagedError, match=r"stream/phase: 1 chunk corrupt \(c/5/0\): time rows 500\.\.599"):
        np.asarray(_stream_array(str(path), "phase")[450:650])
    np.testing.assert_array_equal(np.asarray(_stream_array(str(path), "phase")[0:500]), np.zeros((500, 2)))
