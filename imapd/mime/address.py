"""RFC 5322 address lists to IMAP ENVELOPE address structures.

An address is ``[name, adl, mailbox, host]`` (RFC 3501 §7.4.2); a group is
``[None, None, groupname, None]``, its members, then ``[None, None, None,
None]``.  Text comes back as raw ``bytes`` (encoded words stay encoded, as
RFC 3501 wants); quoted strings are unquoted and unescaped.

**Missing parts.**  In ENVELOPE a NIL host *means* "group marker", so an
address that simply lacks a domain (``To: root``) must not get a NIL host or
clients read it as the start of a group that never ends.  Like Dovecot (and
UW-IMAP/Cyrus with other spellings) we fill the gap with a placeholder:
host ``MISSING_DOMAIN``, mailbox ``MISSING_MAILBOX``, and ``SYNTAX_ERROR``
as host for an unterminated ``<...``.  These are the RFC-safe choice: valid
strings that no client mistakes for a group.

Speed: most address fields are one or a few ``Name <user@host>`` entries, so
a fast regex takes those whole; anything unusual (comments, groups, routes,
escapes, domain literals) goes through a small tokenizer and grammar.
"""

from __future__ import annotations

import re

__all__ = ["parse_address_list", "MISSING_MAILBOX", "MISSING_DOMAIN", "SYNTAX_ERROR"]

MISSING_MAILBOX = b"MISSING_MAILBOX"
MISSING_DOMAIN = b"MISSING_DOMAIN"
SYNTAX_ERROR = b"SYNTAX_ERROR"

Address = list[bytes | None]  # [name, adl, mailbox, host]

# ------------------------------------------------------------------ fast path
_ATEXT = rb"A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\xff\-"
_WORD = rb"[" + _ATEXT + rb"][" + _ATEXT + rb".]*+"  # dot-atom-ish, no leading dot
# Possessive quantifiers (Python 3.11+) keep this linear: no backtracking
# into a name or local part that turns out not to be followed by "<" / "@".
_FAST_RE = re.compile(
    rb"[ \t]*+(?:"
    rb"(?:\"([^\"\\\r\n]*+)\"[ \t]*+|([" + _ATEXT + rb"][" + _ATEXT + rb". \t]*+))?"
    rb"<(" + _WORD + rb")@(" + _WORD + rb")>"  # 1 quoted / 2 plain name, 3 local, 4 domain
    rb"|(" + _WORD + rb")@(" + _WORD + rb")"  # 5 local, 6 domain
    rb")[ \t]*+(?:,|\Z)"
)
_WSRUN_RE = re.compile(rb"[ \t]+")


def _fast(v: bytes) -> list[Address] | None:
    """Parse lists of plain ``Name <a@b>`` / ``"Name" <a@b>`` / ``a@b``.

    Returns None as soon as anything else shows up; the full parser then
    handles the whole value, so the two paths never disagree on a part.
    """
    if v[-1:] == b",":
        return None
    out: list[Address] = []
    pos = 0
    n = len(v)
    match = _FAST_RE.match
    while pos < n:
        m = match(v, pos)
        if m is None:
            return None
        quoted, plain, local, domain, local2, domain2 = m.groups()
        if local is None:
            out.append([None, None, local2, domain2])
        elif plain is not None:
            plain = plain.rstrip()
            if 9 in plain or plain.find(b"  ") >= 0:  # TAB, or a run of spaces
                plain = _WSRUN_RE.sub(b" ", plain)
            out.append([plain, None, local, domain])
        else:
            out.append([quoted or None, None, local, domain])
        pos = m.end()
    return out


# ------------------------------------------------------------------ full path
_ATOM, _QUOTED, _DLIT, _SPECIAL = 0, 1, 2, 3
_TOKEN_RE = re.compile(
    rb"([ \t\r\n]*)(?:"
    rb"\"([^\"\\]*(?:\\.[^\"\\]*)*)\"?"  # 2 quoted string (unterminated: to the end)
    rb"|(\[[^\[\]\\]*(?:\\.[^\[\]\\]*)*\]?)"  # 3 domain literal
    rb"|([^\x00-\x20\"()<>\[\]:;@\\,.\x7f]+)"  # 4 atom (8-bit allowed)
    rb"|(.))",  # 5 special (incl. "(" -- comments are skipped by hand)
    re.S,
)
_UNESCAPE_RE = re.compile(rb"\\(.)", re.S)

