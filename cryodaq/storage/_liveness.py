"""Who is writing a run, and is that writer still alive? Plus the UTC timestamps stored in attrs."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import Any

import psutil


def utc_now_iso() -> str:
    """Current UTC time as ISO-8601 with microseconds and a 'Z' suffix."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(value: str | None) -> datetime | None:
    """Parse a timestamp written by :func:`utc_now_iso` (None stays None)."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def writer_identity() -> dict[str, Any]:
    """Host, pid and process start time of this process, stored so readers can test liveness."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_started": psutil.Process().create_time()}


def writer_alive(meta: dict[str, Any], *, stale_after_s: float) -> bool:
    """Whether the process that wrote ``meta`` (root attrs) may still be writing.

    On the writer's own host the pid decides (checked against the process start time, so a
    reused pid does not count, and a zombie is dead). From another host only the heartbeat
    can tell: older than ``stale_after_s`` means dead.
    """
    if meta.get("host") == socket.gethostname() and "pid" in meta:
        try:
            proc = psutil.Process(int(meta["pid"]))
            started = proc.create_time()
            zombie = proc.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:  # includes psutil.ZombieProcess
            return False
        except psutil.AccessDenied:  # it exists; we may not look closer
            return True
        if "pid_started" in meta and abs(started - float(meta["pid_started"])) > 1.0:
            return False
        return not zombie
    beat = parse_iso(meta.get("heartbeat"))
    if beat is None:
        return False
    return (datetime.now(UTC) - beat).total_seconds() < stale_after_s
