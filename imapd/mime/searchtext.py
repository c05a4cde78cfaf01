"""Decoded text of a message for SEARCH: header values and text bodies.

SEARCH compares Unicode text, not wire bytes, so encoded words, transfer
encodings and charsets are all undone here.  Nothing raises: an unknown
charset reads as UTF-8 or Latin-1, bad sequences become U+FFFD.
"""

from __future__ import annotations

import sys

from .decode import (
    OPAQUE,
    SEVEN_BIT,
    charset_decoders,
    decode_charset,
    decode_encoded_words,
    decode_transfer,
)
from .headers import decode_params, field_value
from .part import Part

__all__ = ["header_text", "all_headers_text", "body_text", "body_contains"]


def header_text(data: bytes, part: Part, name: str) -> list[str]:
    """Every value of field *name* in *part*'s header, unfolded and decoded."""
    key = name.strip().lower().encode("latin-1", "replace")
    out: list[str] = []
    for f in part.get_fields(data):
        if f[0] == key:
            raw = data[f[2]:f[3]]
            if 0x0A in raw[:-1]:  # LF (an int needle: one memchr)
                raw = raw.replace(b"\r\n", b"").replace(b"\n", b"")
            out.append(decode_encoded_words(raw.strip(b" \t\r\n").replace(b"\x00", b"")))
    return out


def all_headers_text(data: bytes, part: Part) -> str:
    """The whole header of *part* decoded, one ``Name: value`` line per field."""
    lines: list[str] = []
    for _name, start, vs, end in part.get_fields(data):
        if vs == end:  # not a field; keep its text searchable anyway
            lines.append(decode_charset(data[start:end].strip(), None))
            continue
        name = data[start:vs - 1].strip().decode("latin-1")
        value = decode_encoded_words(field_value(data, vs, end))
        lines.append(f"{name}: {value}")
    return "\n".join(lines)


def _charset_of(p: Part) -> str | None:
    for name, value in p.param_list:
        ln = name.lower()
        if ln == b"charset":
            return value.decode("latin-1")
        if ln == b"charset*":
            return decode_params([(name, value)]).get("charset")
    return None


def _collect(data: bytes, p: Part, out: list[str]) -> None:
    if p.children is not None:
        for c in p.children:
            _collect(data, c, out)
        return
    if p.message is not None:
        out.append(all_headers_text(data, p.message))
        _collect(data, p.message, out)
        return
    if p.maintype != "text":
        return
    body = data[p.body_start:p.end]
    decoded = decode_transfer(body, p.cte)
    if decoded is None:  # unknown encoding: the raw bytes are better than nothing
        decoded = body
    out.append(decode_charset(decoded, _charset_of(p)))


def body_text(data: bytes, root: Part) -> str:
    """All text/* parts of the message, transfer- and charset-decoded.

    Non-text leaves (images, attachments) are skipped; encapsulated messages
    contribute their header and their text parts.  Parts are joined with a
    newline.
    """
    out: list[str] = []
    _collect(data, root, out)
    return "\n".join(out)


# ------------------------------------------------------------ body_contains
#
# SEARCH BODY asks `needle in body_text(...).casefold()` of every message.
# Building that text costs ~0.1 ms for a 25 KB message (charset decoding and
# above all casefold(), ~150 MB/s); the answer can mostly be had from the
# transfer-decoded bytes instead.  Why that is exact, for a charset whose
# codec is "clear" (`charset_decoders`: UTF-8 or a single-byte table, ASCII
# bytes read as ASCII and each character having one byte form):
#
# * casefold() works character by character, each character folding to one
#   or more characters; on ASCII it is bytes.lower().
# * A needle character comes either from an ASCII letter (lower()), from
#   itself (a casefolded needle holds only characters that fold to
#   themselves), or from the fold of some other non-ASCII character: "ß" ->
#   "ss", KELVIN SIGN -> "k", "Ü" -> "ü", "ﬁ" -> "fi"...  Call those others,
#   for this needle, its danger characters.
# * Without danger characters in the text, a match in the folded text is
#   the needle's encoded form in ``bytes.lower()``, and the other way round.
#   Danger characters are looked for as bytes (memchr, then a substring
#   search).  Where one occurs, a single-byte text is folded as bytes (a
#   translate table, see `_byte_folds`) and other text decoded and folded.
#
# Matches cannot cross parts: body_text joins them with "\n", so only a
# needle containing "\n" could, and such a needle takes the exact slow path.

_FOLDS: dict[str, str] | None = None  # char -> casefold(), where they differ


