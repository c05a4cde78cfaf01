"""SELECT, EXAMINE, CHECK, CLOSE, UNSELECT, EXPUNGE and UID EXPUNGE."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any, Iterator

    from ..protocol.update_syntax import UidExpunge

from ..protocol.commands import MailboxCommand, Simple
from ..selected import SelectedView
from . import CommandError, Result, ok
from .names import from_wire


def select(session: Any, cmd: MailboxCommand) -> Iterator[bytes]:
    if cmd.params:  # (RFC 4466 select parameters: imapd announces none, CONDSTORE among them)
        first = cmd.params[0]
        raise CommandError(f"Unknown {cmd.name} parameter {first if isinstance(first, str) else '(...)'}",
                           status="BAD")
    readonly = cmd.name == "EXAMINE" or session.store.readonly
    name = from_wire(session, cmd.mailbox)
    # RFC 3501: a failed SELECT leaves no mailbox selected
    session.close_selected()
    mailbox = session.store.open(name, readonly=readonly)
    readonly = readonly or mailbox.readonly
    view = SelectedView(mailbox, readonly)
    session.select(view)
    yield view.flags_line()
    yield view.permanent_flags_line()
    yield b"* %d EXISTS\r\n" % len(view)
    yield b"* %d RECENT\r\n" % mailbox.recent_count()
    first = mailbox.first_unseen_index()  # (in the view's UIDs too: it was made from them just now)
    if first >= 0:
        yield b"* OK [UNSEEN %d] First unseen message\r\n" % (first + 1)
    yield b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % mailbox.uidvalidity
    yield b"* OK [UIDNEXT %d] Predicted next UID\r\n" % mailbox.uidnext
    return ok(f"{cmd.name} completed", "READ-ONLY" if readonly else "READ-WRITE")


def check(session: Any, cmd: Simple) -> Result:
    return ok("CHECK completed")


def close(session: Any, cmd: Simple) -> Result:
    """Expunge silently (unless read-only), then leave the selected state."""
    view = session.selected
    if not view.readonly:
        view.mailbox.expunge()
    session.close_selected()
    return ok("CLOSE completed")


def unselect(session: Any, cmd: Simple) -> Result:
    session.close_selected()
    return ok("UNSELECT completed")


def expunge(session: Any, cmd: Simple | UidExpunge) -> Result:
    view = session.selected
    if view.readonly:
        raise CommandError("Mailbox is read-only", "READ-ONLY")
    if cmd.uid:  # UID EXPUNGE (a Simple EXPUNGE has no UIDs; its grammar stays unloaded)
        uids = cmd.seqset.select_uids(view.uids)  # type: ignore[union-attr]
        view.mailbox.expunge(uids)
    else:
        view.mailbox.expunge()
    # the EXPUNGE responses come from the session's report of changes
    return ok("EXPUNGE completed")
