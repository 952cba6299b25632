"""The run catalog: an SQLite index of the runs in a data directory, ``<data_dir>/catalog.sqlite``.

Writers keep it current: :meth:`RunWriter.create` registers a run as running, ``close``/``abort``
and :func:`recover_run` update it. For writers every catalog write is best effort
(:func:`update_catalog` logs a warning on failure), because the catalog is an index, never the
data: ``Catalog(data_dir).rebuild()`` recreates it from the runs on disk. Tags added with
:meth:`Catalog.tag` live only in the catalog (rebuild keeps them); tags given at creation are
also stored in the run's attrs.

SQLite in WAL mode lets several processes read while one writes (on a local disk: WAL needs
shared memory, so not on network file systems). Each operation opens its own short-lived
connection, so one :class:`Catalog` may be used from several threads.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryodaq.errors import RunFormatError
from cryodaq.storage._liveness import parse_iso, utc_now_iso
from cryodaq.storage.format import EVENTS, RunStatus

if TYPE_CHECKING:
    from cryodaq.storage.reader import Run


def open_run(path: str | Path) -> Run:
    """The reader, imported on first use: it loads xarray and dask, which the CLI need not pay for. A damaged
    run is still indexed (the catalog reads only attrs and committed lengths)."""
    from cryodaq.storage.reader import open_run as _open_run

    return _open_run(path, damaged="mask")

log = logging.getLogger(__name__)

CATALOG_FILE = "catalog.sqlite"
SCHEMA_VERSION = 1
_HOOK_TIMEOUT_S = 2.0  # longest a writer waits for a busy catalog before giving up (with a warning)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    path           TEXT PRIMARY KEY,   -- run folder relative to the data directory, '/' separators
    run_id         TEXT NOT NULL,
    station        TEXT NOT NULL,
    kind           TEXT NOT NULL,
    started        TEXT,               -- ISO-8601 UTC as in the run's attrs
    ended          TEXT,
    status         TEXT NOT NULL,      -- running | complete | aborted | crashed
    interrupted    INTEGER NOT NULL,
    size_bytes     INTEGER NOT NULL,
    n_events       INTEGER NOT NULL,
    duration_s     REAL,
    format_version INTEGER NOT NULL,
    updated        TEXT NOT NULL       -- when this row was last written (ISO-8601 UTC)
);
CREATE INDEX IF NOT EXISTS runs_run_id ON runs (run_id);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started);
CREATE TABLE IF NOT EXISTS tags (
    path TEXT NOT NULL REFERENCES runs (path) ON DELETE CASCADE ON UPDATE CASCADE,
    tag  TEXT NOT NULL,
    PRIMARY KEY (path, tag)
);
"""
_COLUMNS = ("path", "run_id", "station", "kind", "started", "ended", "status", "interrupted", "size_bytes",
            "n_events", "duration_s", "format_version", "updated")


@dataclass(frozen=True)
class CatalogEntry:
    """One run as the catalog knows it; ``path`` is relative to the data directory."""

    run_id: str
    path: str
    station: str
    kind: str
    started: str | None
    ended: str | None
    status: RunStatus
    interrupted: bool
    tags: tuple[str, ...]
    size_bytes: int
    n_events: int
    duration_s: float | None
    format_version: int
    updated: str


def clean_tags(tags: Iterable[str] | str | None) -> list[str]:
    """Tags as a list of stripped, non-empty, unique strings (order kept); a bare string is one tag."""
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    out: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise ValueError(f"tag {tag!r}: expected a non-empty string")
        if tag.strip() not in out:
            out.append(tag.strip())
    return out


def time_bound(value: datetime | date | str) -> str:
    """A ``since``/``until`` bound as the ISO-8601 UTC text runs store (naive times count as UTC)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"time {value!r}: expected ISO-8601, e.g. 2025-01-31 or 2025-01-31T17:04:05Z") from None
    if not isinstance(value, datetime):  # a date: its midnight, UTC
        value = datetime(value.year, value.month, value.day)
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


def size_on_disk(path: Path) -> int:
    """Bytes of every file under ``path`` (links not followed)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(folder, name)).st_size
    return total


