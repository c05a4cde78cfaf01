"""Decoding: transfer encodings (BINARY, SEARCH), charsets and RFC 2047 words.

None of this is on the ENVELOPE/BODYSTRUCTURE hot path, and all of it is
tolerant: bad base64, stray "=" in quoted-printable, unknown or lying
charsets never raise, they degrade to the best readable result.
"""

from __future__ import annotations

import binascii
import re

__all__ = [
    "IDENTITY_CTES",
    "decode_transfer",
    "decode_charset",
    "decode_encoded_words",
]

#: Transfer encodings that leave the body as it is.
IDENTITY_CTES = frozenset({"7bit", "8bit", "binary", ""})

_B64_JUNK_RE = re.compile(rb"[^A-Za-z0-9+/]+")
_QP_SPACE_RE = re.compile(rb"[ \t]+(?=\r?\n|\Z)")


def _decode_base64(body: bytes) -> bytes:
    """Base64 that survives junk, missing or misplaced padding."""
    try:
        return binascii.a2b_base64(body)
    except (binascii.Error, ValueError):
        pass
    clean = _B64_JUNK_RE.sub(b"", body)
    extra = len(clean) % 4
    if extra == 1:  # a lone sextet carries no whole byte
        clean = clean[:-1]
    elif extra:
        clean += b"=" * (4 - extra)
    try:
        return binascii.a2b_base64(clean)
    except (binascii.Error, ValueError):  # pragma: no cover - clean input
        return b""


def _decode_qp(body: bytes) -> bytes:
    """Quoted-printable; trailing blanks that transport added are dropped
    (RFC 2045 §6.7 rule 3), also at the very end of the body."""
    return binascii.a2b_qp(_QP_SPACE_RE.sub(b"", body))


def decode_transfer(body: bytes, cte: str | bytes | None) -> bytes | None:
    """Undo a Content-Transfer-Encoding, for BINARY[] (RFC 3516) and SEARCH.

    7bit/8bit/binary/absent return the body unchanged; base64 and
    quoted-printable are decoded tolerantly.  An unknown encoding returns
    None: the caller answers ``NO [UNKNOWN-CTE]`` (or, for SEARCH, searches
    the raw bytes).
    """
    if cte is None:
        return body
    if isinstance(cte, bytes):
        cte = cte.decode("latin-1")
    c = cte.strip().lower()
    if c in IDENTITY_CTES:
        return body
    if c == "base64":
        return _decode_base64(body)
    if c == "quoted-printable":
        return _decode_qp(body)
    return None


# ------------------------------------------------------------------- charsets

# Labels that are routinely wrong or have a larger, compatible superset.
# (The same choices WHATWG's Encoding Standard makes for the web.)
_CHARSET_ALIASES = {
    "": "utf-8",
    "us-ascii": "utf-8",  # 8-bit in "ASCII" mail is nearly always UTF-8
    "ascii": "utf-8",
    "us_ascii": "utf-8",
    "ansi_x3.4-1968": "utf-8",
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "iso-8859-9": "cp1254",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "x-sjis": "cp932",
    "shift_jis": "cp932",
    "sjis": "cp932",
    "windows-31j": "cp932",
    "big5": "big5hkscs",
    "x-unknown": "utf-8",
    "unknown-8bit": "utf-8",
    "default": "utf-8",
}
_codec_cache: dict[str, str | None] = {}
# Charsets that encode non-ASCII text in ASCII bytes (ISO-2022-JP mail is common).
_SEVEN_BIT_CODECS = frozenset({
    "utf-7", "iso2022_jp", "iso2022_jp_1", "iso2022_jp_2", "iso2022_jp_2004",
    "iso2022_jp_3", "iso2022_jp_ext", "iso2022_kr", "hz",
})


