"""BODY and BODYSTRUCTURE (RFC 3501 §7.4.2, RFC 9051 §7.5.2) from a Part tree.

Output follows Dovecot's ``imap-bodystructure.c`` for every choice the RFCs
leave open, so clients moving between the two servers see the same thing:

* Type and subtype are sent as written in the header (case preserved);
  defaulted types are ``"text" "plain"`` (or ``"message" "rfc822"`` inside
  multipart/digest).
* A text part without a charset parameter gets ``("charset" "us-ascii")``
  appended (RFC 2045 default); other parts with no parameters get NIL.
* Parameter names and values are sent as written; RFC 2231 continuations are
  merged and charset-encoded values stay encoded under ``name*``.
* Content-Transfer-Encoding is the token as written, ``"7bit"`` if absent.
* Sizes are body octets in wire form; line counts are LF counts of the body
  (the CRLF before a boundary belongs to the boundary, so a part's last line
  counts only if it ends with its own CRLF -- Dovecot counts the same way).
* A multipart without any part (no or wrong boundary) shows one empty
  ``text/plain`` part, since the grammar needs at least one.
* Content-Language is always a list; disposition parameters NIL when none.
* message/global: IMAP4rev1's grammar knows only MESSAGE/RFC822 as the
  type with envelope and nested body, IMAP4rev2 (RFC 9051) adds GLOBAL.  So
  message/global is a basic part unless ``imap4rev2=True``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any

from .envelope import envelope
from .headers import Params
from .part import Part

__all__ = ["body_structure"]

_CHARSET_DEFAULT = ["charset", "us-ascii"]


def _empty_part(extended: bool) -> list[Any]:
    body: list[Any] = ["text", "plain", list(_CHARSET_DEFAULT), None, None, "7bit", 0, 0]
    if extended:
        body += [None, None, None, None]
    return body


def _params(plist: Params, text: bool) -> list[Any] | None:
    if not plist:
        return list(_CHARSET_DEFAULT) if text else None
    out: list[Any] = []
    has_charset = False
    for name, value in plist:
        out.append(name)
        out.append(value)
        if text and not has_charset and name.lower() == b"charset":
            has_charset = True
    if text and not has_charset:
        out += _CHARSET_DEFAULT
    return out


def _disposition(p: Part) -> list[Any] | None:
    if p.disposition is None:
        return None
    dp = p.disposition_params
    return [p.disposition, [x for kv in dp for x in kv] if dp else None]


def _body(data: bytes, p: Part, ext: bool, rev2: bool) -> list[Any]:
    kids = p.children
    if kids is not None:
        out: list[Any] = [_body(data, c, ext, rev2) for c in kids] if kids else [_empty_part(ext)]
        out.append(p.subtype_raw if p.subtype_raw is not None else p.subtype)
        if ext:
            out += [_params(p.param_list, False), _disposition(p),
                    list(p.language) if p.language else None, p.location]
        return out
    mt = p.maintype
    text = mt == "text"
    cte = p.cte
    out = [
        p.type_raw if p.type_raw is not None else mt,
        p.subtype_raw if p.type_raw is not None else p.subtype,
        _params(p.param_list, text), p.content_id, p.description,
        cte if cte is not None else "7bit", p.end - p.body_start,
    ]
    msg = p.message
    if msg is not None and (rev2 or p.subtype == "rfc822"):
        out += [envelope(data, msg), _body(data, msg, ext, rev2), p.lines]
    elif text:
        out.append(p.lines)
    if ext:
        out += [p.md5, _disposition(p), list(p.language) if p.language else None, p.location]
    return out


def body_structure(
    data: bytes, part: Part, extended: bool, *, imap4rev2: bool = False
) -> list[Any]:
    """BODY (``extended=False``) or BODYSTRUCTURE (``extended=True``) of *part*.

    *part* is normally the root from `parse_message`.  Never raises.
    """
    try:
        return _body(data, part, extended, imap4rev2)
    except Exception:  # pragma: no cover - defensive
        from . import structure

        if structure._STRICT:
            raise
        return _empty_part(extended)