def entry_for_run(run: Run, rel_path: str, *, tags: Sequence[str] = ()) -> CatalogEntry:
    """The catalog entry of an opened run (status as a reader sees it: a dead writer's run is crashed)."""
    meta = run.attrs
    status = run.status
    started, ended = meta.get("started"), meta.get("ended")
    if status is RunStatus.CRASHED and not ended:
        ended = meta.get("heartbeat")  # what recover_run would write
    t0, t1 = parse_iso(started), parse_iso(ended) or parse_iso(meta.get("heartbeat"))
    return CatalogEntry(
        run_id=run.run_id,
        path=rel_path,
        station=str(meta.get("station", {}).get("name", "")),
        kind=str(meta.get("kind", "")),
        started=started,
        ended=ended,
        status=status,
        interrupted=bool(meta.get("interrupted", False)),
        tags=tuple(sorted(set(clean_tags(meta.get("tags") or [])) | set(tags))),
        size_bytes=size_on_disk(run.path),
        n_events=run.committed(EVENTS) if EVENTS in run.root else 0,
        duration_s=(t1 - t0).total_seconds() if t0 and t1 else None,
        format_version=int(meta.get("format_version", 0)),
        updated=utc_now_iso(),
    )


class Catalog:
    """The run index of one data directory (``<data_dir>/catalog.sqlite``, created on first use)."""

    def __init__(self, data_dir: str | Path, *, timeout_s: float = 10.0) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / CATALOG_FILE
        self.timeout_s = float(timeout_s)

    def __repr__(self) -> str:
        return f"Catalog({str(self.data_dir)!r})"

    # ------------------------------------------------------------- connections
    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if not self.data_dir.is_dir():
            raise FileNotFoundError(f"data directory {self.data_dir} does not exist")
        con = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable against crashes, not fsync per commit
            con.execute("PRAGMA foreign_keys=ON")
            self._ensure_schema(con)
            yield con
        finally:
            con.close()

    def _ensure_schema(self, con: sqlite3.Connection) -> None:
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise RunFormatError(f"{self.path}: catalog schema version {version}; this cryodaq knows up to "
                                 f"{SCHEMA_VERSION} (rebuild it, or use a newer cryodaq)")
        con.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    con.execute(statement)
            con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (taken at once, so concurrent writers queue instead of deadlocking)."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # ----------------------------------------------------------------- helpers
    def _inside(self, run_path: str | Path) -> str | None:
        rel = Path(os.path.relpath(os.path.abspath(run_path), os.path.abspath(self.data_dir)))
        return None if rel.parts and rel.parts[0] == os.pardir else rel.as_posix()

    def relpath(self, run_path: str | Path) -> str:
        """``run_path`` relative to the data directory ('/' separators); refuses paths outside it."""
        rel = self._inside(run_path)
        if rel is None:
            raise ValueError(f"run {run_path} is not inside the data directory {self.data_dir}")
        return rel

    def run_path(self, entry: CatalogEntry) -> Path:
        """The run folder of an entry."""
        return self.data_dir / entry.path

    @staticmethod
    def _upsert(con: sqlite3.Connection, entry: CatalogEntry, *, unless_updated_after: str | None = None) -> None:
        values = {c: getattr(entry, c) for c in _COLUMNS}
        values.update(status=str(entry.status), interrupted=int(entry.interrupted))
        assign = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "path")
        guard = " WHERE runs.updated <= :guard" if unless_updated_after else ""
        con.execute(
            f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)}) "
            f"ON CONFLICT (path) DO UPDATE SET {assign}{guard}",
            {**values, "guard": unless_updated_after},
        )
        con.executemany("INSERT OR IGNORE INTO tags (path, tag) VALUES (?, ?)", [(entry.path, t) for t in entry.tags])

    def _resolve(self, con: sqlite3.Connection, run: str | Path) -> list[str]:
        """Catalog paths of ``run``: a run id, a path relative to the data directory, or a run folder."""
        candidates = {str(run), Path(run).as_posix()}
        if Path(run).is_absolute() or Path(run).exists():  # a run folder given by its own path
            candidates.add(self._inside(run) or str(run))
        marks = ", ".join("?" * len(candidates))
        rows = con.execute(f"SELECT path FROM runs WHERE path IN ({marks}) OR run_id = ? ORDER BY path",
                           [*candidates, str(run)]).fetchall()
        if not rows:
            raise KeyError(f"{self.path}: no run {str(run)!r} (neither a run id nor a run path in this catalog)")
        return [r[0] for r in rows]

    def _rows(self, con: sqlite3.Connection, where: str = "", params: Sequence[Any] = ()) -> list[CatalogEntry]:
        tags_sql = "(SELECT json_group_array(tag) FROM (SELECT tag FROM tags t WHERE t.path = runs.path ORDER BY tag))"
        rows = con.execute(f"SELECT {', '.join(_COLUMNS)}, {tags_sql} FROM runs {where} ORDER BY started, path",
                           params).fetchall()
        out = []
        for row in rows:
            rec = dict(zip(_COLUMNS, row[:-1], strict=True))
            rec.update(status=RunStatus(rec["status"]), interrupted=bool(rec["interrupted"]),
                       tags=tuple(_json_list(row[-1])))
            out.append(CatalogEntry(**rec))
        return out

    # ------------------------------------------------------------------ public
    def register(self, run_path: str | Path, *, tags: Iterable[str] = ()) -> CatalogEntry:
        """Add or refresh one run from what is on disk now; ``tags`` are added to its catalog tags."""
        run = open_run(run_path)
        entry = entry_for_run(run, self.relpath(run_path), tags=clean_tags(tags))
        with self._write() as con:
            self._upsert(con, entry)
            return self._rows(con, "WHERE path = ?", [entry.path])[0]

    def get(self, run: str | Path) -> CatalogEntry:
        """The entry of a run id or run path (KeyError if unknown; the first one if a run id is there twice)."""
        with self._connect() as con:
            path = self._resolve(con, run)[0]
            return self._rows(con, "WHERE path = ?", [path])[0]

    def remove(self, run: str | Path) -> None:
        """Forget a run (its data stay on disk)."""
        with self._write() as con:
            for path in self._resolve(con, run):
                con.execute("DELETE FROM runs WHERE path = ?", [path])

    def tag(self, run: str | Path, *tags: str) -> CatalogEntry:
        """Add tags to a run (by run id or path); they live in the catalog and survive :meth:`rebuild`."""
        new = clean_tags(tags)
        with self._write() as con:
            paths = self._resolve(con, run)
            con.executemany("INSERT OR IGNORE INTO tags (path, tag) VALUES (?, ?)", [(p, t) for p in paths for t in new])
            con.executemany("UPDATE runs SET updated = ? WHERE path = ?", [(utc_now_iso(), p) for p in paths])
            return self._rows(con, "WHERE path = ?", [paths[0]])[0]

    def untag(self, run: str | Path, *tags: str) -> CatalogEntry:
        """Remove tags from a run's catalog entry (tags stored in the run's attrs come back on rebuild)."""
        old = clean_tags(tags)
        with self._write() as con:
            paths = self._resolve(con, run)
            con.executemany("DELETE FROM tags WHERE path = ? AND tag = ?", [(p, t) for p in paths for t in old])
            return self._rows(con, "WHERE path = ?", [paths[0]])[0]

    def query(
        self,
        station: str | None = None,
        status: str | RunStatus | None = None,
        kind: str | None = None,
        since: datetime | date | str | None = None,
        until: datetime | date | str | None = None,
        tag: str | None = None,
        *,
        refresh: bool = True,
    ) -> list[CatalogEntry]:
        """Runs matching every given filter, oldest first; ``since <= started < until``.

        With ``refresh`` (default), runs the catalog lists as running are checked on disk first:
        one whose writer is gone is reported (and re-indexed) as crashed.
        """
        if refresh:
            self._refresh_running()
        filters = [
            ("station = ?", station),
            ("status = ?", None if status is None else str(RunStatus(status))),
            ("kind = ?", kind),
            ("started >= ?", None if since is None else time_bound(since)),
            ("started < ?", None if until is None else time_bound(until)),
            ("EXISTS (SELECT 1 FROM tags t WHERE t.path = runs.path AND t.tag = ?)", tag),
        ]
        used = [(clause, value) for clause, value in filters if value is not None]
        where = ("WHERE " + " AND ".join(c for c, _ in used)) if used else ""
        with self._connect() as con:
            return self._rows(con, where, [v for _, v in used])

    def _refresh_running(self) -> None:
        with self._connect() as con:
            running = [r[0] for r in con.execute("SELECT path FROM runs WHERE status = ?", [RunStatus.RUNNING.value])]
        stale: list[CatalogEntry] = []
        for rel in running:
            try:
                run = open_run(self.data_dir / rel)
                if run.status is not RunStatus.RUNNING:
                    stale.append(entry_for_run(run, rel))
            except (RunFormatError, OSError, KeyError, ValueError) as exc:
                log.debug("catalog %s: cannot check %s: %s", self.path, rel, exc)
        if stale:
            with self._write() as con:
                for entry in stale:
                    self._upsert(con, entry)

    def scan(self) -> Iterator[Path]:
        """Run folders (``*.zarr``) under the data directory; hidden folders (e.g. imports in progress) skipped."""
        for folder, dirs, _ in os.walk(self.data_dir):
            keep = []
            for name in sorted(dirs):
                if name.startswith("."):
                    continue
                if name.endswith(".zarr"):
                    yield Path(folder) / name
                else:
                    keep.append(name)
            dirs[:] = keep

    def rebuild(self) -> list[CatalogEntry]:
        """Rescan the runs on disk and rewrite the index; returns every entry.

        Catalog-only tags of runs still present are kept. Rows written while the scan ran (a writer
        registering or closing a run meanwhile) are newer than the scan and are not overwritten.
        A catalog file SQLite cannot read is moved aside (``catalog.sqlite.corrupt-<time>``) and recreated.
        """
        scan_started = utc_now_iso()
        found: dict[str, CatalogEntry] = {}
        for run_path in self.scan():
            try:
                run = open_run(run_path)
                entry = entry_for_run(run, self.relpath(run_path))
            except (RunFormatError, OSError, KeyError, ValueError) as exc:
                log.warning("catalog %s: skipping %s: %s", self.path, run_path, exc)
                continue
            found[entry.path] = entry
        try:
            self._replace(found, scan_started)
        except sqlite3.DatabaseError as exc:
            if type(exc) is not sqlite3.DatabaseError:  # locked, unable to open, ...: not a corrupt file
                raise
            aside = self.path.with_name(f"{CATALOG_FILE}.corrupt-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
            log.warning("catalog %s is unreadable (%s); moved to %s and recreated", self.path, exc, aside.name)
            self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self._replace(found, scan_started)
        return self.query(refresh=False)

    def _replace(self, found: dict[str, CatalogEntry], scan_started: str) -> None:
        with self._write() as con:
            for entry in found.values():
                self._upsert(con, entry, unless_updated_after=scan_started)
            for path, updated in con.execute("SELECT path, updated FROM runs").fetchall():
                if path not in found and updated <= scan_started:
                    con.execute("DELETE FROM runs WHERE path = ?", [path])


def _json_list(text: str | None) -> list[str]:
    return list(json.loads(text)) if text else []


def update_catalog(run_path: str | Path, *, timeout_s: float | None = None) -> None:
    """Best effort: (re)index a run in the catalog of its folder. Never raises: a failure logs a warning,
    because losing an index entry (``cryodaq runs --rebuild`` restores it) must never cost data.
    Waits at most ``timeout_s`` (default ``_HOOK_TIMEOUT_S``, 2 s) for a catalog another process holds."""
    run_path = Path(run_path)
    try:
        Catalog(run_path.parent, timeout_s=_HOOK_TIMEOUT_S if timeout_s is None else timeout_s).register(run_path)
    except Exception as exc:  # noqa: BLE001 - the catalog is an index; any failure is logged, not raised
        log.warning("run catalog %s not updated for %s: %s", run_path.parent / CATALOG_FILE, run_path.name, exc)


__all__ = ["CATALOG_FILE", "Catalog", "CatalogEntry", "clean_tags", "entry_for_run", "time_bound", "update_catalog"]
