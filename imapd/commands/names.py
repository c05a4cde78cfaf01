"""Mailbox names between the wire (modified UTF-7) and the store (Unicode)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any

from ..protocol import mutf7
from . import CommandError


def from_wire(session: Any, raw: str) -> str:
    """Decode and validate a mailbox name the client sent; fold INBOX's case."""
    if not raw:
        raise CommandError("Empty mailbox name", "CANNOT")
    try:
        raw.encode("ascii")
    except UnicodeEncodeError:
        raise CommandError("Mailbox name must be modified UTF-7 (8-bit characters are not allowed)", "CANNOT") from None
    if "\x00" in raw or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
        raise CommandError("Mailbox name contains control characters", "CANNOT")
    try:
        name = mutf7.decode(raw)
    except ValueError as e:
        raise CommandError(f"Mailbox name is not valid modified UTF-7: {e}", "CANNOT") from None
    return fold_inbox(name, session.store.delimiter if session.store else None)


def fold_inbox(name: str, delimiter: str | None) -> str:
    """INBOX is case-insensitive (RFC 3501 §5.1), including as a hierarchy prefix."""
    if name.upper() == "INBOX":
        return "INBOX"
    if delimiter and name[:6].upper() == "INBOX" + delimiter.upper() and name[5] == delimiter:
        return "INBOX" + name[5:]
    return name


def to_wire(name: str) -> bytes:
    """A Unicode mailbox name as an astring on the wire."""
    from ..protocol.responses import astring

    return astring(mutf7.encode(name))
