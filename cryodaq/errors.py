"""Exceptions a user can act on. Each message names what is wrong and where."""

from __future__ import annotations

import errno


class CryodaqError(Exception):
    """Base class of all cryodaq errors."""

    def __str__(self) -> str:
        # qcodes appends context ("setting x to 3") to e.args; keep it readable.
        return "; ".join(str(a) for a in self.args)


def one_line(text: object, limit: int | None = None) -> str:
    """``text`` on one line: control characters (newlines, tabs ...) escaped; cut at ``limit`` characters."""
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return out if limit is None or len(out) <= limit else out[: limit - 3] + "..."


class StationConfigError(CryodaqError, ValueError):
    """A station file is malformed: names the file, the key and what was expected (one line)."""

    def __init__(self, file: str, key: str, expected: str, got: object = None) -> None:
        self.file, self.key, self.expected, self.got = str(file), key, expected, got
        msg = f"{one_line(self.file)}: {one_line(key, 200)}: expected {one_line(expected, 500)}"
        if got is not None:
            msg += f", got {one_line(repr(got), 200)}"
        super().__init__(msg)


class InstrumentError(CryodaqError, RuntimeError):
    """An instrument did not answer, or answered garbage: names it and its address."""

    def __init__(self, instrument: str, address: str | None, problem: str) -> None:
        self.instrument, self.address, self.problem = instrument, address, problem
        where = f" at {address}" if address else ""
        super().__init__(f"instrument {instrument!r}{where}: {problem}")


class SafetyLimitError(CryodaqError, ValueError):
    """A value was refused before it reached the instrument because it breaks a station limit."""

    def __init__(self, instrument: str, parameter: str, value: object, limit: str) -> None:
        self.instrument, self.parameter, self.value, self.limit = instrument, parameter, value, limit
        super().__init__(
            f"{instrument}.{parameter}: refused {value!r}, outside the station safety limit {limit}; nothing was sent"
        )


class RunFormatError(CryodaqError, ValueError):
    """A run on disk is not in a format this version can read: names the path and the problem."""


class StorageFullError(CryodaqError, OSError):
    """The disk filled up during a run; data committed before it is intact."""


class ImportFormatError(CryodaqError, ValueError):
    """A file given to an importer is corrupt, truncated or not in the expected format: names the file
    and the problem. Nothing is written when this is raised."""


class FridgeNotStableError(CryodaqError, TimeoutError):
    """A fridge channel did not settle within tolerance of its target in time: names the fridge,
    the channel, the target, the tolerance and the last reading."""


class DerivedExistsError(CryodaqError, FileExistsError):
    """A derived group (e.g. ``reprocessed/<label>``) already exists in the run: names it. Nothing was
    written; choose another label or ask to overwrite."""


class RunDamagedError(RunFormatError):
    """Stored data of a run are missing or corrupt (a chunk file absent below a committed length, a
    checksum that does not match, unreadable metadata): names the run, and each group, array and
    sample range affected. ``damage`` holds the findings (:class:`cryodaq.storage.integrity.Damage`)."""

    def __init__(self, message: str, damage: list | None = None, path: str = "") -> None:
        self.damage = list(damage or [])
        self.path = path
        super().__init__(message)


class ListenError(CryodaqError, OSError):
    """A port cryodaq (or a simulator it starts) must listen on cannot be had: one line naming the
    station file and key, the listener (which instrument, receiver or publisher), the protocol,
    host and port, and why."""

    def __init__(self, port: int, *, host: str = "127.0.0.1", protocol: str = "TCP", listener: str = "",
                 instrument: str = "", file: str = "", key: str = "", hint: str = "",
                 problem: str = "cannot listen there") -> None:
        self.port, self.host, self.protocol, self.listener = int(port), str(host), protocol, listener
        self.instrument, self.file, self.key, self.hint, self.problem = instrument, str(file), key, hint, problem
        where = "".join(f"{p}: " for p in (self.file, key) if p)
        who = f"{listener} cannot listen on " if listener else ""
        tail = f"; {hint}" if hint else ""
        super().__init__(f"{where}{who}{protocol} port {self.port} of {self.host}: {problem}{tail}")

    @classmethod
    def from_os_error(cls, exc: OSError, port: int, **kwargs: object) -> ListenError:
        """The error for a failed ``bind``: :class:`PortInUseError` for ``EADDRINUSE``, else the OS's reason."""
        if exc.errno == errno.EADDRINUSE:
            return PortInUseError(port, **kwargs)
        return cls(port, **{"problem": exc.strerror or str(exc), **kwargs})  # type: ignore[arg-type]

    def fields(self) -> dict[str, object]:
        """The keyword arguments that make this error again (to send it across a process boundary)."""
        return {"port": self.port, "host": self.host, "protocol": self.protocol, "listener": self.listener,
                "instrument": self.instrument, "file": self.file, "key": self.key, "hint": self.hint,
                "problem": self.problem}

    def located(self, file: str, key: str, hint: str = "") -> ListenError:
        """The same error naming the station file and key it came from (a simulator plugin knows neither)."""
        return type(self)(**{**self.fields(), "file": file, "key": key, "hint": hint or self.hint})


class PortInUseError(ListenError):
    """The port is taken by another program (``EADDRINUSE``)."""

    def __init__(self, port: int, **kwargs: object) -> None:
        kwargs.setdefault("problem", "in use by another program")
        super().__init__(port, **kwargs)  # type: ignore[arg-type]


class OutputDirError(CryodaqError, OSError):
    """The output directory cannot hold a run (cannot be created, not writable, disk nearly full);
    found before any instrument was touched, so nothing was started and nothing was written."""


class StoppedError(CryodaqError):
    """Work stopped on the operator's request (Ctrl-C, SIGTERM, SIGHUP) before it produced a result;
    nothing half-written was left (exit status 130, no traceback)."""