# a token: (kind, text, space_before)
Token = tuple[int, bytes, bool]
# a comment: (number of tokens before it, text)
Comment = tuple[int, bytes]


_PAREN_RE = re.compile(rb"[()\\]")


def _skip_comment(v: bytes, i: int) -> tuple[int, bytes]:
    """From the "(" at *i*: index after the matching ")" and the comment text.

    Jumps from one parenthesis or backslash to the next with a regex, so a
    long comment costs no per-byte Python work.
    """
    depth = 0
    n = len(v)
    search = _PAREN_RE.search
    j = i
    while j < n:
        m = search(v, j)
        if m is None:
            break
        j = m.start()
        c = v[j]
        if c == 92:  # backslash: skip the quoted character
            j += 2
            continue
        if c == 40:
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return j + 1, v[i + 1:j]
        j += 1
    return n, v[i + 1:]


def _tokenize(v: bytes) -> tuple[list[Token], list[Comment]]:
    """Tokens, and the comments seen (kept apart: a comment may name a bare address)."""
    toks: list[Token] = []
    comments: list[Comment] = []
    pos = 0
    n = len(v)
    space = False
    match = _TOKEN_RE.match
    while pos < n:
        m = match(v, pos)
        if m is None:  # pragma: no cover - the pattern matches any byte
            break
        if m.group(1):
            space = True
        pos = m.end()
        q = m.group(2)
        if q is not None:
            if 92 in q:  # a backslash
                q = _UNESCAPE_RE.sub(rb"\1", q)
            toks.append((_QUOTED, q, space))
        elif m.group(4) is not None:
            toks.append((_ATOM, m.group(4), space))
        elif m.group(3) is not None:
            toks.append((_DLIT, m.group(3), space))
        else:
            sp = m.group(5)
            if sp is None:  # trailing whitespace only
                break
            if sp == b"(":
                pos, text = _skip_comment(v, m.start(5))
                comments.append((len(toks), text))
                space = True
                continue
            toks.append((_SPECIAL, sp, space))
        space = False
    return toks, comments


def _phrase(toks: list[Token]) -> bytes | None:
    """Display name from words: a space wherever the original had whitespace."""
    buf = bytearray()
    for _kind, text, space in toks:
        if space and buf:
            buf += b" "
        buf += text
    return bytes(buf) if buf else None


def _join(toks: list[Token]) -> bytes:
    """Local part or domain: tokens glued without spaces (obs-local-part)."""
    return b"".join(t[1] for t in toks)


def _last_comment(comments: list[Comment], lo: int, hi: int) -> bytes | None:
    """The last non-empty comment between tokens lo..hi, stripped."""
    found = None
    for at, text in comments:
        if lo <= at <= hi:
            t = text.strip(b" \t\r\n")
            if t:
                found = t
    return found


def _mailbox(toks: list[Token], comments: list[Comment], lo: int, hi: int) -> Address | None:
    """One mailbox from toks[lo:hi] (no top-level comma inside)."""
    seg = toks[lo:hi]
    if not seg:
        return None
    lt = -1
    for k, t in enumerate(seg):
        if t[0] == _SPECIAL and t[1] == b"<":
            lt = k
            break
    if lt >= 0:
        name = _phrase([t for t in seg[:lt] if t[0] != _SPECIAL or t[1] == b"."])
        route = None
        k = lt + 1
        end = len(seg)
        gt = -1
        for j in range(k, end):
            if seg[j][0] == _SPECIAL and seg[j][1] == b">":
                gt = j
                break
        inner = seg[k:gt] if gt >= 0 else seg[k:]
        if inner and inner[0][0] == _SPECIAL and inner[0][1] == b"@":
            colon = -1
            for j, t in enumerate(inner):
                if t[0] == _SPECIAL and t[1] == b":":
                    colon = j
                    break
            if colon >= 0:
                route = _join(inner[:colon]) or None
                inner = inner[colon + 1:]
        at = -1
        for j, t in enumerate(inner):
            if t[0] == _SPECIAL and t[1] == b"@":
                at = j
                break
        if at >= 0:
            local = _join(inner[:at])
            domain = _join([t for t in inner[at + 1:] if t[1] != b"@"])
        else:
            local = _join(inner)
            domain = b""
        host = domain or (SYNTAX_ERROR if gt < 0 else MISSING_DOMAIN)
        return [name, route, local or MISSING_MAILBOX, host]
    # addr-spec, or something that is only a name
    at = -1
    for j, t in enumerate(seg):
        if t[0] == _SPECIAL and t[1] == b"@":
            at = j
            break
    comment = _last_comment(comments, lo, hi)
    if at >= 0:
        local = _join([t for t in seg[:at] if t[0] != _SPECIAL or t[1] == b"."])
        domain = _join([t for t in seg[at + 1:] if t[0] != _SPECIAL or t[1] == b"."])
        return [comment, None, local or MISSING_MAILBOX, domain or MISSING_DOMAIN]
    words = [t for t in seg if t[0] != _SPECIAL or t[1] == b"."]
    if not words:
        return None
    single = words[0][0] == _ATOM and all(
        t[0] in (_ATOM, _SPECIAL) and (k == 0 or not t[2]) for k, t in enumerate(words)
    )
    if single:  # "To: root" -- a local mailbox without domain
        return [comment, None, _join(words), MISSING_DOMAIN]
    return [_phrase(words), None, MISSING_MAILBOX, MISSING_DOMAIN]


