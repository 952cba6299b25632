"""Run catalog: kept current by the writer, rebuilt from disk, queried, tagged; never costs data when broken."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import zarr

from cryodaq.storage import FORMAT_VERSION, RunStatus, RunWriter, open_run, recover_run
from cryodaq.storage.catalog import CATALOG_FILE, Catalog, time_bound


def _run(out: Path, station: str = "bench", *, kind: str = "stream", events: int = 0, close: bool = True,
         tags: tuple[str, ...] = (), run_id: str | None = None) -> RunWriter:
    w = RunWriter.create(out, kind=kind, station_name=station, station_snapshot={}, config={}, tags=tags, run_id=run_id)
    if events:
        k = np.arange(events)
        w.append_events({"t": k, "sample_index": k, "channel": k % 2, "amplitude": k.astype(np.float32)})
        w.commit()
    if close:
        w.close()
    return w


def _make_dead(path: Path) -> None:
    """Make a 'running' run look written by a process on another host that stopped long ago."""
    root = zarr.open_group(path, mode="r+", use_consolidated=False)
    root.attrs["cryodaq"] = dict(root.attrs["cryodaq"], host="another-host.invalid",
                                 heartbeat="2020-01-01T00:00:00.000000Z")


def test_writer_registers_and_updates_the_catalog(tmp_path: Path) -> None:
    w = _run(tmp_path, "fridge-1", close=False, tags=("cooldown-7", "fe55"))
    cat = Catalog(tmp_path)
    entry = cat.get(w.path.name[:-5])
    assert entry.status is RunStatus.RUNNING and entry.ended is None and entry.n_events == 0
    assert entry.path == w.path.name and entry.station == "fridge-1" and entry.tags == ("cooldown-7", "fe55")
    k = np.arange(7)
    w.append_events({"t": k, "sample_index": k, "channel": k, "amplitude": k.astype(np.float32)})
    w.close(interrupted=True)
    entry = cat.get(w.path)
    assert entry.status is RunStatus.COMPLETE and entry.interrupted and entry.n_events == 7
    assert entry.ended == open_run(w.path).attrs["ended"] and entry.duration_s is not None and entry.duration_s >= 0
    assert entry.size_bytes > 1000 and entry.format_version == FORMAT_VERSION and entry.kind == "stream"
    assert cat.run_path(entry) == w.path

    a = _run(tmp_path, close=False)
    a.abort(RuntimeError("pump tripped"))
    assert cat.get(a.path).status is RunStatus.ABORTED


def test_query_filters(tmp_path: Path) -> None:
    r1 = _run(tmp_path, "a", events=3, tags=("x",))
    r2 = _run(tmp_path, "b", kind="sweep")
    r3 = _run(tmp_path, "a", close=False)
    cat = Catalog(tmp_path)
    ids = lambda entries: [e.run_id for e in entries]  # noqa: E731
    id1, id2, id3 = (w.path.name[:-5] for w in (r1, r2, r3))
    assert ids(cat.query()) == [id1, id2, id3]  # oldest first
    assert ids(cat.query(station="a")) == [id1, id3]
    assert ids(cat.query(kind="sweep")) == [id2]
    assert ids(cat.query(status="running")) == [id3] and ids(cat.query(status=RunStatus.COMPLETE)) == [id1, id2]
    assert ids(cat.query(tag="x")) == [id1] and cat.query(tag="nope") == []
    started2 = open_run(r2.path).attrs["started"]
    assert ids(cat.query(since=started2)) == [id2, id3]
    assert ids(cat.query(until=started2)) == [id1]
    assert ids(cat.query(station="a", since=started2)) == [id3]
    today = datetime.now(UTC).date()
    assert len(cat.query(since=today)) == 3 and cat.query(since=today + timedelta(days=1)) == []
    assert cat.query(until=datetime.now() - timedelta(days=1)) == []  # naive times count as UTC
    with pytest.raises(ValueError, match="ISO-8601"):
        cat.query(since="last tuesday")
    with pytest.raises(ValueError):
        cat.query(status="finished")
    r3.close()


def test_time_bound_normalises_to_stored_form() -> None:
    assert time_bound("2025-01-31") == "2025-01-31T00:00:00.000000Z"
    assert time_bound("2025-01-31T18:04:05+01:00") == "2025-01-31T17:04:05.000000Z"
    assert time_bound(datetime(2025, 1, 31, 17, 4, 5, 123456)) == "2025-01-31T17:04:05.123456Z"


def test_dead_running_run_shows_crashed_and_recover_updates(tmp_path: Path) -> None:
    w = _run(tmp_path, close=False)
    _make_dead(w.path)
    cat = Catalog(tmp_path)
    entry = cat.query(status="crashed")[0]  # refreshed on query: the index said running
    assert entry.path == w.path.name and entry.ended == "2020-01-01T00:00:00.000000Z"
    assert cat.query(status="running") == []
    recover_run(w.path)
    assert cat.get(w.path).status is RunStatus.CRASHED and open_run(w.path).stored_status is RunStatus.CRASHED


def test_rebuild_from_disk_keeps_catalog_tags(tmp_path: Path) -> None:
    (tmp_path / "2025" / "jan").mkdir(parents=True)
    done = _run(tmp_path, "a", events=4, tags=("attr-tag",))
    nested = _run(tmp_path / "2025" / "jan", "b")
    dead = _run(tmp_path, "c", close=False)
    _make_dead(dead.path)
    (tmp_path / "not_a_run.zarr").mkdir()
    (tmp_path / ".hidden.zarr.x.partial").mkdir()
    cat = Catalog(tmp_path)
    cat.tag(done.path.name[:-5], "gold", "gold", "calibration")
    (tmp_path / CATALOG_FILE).unlink()  # catalog lost: only what is in the runs comes back ...
    entries = {e.path: e for e in cat.rebuild()}
    assert set(entries) == {done.path.name, "2025/jan/" + nested.path.name, dead.path.name}
    assert entries[done.path.name].tags == ("attr-tag",) and entries[done.path.name].n_events == 4
    assert entries[dead.path.name].status is RunStatus.CRASHED
    assert open_run(dead.path).stored_status is RunStatus.RUNNING  # rebuilding only reads the runs

    cat.tag(done.path, "gold")  # ... but a rebuild of an existing catalog keeps catalog-only tags
    shutil.rmtree(nested.path)
    entries = {e.path: e for e in cat.rebuild()}
    assert entries[done.path.name].tags == ("attr-tag", "gold")
    assert "2025/jan/" + nested.path.name not in entries  # runs gone from disk leave the index
    assert cat.untag(done.path, "gold").tags == ("attr-tag",)
    with pytest.raises(KeyError, match="no run 'missing'"):
        cat.tag("missing", "x")


def test_unwritable_catalog_never_costs_data(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / CATALOG_FILE).mkdir()  # SQLite cannot open a directory
    caplog.set_level(logging.WARNING, logger="cryodaq.storage.catalog")
    w = _run(tmp_path, events=5)
    run = open_run(w.path)
    assert run.status is RunStatus.COMPLETE and run.committed("events") == 5
    assert len([r for r in caplog.records if "run catalog" in r.getMessage()]) == 2  # create and close


def test_corrupt_catalog_warns_then_rebuild_replaces_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / CATALOG_FILE).write_bytes(b"this is not an sqlite database" * 100)
    caplog.set_level(logging.WARNING, logger="cryodaq.storage.catalog")
    w = _run(tmp_path, events=2)
    assert open_run(w.path).committed("events") == 2
    assert any("not a database" in r.getMessage() for r in caplog.records)
    entries = Catalog(tmp_path).rebuild()
    assert [e.path for e in entries] == [w.path.name]
    assert len(list(tmp_path.glob(f"{CATALOG_FILE}.corrupt-*"))) == 1


def test_busy_catalog_delays_the_writer_boundedly(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import cryodaq.storage.catalog as catalog_module

    monkeypatch.setattr(catalog_module, "_HOOK_TIMEOUT_S", 0.2)
    Catalog(tmp_path).query()  # create it
    holder = sqlite3.connect(tmp_path / CATALOG_FILE, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    caplog.set_level(logging.WARNING, logger="cryodaq.storage.catalog")
    try:
        w = _run(tmp_path, events=3)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert open_run(w.path).committed("events") == 3
    assert any("locked" in r.getMessage() for r in caplog.records)
    assert [e.path for e in Catalog(tmp_path).rebuild()] == [w.path.name]


def test_concurrent_writers_all_land_in_the_catalog(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(4):
                _run(tmp_path, f"st{k}", events=i + 1, run_id=f"r{k}-{i}")
        except BaseException as exc:  # reported below: a thread cannot fail the test by itself
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    entries = Catalog(tmp_path).query()
    assert len(entries) == 16 and all(e.status is RunStatus.COMPLETE for e in entries)
    assert {e.run_id: e.n_events for e in entries} == {f"r{k}-{i}": i + 1 for k in range(4) for i in range(4)}


def test_several_processes_share_one_catalog(tmp_path: Path) -> None:
    import subprocess
    import sys

    child = (
        "import sys\nimport numpy as np\nfrom cryodaq.storage import RunWriter\n"
        "for i in range(3):\n"
        "    w = RunWriter.create(sys.argv[1], station_name=sys.argv[2], station_snapshot={}, config={},"
        " run_id=f'{sys.argv[2]}-{i}')\n"
        "    w.close()\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", child, str(tmp_path), f"p{k}"], stderr=subprocess.PIPE, text=True)
             for k in range(2)]
    _run(tmp_path, "main", run_id="main-0")  # this process writes meanwhile
    errs = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    assert all("catalog" not in e for e in errs)  # no child had to skip a catalog update
    entries = Catalog(tmp_path).query()
    assert sorted(e.run_id for e in entries) == ["main-0", "p0-0", "p0-1", "p0-2", "p1-0", "p1-1", "p1-2"]
    assert {e.status for e in entries} == {RunStatus.COMPLETE}
