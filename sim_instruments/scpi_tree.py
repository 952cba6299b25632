"""SCPI command trees for the faces of full SCPI instruments (VNAs, sources, ...).

Real SCPI instruments accept every header in its short form (``SENS``) or long form
(``SENSE``), with numeric suffixes (``SENS2``, ``CALC1``), optional nodes
(``[SENSe]:FREQuency:STARt`` = ``FREQ:STAR``), and several commands on one line
separated by ``;`` (``INIT1:IMM; *WAI``, ``DISP:LAY GRID;:DISP:LAY:GRID 2,1``): a
command after ``;`` without a leading ``:`` continues from the previous header's
parent node (IEEE 488.2 / SCPI-99 §6.2). qcodes drivers use all of these, so a
face matches headers by pattern instead of by exact string. None of the installed
libraries parses SCPI on the instrument side (pyvisa-sim matches exact strings or
regular expressions), hence this small hand-written matcher.

Pattern syntax: nodes separated by ``:``; upper-case letters are the short form,
the whole word the long form; a trailing ``#`` takes an optional numeric suffix
(default 1); ``[NODE]`` is optional. Common commands are written as-is (``*IDN``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .scpi import ErrorQueue, ScpiError, undefined_header

#: a handler gets the numeric suffixes of the pattern's ``#`` nodes (1 where omitted) and the argument text
Handler = Callable[[tuple[int, ...], str], "str | None"]

_TOKEN = re.compile(r"^([A-Z_*][A-Z_]*?)(\d*)$")


@dataclass(frozen=True)
class _Node:
    short: str
    long: str
    suffix: bool
    optional: bool

    def matches(self, mnemonic: str, number: str) -> bool:
        if number and not self.suffix:
            return False
        return mnemonic in (self.short, self.long)


def _parse_pattern(pattern: str) -> tuple[_Node, ...]:
    nodes = []
    for part in pattern.strip().replace("[:", ":[").lstrip(":").split(":"):
        optional = part.startswith("[") and part.endswith("]")
        word = part[1:-1] if optional else part
        suffix = word.endswith("#")
        word = word.rstrip("#")
        if not word or not re.fullmatch(r"\*?[A-Za-z_]+", word):
            raise ValueError(f"bad SCPI pattern node {part!r} in {pattern!r}")
        short = "".join(ch for ch in word if ch.isupper() or ch in "*_")
        nodes.append(_Node(short=short, long=word.upper(), suffix=suffix, optional=optional))
    return tuple(nodes)


def _split_tokens(header: str) -> list[tuple[str, str]] | None:
    out = []
    for tok in header.split(":"):
        m = _TOKEN.match(tok)
        if not m:
            return None
        out.append((m[1], m[2]))
    return out


def _match(nodes: tuple[_Node, ...], tokens: list[tuple[str, str]]) -> list[int] | None:
    """Suffixes of the '#' nodes if ``tokens`` spell ``nodes`` (optional nodes may be left out)."""
    if not nodes:
        return [] if not tokens else None
    node, rest = nodes[0], nodes[1:]
    if tokens and node.matches(*tokens[0]):
        tail = _match(rest, tokens[1:])
        if tail is not None:
            return ([int(tokens[0][1] or 1)] if node.suffix else []) + tail
    if node.optional:
        tail = _match(rest, tokens)
        if tail is not None:
            return ([1] if node.suffix else []) + tail
    return None


def split_units(text: str, units: tuple[str, ...] = ("HZ", "DBM", "DB", "S")) -> str:
    """``'5GHz'`` -> ``'5e9'``: strip a unit and apply an SI prefix, as SCPI numeric parameters allow."""
    t = text.strip()
    upper = t.upper()
    for unit in units:
        if upper.endswith(unit) and len(upper) > len(unit):
            body = t[: -len(unit)].strip()
            scale = {"K": "e3", "M": "e6", "G": "e9", "U": "e-6", "N": "e-9", "P": "e-12"}
            if body and body[-1].upper() in scale and unit in ("HZ", "S"):
                # 'MHZ' is mega-hertz but 'MS' is milli-second: SCPI's only ambiguity
                if unit == "S" and body[-1].upper() == "M":
                    return body[:-1] + "e-3"
                return body[:-1] + scale[body[-1].upper()]
            return body
    return t


def split_line(line: str) -> list[str]:
    """The ``;``-separated commands of a program message (quoted strings kept whole)."""
    parts, buf, quote = [], [], ""
    for ch in line:
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            buf.append(ch)
        elif ch == ";":
            parts.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf).strip())
    return [p for p in parts if p]


def unquote(text: str) -> str:
    """``'Trc1'`` or ``"Trc1"`` -> ``Trc1`` (whitespace around it dropped)."""
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    return t


def split_args(text: str) -> list[str]:
    """Comma-separated arguments, quotes respected and stripped."""
    if not text.strip():
        return []
    out, buf, quote = [], [], ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
            else:
                buf.append(ch)
        elif ch in "'\"":
            quote = ch
        elif ch == ",":
            out.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
    out.append("".join(buf).strip())
    return out


class ScpiTree:
    """Header patterns -> set/query handlers, with an error queue answered by ``SYST:ERR?``.

    ``dispatch(line)`` runs every command of the line in order and returns the
    replies of its queries joined by ``;`` (None when the line held no query, or when
    a command failed before any reply: the error is queued, the rest of the line is
    skipped, as on a real instrument).
    """

    def __init__(self) -> None:
        self._entries: list[tuple[tuple[_Node, ...], Handler | None, Handler | None]] = []
        self.errors = ErrorQueue()
        self.add("SYSTem:ERRor[:NEXT]", query=lambda s, a: self.errors.pop())
        self.add("*CLS", set=lambda s, a: self.errors.clear())

    def add(self, pattern: str, set: Handler | None = None, query: Handler | None = None) -> None:
        """Register ``pattern``; ``set`` handles ``HEADER args``, ``query`` handles ``HEADER? args``."""
        if set is None and query is None:
            raise ValueError(f"pattern {pattern!r}: give a set or a query handler")
        self._entries.append((_parse_pattern(pattern), set, query))

    def _find(self, tokens: list[tuple[str, str]], is_query: bool) -> tuple[Handler, tuple[int, ...]] | None:
        for nodes, set_fn, query_fn in self._entries:
            fn = query_fn if is_query else set_fn
            if fn is None:
                continue
            suffixes = _match(nodes, tokens)
            if suffixes is not None:
                return fn, tuple(suffixes)
        return None

    def dispatch(self, line: str) -> str | None:
        replies: list[str] = []
        prefix: list[tuple[str, str]] = []
        for command in split_line(line):
            parts = command.split(None, 1)
            header, args = parts[0].upper(), (parts[1].strip() if len(parts) > 1 else "")
            is_query = header.endswith("?")
            bare = header.rstrip("?")
            absolute = bare.startswith((":", "*"))
            tokens = _split_tokens(bare.lstrip(":"))
            try:
                if tokens is None:
                    raise ScpiError(-102, f"Syntax error; {header}")
                found = None
                if prefix and not absolute:
                    found = self._find(prefix + tokens, is_query)
                    if found is not None:
                        tokens = prefix + tokens
                if found is None:
                    found = self._find(tokens, is_query)
                if found is None:
                    raise undefined_header(header)
                fn, suffixes = found
                reply = fn(suffixes, args)
            except ScpiError as err:
                self.errors.push(err)
                break
            if not bare.startswith("*"):
                prefix = tokens[:-1]
            if is_query:
                replies.append("" if reply is None else str(reply))
        return ";".join(replies) if replies else None
