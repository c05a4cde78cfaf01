"""`Part`: one MIME entity as offsets into the message, and its cache form.

The parser (`imapd.mime.structure`) builds these; everything else reads
them.  A Part holds offsets into the wire-form message, never copies of
bodies, plus the MIME fields BODYSTRUCTURE needs, so the store can keep
`Part.to_cache` of every message and answer BODY[1.2] without parsing again.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any

from itertools import chain

from .headers import Field, Params, decode_params, header_end, scan_header, split_fields

__all__ = ["Part", "count_lines", "entity_lines"]

_TEXT = "text"
_MESSAGE = "message"


class Part:
    """One MIME entity: the whole message, a part of a multipart, or an
    encapsulated message.

    Offsets are absolute in the wire-form buffer: the header block is
    ``data[start:body_start]`` (blank line included), the body
    ``data[body_start:end]``.  Raw header-derived values are ``bytes`` exactly
    as written (unfolded, stripped) so BODYSTRUCTURE serves them verbatim;
    ``maintype``/``subtype`` are lower-case ``str`` for program logic.

    Attributes:

    * ``lines`` -- LFs in the body; counted for text/* and message/* during
      the parse, -1 elsewhere until `body_lines` is asked.
    * ``type_raw``/``subtype_raw`` -- Content-Type as written, None when the
      type was defaulted (text/plain, or message/rfc822 in a digest).
    * ``param_list`` / ``disposition_params`` -- parameters as written, RFC
      2231 pieces merged (tuples of ``(name, value)`` bytes); `params` is the
      decoded dict.
    * ``cte``, ``content_id``, ``description``, ``md5``, ``disposition``,
      ``location`` -- bytes or None; ``language`` a tuple of tags or None.
    * ``children`` -- list of parts for multipart (maybe empty), else None.
    * ``message`` -- the encapsulated message of message/rfc822 (and of
      identity-encoded message/global), else None.
    * ``fields`` / ``first`` -- header caches, not kept by `to_cache`: see
      `get_fields` and `wanted_fields`.

    Parts may share these values with other parts (parsed headers are
    cached), so treat them as read-only.
    """

    __slots__ = (
        "start",
        "body_start",
        "end",
        "lines",
        "maintype",
        "subtype",
        "type_raw",
        "subtype_raw",
        "param_list",
        "cte",
        "content_id",
        "description",
        "md5",
        "disposition",
        "disposition_params",
        "language",
        "location",
        "children",
        "message",
        "fields",
        "first",
    )

    start: int
    body_start: int
    end: int
    lines: int
    maintype: str
    subtype: str
    type_raw: bytes | None
    subtype_raw: bytes | None
    param_list: Params
    cte: bytes | None
    content_id: bytes | None
    description: bytes | None
    md5: bytes | None
    disposition: bytes | None
    disposition_params: Params
    language: tuple[bytes, ...] | None
    location: bytes | None
    children: list[Part] | None
    message: Part | None
    fields: list[Field] | None
    first: dict[bytes, bytes] | None

    def __init__(self, start: int = 0, body_start: int = 0, end: int = 0) -> None:
        self.start = start
        self.body_start = body_start
        self.end = end
        self.lines = -1  # counted for text/* and message/*, else see body_lines()
        self.maintype = _TEXT
        self.subtype = "plain"
        self.type_raw = None  # None: type defaulted, not written in the header
        self.subtype_raw = None
        self.param_list = ()
        self.cte = None
        self.content_id = None
        self.description = None
        self.md5 = None
        self.disposition = None
        self.disposition_params = ()
        self.language = None
        self.location = None
        self.children = None  # a list (maybe empty) exactly for multipart
        self.message = None  # the encapsulated message of message/rfc822|global
        self.fields = None  # all header fields, split on first use (get_fields)
        self.first = None  # first occurrence of the fields ENVELOPE etc. need

    # ------------------------------------------------------------- accessors
    @property
    def is_multipart(self) -> bool:
        return self.children is not None

    @property
    def header_size(self) -> int:
        return self.body_start - self.start

    @property
    def body_size(self) -> int:
        return self.end - self.body_start

    @property
    def content_type(self) -> str:
        """``maintype/subtype``, lower-case."""
        return f"{self.maintype}/{self.subtype}"

    @property
    def params(self) -> dict[str, str]:
        """Content-Type parameters: lower-case names, RFC 2231/2047-decoded values."""
        return decode_params(self.param_list)

    @property
    def transfer_encoding(self) -> str:
        """Content-Transfer-Encoding, lower-case; "7bit" when absent."""
        if self.cte is None:
            return "7bit"
        return self.cte.decode("latin-1").lower()

    @property
    def charset(self) -> str | None:
        """The charset parameter, if any (text parts default to us-ascii)."""
        cs = self.params.get("charset")
        if cs is None and self.maintype == _TEXT:
            return "us-ascii"
        return cs

    def body_lines(self, data: bytes) -> int:
        """Lines (LFs) in the body; counted on demand for parts other than
        text/* and message/*, which BODYSTRUCTURE does not count."""
        return self.lines if self.lines >= 0 else _body_lines(data, self)

    def header_end(self, data: bytes) -> int:
        """End of the header fields, i.e. where the blank line starts."""
        return header_end(data, self.start, self.body_start)

    def get_fields(self, data: bytes) -> list[Field]:
        """All header fields as ``(name, start, value_start, end)`` tuples.

        Split on first use (HEADER.FIELDS, SEARCH) and kept; the parse itself
        only looks at the fields it needs (see `wanted_fields`).
        """
        f = self.fields
        if f is None:
            f = self.fields = split_fields(data, self.start, self.header_end(data))
        return f

    def wanted_fields(self, data: bytes) -> dict[bytes, bytes]:
        """First occurrence of each ENVELOPE/Content-* field: name -> raw value."""
        f = self.first
        if f is None:
            f = self.first = scan_header(data, self.start, self.header_end(data))
        return f

    def walk(self) -> list[Part]:
        """This part and every part below it, depth first (encapsulated too)."""
        out = [self]
        if self.children:
            for c in self.children:
                out.extend(c.walk())
        if self.message is not None:
            out.extend(self.message.walk())
        return out

    def __repr__(self) -> str:
        kids = f" children={len(self.children)}" if self.children is not None else ""
        msg = " message" if self.message is not None else ""
        return (
            f"<Part {self.maintype}/{self.subtype} {self.start}:{self.body_start}:"
            f"{self.end}{kids}{msg}>"
        )

    # ----------------------------------------------------------------- cache
    def to_cache(self) -> tuple[Any, ...]:
        """The whole tree as nested tuples of ints/bytes/None (marshal-able).

        Header fields are not kept: they are cheap to re-split from the
        message when a HEADER.FIELDS fetch needs them.  Trailing None fields
        are left out (most parts have no extension fields at all).
        """
        plist = self.param_list
        dp = self.disposition_params
        kids = self.children
        msg = self.message
        lang = self.language
        value = (
            self.start, self.body_start, self.end, self.lines,
            # the effective type is stored only when it was defaulted (no
            # Content-Type): 0 text/plain, 1 message/rfc822
            1 if (self.type_raw is None and self.maintype == _MESSAGE) else 0,
            self.type_raw, self.subtype_raw,
            tuple(chain.from_iterable(plist)) if plist else None,  # (name, value) pairs, flat
            self.cte,
            tuple([c.to_cache() for c in kids]) if kids is not None else None,
            msg.to_cache() if msg is not None else None,
            self.content_id, self.description, self.md5, self.disposition,
            tuple(chain.from_iterable(dp)) if dp else None,
            tuple(lang) if lang is not None else None,
            self.location,
        )
        n = _EXTENSIONS_AT if value[_EXTENSIONS_AT:] == _NO_EXTENSIONS else _CACHE_FIELDS
        while value[n - 1] is None:
            n -= 1
        return value[:n]

    @classmethod
    def from_cache(cls, value: Any) -> Part:
        """Rebuild a tree from `to_cache` output (tuples or lists)."""
        if len(value) < _CACHE_FIELDS:
            value = tuple(value) + (None,) * (_CACHE_FIELDS - len(value))
        (start, body_start, end, lines, dflt, type_raw, subtype_raw, flat, cte, kids, msg,
         cid, desc, md5, disp, dflat, lang, loc) = value
        p = cls(start, body_start, end)
        p.lines = lines
        if type_raw is not None:
            p.type_raw = type_raw
            p.subtype_raw = subtype_raw
            p.maintype = type_raw.decode("latin-1").lower()
            p.subtype = subtype_raw.decode("latin-1").lower()
        elif dflt == 1:
            p.maintype, p.subtype = _MESSAGE, "rfc822"
        if flat:
            p.param_list = tuple((flat[i], flat[i + 1]) for i in range(0, len(flat), 2))
        p.cte = cte
        p.content_id = cid
        p.description = desc
        p.md5 = md5
        p.disposition = disp
        if dflat:
            p.disposition_params = tuple(
                (dflat[i], dflat[i + 1]) for i in range(0, len(dflat), 2)
            )
        p.language = tuple(lang) if lang is not None else None
        p.location = loc
        if kids is not None:
            p.children = [cls.from_cache(k) for k in kids]
        if msg is not None:
            p.message = cls.from_cache(msg)
        return p


_CACHE_FIELDS = 18  # length of a full to_cache() tuple
_EXTENSIONS_AT = 11  # where the extension fields (Content-ID...) start in it
_NO_EXTENSIONS = (None,) * (_CACHE_FIELDS - _EXTENSIONS_AT)


def _body_lines(data: bytes, p: Part) -> int:
    """LFs in *p*'s body, from counts its parts already have where possible.

    A message/rfc822 part's line count covers the whole encapsulated message,
    whose text parts were just counted; adding those up and counting only the
    headers and delimiter lines in between avoids reading the bytes twice.
    """
    if p.lines >= 0:
        return p.lines
    kids = p.children
    if kids is not None:
        total = 0
        pos = p.body_start
        for c in kids:
            total += data.count(b"\n", pos, c.start) + entity_lines(data, c)
            pos = c.end
        total += data.count(b"\n", pos, p.end)
    elif p.message is not None:
        total = entity_lines(data, p.message)
    else:
        total = count_lines(data, p.body_start, p.end)
    p.lines = total
    return total


def entity_lines(data: bytes, p: Part) -> int:
    """LFs in the whole entity *p*: header block and body."""
    return data.count(b"\n", p.start, p.body_start) + _body_lines(data, p)


def count_lines(data: bytes, start: int, end: int) -> int:
    """Number of LFs in data[start:end].

    ``bytes.count`` tests every byte; ``replace`` finds LFs with memchr and is
    about twice as fast on mail-sized bodies, copy included -- up to about
    100 KB: beyond that the copy costs more than it saves (an attachment of
    2 MB counts twice as fast with ``count``, and allocates nothing).
    """
    if end - start < 256 or end - start > 131072:
        return data.count(b"\n", start, end)
    seg = data[start:end] if start or end != len(data) else data
    return len(seg) - len(seg.replace(b"\n", b""))
