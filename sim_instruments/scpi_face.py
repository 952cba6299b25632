"""A base for simulated SCPI instruments: header matching by the SCPI rules, settings, a command log.

Headers are declared in the manual's notation, ``[:SOURce]:FREQuency[:CW]`` (upper case =
short form; ``[...]`` = optional node; a trailing ``#`` = numeric suffix allowed, e.g.
``:READ:SAN#``), and match what a client sends in either form, any case, with or without
the leading colon — as a real instrument's parser does. A program message may hold
several commands separated by ``;``: one that starts with ``:`` or ``*`` is rooted, any
other continues the previous command's path (IEEE 488.2); the replies of the queries are
joined with ``;``.

``ScpiFace`` adds the line server, an error queue (``SYST:ERR?``), the common commands
(``*IDN? *RST *CLS *OPC? *WAI *OPT? *TST?``), and ``command_log`` — every line received,
oldest first — so tests can check what reached the instrument (and what did not).

Hand-written because no maintained SCPI *server* library fits: pyvisa-sim matches fixed
strings only (no short/long forms, no physics behind a query).
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self

from .scpi import ErrorQueue, ScpiError, parse_bool, parse_float, undefined_header
from .tcp_server import LineServer

Handler = Callable[[str, "int | None"], "str | None"]

_NODE = re.compile(r"^(?P<short>[A-Z0-9*]+)(?P<rest>[a-z0-9]*)(?P<suffix>#?)$")
_INPUT_NODE = re.compile(r"^(?P<word>\*?[A-Z][A-Z0-9_]*?)(?P<num>\d*)$")


@dataclass(frozen=True)
class _Node:
    short: str
    long: str
    optional: bool
    suffix: bool


def _parse_pattern(pattern: str) -> tuple[list[_Node], bool]:
    query = pattern.endswith("?")
    body = pattern[:-1] if query else pattern
    nodes: list[_Node] = []
    for m in re.finditer(r"\[:?([^\]]+)\]|:?([^:\[\]]+)", body):
        text, optional = (m.group(1), True) if m.group(1) else (m.group(2), False)
        nm = _NODE.match(text)
        if not nm:
            raise ValueError(f"bad SCPI mnemonic {text!r} in {pattern!r}")
        short = nm["short"]
        nodes.append(_Node(short, short + nm["rest"].upper(), optional, bool(nm["suffix"])))
    return nodes, query


class CommandSet:
    """Maps headers as sent by a client to handlers, by the SCPI short/long-form rules."""

    def __init__(self) -> None:
        self._table: dict[tuple[tuple[str, ...], bool], Handler] = {}
        self._spelling: dict[str, str] = {}  # accepted spelling -> short form
        self._suffixed: set[str] = set()

    def add(self, pattern: str, handler: Handler) -> None:
        nodes, query = _parse_pattern(pattern)
        for node in nodes:
            for spelling in (node.short, node.long):
                known = self._spelling.setdefault(spelling, node.short)
                if known != node.short:
                    raise ValueError(f"{spelling!r} is both {known!r} and {node.short!r}")
            if node.suffix:
                self._suffixed.add(node.short)
        # every combination of present/absent optional nodes is a key
        keys: list[tuple[str, ...]] = [()]
        for node in nodes:
            keys = [k + (node.short,) for k in keys] + (keys if node.optional else [])
        for key in keys:
            self._table[(key, query)] = handler

    def lookup(self, header: str) -> tuple[Handler, int | None]:
        """(handler, numeric suffix or None) for ``header`` as sent; ScpiError -113 when unknown."""
        query = header.endswith("?")
        text = header[:-1] if query else header
        key: list[str] = []
        suffix: int | None = None
        for raw in text.lstrip(":").upper().split(":"):
            short = self._spelling.get(raw)
            if short is None:
                m = _INPUT_NODE.match(raw)
                if m and m["num"] and self._spelling.get(m["word"]) in self._suffixed:
                    short, suffix = self._spelling[m["word"]], int(m["num"])
                else:
                    raise undefined_header(header)
            key.append(short)
        handler = self._table.get((tuple(key), query))
        if handler is None:
            raise undefined_header(header)
        return handler, suffix


def split_program(line: str) -> list[str]:
    """Split a program message at ';' outside quotes."""
    parts, current, quote = [], [], ""
    for ch in line:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            current.append(ch)
        elif ch == ";":
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


# -- value kinds for settings: parse(text) -> value and fmt(value) -> text ---------------------

@dataclass(frozen=True)
class Kind:
    parse: Callable[[str, str], Any]
    fmt: Callable[[Any], str]


def number(lo: float = -float("inf"), hi: float = float("inf"), fmt: Callable[[float], str] = repr) -> Kind:
    """A float in [lo, hi] (−222 "Data out of range" otherwise)."""
    def parse(text: str, what: str) -> float:
        value = parse_float(text, what)
        if not lo <= value <= hi:
            raise ScpiError(-222, f"Data out of range; {what} must be in [{lo:g}, {hi:g}], got {value:g}")
        return value
    return Kind(parse, lambda v: fmt(float(v)))


def integer(lo: int, hi: int) -> Kind:
    def parse(text: str, what: str) -> int:
        value = parse_float(text, what)
        if value != int(value) or not lo <= value <= hi:
            raise ScpiError(-222, f"Data out of range; {what} must be an integer in [{lo}, {hi}], got {text}")
        return int(value)
    return Kind(parse, lambda v: str(int(v)))


BOOL = Kind(lambda text, what: parse_bool(text, what), lambda v: "1" if v else "0")


def choice(*mnemonics: str) -> Kind:
    """One of ``mnemonics`` given in manual notation (``INTernal``); answers the short form."""
    forms = {}
    for m in mnemonics:
        short = re.match(r"^[A-Z0-9]*", m).group(0) or m.upper()
        forms[short] = short
        forms[m.upper()] = short

    def parse(text: str, what: str) -> str:
        value = forms.get(text.strip().strip("'\"").upper())
        if value is None:
            raise ScpiError(-224, f"Illegal parameter value; {what} expects one of {list(mnemonics)}, got {text!r}")
        return value
    return Kind(parse, str)


def quoted() -> Kind:
    return Kind(lambda text, what: text.strip().strip("'\""), lambda v: f'"{v}"')


class ScpiFace:
    """Base of the SCPI faces: ``Face(world, host, port, name, ...)`` with start/stop/port/host."""

    face = "scpi"
    idn = "cryodaq-sim,SCPI,SIM0000,0.1"
    options = ""
    reply_termination = "\n"
    log_size = 10_000

    def __init__(self, world: Any, host: str = "127.0.0.1", port: int = 0, name: str = "instrument") -> None:
        self.world = world
        self.name = name
        self.errors = ErrorQueue()
        self.command_log: deque[str] = deque(maxlen=self.log_size)
        self.commands = CommandSet()
        self.values: dict[str, Any] = {}
        self._defaults: dict[str, Any] = {}
        self._lock = threading.RLock()
        self.server = LineServer(self, host, port, reply_termination=self.reply_termination, name=name)
        for pattern, handler in (
            ("*IDN?", lambda a, s: self.idn), ("*OPT?", lambda a, s: self.options),
            ("*RST", lambda a, s: self.reset()), ("*CLS", lambda a, s: self.errors.clear()),
            ("*OPC?", lambda a, s: "1"), ("*WAI", lambda a, s: None), ("*TST?", lambda a, s: "0"),
            ("SYSTem:ERRor[:NEXT]?", lambda a, s: self.errors.pop()),
        ):
            self.commands.add(pattern, handler)

    # -- settings ------------------------------------------------------------------------
    def add_setting(self, key: str, pattern: str, default: Any, kind: Kind,
                    on_set: Callable[[Any], None] | None = None, query: bool = True) -> None:
        """A stored value with a set command and (``query``) its query; ``on_set(value)`` after a set."""
        self.values[key] = self._defaults[key] = default

        def setter(args: str, suffix: int | None) -> None:
            value = kind.parse(args, pattern)
            self.values[key] = value
            if on_set is not None:
                on_set(value)

        self.commands.add(pattern, setter)
        if query:
            self.commands.add(pattern + "?", lambda args, suffix: kind.fmt(self.values[key]))

    def reset(self) -> None:
        """*RST: every setting back to its default (subclasses then push state to the world)."""
        self.values.update(self._defaults)
        self.after_reset()

    def after_reset(self) -> None:
        """Hook for subclasses: propagate the reset state to the world."""

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.server.port

    @property
    def host(self) -> str:
        return self.server.host

    def start(self) -> Self:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- dispatch ------------------------------------------------------------------------
    def received(self, pattern: str) -> list[str]:
        """Logged commands whose text matches the regular expression ``pattern`` (case-insensitive)."""
        rx = re.compile(pattern, re.IGNORECASE)
        return [c for c in list(self.command_log) if rx.search(c)]

    def handle(self, line: str) -> str | None:
        self.command_log.append(line)
        replies: list[str] = []
        path: Sequence[str] = ()
        with self._lock:
            for part in split_program(line):
                header, _, args = part.partition(" ")
                if not header.startswith((":", "*")) and path:
                    header = ":".join([*path, header])
                if not header.startswith("*"):
                    path = header.lstrip(":").split(":")[:-1]
                try:
                    handler, suffix = self.commands.lookup(header)
                    reply = handler(args.strip(), suffix)
                except ScpiError as err:
                    self.errors.push(err)
                    if header.endswith("?"):
                        return None  # a failed query answers nothing: the client times out
                    continue
                if header.endswith("?") and reply is not None:
                    replies.append(reply)
        return ";".join(replies) if replies else None
