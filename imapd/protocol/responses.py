"""Encoder: IMAP values and responses to bytes.

Values follow one convention across imapd: `None` is NIL, `int` a number,
`str`/`bytes` a string, `list`/`tuple` a parenthesised list, `Atom` an atom
written as is (flags, keywords, response keywords).  `encode()` picks the
form of each string so the output is always valid: an atom-safe-enough text
is quoted; anything with CR, LF, NUL, 8-bit octets or longer than a line
becomes a literal.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable

# Byte classes as bytes.translate() tables and deletion sets, not `re`
# patterns: importing `re` costs every connection milliseconds at start-up.
_NOT_ATOM = bytes(range(0x21)) + bytes(range(0x7F, 0x100)) + b'(){%*"\\]'
_ATOM_CHARS = bytes(range(256)).translate(None, _NOT_ATOM)  # deleted: what is left is not atom-safe
_CTL_TO_QUESTION = bytes.maketrans(bytes(range(0x20)) + b"\x7f", b"?" * 0x21)
MAX_QUOTED = 1024


class Atom(str):
    """A string sent verbatim (flags like `\\Seen`, `NIL`-free atoms)."""

    __slots__ = ()


class Literal(bytes):
    """Bytes that must be sent as a literal even if they could be quoted."""

    __slots__ = ()


def quoted_or_literal(data: bytes) -> bytes:
    """A `string`: quoted when it is short and has no CR/LF/NUL/8-bit, else a literal."""
    # NUL, CR, LF and 8-bit octets need a literal; '"' and backslash an escape.
    # (`int in bytes` is a memchr; `bytes in bytes` costs ten times more.)
    if len(data) <= MAX_QUOTED and data.isascii() and 13 not in data and 10 not in data and 0 not in data:
        if 34 not in data and 92 not in data:  # the usual case: nothing to escape
            return b'"%s"' % data
        return b'"%s"' % data.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b"{%d}\r\n" % len(data) + data


def astring(data: bytes | str) -> bytes:
    """An `astring`: a bare atom when safe, else a string."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    if data and not data.translate(None, _ATOM_CHARS) and data.upper() != b"NIL":
        return data
    return quoted_or_literal(data)


def nstring(data: bytes | str | None) -> bytes:
    if data is None:
        return b"NIL"
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return quoted_or_literal(data)


def encode(value: object) -> bytes:
    """Any IMAP value (see module docstring) to bytes."""
    if type(value) is list:
        out: list[bytes] = []
        _encode_list(value, out.append, _QUOTED_CACHE.get)
        return b"".join(out)
    return _encode_other(value)


# Encoded form of strings already seen.  ENVELOPE and BODYSTRUCTURE repeat the
# same short strings endlessly ("text", "plain", "charset", "UTF-8", "base64",
# the user's own address...); a dict lookup is much cheaper than checking
# and quoting each again.  Bounded; only short ``bytes`` (never subclasses
# such as `Literal`, which are encoded differently) are kept.
_QUOTED_CACHE: dict[bytes, bytes] = {}
_QUOTED_MAX = 4096
_QUOTED_LEN = 64


def _encode_list(
    value: list[Any] | tuple[Any, ...],
    append: Callable[[bytes], None],
    cached: Callable[[bytes], bytes | None],
) -> None:
    """A parenthesised list, handed piece by piece to *append*.

    This is the hot path of FETCH ENVELOPE/BODYSTRUCTURE (dozens of strings
    and NILs per message), so the common item types are handled inline and
    tested by exact type; anything else (subclasses such as `Atom` and
    `Literal`, bool, errors) goes through `_encode_other`.  *append* and
    *cached* (`_QUOTED_CACHE.get`) are passed down rather than looked up
    again for every nested list.

    IMAP writes repeated parenthesised items with no space between them
    where the grammar says 1*X: the addresses of an ENVELOPE field
    ("(" 1*address ")"), the parts of a multipart BODYSTRUCTURE
    (1*body SP subtype), NAMESPACE entries.  Those are exactly the lists at
    the start of a list; everything after them is separated by SP.
    """
    append(b"(")
    sep = False  # a SP goes before the next item
    lead = True  # every item so far was a list
    for item in value:
        if item is None:
            append(b" NIL" if sep else b"NIL")
        else:
            t = type(item)
            if t is bytes:
                q = cached(item)
                if q is None:
                    q = quoted_or_literal(item)
                    if len(item) <= _QUOTED_LEN:
                        if len(_QUOTED_CACHE) >= _QUOTED_MAX:
                            _QUOTED_CACHE.clear()
                        _QUOTED_CACHE[item] = q
                if sep:
                    append(b" ")
                append(q)
            elif t is int:
                append(b" %d" % item if sep else b"%d" % item)
            elif t is list or t is tuple or isinstance(item, (list, tuple)):
                if not lead:
                    append(b" ")
                _encode_list(item, append, cached)
                sep = True
                continue
            else:
                if sep:
                    append(b" ")
                append(_encode_other(item))
        sep = True
        lead = False
    append(b")")


