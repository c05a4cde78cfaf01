"""STORE, COPY, MOVE, UID EXPUNGE and APPEND: the grammars of the commands that
change messages, and the commands they produce.

Imported when such a command first arrives (see `parser.later`).
"""

from __future__ import annotations

from ..record import Record
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any

from .commands import Command
from .parser import ParseError, Reader, _modifiers, command, uid_command
from .seqset import SeqSet


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


class UidExpunge(Command):
    __slots__ = ('seqset',)
    seqset: SeqSet
    uid = True


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


@command("STORE", uid=True)
def _store(r: Reader, tag: str, name: str, uid: bool = False) -> Command:
    r.sp("sequence set")
    seqset = r.seqset()
    r.sp("FLAGS, +FLAGS or -FLAGS")
    modifiers: dict[str, Any] = {}
    if r.peek() == b"(":
        modifiers = _modifiers(r)
        r.sp("FLAGS, +FLAGS or -FLAGS")
    at = r.pos
    sign = r.text[at : at + 1]
    if sign in (b"+", b"-"):
        at += 1
    else:
        sign = b""
    if r.text[at : at + 5].upper() != b"FLAGS":
        raise r.error("Expected FLAGS, +FLAGS or -FLAGS")
    at += 5
    silent = r.text[at : at + 7].upper() == b".SILENT"
    r.pos = at + 7 if silent else at
    mode = {b"": "set", b"+": "add", b"-": "remove"}[sign]
    r.sp("flags")
    if r.peek() == b"(":
        flags = r.flag_list()
    else:
        flags = [r.flag()]
        while r.try_sp():
            flags.append(r.flag())
    for f in flags:
        if f.lower() in ("\\recent", "\\*"):
            raise ParseError(f"{f} cannot be stored")
    return Store(tag, name, seqset, mode, silent, flags, modifiers, uid)


@command("COPY", "MOVE", uid=True)
def _copy(r: Reader, tag: str, name: str, uid: bool = False) -> Command:
    r.sp("sequence set")
    seqset = r.seqset()
    r.sp("mailbox name")
    return CopyMove(tag, name, seqset, r.mailbox(), uid)


@uid_command("EXPUNGE")
def _uid_expunge(r: Reader, tag: str, name: str) -> Command:
    r.sp("sequence set")
    return UidExpunge(tag, name, r.seqset())


@command("APPEND")
def _append(r: Reader, tag: str, name: str) -> Command:
    r.sp("mailbox name")
    mailbox = r.mailbox()
    messages: list[AppendMessage] = []
    while r.try_sp():
        flags: list[str] = []
        date: float | None = None
        if r.peek() == b"(":
            flags = r.flag_list()
            r.sp("message literal")
        if r.peek() == b'"':
            date = r.date_time()
            r.sp("message literal")
        binary = r.peek() == b"~"
        if r.peek() not in (b"{", b"~"):
            raise r.error("Expected message literal")
        data = r._literal()
        if data is None:
            raise r.error("Invalid message literal")
        if not binary and b"\x00" in data:
            raise ParseError("NUL octet in message literal (use literal8 for binary)")
        messages.append(AppendMessage(flags, date, data, binary))
    if not messages:
        raise ParseError("Missing message literal")
    return Append(tag, name, mailbox, messages)
