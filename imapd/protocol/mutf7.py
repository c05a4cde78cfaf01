"""Modified UTF-7 (RFC 3501 §5.1.3): the encoding of mailbox names on the wire and on disk.

Strict on purpose: a name that is not in the one canonical form (what `encode`
produces) is refused with ValueError, so two different byte strings never name
the same mailbox and nothing unexpected reaches the file system.

Rules enforced by `decode`:
* only printable US-ASCII (0x20-0x7e) appears; "&" starts a shift, "&-" is "&";
* a shift holds modified BASE64 (A-Z a-z 0-9 + ,) of UTF-16BE, ends with "-",
  is not empty, has zero padding bits and no dangling bytes;
* it encodes no printable ASCII (those must represent themselves), and no
  unpaired surrogate;
* two shifts never follow each other directly (the canonical form merges them).
"""

from __future__ import annotations

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"
_B64_VALUE = {c: i for i, c in enumerate(_B64)}

__all__ = ["encode", "decode", "is_valid"]


def _encode_run(run: str) -> str:
    data = run.encode("utf-16-be")
    out = []
    bits = 0
    nbits = 0
    for byte in data:
        bits = (bits << 8) | byte
        nbits += 8
        while nbits >= 6:
            nbits -= 6
            out.append(_B64[(bits >> nbits) & 0x3F])
    if nbits:
        out.append(_B64[(bits << (6 - nbits)) & 0x3F])
    return "&" + "".join(out) + "-"


def encode(name: str) -> str:
    """Unicode -> modified UTF-7.  ValueError on a lone surrogate."""
    if name.isascii() and "&" not in name and name.isprintable():
        return name  # fast path: the usual case
    out: list[str] = []
    run: list[str] = []
    for ch in name:
        o = ord(ch)
        if 0x20 <= o <= 0x7E:
            if run:
                out.append(_encode_run("".join(run)))
                run = []
            out.append("&-" if ch == "&" else ch)
        else:
            if 0xD800 <= o <= 0xDFFF:
                raise ValueError("lone surrogate in mailbox name")
            run.append(ch)
    if run:
        out.append(_encode_run("".join(run)))
    return "".join(out)


def _decode_run(text: str) -> str:
    bits = 0
    nbits = 0
    data = bytearray()
    for c in text:
        v = _B64_VALUE.get(c)
        if v is None:
            raise ValueError("invalid modified BASE64 character %r" % c)
        bits = (bits << 6) | v
        nbits += 6
        if nbits >= 8:
            nbits -= 8
            data.append((bits >> nbits) & 0xFF)
    if nbits >= 6 or bits & ((1 << nbits) - 1):
        raise ValueError("bad padding in modified BASE64")
    if len(data) % 2:
        raise ValueError("odd number of bytes in UTF-16 run")
    try:
        s = data.decode("utf-16-be")  # strict: rejects unpaired surrogates
    except UnicodeDecodeError as exc:
        raise ValueError("invalid UTF-16 in modified UTF-7") from exc
    for ch in s:
        if 0x20 <= ord(ch) <= 0x7E:
            raise ValueError("printable ASCII must not be BASE64-encoded")
    return s


def decode(name: str | bytes) -> str:
    """Modified UTF-7 -> Unicode.  ValueError on anything not canonical."""
    if isinstance(name, (bytes, bytearray)):
        try:
            name = bytes(name).decode("ascii")
        except UnicodeDecodeError as exc:
            raise ValueError("8-bit byte in modified UTF-7") from exc
    if "&" not in name:
        for ch in name:
            if not 0x20 <= ord(ch) <= 0x7E:
                raise ValueError("non-printable or non-ASCII character in modified UTF-7")
        return name
    out: list[str] = []
    i = 0
    n = len(name)
    prev_was_shift = False
    while i < n:
        ch = name[i]
        if not 0x20 <= ord(ch) <= 0x7E:
            raise ValueError("non-printable or non-ASCII character in modified UTF-7")
        if ch != "&":
            out.append(ch)
            i += 1
            prev_was_shift = False
            continue
        end = name.find("-", i + 1)
        if end < 0:
            raise ValueError("unterminated '&' shift")
        if end == i + 1:
            out.append("&")
            prev_was_shift = False
        else:
            if prev_was_shift:
                raise ValueError("adjacent BASE64 shifts are not canonical")
            out.append(_decode_run(name[i + 1 : end]))
            prev_was_shift = True
        i = end + 1
    return "".join(out)


def is_valid(name: str | bytes) -> bool:
    """True if `name` is canonical modified UTF-7."""
    try:
        decode(name)
    except ValueError:
        return False
    return True
