"""FETCH: its grammar, and the command it produces (RFC 3501 §6.4.5, RFC 9051 BINARY).

Imported when such a command first arrives (see `parser.later`).
"""

from __future__ import annotations

from ..record import Record
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any

from .commands import Command
from .parser import _FETCH_NAME, ParseError, Reader, _modifiers, _text, command
from .seqset import SeqSet


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


_FETCH_MACROS = {
    "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
    "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
    "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
}


_FETCH_SIMPLE = {
    "ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE", "RFC822.TEXT",
    "BODY", "BODYSTRUCTURE", "UID", "MODSEQ", "EMAILID", "THREADID", "SAVEDATE",
}


@command("FETCH", uid=True)
def _fetch(r: Reader, tag: str, name: str, uid: bool = False) -> Command:
    r.sp("sequence set")
    seqset = r.seqset()
    r.sp("fetch attributes")
    items: list[FetchItem] = []
    if r.peek() == b"(":
        r.pos += 1
        items.append(fetch_att(r))
        while r.try_sp():
            items.append(fetch_att(r))
        r.expect(b")", "Expected ')' to end fetch attributes")
    else:
        end = r.scan(_FETCH_NAME)
        word = r.text[r.pos : end].decode().upper()
        if word in _FETCH_MACROS and r.text[end : end + 1] in (b"", b" "):
            r.pos = end
            items = [FetchItem(n) for n in _FETCH_MACROS[word]]
        else:
            items.append(fetch_att(r))
    modifiers: dict[str, Any] = {}
    if r.try_sp():
        modifiers = _modifiers(r)
    return Fetch(tag, name, seqset, items, modifiers, uid)


def fetch_att(r: Reader) -> FetchItem:
    tok = r._match(_FETCH_NAME)
    if tok is None:
        raise r.error("Expected fetch attribute")
    word = tok.decode().upper()
    if r.peek() == b"[":
        if word in ("BODY", "BODY.PEEK"):
            section = _section(r, binary=False)
            return FetchItem("BODY[]", section, _partial(r), peek=word == "BODY.PEEK")
        if word in ("BINARY", "BINARY.PEEK"):
            section = _section(r, binary=True)
            return FetchItem("BINARY[]", section, _partial(r), peek=word == "BINARY.PEEK")
        if word == "BINARY.SIZE":
            return FetchItem("BINARY.SIZE[]", _section(r, binary=True))
        raise ParseError(f"Fetch attribute {word[:40]} takes no section")
    if word in _FETCH_SIMPLE:
        return FetchItem(word)
    if word in ("BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        raise r.error(f"{word} needs a section in brackets")
    if word in _FETCH_MACROS:
        raise ParseError(f"{word} must be used alone, not inside a list")
    raise ParseError(f"Unknown fetch attribute {word[:40]}")


def _section(r: Reader, binary: bool) -> Section:
    r.expect(b"[")
    path: list[int] = []
    spec: str | None = None
    fields: tuple[str, ...] = ()
    while r.peek().isdigit():
        n = r.number("part number")
        if n == 0 and not binary:
            spec = "HEADER"  # obsolete IMAP2bis BODY[0] / BODY[1.0]: the header
            break
        if n == 0:
            raise ParseError("Part number must not be zero")
        path.append(n)
        if r.peek() != b".":
            if r.peek() != b"]":
                raise r.error("Expected '.' or ']' after part number")
            break
        r.pos += 1
        if r.peek() == b"]" or (binary and not r.peek().isdigit()):
            raise r.error("Expected part number after '.'")
    if spec is None and r.peek() != b"]":
        if binary:
            raise r.error("BINARY sections take part numbers only")
        end = r.scan(_FETCH_NAME)
        word = r.text[r.pos : end].decode().upper()
        if word not in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"):
            raise r.error("Invalid section specifier")
        if word == "MIME" and not path:
            raise ParseError("MIME section needs a part number")
        r.pos = end
        spec = word
        if word.startswith("HEADER.FIELDS"):
            r.sp()
            r.expect(b"(", "Expected '(' to start header field list")
            names = [_text(r.astring("header field name")).upper()]
            while r.try_sp():
                names.append(_text(r.astring("header field name")).upper())
            r.expect(b")", "Expected ')' to end header field list")
            fields = tuple(names)
    r.expect(b"]", "Expected ']' to end section")
    return Section(tuple(path), spec, fields)


def _partial(r: Reader) -> tuple[int, int] | None:
    if r.peek() != b"<":
        return None
    r.pos += 1
    offset = r.number("partial offset")
    r.expect(b".", "Expected '.' in partial range")
    length = r.nz_number("partial length")
    r.expect(b">", "Expected '>' to end partial range")
    return (offset, length)
