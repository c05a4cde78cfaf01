"""ENVELOPE and BODYSTRUCTURE straight to wire bytes.

`envelope_wire(data, part)` is ``encode(envelope(data, part))`` and
`body_structure_wire(data, part, extended)` is
``encode(body_structure(data, part, extended))``, byte for byte, without
building the nested value lists first and walking them again in the
generic encoder.  This is the cold path of ``FETCH 1:* (ENVELOPE
BODYSTRUCTURE)``: every message of a mailbox goes through here once, and
the lists plus the generic walk were about a third of the time per message.

What makes it cheaper:

* Each piece is encoded where it is found, with the encoder's own rules
  (`quoted_or_literal`, `encode` for anything unusual), and short strings
  (types, charsets, encodings, names) are looked up once encoded.
* Address fields are encoded whole, keyed by the raw header value: the same
  From:/To: values come back message after message, so most cost one
  dictionary lookup (no parse, no per-address encoding).
* Parameter lists of leaf parts (``("charset" "utf-8")``) likewise.

The caches are bounded and hold only values that are pure functions of
their keys, so they can never change an answer.
"""

from __future__ import annotations

from ..protocol.responses import encode, quoted_or_literal
from .address import parse_address_list
from .bodystructure import body_structure
from .envelope import envelope
from .headers import Params
from .part import Part

__all__ = ["envelope_wire", "body_structure_wire"]

_CACHE_MAX = 4096
_SHORT = 64  # strings up to this length are kept encoded in _STRINGS
_ADDRESS_MAX = 256  # address field values up to this length are kept encoded

_STRINGS: dict[bytes | str, bytes] = {}  # exact str/bytes -> quoted (or literal) form
_ADDRESSES: dict[bytes, bytes] = {}  # raw address field -> encoded list or NIL
_LEAF_PARAMS: tuple[dict[Params, bytes], dict[Params, bytes]] = ({}, {})  # [text] plist -> encoded

_NIL = b"NIL"
_CHARSET_DEFAULT = b' "charset" "us-ascii"'
_EMPTY_PART = (
    encode(["text", "plain", ["charset", "us-ascii"], None, None, "7bit", 0, 0]),
    encode(["text", "plain", ["charset", "us-ascii"], None, None, "7bit", 0, 0, None, None, None, None]),
)  # [extended]: the part a multipart without parts shows (see bodystructure)


def _string(v: object) -> bytes:
    """`encode(v)` for an nstring (bytes, str or None), cached when short."""
    if v is None:
        return _NIL
    t = type(v)
    if t is bytes or t is str:  # exact types: subclasses (Literal, Atom) encode differently
        q = _STRINGS.get(v)  # type: ignore[arg-type]
        if q is not None:
            return q
        q = quoted_or_literal(v) if t is bytes else encode(v)  # type: ignore[arg-type]
        if len(v) <= _SHORT:  # type: ignore[arg-type]
            if len(_STRINGS) >= _CACHE_MAX:
                _STRINGS.clear()
            _STRINGS[v] = q  # type: ignore[index]
        return q
    return encode(v)


def _unique(v: object) -> bytes:
    """`encode(v)` for an nstring that is seldom seen twice (dates, subjects,
    message IDs): not worth a place in the cache."""
    if v is None:
        return _NIL
    return quoted_or_literal(v) if type(v) is bytes else encode(v)  # type: ignore[arg-type]


def _addresses(v: bytes | None) -> bytes:
    """An ENVELOPE address field: `encode(parse_address_list(v))`, NIL for none."""
    if not v:
        return _NIL
    w = _ADDRESSES.get(v)
    if w is None:
        parsed = parse_address_list(v)
        # "(" 1*address ")", each address "(" name SP adl SP mailbox SP host ")"
        # (names and local parts are the sender's own; the whole field is what repeats)
        w = _NIL if parsed is None else b"(%s)" % b"".join([
            b"(%s %s %s %s)" % (_unique(a[0]), _string(a[1]), _unique(a[2]), _string(a[3])) for a in parsed])
        if len(v) <= _ADDRESS_MAX:
            if len(_ADDRESSES) >= _CACHE_MAX:
                _ADDRESSES.clear()
            _ADDRESSES[v] = w
    return w


def envelope_wire(data: bytes, part: Part) -> bytes:
    """``encode(envelope(data, part))``.  Never raises."""
    try:
        get = part.wanted_fields(data).get
        from_ = _addresses(get(b"from"))
        sender = _addresses(get(b"sender"))
        reply_to = _addresses(get(b"reply-to"))
        return b"(%s %s %s %s %s %s %s %s %s %s)" % (
            _unique(get(b"date")), _unique(get(b"subject")), from_,
            from_ if sender is _NIL else sender,
            from_ if reply_to is _NIL else reply_to,
            _addresses(get(b"to")), _addresses(get(b"cc")), _addresses(get(b"bcc")),
            _unique(get(b"in-reply-to")), _unique(get(b"message-id")),
        )
    except Exception:  # pragma: no cover - defensive; the value path has the same fallback
        from . import structure

        if structure._STRICT:
            raise
        return encode(envelope(data, part))


