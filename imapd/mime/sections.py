"""BODY[<section>] and BINARY[<section>] bytes (RFC 3501 §6.4.5, RFC 3516).

Part numbers (the same walk as Dovecot's ``imap-msgpart.c``):

* In a multipart, N is its N-th part.
* A non-multipart entity has only part 1, which is itself (so for a simple
  message ``1`` is its body and ``1.MIME`` its header).
* When the number picked a message/rfc822 (or message/global) part and more
  numbers follow, they count inside the encapsulated message: ``3.1`` is the
  first part of the message in part 3, or its body if it is not multipart.
* Anything else does not exist: the functions return None.

Specifiers: "" / None (the part's body; the whole message for the empty
path), ``HEADER``, ``TEXT``, ``HEADER.FIELDS``, ``HEADER.FIELDS.NOT`` (of the
message itself for the empty path, of the encapsulated message for a
message/rfc822 part, None for other parts) and ``MIME`` (a part's own header
block, blank line included; None for the empty path).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .decode import IDENTITY_CTES, decode_transfer
from .part import Part

__all__ = ["find_part", "section_bytes", "binary_section", "UnknownCTE", "header_fields_bytes"]


class UnknownCTE(Exception):
    """BINARY asked for a part in a Content-Transfer-Encoding we cannot undo.

    The fetch layer answers ``NO [UNKNOWN-CTE]`` (RFC 3516 §4.3).
    """

    def __init__(self, cte: str) -> None:
        super().__init__(cte)
        self.cte = cte


def find_part(root: Part, path: Sequence[int]) -> Part | None:
    """The part a section number names, or None if there is no such part."""
    part: Part | None = root
    last = len(path) - 1
    for i, num in enumerate(path):
        if part is None:
            return None
        kids = part.children
        if kids is not None:
            part = kids[num - 1] if 1 <= num <= len(kids) else None
        elif num != 1 or (i < last and part.message is None):
            return None
        if part is not None and i < last and part.message is not None:
            part = part.message
    return part


def _field_names(fields: Iterable[str | bytes] | None) -> frozenset[bytes]:
    key = tuple(fields) if fields else ()
    names = _NAMES.get(key)
    if names is None:
        out: set[bytes] = set()
        for f in key:
            b = f.encode("latin-1", "replace") if isinstance(f, str) else bytes(f)
            out.add(b.strip().lower())
        names = frozenset(out)
        if len(_NAMES) >= 64:
            _NAMES.clear()
        _NAMES[key] = names
    return names


# the names of a HEADER.FIELDS list, made once: a FETCH 1:* asks the same of
# every message
_NAMES: dict[tuple[str | bytes, ...], frozenset[bytes]] = {}


def header_fields_bytes(
    data: bytes, part: Part, names: Iterable[str | bytes] | None, exclude: bool
) -> bytes:
    """HEADER.FIELDS / HEADER.FIELDS.NOT of *part*'s header.

    The chosen fields in original order and bytes, then the blank line.  A
    field cut short at the end of the message gets its missing CRLF.
    """
    wanted = _field_names(names)
    chunks: list[bytes] = []
    for name, start, _vs, end in part.get_fields(data):
        if (name in wanted) != exclude and name:
            chunk = data[start:end]
            if not chunk.endswith(b"\n"):
                chunk += b"\r\n"
            chunks.append(chunk)
        elif exclude and not name and data[start:end].strip():
            # a line that is not a field at all: still part of the header
            chunk = data[start:end]
            chunks.append(chunk if chunk.endswith(b"\n") else chunk + b"\r\n")
    chunks.append(b"\r\n")
    return b"".join(chunks)


def section_bytes(
    data: bytes,
    root: Part,
    path: tuple[int, ...],
    spec: str | None,
    fields: list[str] | None = None,
) -> bytes | None:
    """The bytes of ``BODY[<path>.<spec>]``; None if the section does not exist.

    *spec* is None/"" (body), "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT",
    "TEXT" or "MIME" (any case); *fields* are the names for HEADER.FIELDS.
    """
    spec_u = spec.upper() if spec else ""
    if not path:
        target: Part | None = root
        if spec_u == "":
            return data[root.start:root.end]
        if spec_u == "MIME":
            return None
    else:
        part = find_part(root, path)
        if part is None:
            return None
        if spec_u == "":
            return data[part.body_start:part.end]
        if spec_u == "MIME":
            return data[part.start:part.body_start]
        target = part.message  # HEADER/TEXT only of an encapsulated message
        if target is None:
            return None
    assert target is not None
    if spec_u == "HEADER":
        return data[target.start:target.body_start]
    if spec_u == "TEXT":
        return data[target.body_start:target.end]
    if spec_u == "HEADER.FIELDS":
        return header_fields_bytes(data, target, fields, exclude=False)
    if spec_u == "HEADER.FIELDS.NOT":
        return header_fields_bytes(data, target, fields, exclude=True)
    return None


def binary_section(data: bytes, root: Part, path: tuple[int, ...]) -> bytes | None:
    """``BINARY[<path>]``: the part's body with its transfer encoding undone.

    Returns None if the part does not exist and **raises** `UnknownCTE` when
    a leaf part's encoding is not one we know (7bit, 8bit, binary, base64,
    quoted-printable).  The empty path is the whole message, as is.
    Multipart and message parts come as they are (MIME allows them only
    identity encodings; their inner parts keep their own), unless a broken
    one claims base64/quoted-printable, which is then undone.
    """
    if not path:
        return data[root.start:root.end]
    part = find_part(root, path)
    if part is None:
        return None
    body = data[part.body_start:part.end]
    cte = part.transfer_encoding
    if cte in IDENTITY_CTES:
        return body
    out = decode_transfer(body, cte)
    if out is None:
        if part.children is not None or part.message is not None:
            return body  # a container's (invalid) unknown encoding: serve as is
        raise UnknownCTE(cte)
    return out
