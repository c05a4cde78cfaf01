"""Helpers shared by the Maildir store tests (imported by name: the tests
directory has no __init__.py)."""

from __future__ import annotations

import io
import os
import time


def msg(n: int = 1, body: bytes = b"hello\n") -> bytes:
    """A small message in stored (LF) form."""
    return b"From: a@example.com\nSubject: test %d\n\n" % n + body


def deliver(root: str, data: bytes, name: str | None = None, sub: str = "new") -> str:
    """Deliver like an MDA: write in tmp/, rename into new/ (or cur/)."""
    name = name or "%d.M%dP%d.testhost" % (time.time(), time.perf_counter_ns() % 10**9, os.getpid())
    tmp = os.path.join(root, "tmp", name)
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.rename(tmp, os.path.join(root, sub, name))
    return name


def cur_files(root: str) -> list[str]:
    return sorted(os.listdir(os.path.join(root, "cur")))


def cur_files_by_uid(root: str) -> list[str]:
    """The files in cur/ in UID order, as dovecot-uidlist numbers them.  (A
    plain sort of the names is not that order: `.M999P` sorts after `.M1000P`.)"""
    with open(os.path.join(root, "dovecot-uidlist")) as f:
        records = [line.split(":", 1)[1] for line in f.read().splitlines()[1:]]
    files = {name.partition(":")[0]: name for name in os.listdir(os.path.join(root, "cur"))}
    return [files[base] for base in records if base in files]


def append(store, name: str, data: bytes, flags=(), date=None):
    return store.append(name, io.BytesIO(data), flags, date)


def warm_inbox(maildir: str, n: int, unseen: tuple[int, ...] = (2, 3), date_of=None, learn: bool = False) -> None:
    """n messages (those in `unseen` without \\Seen; internal dates from
    `date_of(k)` if given), an index written (with every size and date in it
    if `learn`), and directories old enough that the next open adopts it
    without a readdir."""
    from imapd.store import open_store

    s = open_store(maildir, use_inotify=False)
    for k in range(1, n + 1):
        append(s, "INBOX", msg(k), flags=[] if k in unseen else ["\\Seen"],
               date=date_of(k) if date_of is not None else None)
    old = time.time() - 10
    for sub in ("cur", "new"):
        os.utime(os.path.join(maildir, sub), (old, old))
    mb = s.open("INBOX")
    if learn:
        for u in mb.uids():
            mb.size(u)
            mb.internal_date(u)
    mb.close()
    s.close()