def _encode_other(value: object) -> bytes:
    """Any value, by isinstance (subclasses included)."""
    if value is None:
        return b"NIL"
    if isinstance(value, Atom):
        return _atom(value)
    if isinstance(value, Literal):
        return b"{%d}\r\n" % len(value) + value
    if isinstance(value, bytes):
        return quoted_or_literal(value)
    if isinstance(value, str):
        return quoted_or_literal(value.encode("utf-8", "surrogateescape"))
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, (list, tuple)):
        out: list[bytes] = []
        _encode_list(value, out.append, _QUOTED_CACHE.get)
        return b"".join(out)
    raise TypeError(f"cannot encode {type(value).__name__} as an IMAP value")


def _atom(value: str) -> bytes:
    """An atom (flag, keyword) as is, but 7-bit and without control characters:
    whatever a mail store holds can never break the framing of a response."""
    return value.encode("ascii", "replace").translate(_CTL_TO_QUESTION)


def flag_list(flags: Iterable[str]) -> bytes:
    return b"(" + b" ".join(_atom(f) for f in flags) + b")"


def _text(text: str) -> bytes:
    """Human-readable text: one line, 7-bit, no NUL, so it can never break framing,
    and no other control character (a client's bytes echoed in an error must not
    drive the terminal of whoever reads the conversation)."""
    text = text.replace("\r", " ").replace("\n", " ").replace("\0", " ")
    return text.encode("ascii", "replace").translate(_CTL_TO_QUESTION)


def tagged(tag: str, status: str, text: str, code: str | None = None) -> bytes:
    """`tag OK [CODE] text` line."""
    head = f"{tag} {status} "
    if code:
        head += f"[{code}] "
    return _text(head) + _text(text) + b"\r\n"


def untagged(text: str, code: str | None = None, status: str = "OK") -> bytes:
    """`* OK [CODE] text` (or NO/BAD/BYE/PREAUTH)."""
    head = f"* {status} "
    if code:
        head += f"[{code}] "
    return _text(head) + _text(text) + b"\r\n"


def continuation(text: str = "Ready") -> bytes:
    return b"+ " + _text(text) + b"\r\n"


def format_internal_date(timestamp: float, utc_offset_minutes: int | None = None) -> bytes:
    """date-time as `"22-Nov-2026 13:08:18 +0000"` (local time of the server unless given)."""
    import time

    if utc_offset_minutes is None:
        lt = time.localtime(timestamp)
        utc_offset_minutes = lt.tm_gmtoff // 60
    t = time.gmtime(timestamp + utc_offset_minutes * 60)
    sign = "+" if utc_offset_minutes >= 0 else "-"
    off = abs(utc_offset_minutes)
    month = "JanFebMarAprMayJunJulAugSepOctNovDec"[(t.tm_mon - 1) * 3 : t.tm_mon * 3]
    return (
        f'"{t.tm_mday:02d}-{month}-{t.tm_year:04d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} '
        f'{sign}{off // 60:02d}{off % 60:02d}"'
    ).encode("ascii")


class InternalDateFormatter:
    """`format_internal_date` for many messages (FETCH 1:* INTERNALDATE): the
    zone looked up once per day, the calendar part formatted once per day,
    and the time of day joined from ready-made pieces, not %-formatted."""

    def __init__(self) -> None:
        import time

        global _CLOCK
        if _CLOCK is None:
            _CLOCK = (tuple(b" %02d:" % h for h in range(24)), tuple(b"%02d:" % m for m in range(60)),
                      tuple(b"%02d" % s for s in range(60)))
        self._hours, self._minutes, self._seconds = _CLOCK
        self._localtime = time.localtime
        self._days: dict[int, bytes] = {}  # local day -> b'"DD-Mon-YYYY'
        self._utc_days: dict[int, tuple[int, bytes] | None] = {}  # UTC day -> (offset seconds, b' +hhmm"')

    def _zone(self, day: int) -> tuple[int, bytes] | None:
        """The zone's offset through one UTC day, None if it changes that day
        (a day has at most one transition, so both ends agreeing is enough)."""
        start = self._localtime(day * 86400).tm_gmtoff
        if start != self._localtime(day * 86400 + 86399).tm_gmtoff:
            return None
        minutes = start // 60
        off = abs(minutes)
        return minutes * 60, b' %s%02d%02d"' % (b"+" if minutes >= 0 else b"-", off // 60, off % 60)

    def __call__(self, timestamp: float) -> bytes:
        t = int(timestamp // 1)
        day = t // 86400
        try:
            zone = self._utc_days[day]
        except KeyError:
            zone = self._utc_days[day] = self._zone(day)
        if zone is None:
            return format_internal_date(timestamp)
        lday, sec = divmod(t + zone[0], 86400)
        prefix = self._days.get(lday)
        if prefix is None:
            prefix = self._days[lday] = format_internal_date(lday * 86400, 0)[:12]
        hour, rest = divmod(sec, 3600)
        minute, second = divmod(rest, 60)
        return b"".join((prefix, self._hours[hour], self._minutes[minute], self._seconds[second], zone[1]))


_CLOCK: "tuple[tuple[bytes, ...], tuple[bytes, ...], tuple[bytes, ...]] | None" = None  # (made on first use)