def _codec_for(charset: str) -> str | None:
    """Python codec name for a MIME charset label, or None if unknown."""
    got = _codec_cache.get(charset)
    if got is not None or charset in _codec_cache:
        return got
    label = charset.strip().strip('"').lower()
    star = label.find("*")  # RFC 2231 language suffix: utf-8*en
    if star >= 0:
        label = label[:star]
    name: str | None = _CHARSET_ALIASES.get(label, label)
    try:
        import codecs

        info = codecs.lookup(name)  # type: ignore[arg-type]
        if not getattr(info, "_is_text_encoding", True):
            name = None  # base64_codec, zlib_codec... are not charsets
        else:
            name = info.name
    except (LookupError, ValueError, TypeError):
        name = None
    if len(_codec_cache) < 512:
        _codec_cache[charset] = name
    return name


def decode_charset(raw: bytes, charset: str | None) -> str:
    """Bytes in a MIME charset to text; never raises.

    Bad sequences become U+FFFD.  An unknown charset is tried as UTF-8 and,
    failing that, read as Latin-1 so every byte still means something.
    """
    codec = _codec_for(charset or "")
    if raw.isascii() and codec not in _SEVEN_BIT_CODECS:
        return raw.decode("ascii")
    if codec is None:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    if codec == "utf-8":
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            if "8" in (charset or ""):  # really labelled UTF-8: keep what is valid
                return raw.decode("utf-8", "replace")
            # an unlabelled or "us-ascii" body in some legacy 8-bit charset
            return raw.decode("cp1252", "replace")
    try:
        return raw.decode(codec, "replace")
    except (UnicodeError, LookupError, ValueError, TypeError):
        return raw.decode("latin-1")


# -------------------------------------------------------------------- RFC 2047

# =?charset[*lang]?B|Q?text?=  -- tolerant: spaces inside the text are let
# through (some mailers put them there), "?=" ends the word.
_EW_RE = re.compile(rb"=\?([^?\s]+)\?([BbQq])\?(.*?)\?=", re.S)
_QP_WORD_RE = re.compile(rb"=([0-9A-Fa-f]{2})")
_FOLD_RE = re.compile(rb"\r?\n(?=[ \t])")


def _ew_bytes(enc: bytes, text: bytes) -> bytes:
    """The octets of one encoded word's text."""
    if enc in b"Bb":
        return _decode_base64(text)
    text = text.replace(b"_", b" ")
    if b"=" in text:
        text = _QP_WORD_RE.sub(lambda m: bytes((int(m.group(1), 16),)), text)
    return text


def decode_encoded_words(raw: bytes) -> str:
    """Decode RFC 2047 encoded words in a header value to text.

    Tolerant in the ways real mail needs: whitespace between adjacent encoded
    words is dropped (RFC 2047 §6.2); adjacent words in the same charset are
    joined *before* charset decoding, so a UTF-8 character split across two
    words survives; bad base64, unknown charsets and 8-bit bytes outside
    encoded words (read as UTF-8, else Latin-1) never raise.  Folding line
    breaks are removed.
    """
    if b"\n" in raw:
        raw = _FOLD_RE.sub(b"", raw)
    if b"=?" not in raw:
        return decode_charset(raw, None)
    out: list[str] = []
    pos = 0
    pend_cs: bytes | None = None  # charset of the pending encoded octets
    pend = bytearray()
    for m in _EW_RE.finditer(raw):
        gap = raw[pos:m.start()]
        cs = m.group(1)
        if gap and not (pend_cs is not None and gap.strip(b" \t\r\n") == b""):
            if pend_cs is not None:
                out.append(decode_charset(bytes(pend), pend_cs.decode("latin-1")))
                pend_cs = None
                pend.clear()
            out.append(decode_charset(gap, None))
        if pend_cs is not None and pend_cs.lower() != cs.lower():
            out.append(decode_charset(bytes(pend), pend_cs.decode("latin-1")))
            pend.clear()
        pend_cs = cs
        pend += _ew_bytes(m.group(2), m.group(3))
        pos = m.end()
    if pend_cs is not None:
        out.append(decode_charset(bytes(pend), pend_cs.decode("latin-1")))
    if pos < len(raw):
        out.append(decode_charset(raw[pos:], None))
    return "".join(out)
