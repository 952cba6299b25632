"""Derived groups reprocessed/<label>/: committed appends, provenance attrs, labels, raw groups untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr
import zarr

from cryodaq.errors import DerivedExistsError, RunFormatError
from cryodaq.storage import DerivedWriter, RunWriter, open_run, write_derived


def _closed_run(writer: RunWriter, pat: SimpleNamespace) -> Path:
    writer.append_stream("phase", *pat.stream_block(0, 100))
    writer.append_events(pat.event_batch(0, 5))
    writer.close()
    return writer.path


def _digest(path: Path) -> str:
    """sha256 over every file of the raw groups (data chunks and their zarr.json)."""
    h = hashlib.sha256()
    for group in ("stream", "events", "gaps", "housekeeping"):
        for f in sorted(p for p in (path / group).rglob("*") if p.is_file()):
            h.update(str(f.relative_to(path)).encode() + f.read_bytes())
    return h.hexdigest()


def test_write_and_read_back(writer: RunWriter, pat: SimpleNamespace) -> None:
    path = _closed_run(writer, pat)
    before = _digest(path)
    n = 7
    cols = {"t": np.arange(n, dtype=np.int64), "amplitude": np.linspace(0, 1, n, dtype=np.float32),
            "records": (("event", "sample"), np.ones((n, 4), np.float32))}
    group = write_derived(path, "first", cols, {"config": {"a": np.float64(1.5)}, "source": {"run_id": "x"}},
                          column_attrs={"t": {"units": "ns"}},
                          static={"tone": (("tone",), np.array([3, 4])), "of_template": (("tone", "sample"), np.zeros((2, 4)))})
    assert group == "reprocessed/first"
    run = open_run(path)
    assert run.reprocessed_labels == ["first"] and "reprocessed/first" in run.groups
    ds = run.reprocessed("first")
    assert ds.sizes == {"event": n, "sample": 4, "tone": 2}
    assert run.committed("reprocessed/first") == n
    np.testing.assert_array_equal(ds["amplitude"].values, cols["amplitude"])
    assert ds.attrs["config"] == {"a": 1.5} and ds.attrs["status"] == "complete" and ds.attrs["created"]
    assert ds["t"].attrs["units"] == "ns"
    plain = xr.open_zarr(path, group="reprocessed/first")  # consolidated metadata refreshed
    assert plain["records"].dims == ("event", "sample")
    assert _digest(path) == before  # the raw groups are untouched


def test_label_exists_refused_unless_overwrite(writer: RunWriter, pat: SimpleNamespace) -> None:
    path = _closed_run(writer, pat)
    write_derived(path, "lbl", {"x": np.arange(3)}, {})
    with pytest.raises(DerivedExistsError, match="reprocessed/lbl"):
        write_derived(path, "lbl", {"x": np.arange(5)}, {})
    write_derived(path, "lbl", {"x": np.arange(5)}, {}, overwrite=True)
    assert open_run(path).reprocessed("lbl").sizes["event"] == 5
    with pytest.raises(ValueError, match="not valid"):
        write_derived(path, "a/b", {"x": np.arange(1)}, {})


def test_appends_commit_and_a_failed_writer_keeps_committed_rows(writer: RunWriter, pat: SimpleNamespace) -> None:
    path = _closed_run(writer, pat)
    with pytest.raises(RuntimeError, match="boom"), DerivedWriter.create(path, "partial", {"config": {}}) as w:
        w.append({"x": np.arange(4), "y": np.ones(4)})
        assert w.commit() == 4
        w.append({"x": np.arange(3), "y": np.ones(3)})  # buffered, never committed
        raise RuntimeError("boom")
    run = open_run(path)
    assert run.committed("reprocessed/partial") == 4
    assert run.reprocessed("partial").attrs["status"] == "aborted"
    with DerivedWriter.create(path, "checked", {}) as w:
        w.append({"x": np.arange(2)})
        with pytest.raises(ValueError, match="differ from the first"):
            w.append({"y": np.arange(2)})
        with pytest.raises(ValueError, match="differ in length"):
            w.append({"x": np.arange(2), "z": np.arange(3)})


def test_a_running_run_is_refused(writer: RunWriter, pat: SimpleNamespace) -> None:
    writer.append_stream("phase", *pat.stream_block(0, 10))
    writer.commit()
    with pytest.raises(RunFormatError, match="still being written"):
        write_derived(writer.path, "early", {"x": np.arange(1)}, {})
    writer.close()
    root = zarr.open_group(str(writer.path), mode="r")
    assert "reprocessed" not in root
