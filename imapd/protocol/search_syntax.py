"""SEARCH: its grammar, and the command it produces (RFC 3501 §6.4.4, RFC 4731 ESEARCH).

Imported when such a command first arrives (see `parser.later`).
"""

from __future__ import annotations

from .commands import Command, SearchKey
from .parser import ParseError, Reader, _text, command


class Search(Command):
    __slots__ = ('key', 'charset', 'return_options', 'uid')
    _defaults = {'charset': None, 'return_options': None, 'uid': False}
    key: SearchKey
    charset: str | None
    return_options: list[str] | None  # ESEARCH RETURN (...); None = plain SEARCH
    uid: bool


@command("SEARCH", uid=True)
def _search(r: Reader, tag: str, name: str, uid: bool = False) -> Command:
    r.sp("search criteria")
    return_opts: list[str] | None = None
    charset: str | None = None
    if r.peek(7).upper() == b"RETURN ":
        r.pos += 7
        r.expect(b"(", "Expected '(' after RETURN")
        return_opts = []
        if r.peek() != b")":
            return_opts.append(r.atom("return option").upper())
            while r.try_sp():
                return_opts.append(r.atom("return option").upper())
        r.expect(b")", "Expected ')' to end RETURN options")
        for opt in return_opts:
            if opt not in ("MIN", "MAX", "ALL", "COUNT", "SAVE"):
                raise ParseError(f"Unknown SEARCH RETURN option {opt[:40]}")
        r.sp("search criteria")
    if r.peek(8).upper() == b"CHARSET ":
        r.pos += 8
        charset = _text(r.astring("charset")).upper()
        r.sp("search criteria")
    keys = [search_key(r)]
    while r.try_sp():
        keys.append(search_key(r))
    key = keys[0] if len(keys) == 1 else ("AND", keys)
    return Search(tag, name, key, charset, return_opts, uid)


_SEARCH_FLAG_KEYS = {
    "ANSWERED": ("FLAG", "\\Answered"),
    "DELETED": ("FLAG", "\\Deleted"),
    "DRAFT": ("FLAG", "\\Draft"),
    "FLAGGED": ("FLAG", "\\Flagged"),
    "SEEN": ("FLAG", "\\Seen"),
    "UNANSWERED": ("UNFLAG", "\\Answered"),
    "UNDELETED": ("UNFLAG", "\\Deleted"),
    "UNDRAFT": ("UNFLAG", "\\Draft"),
    "UNFLAGGED": ("UNFLAG", "\\Flagged"),
    "UNSEEN": ("UNFLAG", "\\Seen"),
    "ALL": ("ALL",),
    "NEW": ("NEW",),
    "OLD": ("OLD",),
    "RECENT": ("RECENT",),
}


_SEARCH_HEADER_KEYS = {"FROM", "TO", "CC", "BCC", "SUBJECT"}


_SEARCH_DATE_KEYS = {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"}


def search_key(r: Reader) -> SearchKey:
    """One search-key; OR chains nested to the right are read without recursion."""
    ch = r.peek()
    if ch == b"(":
        r.pos += 1
        r.enter()
        keys = [search_key(r)]
        while r.try_sp():
            keys.append(search_key(r))
        r.expect(b")", "Expected ')' to end search group")
        r.leave()
        return keys[0] if len(keys) == 1 else ("AND", keys)
    if ch.isdigit() or ch in (b"*", b"$"):
        return ("SEQ", r.seqset())
    word = r.atom("search key").upper()
    simple = _SEARCH_FLAG_KEYS.get(word)
    if simple is not None:
        return simple
    if word in _SEARCH_HEADER_KEYS:
        r.sp(f"{word} value")
        return ("HEADER", word, r.astring(f"{word} value"))
    if word in ("BODY", "TEXT"):
        r.sp(f"{word} value")
        return (word, r.astring(f"{word} value"))
    if word in _SEARCH_DATE_KEYS:
        r.sp(f"date after {word}")
        return (word, r.date())
    if word in ("KEYWORD", "UNKEYWORD"):
        r.sp(f"keyword after {word}")
        kw = r.flag()
        return ("FLAG" if word == "KEYWORD" else "UNFLAG", kw)
    if word == "HEADER":
        r.sp("header field name")
        field = _text(r.astring("header field name")).upper()
        r.sp("header value")
        return ("HEADER", field, r.astring("header value"))
    if word in ("LARGER", "SMALLER"):
        r.sp(f"size after {word}")
        return (word, r.number("size", limit=(1 << 63) - 1))
    if word in ("OLDER", "YOUNGER"):
        r.sp(f"interval after {word}")
        return (word, r.nz_number("interval"))
    if word == "MODSEQ":
        r.sp("mod-sequence")
        if r.peek() == b'"':  # optional entry name and type
            r.string("entry name")
            r.sp("entry type")
            r.atom("entry type")
            r.sp("mod-sequence")
        return ("MODSEQ", r.number("mod-sequence", limit=(1 << 63) - 1))
    if word == "UID":
        r.sp("sequence set after UID")
        return ("UID", r.seqset())
    if word == "NOT":
        r.sp("search key after NOT")
        r.enter()
        inner = search_key(r)
        r.leave()
        return ("NOT", inner)
    if word == "OR":
        # OR a OR b OR c d  ->  ("ORN", [a, b, c, d]) without recursing per OR
        operands: list[SearchKey] = []
        while True:
            r.sp("first search key after OR")
            r.enter()
            operands.append(search_key(r))
            r.leave()
            r.sp("second search key after OR")
            if r.peek(3).upper() == b"OR " and len(operands) < 100000:
                r.pos += 2
                continue
            r.enter()
            operands.append(search_key(r))
            r.leave()
            break
        if len(operands) == 2:
            return ("OR", operands[0], operands[1])
        return ("ORN", operands)
    raise ParseError(f"Unknown search key {word[:40]}")
