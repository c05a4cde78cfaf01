"""Encoder: IMAP values and responses to bytes.

Values follow one convention across imapd: `None` is NIL, `int` a number,
`str`/`bytes` a string, `list`/`tuple` a parenthesised list, `Atom` an atom
written as is (flags, keywords, response keywords).  `encode()` picks the
form of each string so the output is always valid: an atom-safe-enough text
is quoted; anything with CR, LF, NUL, 8-bit octets or longer than a line
becomes a literal.
"""

from __future__ import annotations

import re
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Iterable

_QUOTABLE = re.compile(rb'[^\x00\r\n\x80-\xff]*')
_NEEDS_ESCAPE = re.compile(rb'["\\]')
_ATOM_SAFE = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\\]]+")
_CTL = re.compile(rb"[\x00-\x1f\x7f]")
MAX_QUOTED = 1024


class Atom(str):
    """A string sent verbatim (flags like `\\Seen`, `NIL`-free atoms)."""

    __slots__ = ()


class Literal(bytes):
    """Bytes that must be sent as a literal even if they could be quoted."""

    __slots__ = ()


def quoted_or_literal(data: bytes) -> bytes:
    """A `string`: quoted when it is short and has no CR/LF/NUL/8-bit, else a literal."""
    if len(data) <= MAX_QUOTED and _QUOTABLE.fullmatch(data):
        if _NEEDS_ESCAPE.search(data):
            data = data.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        return b'"' + data + b'"'
    return b"{%d}\r\n" % len(data) + data


def astring(data: bytes | str) -> bytes:
    """An `astring`: a bare atom when safe, else a string."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    if data and _ATOM_SAFE.fullmatch(data) and data.upper() != b"NIL":
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
    out: list[bytes] = []
    _encode_into(value, out)
    return b"".join(out)


def _encode_into(value: object, out: list[bytes]) -> None:
    if value is None:
        out.append(b"NIL")
    elif isinstance(value, Atom):
        out.append(_atom(value))
    elif isinstance(value, Literal):
        out.append(b"{%d}\r\n" % len(value) + value)
    elif isinstance(value, bytes):
        out.append(quoted_or_literal(value))
    elif isinstance(value, str):
        out.append(quoted_or_literal(value.encode("utf-8", "surrogateescape")))
    elif isinstance(value, bool):
        out.append(b"1" if value else b"0")
    elif isinstance(value, int):
        out.append(b"%d" % value)
    elif isinstance(value, (list, tuple)):
        # IMAP writes repeated parenthesised items with no space between them
        # where the grammar says 1*X: the addresses of an ENVELOPE field
        # ("(" 1*address ")"), the parts of a multipart BODYSTRUCTURE
        # (1*body SP subtype), NAMESPACE entries.  Those are exactly the lists
        # at the start of a list; everything after them is separated by SP.
        out.append(b"(")
        leading_lists = True
        previous_was_list = False
        for i, item in enumerate(value):
            is_list = isinstance(item, (list, tuple))
            if i:
                if not (leading_lists and is_list and previous_was_list):
                    out.append(b" ")
            if not is_list:
                leading_lists = False
            previous_was_list = is_list
            _encode_into(item, out)
        out.append(b")")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as an IMAP value")


def _atom(value: str) -> bytes:
    """An atom (flag, keyword) as is, but 7-bit and without control characters:
    whatever a mail store holds can never break the framing of a response."""
    return _CTL.sub(b"?", value.encode("ascii", "replace"))


def flag_list(flags: Iterable[str]) -> bytes:
    return b"(" + b" ".join(_atom(f) for f in flags) + b")"


def _text(text: str) -> bytes:
    """Human-readable text: one line, 7-bit, no NUL, so it can never break framing,
    and no other control character (a client's bytes echoed in an error must not
    drive the terminal of whoever reads the conversation)."""
    text = text.replace("\r", " ").replace("\n", " ").replace("\0", " ")
    return _CTL.sub(b"?", text.encode("ascii", "replace"))


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
