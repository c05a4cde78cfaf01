"""APPEND (RFC 3501 §6.3.11) with UIDPLUS's [APPENDUID] (RFC 4315)."""

from __future__ import annotations

import io
from typing import Any

from ..protocol.commands import Append
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
    uids: list[int] = []
    uidvalidity = 0
    for message in cmd.messages:
        if not message.data:
            raise CommandError("Refusing to save an empty message", "CANNOT")
        flags = [f for f in canonical_flags([f for f in message.flags if f.lower() != "\\recent"])]
        try:
            result = store.append(name, io.BytesIO(message.data), flags, message.date)
        except NoSuchMailbox:
            raise CommandError(f"Mailbox {name} does not exist", "TRYCREATE") from None
        uids.append(result.uid)
        uidvalidity = result.uidvalidity
    return ok("APPEND completed", f"APPENDUID {uidvalidity} {compress_numbers(uids)}")
