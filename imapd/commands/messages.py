"""The messages a command's sequence set names in the selected mailbox.

FETCH, STORE, COPY and MOVE share this; it lives apart from FETCH so that a
session whose first command after SELECT is a STORE or a MOVE (mark read,
move to the trash) does not load FETCH and its grammar for it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any

from . import CommandError


def resolve_messages(session: Any, seqset: Any, uid: bool) -> list[tuple[int, int]]:
    """(seq, uid) pairs for a sequence set, `$` included; BAD for invalid numbers."""
    view = session.selected
    if seqset.saved:
        saved = set(session.search_result)
        return [(seq, u) for seq, u in enumerate(view.uids, 1) if u in saved]
    if not view.uids:
        return []  # `1:*` on an empty mailbox: nothing to do, not an error clients expect
    try:
        return view.resolve(seqset, uid)
    except ValueError as e:
        raise CommandError(f"Invalid message sequence number: {e}", status="BAD") from None


def resolve_columns(session: Any, seqset: Any, uid: bool) -> tuple[Any, list[int]]:
    """`resolve_messages` as two columns: an iterable of sequence numbers and
    the list of UIDs (no (seq, uid) tuple per message: FETCH 1:* of 100,000
    messages would spend 10 MB on them)."""
    from itertools import chain

    view = session.selected
    if seqset.saved or not view.uids:
        pairs = resolve_messages(session, seqset, uid)
        return [s for s, _ in pairs], [u for _, u in pairs]
    try:
        runs = view.resolve_runs(seqset, uid)
    except ValueError as e:
        raise CommandError(f"Invalid message sequence number: {e}", status="BAD") from None
    uids = view.uids
    if len(runs) == 1:
        lo, hi = runs[0]
        return range(lo + 1, hi + 1), uids[lo:hi]
    picked: list[int] = []
    for lo, hi in runs:
        picked.extend(uids[lo:hi])
    return chain.from_iterable(range(lo + 1, hi + 1) for lo, hi in runs), picked
