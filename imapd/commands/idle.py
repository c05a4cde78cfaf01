"""IDLE (RFC 2177): wait for DONE while mailbox changes are pushed at once.

The waiting itself happens in the session's event loop, which watches the
client's descriptor and the mailbox's inotify descriptor (or polls) together.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any

from ..protocol.commands import Simple


def idle(session: Any, cmd: Simple) -> None:
    view = session.selected
    if view is not None:
        view.watch_fds()  # watch first: a change right after "+ idling" must not be missed
    session.start_idle(cmd.tag)
    if view is not None:
        session.out += view.report_changes(True)
