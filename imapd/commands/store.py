"""STORE and UID STORE: FLAGS, +FLAGS, -FLAGS, with or without .SILENT."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any, Iterator

from ..protocol import responses as R
from ..protocol.commands import Store
from ..store.base import SYSTEM_FLAGS
from . import CommandError, Result, ok
from .fetch import resolve_messages

_CANONICAL = {f.lower(): f for f in SYSTEM_FLAGS}


def canonical_flags(flags: list[str]) -> list[str]:
    """System flags in their canonical spelling; unknown `\\Flags` refused."""
    out: list[str] = []
    for flag in flags:
        if flag.startswith("\\"):
            canon = _CANONICAL.get(flag.lower())
            if canon is None:
                raise CommandError(f"Invalid system flag {flag}", status="BAD")
            flag = canon
        if flag not in out:
            out.append(flag)
    return out


def store(session: Any, cmd: Store) -> Iterator[bytes]:
    view = session.selected
    if view.readonly:
        raise CommandError("Mailbox is read-only", "READ-ONLY")
    flags = canonical_flags(cmd.flags)
    messages = resolve_messages(session, cmd.seqset, cmd.uid)
    live = [(seq, uid) for seq, uid in messages if uid not in view.pending_expunged]
    changed = view.mailbox.store_flags([uid for _, uid in live], cmd.mode, flags)
    missing = len(live) < len(messages) or len(changed) < len(live)
    yield view.keyword_updates()  # a new keyword is announced before it is used
    if not cmd.silent:
        for seq, uid in live:
            if uid not in changed:
                continue
            head = b"* %d FETCH (" % seq
            if cmd.uid:
                head += b"UID %d " % uid
            yield head + b"FLAGS " + R.flag_list(view.flags_with_recent(uid)) + b")\r\n"
    if missing:
        return Result("NO", "Some of the messages no longer exist", "EXPUNGEISSUED")
    return ok("STORE completed" if not cmd.uid else "UID STORE completed")
