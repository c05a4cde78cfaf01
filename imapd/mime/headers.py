"""Header blocks: finding their end, reading fields, parsing MIME values.

Everything works on the whole message buffer with offsets; regexes run over
whole header blocks and no Python loop walks a header byte by byte.  Two
ways to read a header, for two needs:

* `scan_header` -- the hot path of ENVELOPE/BODYSTRUCTURE: one regex pass
  that keeps only the first occurrence of the `WANTED` fields, as clean
  (unfolded, stripped) values.
* `split_fields` -- every field with its offsets, for
  ``BODY[HEADER.FIELDS (...)]`` and SEARCH.  A field is a tuple
  ``(name, start, value_start, end)``: ``name`` stripped and lower-cased
  bytes (a line without a colon is kept, named by its whole stripped text, so
  broken headers are still served whole); ``data[start:end]`` the exact
  original field with continuation lines and line break; ``value_start``
  the first byte after the colon (``end`` without one).

Then the MIME value grammar: Content-Type and its parameters (RFC 2045,
RFC 2231 continuations merged as Dovecot does), tokens, comments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "Field",
    "Params",
    "WANTED",
    "find_header_end",
    "header_end",
    "split_fields",
    "scan_header",
    "clean_value",
    "field_value",
    "parse_content_type",
    "parse_params",
    "merge_rfc2231",
    "decode_params",
]

Field = tuple[bytes, int, int, int]

# One logical field per match: the name (up to the first colon, or the whole
# line when there is none), then the rest: colon, value, continuation lines
# (starting with SP/HT) and the line break.  Matches tile the block exactly,
# so offsets are running sums of match lengths.  (Measured: this shape is the
# fastest of the variants tried with CPython's regex engine.)
_FIELD_RE = re.compile(rb"([^\n:]*)(:?[^\n]*(?:\n[ \t][^\n]*)*\n?)")

#: The fields ENVELOPE and BODYSTRUCTURE need; `scan_header` records these only.
WANTED = frozenset({
    b"date", b"subject", b"from", b"sender", b"reply-to", b"to", b"cc", b"bcc",
    b"in-reply-to", b"message-id", b"mime-version",
    b"content-type", b"content-transfer-encoding", b"content-id",
    b"content-description", b"content-disposition", b"content-language",
    b"content-location", b"content-md5",
})

_NUL_REPLACEMENT = b"\xef\xbf\xbd"  # U+FFFD in UTF-8, as Dovecot does

# Single bytes as ints, for ``byte in data``: that is a plain memchr, while
# with a bytes needle (``b"\n" in data``) CPython first tries the needle as
# an integer and builds and drops a TypeError, which costs ten times more.
_LF, _NUL, _LPAREN, _BACKSLASH, _STAR = 0x0A, 0x00, 0x28, 0x5C, 0x2A


def find_header_end(data: bytes, start: int, limit: int, lf_form: bool = False) -> tuple[int, int]:
    """Return ``(header_end, body_start)`` for the header block at *start*.

    ``header_end`` is the end of the last field (where the blank line starts)
    and ``body_start`` the first byte after the blank line.  The blank line
    is looked for only before *limit*; without one, the whole region is
    header and there is no body (``header_end == body_start == limit``).

    Mail is in wire form (CRLF); with *lf_form* (a message that slipped
    through unconverted) a bare-LF blank line ends the header as well.
    """
    # (slice compares: cheaper than startswith's argument parsing)
    if data[start:start + 2] == b"\r\n" and start + 2 <= limit:
        return start, start + 2
    if lf_form:
        if data[start:start + 1] == b"\n" and start < limit:
            return start, start + 1
        i = data.find(b"\n\r\n", start, limit)
        j = data.find(b"\n\n", start, i if i >= 0 else limit)
        if j >= 0:
            return j + 1, j + 2
        if i >= 0:
            return i + 1, i + 3
        return limit, limit
    i = data.find(b"\r\n\r\n", start, limit)
    if i >= 0:
        return i + 2, i + 4
    return limit, limit


def header_end(data: bytes, start: int, body_start: int) -> int:
    """Recover the end of the fields from a header block's offsets.

    The blank line that ends a header block belongs to the block
    (``body_start`` is after it) but not to any field; this finds where the
    fields stop without storing one more offset per part.
    """
    if body_start <= start:
        return start
    if data[body_start - 1] == 10:  # LF
        if body_start - 2 >= start and data[body_start - 2] == 13:
            p = body_start - 2
        else:
            p = body_start - 1
        if p == start or data[p - 1] == 10:
            return p
    return body_start


def split_fields(data: bytes, start: int, end: int) -> list[Field]:
    """All header fields in ``data[start:end]`` (no blank line in it), in order."""
    out: list[Field] = []
    append = out.append
    pos = start
    for name, rest in _FIELD_RE.findall(data, start, end):
        nl = len(name)
        ln = nl + len(rest)
        if not ln:
            break
        if rest[:1] == b":":
            append((name.strip().lower(), pos, pos + nl + 1, pos + ln))
        else:
            append((name.strip().lower(), pos, pos + ln, pos + ln))
        pos += ln
    return out


def _wanted_names(names: frozenset[bytes]) -> bytes:
    """A regex group for exactly *names*, any case, grouped by first letter:
    ``(?=[FfTt...])([Ff](?i:rom)|[Tt](?i:o)|...)``.

    Most lines of a header (Received, X-*, DKIM-*, continuation lines) fail
    on the lookahead at once; the others try only the names with their first
    letter (the regex engine skips a branch whose first character set does
    not match without entering it, which it cannot do for ``(?i:...)``).
    """
    by_first: dict[bytes, list[bytes]] = {}
    for n in sorted(names, key=len, reverse=True):
        by_first.setdefault(n[:1].lower(), []).append(re.escape(n[1:]))
    branches = [
        b"[" + c.upper() + c + b"](?i:" + b"|".join(rests) + b")"
        for c, rests in sorted(by_first.items())
    ]
    firsts = b"".join(c.upper() + c for c in sorted(by_first))
    return b"(?=[" + firsts + b"])(" + b"|".join(branches) + b")"


# For the hot path: a line starting with a WANTED name, optional WSP, colon;
# the value with its continuation lines.  Matching only at "\n" and only the
# wanted names lets the regex engine skip every other field; a name with
# more after it ("To-Do:") fails on the colon, as it must.
_WANTED_VALUE = rb"[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)"
_WANTED_RE = re.compile(b"\n" + _wanted_names(WANTED) + _WANTED_VALUE)
_WANTED_FIRST_RE = re.compile(_wanted_names(WANTED) + _WANTED_VALUE)


# Field name as written -> its lower-case form.  Names repeat endlessly
# across a mailbox; one dict lookup replaces lower().  Bounded, like every
# cache here.
_NAME_CACHE: dict[bytes, bytes] = {}


def scan_header(data: bytes, start: int, end: int) -> dict[bytes, bytes]:
    """First occurrence of each `WANTED` field: lower-case name -> clean value.

    Values are unfolded and stripped (see `clean_value`).  This is the hot
    path of ENVELOPE/BODYSTRUCTURE: one regex pass that yields only the
    wanted fields, and a few operations for each of those.
    """
    found: dict[bytes, bytes] = {}
    names = _NAME_CACHE
    if start == 0:  # no LF before the first line to anchor on
        pairs = _WANTED_RE.findall(data, 0, end)
        m = _WANTED_FIRST_RE.match(data, 0, end)
        if m is not None:
            pairs.insert(0, m.groups())
    else:  # anchored on the LF that ends the line before the header
        pairs = _WANTED_RE.findall(data, start - 1, end)
    for name, value in pairs:
        k = names.get(name)
        if k is None:
            k = name.lower()
            if len(names) < 4096:
                names[name] = k
        if k not in found:
            value = value.strip()
            if _LF in value:
                value = value.replace(b"\r\n", b"").replace(b"\n", b"")
            if _NUL in value:
                value = value.replace(b"\x00", _NUL_REPLACEMENT)
            found[k] = value
    return found


def clean_value(v: bytes) -> bytes:
    """A raw field value unfolded (CRLF before WSP removed) and stripped.

    NUL bytes, which no IMAP string may carry, become U+FFFD (as Dovecot).
    """
    v = v.strip()
    if _LF in v:
        v = v.replace(b"\r\n", b"").replace(b"\n", b"")
    if _NUL in v:
        v = v.replace(b"\x00", _NUL_REPLACEMENT)
    return v


def field_value(data: bytes, vstart: int, end: int) -> bytes:
    """The clean value of a field from `split_fields` (see `clean_value`)."""
    return clean_value(data[vstart:end])


# ---------------------------------------------------------------- Content-Type

# RFC 2045 token: any CHAR except SPACE, CTLs and tspecials.  8-bit bytes are
# let through: broken mail uses them and refusing them helps nobody.
_TOKEN = rb"[^\x00-\x20()<>@,;:\\\"/\[\]?=\x7f]+"
_CT_RE = re.compile(rb"[ \t]*(" + _TOKEN + rb")[ \t]*/[ \t]*(" + _TOKEN + rb")")
_TOKEN_RE = re.compile(rb"[ \t]*(" + _TOKEN + rb")")
_PLAIN_TOKEN_RE = re.compile(rb"[A-Za-z0-9-]+")
_PARAM_RE = re.compile(
    rb";[ \t]*(" + _TOKEN + rb")[ \t]*=[ \t]*"
    rb"(?:\"([^\"\\]*(?:\\.[^\"\\]*)*)\"?|([^\x00-\x20;\"]*))",
    re.S,
)
_BACKSLASH_RE = re.compile(rb"\\(.)", re.S)
# a "(" outside quoted strings (which are skipped whole, with their escapes)
_OUTSIDE_RE = re.compile(rb'(?:"[^"\\]*(?:\\.[^"\\]*)*"?|\\.|[^"(\\])*+\(', re.S)
# inside a comment only parentheses and backslash escapes matter
_INSIDE_RE = re.compile(rb"\\.|[()]", re.S)


def _strip_comments(v: bytes) -> bytes:
    """Remove RFC 822 comments (nested; quoted strings outside them kept).

    Rare in MIME headers; runs only when a "(" is present, and jumps between
    the characters that matter with regexes rather than walking bytes.
    """
    out = bytearray()
    pos = 0
    n = len(v)
    while pos < n:
        m = _OUTSIDE_RE.match(v, pos)  # up to the next "(" outside quoted strings
        if m is None:
            break
        out += v[pos:m.end() - 1]
        out += b" "
        depth = 1
        j = m.end()
        while depth and j < n:
            c = _INSIDE_RE.search(v, j)
            if c is None:
                j = n
                break
            j = c.end()
            t = c.group()
            if t == b"(":
                depth += 1
            elif t == b")":
                depth -= 1
        pos = j
    else:
        return bytes(out)
    out += v[pos:]
    return bytes(out)


Params = tuple[tuple[bytes, bytes], ...]


def parse_content_type(v: bytes) -> tuple[bytes, bytes, Params] | None:
    """``(type, subtype, params)`` as written, or None if syntactically invalid.

    RFC 2045 §5.2 asks that an invalid Content-Type be treated as absent
    (text/plain; charset=us-ascii), which is what the caller does on None.
    Parameters are parsed leniently: junk between them is skipped.
    """
    if _LPAREN in v:
        v = _strip_comments(v)
    m = _CT_RE.match(v)
    if m is None:
        return None
    return m.group(1), m.group(2), tuple(parse_params(v, m.end()))


def parse_token_and_params(v: bytes) -> tuple[bytes | None, Params]:
    """For Content-Disposition: a leading token then parameters."""
    if _LPAREN in v:
        v = _strip_comments(v)
    m = _TOKEN_RE.match(v)
    if m is None:
        return None, ()
    return m.group(1), tuple(parse_params(v, m.end()))


def parse_token(v: bytes) -> bytes | None:
    """The first token of a value (Content-Transfer-Encoding), or None."""
    if v.isalnum() or (v and _PLAIN_TOKEN_RE.fullmatch(v)):
        return v  # the usual "7bit", "base64", "quoted-printable"
    if _LPAREN in v:
        v = _strip_comments(v)
    m = _TOKEN_RE.match(v)
    return m.group(1) if m is not None else None


def parse_params(v: bytes, pos: int = 0) -> list[tuple[bytes, bytes]]:
    """``;name=value`` pairs from *pos* on, quoted strings unescaped.

    RFC 2231 continuations are merged (see `merge_rfc2231`).
    """
    found = _PARAM_RE.findall(v, pos)
    if _BACKSLASH in v:  # only quoted strings have escapes
        unq = _BACKSLASH_RE.sub
        params = [(n, unq(rb"\1", q) if q else t) for n, q, t in found]
    else:
        params = [(n, q or t) for n, q, t in found]
    if _STAR in v:
        return merge_rfc2231(params)
    return params


def merge_rfc2231(params: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Merge RFC 2231 ``name*0``, ``name*1*``... into one parameter.

    Follows Dovecot so BODYSTRUCTURE looks the same: plain parameters keep
    their order, merged ones come after them; a merged value that had any
    charset-encoded piece is named ``name*`` and stays encoded
    (``utf-8''%E2%82%AC``) because IMAP passes parameters through and clients
    decode them.  With a gap in the numbering the pieces are kept unmerged.
    """
    plain: list[tuple[bytes, bytes]] = []
    pieces: dict[bytes, list[tuple[int, bool, bytes, bytes]]] = {}
    order: list[bytes] = []
    for name, value in params:
        p = name.find(b"*")
        if p < 0:
            plain.append((name, value))
            continue
        rest = name[p + 1:]
        extended = not rest or rest.endswith(b"*")  # "name*" or "name*N*"
        if rest.endswith(b"*"):
            rest = rest[:-1]
        if rest and not rest.isdigit():
            plain.append((name, value))
            continue
        idx = int(rest) if rest else 0
        key = name[:p]
        low = key.lower()
        if low not in pieces:
            pieces[low] = []
            order.append(low)
        pieces[low].append((idx, extended, key, value))
    out = plain
    for low in order:
        group = sorted(pieces[low], key=lambda t: t[0])
        if any(g[0] != i for i, g in enumerate(group)):
            for idx, extended, key, value in group:
                out.append((key + b"*" + str(idx).encode() + (b"*" if extended else b""), value))
            continue
        have_ext = any(g[1] for g in group)
        buf = bytearray()
        if have_ext and not group[0][1]:
            buf += b"''"
        for _idx, extended, _key, value in group:
            if have_ext and not extended:
                buf += value.replace(b"%", b"%25")
            else:
                buf += value
        key = group[0][2]
        out.append((key + b"*" if have_ext else key, bytes(buf)))
    return out


_PCT_RE = re.compile(rb"%([0-9A-Fa-f]{2})")


def decode_params(params: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Parameters as a dict for programs: lower-case names, decoded values.

    ``name*`` values are RFC 2231 decoded (``charset'lang'%XX``), and RFC 2047
    encoded words that many mailers put in file names are decoded as well.
    The first occurrence of a name wins.
    """
    from .decode import decode_charset, decode_encoded_words

    out: dict[str, str] = {}
    for name, value in params:
        key = name.decode("latin-1").lower()
        if key.endswith("*"):
            key = key[:-1]
            parts = value.split(b"'", 2)
            if len(parts) == 3:
                charset, _lang, text = parts
            else:
                charset, text = b"us-ascii", value
            raw = _PCT_RE.sub(lambda m: bytes((int(m.group(1), 16),)), text)
            sval = decode_charset(raw, charset.decode("latin-1"))
        elif b"=?" in value:
            sval = decode_encoded_words(value)
        else:
            sval = decode_charset(value, "utf-8")
        if key not in out:
            out[key] = sval
    return out
