"""COPY, MOVE and their UID forms (RFC 3501, RFC 6851 MOVE, RFC 4315 COPYUID)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any, Iterator

from ..protocol.update_syntax import CopyMove
from ..protocol.seqset import compress_numbers
from ..store.base import NoSuchMailbox
from . import CommandError, Result, ok
from .messages import resolve_messages
from .names import from_wire


def copy_move(session: Any, cmd: CopyMove) -> Iterator[bytes]:
    view = session.selected
    dest = from_wire(session, cmd.mailbox)
    moving = cmd.name == "MOVE"
    if moving and view.readonly:
        raise CommandError("Mailbox is read-only", "READ-ONLY")
    if not session.store.exists(dest):
        raise CommandError(f"Mailbox {dest} does not exist", "TRYCREATE")
    messages = resolve_messages(session, cmd.seqset, cmd.uid)
    uids = [uid for _, uid in messages if uid not in view.pending_expunged]
    if len(uids) < len(messages) and not cmd.uid:
        raise CommandError("Some of the messages no longer exist", "EXPUNGEISSUED")
    if not uids:
        return ok(f"{cmd.name} completed (no messages)")
    try:
        if moving:
            result = view.mailbox.move_to(uids, dest)
        else:
            result = view.mailbox.copy_to(uids, dest)
    except NoSuchMailbox:
        raise CommandError(f"Mailbox {dest} does not exist", "TRYCREATE") from None
    code = f"COPYUID {result.uidvalidity} {compress_numbers(list(result.source_uids))} {compress_numbers(list(result.dest_uids))}" if result.source_uids else None
    if moving:
        # RFC 6851: COPYUID goes in an untagged OK before the EXPUNGEs
        if code:
            yield f"* OK [{code}] Moved\r\n".encode()
        return ok("MOVE completed")
    return Result("OK", "COPY completed", code)