def _case_folds() -> dict[str, str]:
    """Every character whose casefold() differs from it, with its fold.

    Computed from the running interpreter's Unicode tables (once, ~25 ms) so
    a Python upgrade cannot leave a stale table: all code points are
    folded 512 at a time and only blocks that change are looked at closely.
    """
    global _FOLDS
    if _FOLDS is None:
        n = sys.maxunicode + 1  # 0x110000, a multiple of 256
        buf = bytearray(4 * n)  # UTF-32-LE of every code point, in order
        buf[0::4] = bytes(range(256)) * (n // 256)
        buf[1::4] = b"".join(bytes((h & 255,)) * 256 for h in range(n // 256))
        buf[2::4] = b"".join(bytes((h >> 8,)) * 256 for h in range(n // 256))
        del buf[4 * 0xD800:4 * 0xE000]  # surrogates: no case, not decodable
        every = buf.decode("utf-32-le")
        folds: dict[str, str] = {}
        for i in range(0, len(every), 512):
            block = every[i:i + 512]
            if block.casefold() != block:  # each char folds to >= 1 char
                for c in block:
                    f = c.casefold()
                    if f != c:
                        folds[c] = f
        _FOLDS = folds
    return _FOLDS


# (kind, sides): kind "clear", `SEVEN_BIT` or `OPAQUE`; for "clear" one side
# per codec the charset may decode with (UTF-8 first when there are two):
# (needle in that codec or None if it has no form there, danger probes,
# for a single-byte codec `_byte_folds` with the bytes of the danger
# characters it leaves unmapped).  A probe is a danger character's byte form
# with its distinct bytes, which memchr can rule out far faster than a
# substring search.
_Probe = tuple[bytes, bytes]
_ByteFolds = tuple[bytes, tuple[tuple[bytes, bytes], ...], str]
_SideFolds = tuple[bytes, tuple[tuple[bytes, bytes], ...], bytes]
_Side = tuple["bytes | None", tuple[_Probe, ...], "_SideFolds | None"]
_Plan = tuple[str, tuple[_Side, ...]]
_BYTE_FOLDS: dict[str, _ByteFolds] = {}


def _byte_folds(codec: str) -> _ByteFolds:
    """casefold() of a single-byte codec's text done on its bytes.

    ``(table, several, unmapped)``: a translate table taking each byte to
    its character's fold, the bytes whose fold is several characters (in
    cp1252 only "ß" -> "ss"; replaced after translating), and the characters
    whose fold the codec cannot write (cp1252 "µ" -> Greek "μ"), which keep
    their byte.  No needle can match such a byte: a casefolded needle holds
    only characters that fold to themselves.
    """
    got = _BYTE_FOLDS.get(codec)
    if got is None:
        chars = bytes(range(256)).decode(codec, "replace")
        table = bytearray(range(256))
        several: list[tuple[bytes, bytes]] = []
        unmapped: list[str] = []
        for i, ch in enumerate(chars):
            fold = ch.casefold()
            if fold == ch:
                continue
            try:
                enc = fold.encode(codec)
            except UnicodeEncodeError:
                enc = b""
            if not enc or fold.casefold() != fold:
                unmapped.append(ch)
            elif len(enc) == 1:
                table[i] = enc[0]
            else:
                several.append((bytes((i,)), enc))
        got = _BYTE_FOLDS[codec] = (bytes(table), tuple(several), "".join(unmapped))
    return got


def _may_hold(b: bytes, probes: tuple[_Probe, ...], whole: bool = True) -> bool:
    """Whether a probe occurs in *b*; only its bytes are checked unless *whole*."""
    for seq, distinct in probes:
        for o in distinct:
            if o not in b:
                break
        else:
            if not whole or seq in b:
                return True
    return False


class _Needle:
    """A casefolded SEARCH string, prepared once for many messages."""

    __slots__ = ("danger", "plans", "raw", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        # the needle's bytes when it is ASCII: the same in every clear codec
        self.raw: bytes | None = text.encode("ascii") if text.isascii() else None
        chars = set(text)
        self.danger = "".join(
            c for c, f in _case_folds().items()
            if c >= "\x80" and any(x in chars for x in f)
        )
        self.plans: dict[str | None, _Plan] = {}

    def plan(self, charset: str | None) -> _Plan:
        """How to search a part in *charset* (`in_part` keeps them)."""
        decoders = charset_decoders(charset)
        res: _Plan
        if isinstance(decoders, str):
            res = (decoders, ())
        else:
            sides: list[_Side] = []
            for codec in decoders:
                try:
                    enc: bytes | None = self.text.encode(codec)
                except UnicodeEncodeError:
                    enc = None
                folds: _SideFolds | None = None
                if codec == "utf-8":
                    forms = [c.encode("utf-8") for c in self.danger]
                else:
                    chars = bytes(range(256)).decode(codec, "replace")
                    forms = [bytes((i,)) for i in range(128, 256) if chars[i] in self.danger]
                    table, several, unmapped = _byte_folds(codec)
                    # danger characters the table cannot fold: only decoding can tell
                    folds = (table, several, bytes(
                        i for i in range(128, 256) if chars[i] in unmapped and chars[i] in self.danger
                    ))
                sides.append((enc, tuple((q, bytes(sorted(set(q)))) for q in forms), folds))
            res = ("clear", tuple(sides))
        if len(self.plans) < 64:
            self.plans[charset] = res
        return res

    def in_part(self, b: bytes, charset: str | None) -> bool:
        """``self.text in decode_charset(b, charset).casefold()``, *b* being
        a transfer-decoded text part."""
        kind, sides = self.plans.get(charset) or self.plan(charset)
        if kind == SEVEN_BIT:
            return self.text in decode_charset(b, charset).casefold()
        if b.isascii():  # read as ASCII whatever the charset: folding is lower()
            return self.raw is not None and self.raw in b.lower()
        if kind == OPAQUE:
            return self.text in decode_charset(b, charset).casefold()
        lb = b.lower()
        raw = self.raw
        if raw is not None and raw in lb:  # ASCII reads the same on both sides
            return True
        text: str | None = None
        if len(sides) == 2:
            # UTF-8 if valid, else a single-byte charset.  An ASCII needle
            # without danger bytes on either side needs no decision; binary
            # junk (a common "text" part) fails UTF-8 within a few bytes.
            if raw is not None and not (_may_hold(b, sides[0][1], False)
                                        or _may_hold(b, sides[1][1], False)):
                return False
            try:
                text = b.decode("utf-8")
                enc, probes, folds = sides[0]
            except UnicodeDecodeError:
                enc, probes, folds = sides[1]
        else:
            enc, probes, folds = sides[0]
        if raw is None and enc is not None and enc in lb:
            return True
        if not _may_hold(b, probes):
            return False  # no danger character: the byte search was the answer
        if folds is not None:  # single-byte: fold the bytes themselves
            table, several, unmapped = folds
            for o in unmapped:
                if o in b:
                    break
            else:
                if enc is None:
                    return False
                fb = b.translate(table)
                for one, many in several:
                    if one in fb:
                        fb = fb.replace(one, many)
                return enc in fb
        if text is None:
            text = decode_charset(b, charset)
        for c in self.danger:
            if c in text:
                return self.text in text.casefold()
        return False


_NEEDLES: dict[str, _Needle] = {}


def _contains(data: bytes, p: Part, nd: _Needle) -> bool:
    """`_collect`, answering the question part by part instead of joining."""
    if p.children is not None:
        for c in p.children:
            if _contains(data, c, nd):
                return True
        return False
    if p.message is not None:
        if nd.text in all_headers_text(data, p.message).casefold():
            return True
        return _contains(data, p.message, nd)
    if p.maintype != "text":
        return False
    body = data[p.body_start:p.end]
    decoded = decode_transfer(body, p.cte)
    if decoded is None:
        decoded = body
    return nd.in_part(decoded, _charset_of(p))


def body_contains(data: bytes, root: Part, needle: str) -> bool:
    """``needle in body_text(data, root).casefold()`` for a casefolded
    *needle*, without building the text (SEARCH BODY/TEXT).

    Parts are searched one by one, stopping at the first match, in their
    transfer-decoded bytes; the charset decoding and casefold() that
    dominate `body_text` happen only where a character like "ß", "Ü" or the
    Kelvin sign could make a difference (see the notes above).  On the
    benchmark corpus 2-3x faster for a rare word (then base64 decoding, which
    both need, is half the time), ~10x for a common one.
    """
    nd = _NEEDLES.get(needle)
    if nd is None:
        if not needle:
            return True
        if ("\n" in needle  # could span the "\n" between parts
                or "\ufffd" in needle  # also what bad bytes read as: no one byte form
                or needle.casefold() != needle):
            return needle in body_text(data, root).casefold()  # exact and slow; rare
        nd = _NEEDLES[needle] = _Needle(needle)
        if len(_NEEDLES) > 64:
            _NEEDLES.clear()
    return _contains(data, root, nd)