def _is_special(t: Token, ch: bytes) -> bool:
    return t[0] == _SPECIAL and t[1] == ch


def _full(v: bytes) -> list[Address]:
    """The general grammar: address-list with groups, routes and comments."""
    toks, comments = _tokenize(v)
    out: list[Address] = []
    n = len(toks)
    i = 0
    while i < n:
        t = toks[i]
        if t[0] == _SPECIAL and t[1] in (b",", b";", b">"):
            i += 1
            continue
        # a group is a phrase followed by ":" (before any "<" or "@")
        j = i
        while j < n and (toks[j][0] in (_ATOM, _QUOTED) or _is_special(toks[j], b".")):
            j += 1
        if j < n and _is_special(toks[j], b":"):
            name = _phrase(toks[i:j]) or b""
            out.append([None, None, name, None])
            i = j + 1
            while i < n and not _is_special(toks[i], b";"):
                if _is_special(toks[i], b","):
                    i += 1
                    continue
                e = _mailbox_end(toks, i, in_group=True)
                addr = _mailbox(toks, comments, i, e)
                if addr is not None:
                    out.append(addr)
                i = e
            i += 1  # the ";" (or the end)
            out.append([None, None, None, None])
            continue
        e = _mailbox_end(toks, i, in_group=False)
        addr = _mailbox(toks, comments, i, e)
        if addr is not None:
            out.append(addr)
        i = e if e > i else i + 1
    return out


def _mailbox_end(toks: list[Token], i: int, in_group: bool) -> int:
    """Index of the "," (or ";" in a group) that ends the mailbox at *i*.

    Commas inside ``<...>`` belong to a route and do not end it.
    """
    n = len(toks)
    angle = False
    while i < n:
        kind, text, _ = toks[i]
        if kind == _SPECIAL:
            if text == b"<":
                angle = True
            elif text == b">":
                angle = False
            elif text == b"," and not angle:
                return i
            elif text == b";" and (in_group or not angle):
                return i
        i += 1
    return n


def _fix_nul(addrs: list[Address]) -> list[Address]:
    for a in addrs:
        for k in range(4):
            s = a[k]
            if s is not None and 0 in s:
                a[k] = s.replace(b"\x00", b"\xef\xbf\xbd")
    return addrs


# Parsed address fields by raw value.  The same values come back message
# after message (the user's own address in To:, regular correspondents in
# From:), so most fields are parsed once per mailbox.  Results are kept as
# tuples and handed out as fresh lists, which callers are free to change.
# Bounded; long values (big Cc lists) are rarely repeated and not kept.
_ADDRESS_CACHE: dict[bytes, tuple[tuple[bytes | None, ...], ...]] = {}
_CACHE_MAX = 2048
_CACHE_VALUE_MAX = 256


def parse_address_list(v: bytes | None) -> list[Address] | None:
    """Parse an unfolded address header value; None when it holds no address
    (or *v* is None: the field is absent).

    Never raises: whatever cannot be understood becomes placeholders (see
    the module docstring) rather than an error.
    """
    if not v:
        return None
    hit = _ADDRESS_CACHE.get(v)
    if hit is not None:
        return list(map(list, hit)) or None
    res = _fast(v)
    if res is None:
        res = _full(v)
        if 0 in v:  # NUL
            _fix_nul(res)
    if len(v) <= _CACHE_VALUE_MAX:
        if len(_ADDRESS_CACHE) >= _CACHE_MAX:
            _ADDRESS_CACHE.clear()
        _ADDRESS_CACHE[v] = tuple(map(tuple, res))
    return res or None
