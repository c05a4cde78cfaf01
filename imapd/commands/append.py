"""APPEND (RFC 3501 §6.3.11) with UIDPLUS's [APPENDUID] (RFC 4315) and
MULTIAPPEND (RFC 3502): all messages are stored, or none."""

from __future__ import annotations

import io
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any

from .. import log
from ..protocol.update_syntax import Append
from ..protocol.seqset import compress_numbers
from ..store.base import NoSuchMailbox
from . import CommandError, Result, ok
from .names import from_wire
from .store import canonical_flags


def append(session: Any, cmd: Append) -> Result:
    name = from_wire(session, cmd.mailbox)
    store = session.store
    if store.readonly:
        raise CommandError("Mail store is read-only", "READ-ONLY")
    if not store.exists(name):
        raise CommandError(f"Mailbox {name} does not exist", "TRYCREATE")
    # check every message before storing any (RFC 3502 §6.3.11: all or none)
    prepared = []
    for message in cmd.messages:
        if not message.data:
            raise CommandError("Refusing to save an empty message", "CANNOT")
        flags = canonical_flags([f for f in message.flags if f.lower() != "\\recent"])
        prepared.append((message, flags))
    uids: list[int] = []
    uidvalidity = 0
    try:
        for message, flags in prepared:
            result = store.append(name, io.BytesIO(message.data), flags, message.date)
            uids.append(result.uid)
            uidvalidity = result.uidvalidity
    except NoSuchMailbox:
        _roll_back(store, name, uids)
        raise CommandError(f"Mailbox {name} does not exist", "TRYCREATE") from None
    except BaseException:
        _roll_back(store, name, uids)
        raise
    return ok("APPEND completed", f"APPENDUID {uidvalidity} {compress_numbers(uids)}")


def _roll_back(store: Any, name: str, uids: list[int]) -> None:
    """Remove the messages a failed MULTIAPPEND already stored."""
    if not uids:
        return
    try:
        mailbox = store.open(name)
        try:
            mailbox.remove(uids)
        finally:
            mailbox.close()
    except Exception:  # noqa: BLE001 - the original failure is what the client hears
        log.exception(f"could not roll back a failed MULTIAPPEND to {name}")
