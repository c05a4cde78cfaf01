"""SEARCH and UID SEARCH (RFC 3501 §6.4.4), ESEARCH (RFC 4731), SEARCHRES (RFC 5182).

The search key tree from the parser is compiled once into nested Python
closures; each message is then tested with a lazily filled context, so a
search on flags never opens a file and a header search never decodes a body.
Matching of strings is case-insensitive substring matching after decoding
encoded words, transfer encodings and charsets.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_right
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator

from ..protocol.search_syntax import Search
from ..protocol.seqset import _merged, compress_numbers
from ..store.base import NoSuchMessage
from . import FLUSH, CommandError, ok
from .fetch import MessageData

Matcher = "Callable[[Candidate], bool]"


class Candidate:
    """One message under test; expensive data is computed on first use."""

    __slots__ = ("seq", "uid", "mailbox", "view", "_msg", "_flags", "_texts")

    def __init__(self, seq: int, uid: int, mailbox: Any, view: Any) -> None:
        self.seq = seq
        self.uid = uid
        self.mailbox = mailbox
        self.view = view
        self._msg: MessageData | None = None
        self._flags: frozenset[str] | None = None
        self._texts: dict[Any, Any] = {}

    @property
    def flags(self) -> frozenset[str]:
        if self._flags is None:
            self._flags = self.mailbox.flags(self.uid)
        return self._flags

    @property
    def msg(self) -> MessageData:
        if self._msg is None:
            self._msg = MessageData(self.mailbox, self.uid)
        return self._msg

    # Decoded, case-folded texts are computed once per message, however many
    # keys ask for them (a chain of thousands of ORs must not decode the
    # message thousands of times).
    def folded_header(self, field: str) -> list[str]:
        key = ("HEADER", field.upper())
        value = self._texts.get(key)
        if value is None:
            from ..mime import header_text

            value = [v.casefold() for v in header_text(*self.msg.header_view(), field)]
            self._texts[key] = value
        return value

    def folded_body(self) -> str:
        value = self._texts.get("BODY")
        if value is None:
            from ..mime import body_text

            value = self._texts["BODY"] = body_text(self.msg.data, self.msg.root).casefold()
        return value

    def body_contains(self, needle: str) -> bool:
        """`needle in folded_body()`: the first body key of a search looks in
        the decoded parts directly (mime.body_contains, no text built); a
        second one builds the folded text once, so that thousands of body
        keys in one search cost one decoding per message, not thousands."""
        value = self._texts.get("BODY")
        if value is not None:
            return needle in value
        if self._texts.get("BODY-SEEN"):
            return needle in self.folded_body()
        self._texts["BODY-SEEN"] = True
        from ..mime import body_contains

        return body_contains(self.msg.data, self.msg.root, needle)

    def folded_headers(self) -> str:
        value = self._texts.get("HEADERS")
        if value is None:
            from ..mime import all_headers_text

            value = self._texts["HEADERS"] = all_headers_text(self.msg.data, self.msg.root).casefold()
        return value


def _charset_decode(value: bytes, charset: str) -> str:
    return value.decode(charset, "replace")


def compile_key(key: tuple, charset: str, session: Any, largest_seq: int) -> Matcher:
    """Turn a parsed search key into a predicate over `Candidate`s."""
    kind = key[0]
    if kind == "ALL":
        return lambda c: True
    if kind == "AND":
        subs = [compile_key(k, charset, session, largest_seq) for k in key[1]]
        return lambda c: all(m(c) for m in subs)
    if kind == "OR":
        a = compile_key(key[1], charset, session, largest_seq)
        b = compile_key(key[2], charset, session, largest_seq)
        return lambda c: a(c) or b(c)
    if kind == "ORN":
        subs = [compile_key(k, charset, session, largest_seq) for k in key[1]]
        return lambda c: any(m(c) for m in subs)
    if kind == "NOT":
        inner = compile_key(key[1], charset, session, largest_seq)
        return lambda c: not inner(c)
    if kind == "FLAG":
        flag = _canonical(key[1])
        if flag == "\\Recent":
            return lambda c: c.mailbox.is_recent(c.uid)
        return lambda c: flag in c.flags
    if kind == "UNFLAG":
        flag = _canonical(key[1])
        if flag == "\\Recent":
            return lambda c: not c.mailbox.is_recent(c.uid)
        return lambda c: flag not in c.flags
    if kind == "NEW":
        return lambda c: c.mailbox.is_recent(c.uid) and "\\Seen" not in c.flags
    if kind == "OLD":
        return lambda c: not c.mailbox.is_recent(c.uid)
    if kind == "RECENT":
        return lambda c: c.mailbox.is_recent(c.uid)
    if kind == "SEQ":
        seqset = key[1]
        if seqset.saved:
            saved = set(session.search_result)
            return lambda c: c.uid in saved
        ranges = _merged(seqset.resolved(largest_seq))
        starts = [lo for lo, _ in ranges]

        def in_ranges(c: Candidate) -> bool:  # O(log n) however long the set
            i = bisect_right(starts, c.seq) - 1
            return i >= 0 and c.seq <= ranges[i][1]

        return in_ranges
    if kind == "UID":
        seqset = key[1]
        if seqset.saved:
            saved = set(session.search_result)
            return lambda c: c.uid in saved
        uids = set(seqset.select_uids(session.selected.uids))
        return lambda c: c.uid in uids
    if kind == "LARGER":
        n = key[1]
        return lambda c: c.mailbox.size(c.uid) > n
    if kind == "SMALLER":
        n = key[1]
        return lambda c: c.mailbox.size(c.uid) < n
    if kind in ("BEFORE", "ON", "SINCE"):
        day = key[1]
        compare = _DATE_COMPARE[kind]
        return lambda c: compare(_internal_day(c), day)
    if kind in ("SENTBEFORE", "SENTON", "SENTSINCE"):
        day = key[1]
        compare = _DATE_COMPARE[kind[4:]]

        def sent(c: Candidate) -> bool:
            d = _sent_day(c)
            return d is not None and compare(d, day)

        return sent
    if kind in ("OLDER", "YOUNGER"):  # RFC 5032 WITHIN: the same moment for every message
        cutoff = time.time() - key[1]
        if kind == "OLDER":
            return lambda c: c.mailbox.internal_date(c.uid) <= cutoff
        return lambda c: c.mailbox.internal_date(c.uid) >= cutoff
    if kind == "HEADER":
        field = key[1]
        needle = _charset_decode(key[2], charset).casefold()

        def header(c: Candidate) -> bool:
            values = c.folded_header(field)
            if not needle:
                return bool(values)
            return any(needle in v for v in values)

        return _cached_header_matcher(session, field, needle) or header
    if kind == "BODY":
        needle = _charset_decode(key[1], charset).casefold()

        def body(c: Candidate) -> bool:
            return c.body_contains(needle)

        return body
    if kind == "TEXT":
        needle = _charset_decode(key[1], charset).casefold()

        def text(c: Candidate) -> bool:
            return needle in c.folded_headers() or c.body_contains(needle)

        return text
    if kind == "MODSEQ":
        n = key[1]
        get = getattr(session.selected.mailbox, "modseq", None)
        return lambda c: (get(c.uid) if get else 1) >= n
    raise CommandError(f"Search key {kind} is not supported", status="BAD")


def _cached_header_matcher(session: Any, field: str, needle: str) -> Matcher | None:
    """A HEADER key answered from the mailbox's cache of the field's folded
    text (key `search.<field>`, the values joined by NUL): the cached texts
    are scanned as one block, so only messages not cached yet, or whose text
    contains the needle, cost anything per message.  None when the key or
    the store cannot use such a cache."""
    mailbox = session.selected.mailbox
    find = getattr(mailbox, "cache_find", None)
    name = field.lower()
    if find is None or not needle or "\x00" in needle or not _FIELD_NAME.fullmatch(name):
        return None
    ckey = "search." + name

    def uncached(c: Candidate) -> bool:
        values = c.folded_header(field)
        mailbox.cache_put(c.uid, ckey, "\x00".join(values).encode("utf-8", "surrogatepass"))
        return any(needle in v for v in values)

    found = find(ckey, needle.encode("utf-8", "surrogatepass"))
    if found is None:
        return uncached
    hits, unsure_list = found
    if not unsure_list:
        return lambda c: c.uid in hits
    unsure = set(unsure_list)
    return lambda c: uncached(c) if c.uid in unsure else c.uid in hits


_FIELD_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,60}")

_CANONICAL = {f.lower(): f for f in ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent")}


def _canonical(flag: str) -> str:
    return _CANONICAL.get(flag.lower(), flag)


_DATE_COMPARE: dict[str, Callable[[tuple[int, int, int], tuple[int, int, int]], bool]] = {
    "BEFORE": lambda a, b: a < b,
    "ON": lambda a, b: a == b,
    "SINCE": lambda a, b: a >= b,
}


def _internal_day(c: Candidate) -> tuple[int, int, int]:
    t = time.localtime(c.mailbox.internal_date(c.uid))
    return (t.tm_year, t.tm_mon, t.tm_mday)


def _sent_day(c: Candidate) -> tuple[int, int, int] | None:
    """The date of the Date: header in its own time zone (RFC 3501 SENT*)."""
    if "SENTDAY" in c._texts:
        return c._texts["SENTDAY"]  # type: ignore[no-any-return]
    from ..mime import header_text

    day = None
    values = header_text(*c.msg.header_view(), "Date")
    if values:
        from email.utils import parsedate_tz

        parsed = parsedate_tz(values[0])
        if parsed is not None:
            day = (parsed[0], parsed[1], parsed[2])
    c._texts["SENTDAY"] = day
    return day


KNOWN_CHARSETS = ("UTF-8", "US-ASCII")


def _check_charset(charset: str | None) -> str:
    if charset is None:
        return "utf-8"
    import codecs

    try:
        return codecs.lookup(charset).name
    except LookupError:
        raise CommandError(f"Unknown charset {charset}", "BADCHARSET (" + " ".join(KNOWN_CHARSETS) + ")") from None


def search(session: Any, cmd: Search) -> Iterator[bytes]:
    view = session.selected
    mailbox = view.mailbox
    charset = _check_charset(cmd.charset)
    try:
        match = compile_key(cmd.key, charset, session, len(view.uids))
    except RecursionError:
        raise CommandError("Search too complex", status="BAD") from None
    found: list[tuple[int, int]] = []
    keepalive = session.config.idle.command_keepalive
    next_keepalive = time.monotonic() + keepalive
    for seq, uid in enumerate(view.uids, 1):
        if uid in view.pending_expunged:
            continue
        if not seq & 255 and time.monotonic() > next_keepalive:
            # a long search: tell the client (and middleboxes) we are still here
            next_keepalive = time.monotonic() + keepalive
            yield b"* OK Still searching\r\n"
            yield FLUSH
        try:
            if match(Candidate(seq, uid, mailbox, view)):
                found.append((seq, uid))
        except NoSuchMessage:
            continue
    numbers = [uid if cmd.uid else seq for seq, uid in found]
    opts = cmd.return_options
    if opts is not None and "SAVE" in opts:
        opts = [o for o in opts if o != "SAVE"]
        saved = [uid for _, uid in found]
        if saved and opts and set(opts) <= {"MIN", "MAX"}:
            # RFC 5182 §2.4: SAVE with only MIN/MAX saves just those messages
            saved = sorted({saved[0] if "MIN" in opts else saved[-1], saved[-1] if "MAX" in opts else saved[0]})
        session.search_result = saved
        if not opts:
            return ok("SEARCH completed, result saved")  # SAVE alone: no ESEARCH response
    if opts is None:
        yield b"* SEARCH" + b"".join(b" %d" % n for n in numbers) + b"\r\n"
    else:
        if not opts:
            opts = ["ALL"]
        parts = [f'* ESEARCH (TAG "{cmd.tag}")'.encode()]
        if cmd.uid:
            parts.append(b"UID")
        if numbers:
            if "MIN" in opts:
                parts.append(b"MIN %d" % min(numbers))
            if "MAX" in opts:
                parts.append(b"MAX %d" % max(numbers))
            if "ALL" in opts:
                parts.append(b"ALL " + compress_numbers(sorted(numbers)).encode())
        if "COUNT" in opts:
            parts.append(b"COUNT %d" % len(numbers))
        yield b" ".join(parts) + b"\r\n"
    return ok("SEARCH completed" if not cmd.uid else "UID SEARCH completed")
