"""Several processes on one Maildir: imapd sessions appending, storing and
expunging while a delivery agent writes into new/ and a mail reader renames
files in cur/.  Afterwards: no UID duplicated or reused, every message there
exactly once, each with the flags its owner set last."""

import io
import multiprocessing as mp
import os
import random
import re
import time

from imapd.store import open_store

N = 25


def _m(marker: str) -> bytes:
    return b"From: x@example.com\r\nX-Id: " + marker.encode() + b"\r\n\r\nbody\r\n"


def appender(root, tag, q):
    random.seed(tag)
    s = open_store(root, use_inotify=False, lock_timeout=60)
    mb = s.open("INBOX")
    mine = {}
    for i in range(N):
        marker = "%s-%d" % (tag, i)
        fl = random.choice([[], ["\\Seen"], ["Work"]])
        r = s.append("INBOX", io.BytesIO(_m(marker)), fl)
        mine[marker] = (r.uid, set(fl))
        mb.sync()
        if i % 3 == 0:
            # change flags of one of our own messages again
            m2, (u2, _) = random.choice(list(mine.items()))
            new = random.choice([["\\Flagged"], ["\\Seen", "Home"], []])
            mb.store_flags([u2], "set", new)
            mine[m2] = (u2, set(new))
    mb.close()
    s.close()
    q.put(("owned", {k: (u, sorted(v)) for k, (u, v) in mine.items()}))


def expunger(root, q):
    s = open_store(root, use_inotify=False, lock_timeout=60)
    mb = s.open("INBOX")
    kept, gone = {}, []
    for i in range(N):
        marker = "e-%d" % i
        r = s.append("INBOX", io.BytesIO(_m(marker)), ["\\Seen"])
        mb.sync()
        if i % 2:
            mb.store_flags([r.uid], "add", ["\\Deleted"])
            assert mb.expunge([r.uid]) == [r.uid]
            gone.append(marker)
        else:
            kept[marker] = (r.uid, ["\\Seen"])
        mb.sync()
    mb.close()
    s.close()
    q.put(("owned", kept))
    q.put(("gone", gone))


def _find(root, base):
    for sub in ("cur", "new"):
        for n in os.listdir(os.path.join(root, sub)):
            if n.split(":")[0] == base:
                return sub, n
    return None


def deliverer(root, q):
    """A delivery agent plus a mutt-like reader renaming files itself."""
    owned = {}
    bases = []
    for i in range(N):
        marker = "d-%d" % i
        base = "%d.M%dP%d.mda" % (time.time(), i, os.getpid())
        tmp = os.path.join(root, "tmp", base)
        with open(tmp, "wb") as fh:
            fh.write(_m(marker).replace(b"\r\n", b"\n"))
        os.rename(tmp, os.path.join(root, "new", base))
        bases.append((marker, base))
        owned[marker] = (None, [])
        time.sleep(0.005)
    for marker, base in bases[::2]:
        for _ in range(200):
            loc = _find(root, base)
            assert loc is not None
            sub, name = loc
            try:
                os.rename(os.path.join(root, sub, name), os.path.join(root, "cur", base + ":2,F"))
                break
            except FileNotFoundError:
                continue  # an imapd session moved it meanwhile: look again
        owned[marker] = (None, ["\\Flagged"])
    q.put(("owned", owned))


def watcher(root, q, stop):
    """A session that only syncs (moves new/ -> cur/, numbers files)."""
    s = open_store(root, use_inotify=False, lock_timeout=60)
    mb = s.open("INBOX")
    seen = set()
    while not stop.is_set():
        ch = mb.sync()
        for u in ch.added:
            assert u not in seen, "UID %d reported added twice" % u
            seen.add(u)
        time.sleep(0.002)
    mb.close()
    s.close()


def test_many_processes_one_mailbox(maildir):
    s = open_store(maildir, use_inotify=False)
    for i in range(10):
        s.append("INBOX", io.BytesIO(_m("seed-%d" % i)))
    s.close()
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    stop = ctx.Event()
    procs = [
        ctx.Process(target=appender, args=(maildir, "a1", q)),
        ctx.Process(target=appender, args=(maildir, "a2", q)),
        ctx.Process(target=expunger, args=(maildir, q)),
        ctx.Process(target=deliverer, args=(maildir, q)),
    ]
    w = ctx.Process(target=watcher, args=(maildir, q, stop))
    w.start()
    for p in procs:
        p.start()
    results = [q.get(timeout=60) for _ in range(len(procs) + 1)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    stop.set()
    w.join(30)
    assert w.exitcode == 0

    expected = {"seed-%d" % i: (None, []) for i in range(10)}
    gone = []
    for kind, data in results:
        if kind == "owned":
            expected.update(data)
        else:
            gone.extend(data)

    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    uids = list(mb.uids())
    assert uids == sorted(set(uids))
    found = {}
    for u in uids:
        marker = re.search(rb"X-Id: (\S+)", mb.read(u)).group(1).decode()
        assert marker not in found, "message %s present twice" % marker
        found[marker] = (u, sorted(mb.flags(u)))
    assert set(found) == set(expected)
    assert not set(gone) & set(found)
    for marker, (uid, flags) in expected.items():
        if uid is not None:
            assert found[marker][0] == uid  # the UID APPEND returned
        assert found[marker][1] == flags, marker
    # the uidlist itself: strictly ascending, no base twice, N never below
    lines = open(os.path.join(maildir, "dovecot-uidlist")).read().splitlines()
    rec = [ln.split(" :", 1) for ln in lines[1:]]
    ruids = [int(r[0].split()[0]) for r in rec]
    assert ruids == sorted(set(ruids))
    assert len({r[1] for r in rec}) == len(rec)
    all_appended = [u for m, (u, _) in expected.items() if u is not None]
    assert len(all_appended) == len(set(all_appended))
    assert mb.uidnext > max(ruids)
    mb.close()
    s.close()
