"""A base for simulated SCPI instruments: a command tree matched by the SCPI rules, settings, a command log.

Headers are declared in the manual's notation, ``[SENSe#]:FREQuency:STARt`` (upper case =
short form, the whole word = long form; ``[...]`` = optional node; a trailing ``#`` = a
numeric suffix, 1 when omitted), and match what a client sends in either form, any
case, with or without the leading colon, as a real instrument's parser does. A header
may carry several suffixes (``SENS1:CORR:EDEL2``, ``SOUR#:POW#``): a handler gets all of
them, one per ``#`` node, in order. A program message may hold several commands
separated by ``;``: one that starts with ``:`` or ``*`` is rooted, any other continues
the previous command's path (IEEE 488.2 / SCPI-99 §6.2); the replies of the queries are
joined with ``;``. A failing command queues its error and ends the message (the
commands after it are not run); the replies of the queries before it are still sent,
so a failed query alone answers nothing and the client times out.

``ScpiFace`` adds the line server, an error queue (``SYST:ERR?``), the common commands
(``*IDN? *RST *CLS *OPC? *WAI *OPT? *TST?``), stored settings (``add_setting``), and
``command_log`` — every line received, oldest first — so tests can check what reached
the instrument (and what did not).

Hand-written because no maintained SCPI *server* library fits: pyvisa-sim matches fixed
strings or regular expressions only (no short/long forms, no physics behind a query).
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sim_instruments.servers.line_server import LineServer, ServedFace
from sim_instruments.servers.scpi_parsing import (
    ErrorQueue,
    ScpiError,
    parse_bool,
    parse_float,
    parse_int,
    split_program,
    undefined_header,
    unquote,
)

#: a handler gets the numeric suffixes of its pattern's ``#`` nodes (1 where omitted) and the argument text
Handler = Callable[[tuple[int, ...], str], "str | None"]

_NODE = re.compile(r"^(?P<short>[A-Z0-9_*]+)(?P<rest>[a-z0-9_]*)(?P<suffix>#?)$")
_INPUT_SUFFIX = re.compile(r"^(?P<word>\*?[A-Z][A-Z0-9_]*?)(?P<num>\d+)$")


@dataclass(frozen=True)
class _Node:
    short: str
    long: str
    optional: bool
    suffix: bool


def _parse_pattern(pattern: str) -> list[_Node]:
    if pattern.endswith("?"):
        raise ValueError(f"SCPI pattern {pattern!r}: give the header without '?' and the handler as query=")
    nodes: list[_Node] = []
    for m in re.finditer(r"\[:?([^\]]+)\]|:?([^:\[\]]+)", pattern.strip()):
        text, optional = (m.group(1), True) if m.group(1) else (m.group(2), False)
        nm = _NODE.match(text)
        if not nm:
            raise ValueError(f"bad SCPI mnemonic {text!r} in {pattern!r}")
        nodes.append(_Node(nm["short"], nm["short"] + nm["rest"].upper(), optional, bool(nm["suffix"])))
    if not nodes:
        raise ValueError(f"empty SCPI pattern {pattern!r}")
    return nodes


@dataclass(frozen=True)
class _Entry:
    handler: Handler
    #: per node of the header as sent: the handler's suffix slot it fills, or None (no suffix allowed)
    slots: tuple[int | None, ...]
    n_suffixes: int


class CommandTree:
    """Maps headers as sent by a client to set/query handlers, by the SCPI short/long-form rules.

    Every combination of present/absent optional nodes of a pattern is stored under the
    tuple of its short forms; the spellings accepted at each level of the tree are kept
    per parent path, so the same word may mean different nodes under different parents.
    A later ``add`` of the same header replaces the earlier handler.
    """

    def __init__(self) -> None:
        self._table: dict[tuple[tuple[str, ...], bool], _Entry] = {}
        self._spellings: dict[tuple[str, ...], dict[str, tuple[str, str]]] = {}  # parent -> spelling -> (short, long)

    def add(self, pattern: str, set: Handler | None = None, query: Handler | None = None) -> None:
        """Register ``pattern``; ``set`` handles ``HEADER args``, ``query`` handles ``HEADER? args``."""
        if set is None and query is None:
            raise ValueError(f"SCPI pattern {pattern!r}: give a set or a query handler")
        nodes = _parse_pattern(pattern)
        slot_of = {i: n for n, i in enumerate(i for i, node in enumerate(nodes) if node.suffix)}
        variants: list[list[int]] = [[]]  # indices of the present nodes
        for i, node in enumerate(nodes):
            variants = [v + [i] for v in variants] + (variants if node.optional else [])
        for present in variants:
            key = tuple(nodes[i].short for i in present)
            for depth, i in enumerate(present):
                self._add_spelling(key[:depth], nodes[i], pattern)
            slots = tuple(slot_of.get(i) for i in present)
            for handler, is_query in ((set, False), (query, True)):
                if handler is not None:
                    self._table[(key, is_query)] = _Entry(handler, slots, len(slot_of))

    def _add_spelling(self, parent: tuple[str, ...], node: _Node, pattern: str) -> None:
        level = self._spellings.setdefault(parent, {})
        for spelling in (node.short, node.long):
            known = level.setdefault(spelling, (node.short, node.long))
            if known != (node.short, node.long):
                raise ValueError(f"SCPI pattern {pattern!r}: {spelling!r} would mean both {known[1]!r} and "
                                 f"{node.long!r} under {':'.join(parent) or 'the root'}")

    def lookup(self, header: str) -> tuple[Handler, tuple[int, ...]]:
        """(handler, numeric suffixes) for ``header`` as sent (``?`` = query); ScpiError -113 when unknown."""
        query = header.endswith("?")
        text = header[:-1] if query else header
        key: list[str] = []
        numbers: list[int | None] = []
        for raw in text.lstrip(":").upper().split(":"):
            level = self._spellings.get(tuple(key), {})
            node, num = level.get(raw), None
            if node is None:
                m = _INPUT_SUFFIX.match(raw)
                node = level.get(m["word"]) if m else None
                if node is None:
                    raise undefined_header(header)
                num = int(m["num"])
            key.append(node[0])
            numbers.append(num)
        entry = self._table.get((tuple(key), query))
        if entry is None:
            raise undefined_header(header)
        suffixes = [1] * entry.n_suffixes
        for slot, num in zip(entry.slots, numbers, strict=True):
            if num is not None:
                if slot is None:
                    raise undefined_header(header)
                suffixes[slot] = num
        return entry.handler, tuple(suffixes)


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
    return Kind(lambda text, what: parse_int(text, what, lo, hi), lambda v: str(int(v)))


BOOL = Kind(parse_bool, lambda v: "1" if v else "0")


def choice(*mnemonics: str) -> Kind:
    """One of ``mnemonics`` given in manual notation (``INTernal``); answers the short form."""
    forms = {}
    for m in mnemonics:
        short = re.match(r"^[A-Z0-9]*", m).group(0) or m.upper()
        forms[short] = short
        forms[m.upper()] = short

    def parse(text: str, what: str) -> str:
        value = forms.get(unquote(text).upper())
        if value is None:
            raise ScpiError(-224, f"Illegal parameter value; {what} expects one of {list(mnemonics)}, got {text!r}")
        return value
    return Kind(parse, str)


def quoted() -> Kind:
    return Kind(lambda text, what: unquote(text), lambda v: f'"{v}"')


class ScpiFace(ServedFace):
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
        self.commands = CommandTree()
        self.values: dict[str, Any] = {}
        self._defaults: dict[str, Any] = {}
        self._lock = threading.RLock()
        self.server = LineServer(self, host, port, reply_termination=self.reply_termination, name=name)
        add = self.commands.add
        add("*IDN", query=lambda s, a: self.idn)
        add("*OPT", query=lambda s, a: self.options)
        add("*RST", set=lambda s, a: self.reset())
        add("*CLS", set=lambda s, a: self.errors.clear())
        add("*OPC", query=lambda s, a: "1")
        add("*WAI", set=lambda s, a: None)
        add("*TST", query=lambda s, a: "0")
        add("SYSTem:ERRor[:NEXT]", query=lambda s, a: self.errors.pop())

    # -- settings ------------------------------------------------------------------------
    def add_setting(self, key: str, pattern: str, default: Any, kind: Kind,
                    on_set: Callable[[Any], None] | None = None, query: bool = True) -> None:
        """A stored value with a set command and (``query``) its query; ``on_set(value)`` after a set."""
        self.values[key] = self._defaults[key] = default

        def setter(suffixes: tuple[int, ...], args: str) -> None:
            value = kind.parse(args, pattern)
            self.values[key] = value
            if on_set is not None:
                on_set(value)

        self.commands.add(pattern, set=setter,
                          query=(lambda s, a: kind.fmt(self.values[key])) if query else None)

    def reset(self) -> None:
        """*RST: every setting back to its default (subclasses then push state to the world)."""
        self.values.update(self._defaults)
        self.after_reset()

    def after_reset(self) -> None:
        """Hook for subclasses: propagate the reset state to the world."""

    # -- dispatch ------------------------------------------------------------------------
    def received(self, pattern: str) -> list[str]:
        """Logged commands whose text matches the regular expression ``pattern`` (case-insensitive)."""
        rx = re.compile(pattern, re.IGNORECASE)
        return [c for c in list(self.command_log) if rx.search(c)]

    def handle(self, line: str) -> str | None:
        """Run every command of a program message; the replies of its queries joined by ``;``."""
        self.command_log.append(line)
        replies: list[str] = []
        path: list[str] = []
        with self._lock:
            for command in split_program(line):
                parts = command.split(None, 1)
                header, args = parts[0], (parts[1].strip() if len(parts) > 1 else "")
                if not header.startswith((":", "*")) and path:
                    header = ":".join([*path, header])
                if not header.startswith("*"):
                    path = header.lstrip(":").split(":")[:-1]
                try:
                    handler, suffixes = self.commands.lookup(header)
                    reply = handler(suffixes, args)
                except ScpiError as err:
                    self.errors.push(err)
                    break
                if header.endswith("?") and reply is not None:
                    replies.append(reply)
        return ";".join(replies) if replies else None
