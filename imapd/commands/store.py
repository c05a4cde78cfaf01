"""STORE and UID STORE: FLAGS, +FLAGS, -FLAGS, with or without .SILENT."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any, Iterator

from ..protocol import responses as R
from ..protocol.update_syntax import Store
from ..store.base import SYSTEM_FLAGS
from . import CommandError, Result, ok
from .messages import resolve_columns

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
    seqs, uids = resolve_columns(session, cmd.seqset, cmd.uid)
    gone = view.pending_expunged
    if gone:
        pairs = [(seq, uid) for seq, uid in zip(seqs, uids) if uid not in gone]
        missing = len(pairs) < len(uids)
        seqs, uids = [s for s, _ in pairs], [u for _, u in pairs]
    else:
        missing = False
    changed = view.mailbox.store_flags(uids, cmd.mode, flags)
    missing = missing or len(changed) < len(uids)
    yield view.keyword_updates()  # a new keyword is announced before it is used
    if not cmd.silent:
        for seq, uid in zip(seqs, uids):
            if uid not in changed:
                continue
            head = b"* %d FETCH (" % seq
            if cmd.uid:
                head += b"UID %d " % uid
            yield head + b"FLAGS " + R.flag_list(view.flags_with_recent(uid)) + b")\r\n"
    if missing:
        return Result("NO", "Some of the messages no longer exist", "EXPUNGEISSUED")
    return ok("STORE completed" if not cmd.uid else "UID STORE completed")
