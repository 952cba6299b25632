"""A writer killed half-way through a commit never leaves stream rows committed after a gap that is not:
found by the soak benchmark (SIGKILL at a random moment), where a stream committed before its gaps left a
jump in the stored samples with no gap record."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.storage import RunWriter, open_run
from cryodaq.storage._append import AppendGroup


class Killed(BaseException):
    """The process dies here (nothing after it runs)."""


def test_a_commit_cut_short_never_commits_stream_rows_past_an_unrecorded_gap(tmp_path, monkeypatch):
    w = RunWriter.create(tmp_path, station_name="t", station_snapshot={}, config={})
    w.declare_stream("phase", n_channels=2, sample_rate_hz=1000.0, units="rad")
    idx = np.arange(100, dtype=np.int64)
    w.append_stream("phase", np.zeros((100, 2), np.float32), idx, idx * 1_000_000)
    w.commit()
    # a gap, then the rows after it; the process dies after the first group of the next commit
    w.append_gap(100, 50, 100_000_000, "packet_loss")
    idx2 = np.arange(150, 250, dtype=np.int64)
    w.append_stream("phase", np.zeros((100, 2), np.float32), idx2, idx2 * 1_000_000)
    commit = AppendGroup.commit
    calls = []

    def dies_after_one(self):
        if calls:
            raise Killed
        calls.append(self.path)
        return commit(self)

    monkeypatch.setattr(AppendGroup, "commit", dies_after_one)
    with pytest.raises(Killed):
        w.commit()
    monkeypatch.setattr(AppendGroup, "commit", commit)
    run = open_run(w.path)  # what a reader finds after the kill
    stream_rows, gap_rows = run.committed("stream"), run.committed("gaps")
    assert stream_rows == 100 or gap_rows == 1, (calls, stream_rows, gap_rows)
    assert calls and calls[0].endswith("gaps")  # the gaps are committed first