def _pairs(plist: Params) -> list[bytes]:
    """name, value, ...: names repeat; values (boundaries, file names) seldom
    do, and a leaf's whole list is cached in _LEAF_PARAMS."""
    out = []
    for name, value in plist:
        out += (_string(name), _unique(value))
    return out


def _params(plist: Params, text: bool) -> bytes:
    """Content-Type parameters (a text part without charset gets us-ascii)."""
    if not plist:
        return b'("charset" "us-ascii")' if text else _NIL
    out = _pairs(plist)
    if text and not any(name.lower() == b"charset" for name, _ in plist):
        return b"(%s%s)" % (b" ".join(out), _CHARSET_DEFAULT)
    return b"(%s)" % b" ".join(out)


def _leaf_params(plist: Params, text: bool) -> bytes:
    """`_params` of a leaf part, cached: leaf parameter lists repeat."""
    cache = _LEAF_PARAMS[text]
    w = cache.get(plist)
    if w is None:
        w = _params(plist, text)
        if len(w) <= _ADDRESS_MAX:
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[plist] = w
    return w


def _disposition(p: Part) -> bytes:
    if p.disposition is None:
        return _NIL
    dp = p.disposition_params
    return b"(%s %s)" % (_string(p.disposition), b"(%s)" % b" ".join(_pairs(dp)) if dp else _NIL)


def _language(lang: tuple[bytes, ...] | None) -> bytes:
    return b"(%s)" % b" ".join(map(_string, lang)) if lang else _NIL


def _body(data: bytes, p: Part, ext: bool, rev2: bool, out: list[bytes]) -> None:
    """Append the encoded body of *p* to *out* (mirrors bodystructure._body)."""
    kids = p.children
    if kids is not None:
        out.append(b"(")
        if kids:
            for c in kids:  # "1*body": no space between the parts
                _body(data, c, ext, rev2, out)
        else:
            out.append(_EMPTY_PART[ext])
        out.append(b" ")
        out.append(_string(p.subtype_raw if p.subtype_raw is not None else p.subtype))
        if ext:
            out.append(b" %s %s %s %s)" % (
                _params(p.param_list, False), _disposition(p), _language(p.language), _string(p.location)))
        else:
            out.append(b")")
        return
    mt = p.maintype
    text = mt == "text"
    cte = p.cte
    raw = p.type_raw
    out.append(b"(%s %s %s %s %s %s %d" % (
        _string(raw if raw is not None else mt),
        _string(p.subtype_raw if raw is not None else p.subtype),
        _leaf_params(p.param_list, text), _string(p.content_id), _string(p.description),
        _string(cte) if cte is not None else b'"7bit"', p.end - p.body_start,
    ))
    msg = p.message
    if msg is not None and (rev2 or p.subtype == "rfc822"):
        out.append(b" ")
        out.append(envelope_wire(data, msg))
        out.append(b" ")
        _body(data, msg, ext, rev2, out)
        out.append(b" %d" % p.lines)
    elif text:
        out.append(b" %d" % p.lines)
    if ext:
        out.append(b" %s %s %s %s)" % (
            _string(p.md5), _disposition(p), _language(p.language), _string(p.location)))
    else:
        out.append(b")")


def body_structure_wire(data: bytes, part: Part, extended: bool, *, imap4rev2: bool = False) -> bytes:
    """``encode(body_structure(data, part, extended, imap4rev2=...))``.  Never raises."""
    out: list[bytes] = []
    try:
        _body(data, part, extended, imap4rev2, out)
    except Exception:  # pragma: no cover - defensive; the value path has the same fallback
        from . import structure

        if structure._STRICT:
            raise
        return encode(body_structure(data, part, extended, imap4rev2=imap4rev2))
    return b"".join(out)


class DerivedValues:
    """What a FETCH helper process builds per message: the wire values of
    the named items (ENVELOPE, BODY, BODYSTRUCTURE) and the parsed
    structure as the cache keeps it.  Made from the names alone, so the
    helper, another interpreter, makes the same (see store prebuild).  The
    structure comes marshalled: the server stores it as it is.

    `memo_max` bounds this process's memos of parsed and encoded values
    (types, parameters, addresses) to that many entries each: a helper's
    memory counts in its session's, and those memos, filled over 100,000
    messages, were most of it, for little speed."""

    def __init__(self, names: tuple[str, ...], memo_max: int | None = None) -> None:
        if memo_max is not None:
            global _CACHE_MAX
            from . import address, structure

            _CACHE_MAX = address._CACHE_MAX = structure._CACHE_MAX = memo_max
        makers = {"ENVELOPE": envelope_wire,
                  "BODY": lambda data, root: body_structure_wire(data, root, False),
                  "BODYSTRUCTURE": lambda data, root: body_structure_wire(data, root, True)}
        self.makers = [makers[n] for n in names]

    def __call__(self, data: bytes) -> tuple[list[bytes], bytes]:
        """(the items' wire values, `marshal.dumps` of the structure as cached)."""
        import marshal

        from .structure import parse_message

        root = parse_message(data)
        return [m(data, root) for m in self.makers], marshal.dumps(root.to_cache())
