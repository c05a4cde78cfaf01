"""Decoded text of a message for SEARCH: header values and text bodies.

SEARCH compares Unicode text, not wire bytes, so encoded words, transfer
encodings and charsets are all undone here.  Nothing raises: an unknown
charset reads as UTF-8 or Latin-1, bad sequences become U+FFFD.
"""

from __future__ import annotations

from .decode import decode_charset, decode_encoded_words, decode_transfer
from .headers import decode_params, field_value
from .part import Part

__all__ = ["header_text", "all_headers_text", "body_text"]


def header_text(data: bytes, part: Part, name: str) -> list[str]:
    """Every value of field *name* in *part*'s header, unfolded and decoded."""
    key = name.strip().lower().encode("latin-1", "replace")
    out: list[str] = []
    for f in part.get_fields(data):
        if f[0] == key:
            raw = data[f[2]:f[3]]
            if b"\n" in raw[:-1]:
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
