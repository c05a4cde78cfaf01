"""RENAME, LIST, LSUB and STATUS: their grammars, and the commands they produce.

Imported when such a command first arrives (see `parser.later`).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any

from .commands import Command
from .parser import ParseError, Reader, _generic_list, command


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


@command("RENAME")
def _rename(r: Reader, tag: str, name: str) -> Command:
    r.sp("mailbox name")
    old = r.mailbox()
    r.sp("new mailbox name")
    new = r.mailbox()
    return Rename(tag, name, old, new)


@command("LIST", "LSUB")
def _list(r: Reader, tag: str, name: str) -> Command:
    r.sp("reference name")
    select_opts: list[str] = []
    if name == "LIST" and r.peek() == b"(":
        select_opts = [str(x).upper() for x in _generic_list(r)]
        r.sp("reference name")
    reference = r.mailbox()
    r.sp("mailbox pattern")
    patterns: list[str] = []
    if name == "LIST" and r.peek() == b"(":
        r.pos += 1
        patterns.append(r.list_mailbox())
        while r.try_sp():
            patterns.append(r.list_mailbox())
        r.expect(b")", "Expected ')' to end pattern list")
    else:
        patterns.append(r.list_mailbox())
    return_opts: list[Any] = []
    if name == "LIST" and r.try_sp():
        r.expect(b"RETURN", "Expected RETURN")
        r.sp("RETURN options")
        return_opts = _generic_list(r)
    return List(tag, name, reference, patterns, select_opts, return_opts)


STATUS_ITEMS = {"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "SIZE", "HIGHESTMODSEQ", "DELETED", "APPENDLIMIT", "MAILBOXID"}


@command("STATUS")
def _status(r: Reader, tag: str, name: str) -> Command:
    r.sp("mailbox name")
    mailbox = r.mailbox()
    r.sp("status items")
    r.expect(b"(", "Expected '(' to start status items")
    items = [r.atom("status item").upper()]
    while r.try_sp():
        items.append(r.atom("status item").upper())
    r.expect(b")", "Expected ')' to end status items")
    for item in items:
        if item not in STATUS_ITEMS:
            raise ParseError(f"Unknown STATUS item {item}")
    return Status(tag, name, mailbox, items)
