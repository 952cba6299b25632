"""A full disk ends the run with StorageFullError naming it; committed data stays readable."""

from __future__ import annotations

import errno
from types import SimpleNamespace

import numpy as np
import pytest
import zarr.storage._local as zarr_local

from cryodaq.errors import StorageFullError
from cryodaq.storage import RunStatus, RunWriter, open_run


def _fill_disk(monkeypatch: pytest.MonkeyPatch, *, chunks_only: bool) -> list[str]:
    """From now on, LocalStore writes fail with ENOSPC (only chunk writes if ``chunks_only``)."""
    refused: list[str] = []
    real_put = zarr_local._put

    def put(path, value, exclusive=False):  # noqa: ANN001 - mirrors zarr's private signature
        if not chunks_only or path.name != "zarr.json":
            refused.append(str(path))
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_put(path, value, exclusive)

    monkeypatch.setattr(zarr_local, "_put", put)
    return refused


def _committed_block(writer: RunWriter, pat: SimpleNamespace) -> None:
    writer.append_stream("phase", *pat.stream_block(0, 100))
    writer.append_events(pat.event_batch(0, 5))
    writer.commit()
    writer.append_stream("phase", *pat.stream_block(100, 50))
    writer.append_events(pat.event_batch(5, 5))


def _check_intact(writer: RunWriter, pat: SimpleNamespace) -> None:
    run = open_run(writer.path)
    assert run.committed("stream") == 100 and run.committed("events") == 5
    np.testing.assert_array_equal(run.stream("phase")["phase"].values, pat.stream_block(0, 100)[0])
    np.testing.assert_array_equal(run.events()["amplitude"].values, pat.event_batch(0, 5)["amplitude"])


def test_enospc_on_data_aborts_the_run_naming_it(writer: RunWriter, pat: SimpleNamespace, monkeypatch) -> None:
    _committed_block(writer, pat)
    refused = _fill_disk(monkeypatch, chunks_only=True)
    with pytest.raises(StorageFullError) as err:
        writer.commit()
    assert err.value.errno == errno.ENOSPC
    assert str(writer.path) in str(err.value) and "disk full" in str(err.value)
    assert refused, "the test store refused nothing"
    with pytest.raises(RuntimeError, match="aborted after a storage error"):
        writer.append_events(pat.event_batch(10, 1))
    writer.close()  # no-op after the failure
    monkeypatch.undo()
    _check_intact(writer, pat)
    run = open_run(writer.path)
    assert run.stored_status is RunStatus.ABORTED and "disk full" in run.attrs["end_reason"]


def test_enospc_everywhere_still_raises_and_keeps_data(writer: RunWriter, pat: SimpleNamespace, monkeypatch) -> None:
    _committed_block(writer, pat)
    _fill_disk(monkeypatch, chunks_only=False)
    with pytest.raises(StorageFullError, match="disk full"), writer:
        writer.commit()
    monkeypatch.undo()
    _check_intact(writer, pat)
    # Not even the status could be written: the run stays 'running' on disk, and shows as
    # crashed once this (its writer) process is gone.
    assert open_run(writer.path).stored_status is RunStatus.RUNNING


def test_other_oserrors_name_the_run_too(writer: RunWriter, pat: SimpleNamespace, monkeypatch) -> None:
    _committed_block(writer, pat)

    def put(path, value, exclusive=False):  # noqa: ANN001
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(zarr_local, "_put", put)
    with pytest.raises(OSError) as err:
        writer.close()
    assert not isinstance(err.value, StorageFullError) and err.value.errno == errno.EACCES
    assert str(writer.path) in str(err.value)
