"""Typed commands: what the parser produces and the handlers consume.

Strings that are names or text from the client stay as the client sent them
(`str` decoded as UTF-8 with surrogateescape, so 8-bit input survives for the
handlers to judge); search and login values that may carry any octets stay
`bytes`.  Mailbox names are still in their wire form (modified UTF-7).
"""

from __future__ import annotations

from ..record import Record
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
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


class Command(Record):
    __slots__ = ('tag', 'name')
    tag: str
    name: str  # upper-case command name, e.g. "FETCH" (without the UID prefix)

    uid = False  # class default; UID-capable commands override


class Simple(Command):
    """Commands with no arguments: CAPABILITY NOOP LOGOUT STARTTLS CHECK CLOSE
    UNSELECT EXPUNGE IDLE NAMESPACE."""

    __slots__ = ()


class Login(Command):
    __slots__ = ('user', 'password')
    user: bytes
    password: bytes


class Authenticate(Command):
    __slots__ = ('mechanism', 'initial')
    mechanism: str
    initial: bytes | None  # SASL-IR initial response (base64 text), b"=" for empty


class Enable(Command):
    __slots__ = ('capabilities',)
    capabilities: list[str]


class Id(Command):
    __slots__ = ('params',)
    params: dict[str, str | None] | None


class MailboxCommand(Command):
    """SELECT EXAMINE CREATE DELETE SUBSCRIBE UNSUBSCRIBE."""

    __slots__ = ('mailbox', 'params')
    _defaults = {'params': list}

    mailbox: str
    params: list[Any]  # e.g. SELECT (CONDSTORE)


class Rename(Command):
    __slots__ = ('old', 'new')
    old: str
    new: str


class List(Command):
    """LIST and LSUB (with RFC 5258 selection and return options)."""

    __slots__ = ('reference', 'patterns', 'select_options', 'return_options')
    _defaults = {'select_options': list, 'return_options': list}

    reference: str
    patterns: list[str]
    select_options: list[str]
    return_options: list[Any]


class Status(Command):
    __slots__ = ('mailbox', 'items')
    mailbox: str
    items: list[str]


class AppendMessage(Record):
    __slots__ = ('flags', 'date', 'data', 'binary')
    _defaults = {'binary': False}
    flags: list[str]
    date: float | None  # POSIX time from the date-time argument
    data: bytes
    binary: bool  # sent as literal8 (~{n})


class Append(Command):
    __slots__ = ('mailbox', 'messages')
    mailbox: str
    messages: list[AppendMessage]


class UidExpunge(Command):
    __slots__ = ('seqset',)
    seqset: SeqSet
    uid = True


class Search(Command):
    __slots__ = ('key', 'charset', 'return_options', 'uid')
    _defaults = {'charset': None, 'return_options': None, 'uid': False}
    key: SearchKey
    charset: str | None
    return_options: list[str] | None  # ESEARCH RETURN (...); None = plain SEARCH
    uid: bool


class Section(Record):
    """A BODY[...] / BINARY[...] section: part path plus specifier."""

    __slots__ = ('path', 'spec', 'fields')
    _defaults = {'path': (), 'spec': None, 'fields': ()}

    path: tuple[int, ...]
    spec: str | None  # HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME
    fields: tuple[str, ...]  # upper-case field names for HEADER.FIELDS(.NOT)


class FetchItem(Record):
    """One fetch attribute.  `name` is FLAGS, UID, ENVELOPE, BODY, BODYSTRUCTURE,
    INTERNALDATE, RFC822.SIZE, RFC822, RFC822.HEADER, RFC822.TEXT, MODSEQ,
    BODY[] (with `section`), BINARY[] or BINARY.SIZE[]."""

    __slots__ = ('name', 'section', 'partial', 'peek')
    _defaults = {'section': None, 'partial': None, 'peek': False}

    name: str
    section: Section | None
    partial: tuple[int, int] | None  # <offset.length>
    peek: bool


class Fetch(Command):
    __slots__ = ('seqset', 'items', 'modifiers', 'uid')
    _defaults = {'modifiers': dict, 'uid': False}
    seqset: SeqSet
    items: list[FetchItem]
    modifiers: dict[str, Any]
    uid: bool


class Store(Command):
    __slots__ = ('seqset', 'mode', 'silent', 'flags', 'modifiers', 'uid')
    _defaults = {'modifiers': dict, 'uid': False}
    seqset: SeqSet
    mode: str  # "set" | "add" | "remove"
    silent: bool
    flags: list[str]
    modifiers: dict[str, Any]
    uid: bool


class CopyMove(Command):
    """COPY and MOVE."""

    __slots__ = ('seqset', 'mailbox', 'uid')
    _defaults = {'uid': False}

    seqset: SeqSet
    mailbox: str
    uid: bool
