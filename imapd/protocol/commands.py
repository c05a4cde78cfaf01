"""Typed commands: what the parser produces and the handlers consume.

Strings that are names or text from the client stay as the client sent them
(`str` decoded as UTF-8 with surrogateescape, so 8-bit input survives for the
handlers to judge); search and login values that may carry any octets stay
`bytes`.  Mailbox names are still in their wire form (modified UTF-7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .seqset import SeqSet

# A search key is a tuple (NAME, *args): ("ALL",), ("FLAG", "\\Seen"),
# ("UNFLAG", "\\Seen"), ("NOT", key), ("OR", key, key), ("AND", [keys]),
# ("ORN", [keys]) for a chain `OR a OR b c` (any of the keys; read without recursion),
# ("SEQ", SeqSet), ("UID", SeqSet), ("HEADER", field, bytes), ("BODY", bytes),
# ("TEXT", bytes), ("BEFORE"|"ON"|"SINCE"|"SENTBEFORE"|"SENTON"|"SENTSINCE", date),
# ("LARGER"|"SMALLER", int), ("NEW",), ("OLD",), ("RECENT",), ("NOTRECENT",),
# ("MODSEQ", int), ("OLDER"|"YOUNGER", int).  FROM/TO/CC/BCC/SUBJECT become HEADER.
SearchKey = tuple


@dataclass(slots=True)
class Command:
    tag: str
    name: str  # upper-case command name, e.g. "FETCH" (without the UID prefix)

    uid = False  # class default; UID-capable commands override


@dataclass(slots=True)
class Simple(Command):
    """Commands with no arguments: CAPABILITY NOOP LOGOUT STARTTLS CHECK CLOSE
    UNSELECT EXPUNGE IDLE NAMESPACE."""


@dataclass(slots=True)
class Login(Command):
    user: bytes
    password: bytes


@dataclass(slots=True)
class Authenticate(Command):
    mechanism: str
    initial: bytes | None  # SASL-IR initial response (base64 text), b"=" for empty


@dataclass(slots=True)
class Enable(Command):
    capabilities: list[str]


@dataclass(slots=True)
class Id(Command):
    params: dict[str, str | None] | None


@dataclass(slots=True)
class MailboxCommand(Command):
    """SELECT EXAMINE CREATE DELETE SUBSCRIBE UNSUBSCRIBE."""

    mailbox: str
    params: list[Any] = field(default_factory=list)  # e.g. SELECT (CONDSTORE)


@dataclass(slots=True)
class Rename(Command):
    old: str
    new: str


@dataclass(slots=True)
class List(Command):
    """LIST and LSUB (with RFC 5258 selection and return options)."""

    reference: str
    patterns: list[str]
    select_options: list[str] = field(default_factory=list)
    return_options: list[Any] = field(default_factory=list)


@dataclass(slots=True)
class Status(Command):
    mailbox: str
    items: list[str]


@dataclass(slots=True)
class AppendMessage:
    flags: list[str]
    date: float | None  # POSIX time from the date-time argument
    data: bytes
    binary: bool = False  # sent as literal8 (~{n})


@dataclass(slots=True)
class Append(Command):
    mailbox: str
    messages: list[AppendMessage]


@dataclass(slots=True)
class UidExpunge(Command):
    seqset: SeqSet
    uid = True


@dataclass(slots=True)
class Search(Command):
    key: SearchKey
    charset: str | None = None
    return_options: list[str] | None = None  # ESEARCH RETURN (...); None = plain SEARCH
    uid: bool = False


@dataclass(frozen=True, slots=True)
class Section:
    """A BODY[...] / BINARY[...] section: part path plus specifier."""

    path: tuple[int, ...] = ()
    spec: str | None = None  # HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME
    fields: tuple[str, ...] = ()  # upper-case field names for HEADER.FIELDS(.NOT)


@dataclass(frozen=True, slots=True)
class FetchItem:
    """One fetch attribute.  `name` is FLAGS, UID, ENVELOPE, BODY, BODYSTRUCTURE,
    INTERNALDATE, RFC822.SIZE, RFC822, RFC822.HEADER, RFC822.TEXT, MODSEQ,
    BODY[] (with `section`), BINARY[] or BINARY.SIZE[]."""

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None  # <offset.length>
    peek: bool = False


@dataclass(slots=True)
class Fetch(Command):
    seqset: SeqSet
    items: list[FetchItem]
    modifiers: dict[str, Any] = field(default_factory=dict)
    uid: bool = False


@dataclass(slots=True)
class Store(Command):
    seqset: SeqSet
    mode: str  # "set" | "add" | "remove"
    silent: bool
    flags: list[str]
    modifiers: dict[str, Any] = field(default_factory=dict)
    uid: bool = False


@dataclass(slots=True)
class CopyMove(Command):
    """COPY and MOVE."""

    seqset: SeqSet
    mailbox: str
    uid: bool = False
