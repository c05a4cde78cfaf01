"""ENVELOPE (RFC 3501 §7.4.2, RFC 9051 §7.5.2) from a message's header.

Values follow the package's "IMAP value" convention: None is NIL, bytes are
header text served as written (unfolded, outer whitespace stripped, encoded
words left encoded, NUL bytes turned into U+FFFD).  Rules worth knowing:

* A field that is absent is NIL; a field that is present but empty is ""
  (Dovecot does the same for date, subject, in-reply-to and message-id).
* The first occurrence of a field counts (RFC 5322 allows one; Dovecot
  happens to keep the last).
* An address field with no address in it is NIL, and Sender / Reply-To that
  are absent *or empty* take the value of From (RFC 3501).
* Address placeholders for missing parts: see `imapd.mime.address`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any

from .address import parse_address_list
from .part import Part

__all__ = ["envelope", "ENVELOPE_FIELDS"]

#: Field names in ENVELOPE order.
ENVELOPE_FIELDS = (
    b"date", b"subject", b"from", b"sender", b"reply-to",
    b"to", b"cc", b"bcc", b"in-reply-to", b"message-id",
)


def envelope(data: bytes, part: Part) -> list[Any]:
    """The ENVELOPE of the message whose header is *part*'s header.

    *part* is the root from `parse_message` or the ``message`` of a
    message/rfc822 part.  Never raises.
    """
    try:
        return _envelope(data, part)
    except Exception:  # pragma: no cover - defensive
        from . import structure

        if structure._STRICT:
            raise
        return [None] * 10


def _envelope(data: bytes, part: Part) -> list[Any]:
    get = part.wanted_fields(data).get
    from_ = parse_address_list(get(b"from"))
    # an empty address field is NIL, but Sender/Reply-To then still default
    # to From (RFC 3501: "absent ... or present but empty")
    sender = parse_address_list(get(b"sender"))
    reply_to = parse_address_list(get(b"reply-to"))
    return [
        get(b"date"), get(b"subject"), from_,
        sender if sender is not None else from_,
        reply_to if reply_to is not None else from_,
        parse_address_list(get(b"to")), parse_address_list(get(b"cc")),
        parse_address_list(get(b"bcc")), get(b"in-reply-to"), get(b"message-id"),
    ]
