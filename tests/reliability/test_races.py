"""Deterministic replays of races the torture test found (two store objects in
one process stand for two imapd processes; a hook on the dotlock decides
what the "other process" does while this one waits for the lock)."""

from __future__ import annotations

import io
import os

from imapd.store import open_store

from relutil import make_message


def _msg(tid: str) -> io.BytesIO:
    return io.BytesIO(make_message(tid))


def test_numbering_does_not_hide_a_message_added_meanwhile(tmp_path):
    """A session lists cur/ and finds a file with no UID yet (another process
    is between its link() and its uidlist record), so it waits for the lock
    to number it.  Meanwhile that process writes the record, and a third one
    stores another message (file and record).  The waiting session's view
    must not take in that record without its file and then show a higher UID
    of its own first: the message in between would be hidden for the rest of
    the session (and, through the index, from the next sessions too)."""
    root = str(tmp_path / "Maildir")
    a = open_store(root, use_inotify=False)
    b = open_store(root, use_inotify=False)
    b.append("INBOX", _msg("first"))
    view = a.open("INBOX")
    assert len(view.uids()) == 1

    # process B has linked X into cur/ but not yet written its record
    fb = b._folder("INBOX")
    x = b.unique_name()
    with open(os.path.join(root, "cur", x + ":2,"), "wb") as fh:
        fh.write(make_message("X").replace(b"\r\n", b"\n"))

    fa = view._f
    plain = fa.lock.acquire
    fired = []

    def acquire() -> None:
        if not fired:
            fired.append(1)
            with fb.lock:  # B finishes: X gets its UID
                fb.ensure_uidlist()
                fb.uidlist.append([x])
            b.append("INBOX", _msg("Y"))  # C stores Y, file and UID
        plain()

    fa.lock.acquire = acquire  # type: ignore[method-assign]
    view.sync()
    assert fired
    fa.lock.acquire = plain  # type: ignore[method-assign]
    a.append("INBOX", _msg("own"))  # this session's own message, the highest UID
    view.sync()
    view.sync()
    assert len(view.uids()) == 4, f"a message is hidden: view {list(view.uids())}"
    view.close()

    # and a fresh session (which may trust the index the first one wrote) agrees
    a.close()
    c = open_store(root, use_inotify=False)
    fresh = c.open("INBOX")
    assert len(fresh.uids()) == 4, list(fresh.uids())
    fresh.close()
    c.close()
    b.close()
