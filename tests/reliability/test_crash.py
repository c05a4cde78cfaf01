"""Crash safety: imapd killed with SIGKILL at random moments.

A mailbox of a few thousand messages (so that a uidlist rewrite takes a
moment) is worked on by one imapd at a time, and that process is killed -9
(seeded random delays, bounded run) during APPEND (a large literal still in
flight, or fully sent and being stored), pipelined small APPENDs, COPY, MOVE,
STORE, EXPUNGE / UID EXPUNGE (uidlist rewrites), the numbering of new mail
delivered into new/, and -- polling for the lock file -- while it holds
dovecot-uidlist.lock.

After every kill, before anything else touches the Maildir, the files are
checked directly; then a fresh imapd SELECTs, APPENDs (which needs the lock:
a stale lock of the dead process must be recovered at once, by its dead pid)
and SELECTs the other folder; then the files are checked again against what
the clients were told:

* no incomplete message is ever visible in cur/ or new/ (tmp/ leftovers are
  allowed, and counted);
* every message whose APPEND, COPY or MOVE got its tagged OK is there (a MOVE
  with OK is gone from the source; an interrupted MOVE leaves each message in
  the source or the destination, never in neither); nothing else disappears
  unless it was flagged \\Deleted; nothing appears that nobody stored;
* a surviving message keeps its UID, UIDVALIDITY never changes, the next UID
  never goes down, and new messages get UIDs above every earlier one;
* what the fresh imapd reports (EXISTS, UIDVALIDITY, UIDNEXT) equals the files.

IMAPD_CRASH_KILLS (default 40) and IMAPD_CRASH_SEED tune the run.
"""

from __future__ import annotations

import collections
import os
import random
import re
import time
from typing import Any

import pytest

from harness import chown_tree, make_maildir, mail_user, remove_maildir
from relutil import (
    RawClient,
    make_message,
    read_uidlist,
    scan_files,
    spawn_imapd,
    tagged_parts,
    uid_set,
    write_config,
)

KILLS = int(os.environ.get("IMAPD_CRASH_KILLS", "40"))
SEED = int(os.environ.get("IMAPD_CRASH_SEED", "5"))
TIME_BUDGET = float(os.environ.get("IMAPD_CRASH_SECONDS", "40"))
PREFILL = 3000
LOCK_GRACE = 5.0  # the next process must get the lock this fast (the stale timeout is 120 s)

MAILBOXES = {"INBOX": "", "Dest": ".Dest"}
_CACHE: dict = {}  # (base, inode) -> (id, complete)


class Snapshot:
    """One folder as the files and its dovecot-uidlist say (after a fresh SELECT)."""

    def __init__(self, root: str, entry: str) -> None:
        path = os.path.join(root, entry) if entry else root
        self.files, self.dups = scan_files(path, _CACHE)
        got = read_uidlist(path)
        self.hdr, recs, self.problems = got if got is not None else ({}, [], ["no uidlist"])
        self.uid_of = {b: u for u, b in recs}
        self.v = int(self.hdr.get("V", "0") or 0)
        n = int(self.hdr.get("N", "0") or 0)
        self.next_uid = max([n] + [u + 1 for u, _ in recs])
        self.tmp = os.listdir(os.path.join(path, "tmp"))

    def tids(self) -> collections.Counter[str]:
        return collections.Counter(t for _, t, _ in self.files.values() if t)

    def tid_uid(self) -> dict[str, int]:
        return {t: self.uid_of[b] for b, (_, t, _) in self.files.items() if t and b in self.uid_of}


@pytest.fixture
def crash_env():
    user = mail_user()
    root = make_maildir(user, folders=(".Dest",))
    with open(os.path.join(root, ".Dest", "maildirfolder"), "w"):
        pass
    for i in range(PREFILL):
        data = make_message(f"P-{i}").replace(b"\r\n", b"\n")
        name = f"{1700000000 + i}.M{i}P1Q{i}.prefill,S={len(data)}:2,{'S' if i % 3 else ''}"
        with open(os.path.join(root, "cur", name), "wb") as f:
            f.write(data)
    chown_tree(os.path.dirname(root), user)
    errlog = os.path.join(os.path.dirname(root), "imapd.err")
    cfg = write_config("[server]\nlog_to_stderr = true\n")
    yield user, root, cfg, errlog
    os.unlink(cfg)
    if not os.environ.get("IMAPD_KEEP_MAILDIR"):
        remove_maildir(root)


class Crash:
    def __init__(self, user, root: str, cfg: str, errlog: str) -> None:
        self.user = user
        self.root = root
        self.cfg = cfg
        self.errlog = errlog
        self.rng = random.Random(SEED)
        self.problems: list[str] = []
        self.n = 0
        self.stats: collections.Counter[str] = collections.Counter()
        self.est: dict[str, float] = {}
        self.snap: dict[str, Snapshot] = {}
        self.v0: dict[str, int] = {}
        self.flagged: set[str] = set()  # INBOX ids that carry \Deleted (acked STORE)
        self.lock_waits: list[float] = []
        self.op = "set-up"
        self.history: list[str] = []

    # ----------------------------------------------------------- helpers
    def bad(self, text: str) -> None:
        self.problems.append(f"[kill {self.stats['kills']}: {self.op}] {text}")

    def tid(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{SEED}-{self.n}"

    def start(self) -> RawClient:
        proc = spawn_imapd(["--config", self.cfg, "--maildir", self.root], self.user, self.errlog)
        c = RawClient(proc)
        c.wait_for(lambda r: r.startswith(b"* PREAUTH"), 30)
        return c

    def selected(self) -> RawClient:
        c = self.start()
        got = c.command("SELECT INBOX", 60)
        assert tagged_parts(got[-1])[1] == "OK", got[-3:]
        return c

    def inbox_uids(self) -> dict[int, str]:
        return {u: t for t, u in self.snap["INBOX"].tid_uid().items()}

    def take(self) -> None:
        self.snap = {m: Snapshot(self.root, e) for m, e in MAILBOXES.items()}

    # ------------------------------------------------------------ checks
    def check_files(self, when: str) -> None:
        """Direct look at the files: nothing incomplete is visible."""
        for m, e in MAILBOXES.items():
            s = Snapshot(self.root, e)
            for base, (sub, tid, complete) in s.files.items():
                if not complete:
                    self.bad(f"{when}: incomplete message visible in {m}/{sub}: {base} ({tid})")
            if s.dups:
                self.bad(f"{when}: {m}: one base name twice: {s.dups[:3]}")
            for p in s.problems:
                self.bad(f"{when}: {m} uidlist: {p}")

    def fresh(self) -> str | None:
        """A new imapd after the kill: SELECT, APPEND (needs the lock), SELECT Dest.
        Returns the id it appended."""
        lock = os.path.join(self.root, "dovecot-uidlist.lock")
        stale = None
        try:
            with open(lock) as f:
                stale = f.read()
        except FileNotFoundError:
            pass
        if stale is not None:
            self.stats["stale locks left by a kill"] += 1
            pid = stale.partition(":")[0]
            if not pid.isdigit() or os.path.exists(f"/proc/{pid}"):
                self.bad(f"a lock left by a kill names {stale!r}, which is not a dead process")
        t0 = time.monotonic()
        c = self.start()
        try:
            got = c.command("SELECT INBOX", 60)
            tag, st, code, text = tagged_parts(got[-1])
            if st != "OK":
                self.bad(f"fresh SELECT INBOX: {got[-1]!r}")
                return None
            blob = b"\n".join(got)
            exists = int(re.search(rb"\* (\d+) EXISTS", blob).group(1))  # type: ignore[union-attr]
            v = int(re.search(rb"UIDVALIDITY (\d+)", blob).group(1))  # type: ignore[union-attr]
            uidnext = int(re.search(rb"UIDNEXT (\d+)", blob).group(1))  # type: ignore[union-attr]
            tid = self.tid("F")
            msg = make_message(tid)
            got = c.command(b"APPEND INBOX {%d+}\r\n" % len(msg) + msg, 60)
            waited = time.monotonic() - t0
            if tagged_parts(got[-1])[1] != "OK":
                self.bad(f"fresh APPEND after the kill: {got[-1]!r}")
                tid = None
            if stale is not None:
                self.lock_waits.append(waited)
                if waited > LOCK_GRACE:
                    self.bad(f"the next process needed {waited:.1f}s to get past a stale lock ({stale!r})")
            got2 = c.command("SELECT Dest", 60)
            if tagged_parts(got2[-1])[1] != "OK":
                self.bad(f"fresh SELECT Dest: {got2[-1]!r}")
            c.command("LOGOUT", 30)
        finally:
            c.kill()
        if os.path.exists(lock):
            self.bad("dovecot-uidlist.lock still there after a clean LOGOUT")
        # the server's numbers must be the files' numbers
        s = Snapshot(self.root, "")
        added = 1 if tid is not None else 0
        if exists + added != len(s.files):
            self.bad(f"fresh SELECT says {exists} EXISTS, INBOX has {len(s.files) - added} message files")
        if v != s.v:
            self.bad(f"fresh SELECT says UIDVALIDITY {v}, the uidlist V{s.v}")
        if uidnext + added != s.next_uid:
            self.bad(f"fresh SELECT says UIDNEXT {uidnext}, then one APPEND: the uidlist's next UID is {s.next_uid}")
        return tid

    def compare(self, before: dict[str, Snapshot], expect: dict[str, Any]) -> None:
        """The mailboxes now (self.snap) against before and what the op was told."""
        now = self.snap
        for m in MAILBOXES:
            b, a = before[m], now[m]
            if a.v != self.v0[m]:
                self.bad(f"{m}: UIDVALIDITY changed {self.v0[m]} -> {a.v}")
            if a.next_uid < b.next_uid:
                self.bad(f"{m}: next UID went down {b.next_uid} -> {a.next_uid}")
            for base in a.files:
                if base not in a.uid_of:
                    self.bad(f"{m}: {base} has no UID after a fresh SELECT")
                    continue
                if base in b.uid_of and b.uid_of[base] != a.uid_of[base] and base in b.files:
                    self.bad(f"{m}: {base} changed UID {b.uid_of[base]} -> {a.uid_of[base]}")
                if base not in b.files and a.uid_of[base] < b.next_uid:
                    self.bad(f"{m}: new message {base} got UID {a.uid_of[base]}, below the earlier next UID"
                             f" {b.next_uid}")
        bi, ai = before["INBOX"].tids(), now["INBOX"].tids()
        bd, ad = before["Dest"].tids(), now["Dest"].tids()
        moved_ok, moved_maybe = expect.get("moved_ok", set()), expect.get("moved_maybe", set())
        copied_ok, copied_maybe = expect.get("copied_ok", set()), expect.get("copied_maybe", set())
        appended_ok, appended_maybe = expect.get("appended_ok", set()), expect.get("appended_maybe", set())
        expunged_ok = expect.get("expunged_ok", set())
        may_go = self.flagged | expect.get("flagged_maybe", set()) | expunged_ok
        for t in bi:
            if t in ai:
                if t in moved_ok:
                    self.bad(f"{t} was MOVEd (tagged OK) but is still in INBOX")
                if t in expunged_ok:
                    self.bad(f"{t} was expunged (tagged OK) but is still in INBOX")
                continue
            if t in moved_ok or t in moved_maybe:
                if t not in ad:
                    self.bad(f"{t} was being MOVEd and is now in neither INBOX nor Dest")
                continue
            if t in may_go:
                continue
            self.bad(f"{t} vanished from INBOX (never flagged \\Deleted, never moved)")
        for t in ai:
            if t not in bi and t not in appended_ok and t not in appended_maybe:
                self.bad(f"{t} appeared in INBOX but nobody stored it")
        for t in appended_ok:
            if t not in ai:
                self.bad(f"{t} got OK to its APPEND but is not in INBOX")
        for t, k in bd.items():
            if ad[t] < k:
                self.bad(f"{t} lost a copy in Dest ({k} -> {ad[t]})")
        for t, k in ad.items():
            if k > bd[t] and t not in moved_ok | moved_maybe | copied_ok | copied_maybe:
                self.bad(f"{t} appeared in Dest but nobody copied or moved it")
            if k > bd[t] + 1:
                self.bad(f"{t} is in Dest {k - bd[t]} more times after one COPY/MOVE")
        for t in moved_ok | copied_ok:
            if ad[t] <= bd[t]:
                self.bad(f"{t} got OK for COPY/MOVE to Dest but no new copy is there")


# ================================================================ operations
def op_append_mid(cr: Crash) -> dict:
    """A large literal, cut off in the middle of its bytes."""
    c = cr.selected()
    tid = cr.tid("L")
    msg = make_message(tid, cr.rng.randint(1, 4) << 20)
    sync = cr.rng.random() < 0.5
    c.send(b"a1 APPEND INBOX {%d%s}\r\n" % (len(msg), b"" if sync else b"+"))
    if sync:
        c.wait_for(lambda r: r.startswith(b"+"), 30)
    c.send(msg[: cr.rng.randint(0, len(msg) - 1)])
    time.sleep(cr.rng.uniform(0, 0.01))
    c.kill()
    return {"appended_maybe": {tid}}


def _acked(c: RawClient, tag: bytes) -> tuple[bool, list[bytes]]:
    for r in c.responses:
        if r.startswith(tag + b" "):
            return tagged_parts(r)[1] == "OK", c.responses
    return False, c.responses


def op_append_after(cr: Crash) -> dict:
    """A large message fully sent; killed while it is being stored (or just after)."""
    c = cr.selected()
    tid = cr.tid("B")
    msg = make_message(tid, cr.rng.randint(1, 3) << 20)
    c.send(b"a1 APPEND INBOX (\\Seen) {%d+}\r\n" % len(msg) + msg + b"\r\n")
    time.sleep(cr.rng.uniform(0, 1.3 * cr.est.get("append_after", 0.05)))
    c.kill()
    ok, _ = _acked(c, b"a1")
    cr.stats["append_after acked" if ok else "append_after cut"] += 1
    return {"appended_ok": {tid}} if ok else {"appended_maybe": {tid}}


def op_append_many(cr: Crash) -> dict:
    """Ten pipelined APPENDs; those with a tagged OK must survive."""
    c = cr.selected()
    tids = [cr.tid("M") for _ in range(10)]
    data = b"".join(b"m%d APPEND INBOX {%d+}\r\n" % (i, len(make_message(t))) + make_message(t) + b"\r\n"
                    for i, t in enumerate(tids))
    c.send(data)
    time.sleep(cr.rng.uniform(0, 1.2 * cr.est.get("append_many", 0.1)))
    c.kill()
    c.drain()
    ok = {t for i, t in enumerate(tids) if any(r.startswith(b"m%d OK" % i) for r in c.responses)}
    cr.stats["pipelined appends acked"] += len(ok)
    return {"appended_ok": ok, "appended_maybe": set(tids) - ok}


def _some_inbox(cr: Crash, lo: int, hi: int) -> dict[int, str]:
    uids = cr.inbox_uids()
    pick = sorted(uids)
    if not pick:
        return {}
    k = min(len(pick), cr.rng.randint(lo, hi))
    start = cr.rng.randint(0, len(pick) - k)
    return {u: uids[u] for u in pick[start : start + k]}


def op_copy(cr: Crash) -> dict:
    c = cr.selected()
    chosen = _some_inbox(cr, 50, 400)
    c.send(b"k1 UID COPY %s Dest\r\n" % uid_set(list(chosen)).encode())
    time.sleep(cr.rng.uniform(0, 1.3 * cr.est.get("copy", 0.05)))
    c.kill()
    ok, _ = _acked(c, b"k1")
    tids = set(chosen.values())
    return {"copied_ok": tids} if ok else {"copied_maybe": tids}


def op_move(cr: Crash) -> dict:
    c = cr.selected()
    chosen = _some_inbox(cr, 20, 300)
    c.send(b"v1 UID MOVE %s Dest\r\n" % uid_set(list(chosen)).encode())
    time.sleep(cr.rng.uniform(0, 1.3 * cr.est.get("move", 0.05)))
    c.kill()
    ok, _ = _acked(c, b"v1")
    tids = set(chosen.values())
    if ok:
        cr.flagged -= tids
    return {"moved_ok": tids} if ok else {"moved_maybe": tids}


def op_store(cr: Crash) -> dict:
    """Flag changes on many messages: a rename each (and maybe a new keyword)."""
    c = cr.selected()
    chosen = _some_inbox(cr, 100, 2000)
    flag = cr.rng.choice(("\\Seen", "\\Flagged", "\\Answered", f"$Kw{cr.rng.randint(1, 20)}"))
    c.send(b"s1 UID STORE %s %sFLAGS.SILENT (%s)\r\n" % (uid_set(list(chosen)).encode(),
                                                       cr.rng.choice((b"+", b"-")), flag.encode()))
    time.sleep(cr.rng.uniform(0, 1.3 * cr.est.get("store", 0.05)))
    c.kill()
    return {}


def _flag_some(cr: Crash, c: RawClient, k: int) -> set[str]:
    chosen = _some_inbox(cr, 1, k)
    if not chosen:
        return set()
    got = c.command(b"UID STORE %s +FLAGS.SILENT (\\Deleted)" % uid_set(list(chosen)).encode(), 30)
    assert tagged_parts(got[-1])[1] == "OK", got[-1]
    tids = set(chosen.values())
    cr.flagged |= tids
    return tids


def op_expunge(cr: Crash) -> dict:
    """EXPUNGE of many \\Deleted messages: unlinks, then a uidlist rewrite."""
    c = cr.selected()
    _flag_some(cr, c, 60)
    uid_form = cr.rng.random() < 0.3
    c.send(b"x1 UID EXPUNGE 1:*\r\n" if uid_form else b"x1 EXPUNGE\r\n")
    time.sleep(cr.rng.uniform(0, 1.3 * cr.est.get("expunge", 0.03)))
    c.kill()
    ok, _ = _acked(c, b"x1")
    if ok:
        gone, cr.flagged = cr.flagged, set()
        return {"expunged_ok": gone}
    return {}


def op_lock(cr: Crash) -> dict:
    """Killed the moment dovecot-uidlist.lock exists: the lock is left behind."""
    c = cr.selected()
    _flag_some(cr, c, 3)
    lock = os.path.join(cr.root, "dovecot-uidlist.lock")
    c.send(b"x1 EXPUNGE\r\n")
    deadline = time.monotonic() + 5
    seen = False
    while time.monotonic() < deadline:
        if os.path.exists(lock):
            seen = True
            break
        if c.responses or (c.pump(0) or c.responses):
            break
    c.kill()
    cr.stats["killed holding the lock" if seen else "lock race missed"] += 1
    ok, _ = _acked(c, b"x1")
    if ok:
        gone, cr.flagged = cr.flagged, set()
        return {"expunged_ok": gone}
    return {}


def op_numbering(cr: Crash) -> dict:
    """New mail in new/ (like an MDA), then SELECT: numbering under the lock and
    new/ -> cur/ moves, killed on the way."""
    tids = set()
    for _ in range(cr.rng.randint(50, 300)):
        t = cr.tid("N")
        tids.add(t)
        data = make_message(t).replace(b"\r\n", b"\n")
        name = f"{int(time.time())}.M{cr.n}P2Q{cr.n}.mda"
        tmp = os.path.join(cr.root, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(data)
        if os.geteuid() == 0:
            os.chown(tmp, cr.user.uid, cr.user.gid)
        os.rename(tmp, os.path.join(cr.root, "new", name))
    c = cr.start()
    c.send(b"n1 SELECT INBOX\r\n")
    time.sleep(cr.rng.uniform(0, 1.3 * cr.est.get("numbering", 0.05)))
    c.kill()
    return {"appended_ok": tids}  # delivered: they must all be there


OPS = {
    "append_mid": (op_append_mid, 3),
    "append_after": (op_append_after, 5),
    "append_many": (op_append_many, 4),
    "copy": (op_copy, 4),
    "move": (op_move, 5),
    "store": (op_store, 3),
    "expunge": (op_expunge, 6),
    "lock": (op_lock, 4),
    "numbering": (op_numbering, 4),
}


def _calibrate(cr: Crash) -> None:
    """How long each killable operation takes when left alone."""

    def timed(c: RawClient, data: bytes, tag: bytes) -> float:
        t = time.monotonic()
        c.send(data)
        c.wait_for(lambda r: r.startswith(tag + b" "), 60)
        return time.monotonic() - t

    c = cr.selected()
    msg = make_message(cr.tid("C"), 2 << 20)
    cr.est["append_after"] = timed(c, b"a APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n", b"a")
    many = b"".join(b"m%d APPEND INBOX {%d+}\r\n" % (i, len(make_message(f"C{i}"))) + make_message(f"C{i}") + b"\r\n"
                    for i in range(10))
    t = time.monotonic()
    c.send(many)
    c.wait_for(lambda r: r.startswith(b"m9 "), 60)
    cr.est["append_many"] = time.monotonic() - t
    c.command("SELECT INBOX", 60)
    cr.est["copy"] = timed(c, b"k UID COPY 1:300 Dest\r\n", b"k")
    cr.est["move"] = timed(c, b"v UID MOVE 301:450 Dest\r\n", b"v")
    cr.est["store"] = timed(c, b"s UID STORE 1:2000 +FLAGS.SILENT (\\Answered)\r\n", b"s")
    c.command("UID STORE 451:480 +FLAGS.SILENT (\\Deleted)")
    cr.est["expunge"] = timed(c, b"x EXPUNGE\r\n", b"x")
    c.command("LOGOUT")
    c.kill()
    cr.est["numbering"] = 0.1


def test_kill9_anywhere(crash_env):
    user, root, cfg, errlog = crash_env
    cr = Crash(user, root, cfg, errlog)
    t_start = time.monotonic()
    # first contact numbers the prefilled mailbox
    c = cr.selected()
    c.command("LOGOUT")
    c.kill()
    _calibrate(cr)
    cr.take()
    cr.v0 = {m: s.v for m, s in cr.snap.items()}
    assert all(cr.v0.values()), cr.v0
    names = list(OPS)
    weights = [OPS[n][1] for n in names]
    t_loop = time.monotonic()
    while cr.stats["kills"] < KILLS and time.monotonic() - t_loop < TIME_BUDGET:
        name = cr.rng.choices(names, weights)[0]
        cr.op = name
        cr.history.append(name)
        before = cr.snap
        expect = OPS[name][0](cr)
        cr.stats["kills"] += 1
        cr.stats[name] += 1
        cr.check_files(f"after killing {name}")
        tid = cr.fresh()
        cr.check_files(f"after the next process ({name})")
        cr.take()
        if tid is not None:
            expect.setdefault("appended_ok", set()).add(tid)
        cr.compare(before, expect)
        cr.flagged &= set(cr.snap["INBOX"].tids())
        if len(cr.problems) > 30:
            break
    elapsed = time.monotonic() - t_start
    leftovers = {m: len(s.tmp) for m, s in cr.snap.items()}
    with open(errlog, "rb") as f:
        err = f.read().decode("utf-8", "replace")
    if "Traceback" in err:
        cr.bad("a server wrote a traceback:\n" + err[err.index("Traceback") - 200:][:3000])
    summary = (f"seed {SEED}: {cr.stats['kills']} kills in {elapsed:.1f}s; tmp/ leftovers {leftovers};"
               f" lock waits {[round(w, 3) for w in cr.lock_waits]};"
               f" INBOX {len(cr.snap['INBOX'].files)} / Dest {len(cr.snap['Dest'].files)} messages;"
               f" {dict(sorted(cr.stats.items()))}; estimates {({k: round(v, 3) for k, v in cr.est.items()})}")
    print(summary)
    if cr.problems:
        pytest.fail(f"{len(cr.problems)} problems ({summary}; operations {cr.history}):\n"
                    + "\n".join(cr.problems[:30]), pytrace=False)
    assert cr.stats["kills"] >= min(KILLS, 20), summary
    assert cr.stats["stale locks left by a kill"] >= 1, "no kill ever left a lock behind: " + summary


def test_stale_tmp_leftovers_are_removed(tmp_path, monkeypatch):
    """What a killed APPEND or delivery leaves in tmp/ goes once it is 36 hours
    old (ctime), when a mailbox is opened and tmp/ was not scanned for 8 hours
    (its atime, as Dovecot keeps it); younger files stay (they may be in use)."""
    from imapd.store import open_store
    from imapd.store.maildir import folder as folder_mod

    root = str(tmp_path / "Maildir")
    open_store(root).close()
    tmp = os.path.join(root, "tmp")

    def leftover(name: str) -> None:
        with open(os.path.join(tmp, name), "wb") as f:
            f.write(b"half a message")

    def age_tmp_scan(hours: float) -> None:
        st = os.stat(tmp)
        os.utime(tmp, ns=(int((time.time() - hours * 3600) * 1e9), st.st_mtime_ns))

    # young leftovers stay, whatever the last scan
    leftover("young")
    age_tmp_scan(9)
    s = open_store(root)
    s.open("INBOX").close()
    s.close()
    assert os.listdir(tmp) == ["young"]
    # the scan was remembered: tmp/ is not looked at again for a while
    assert time.time() - os.stat(tmp).st_atime < 60

    # 36 hours later (here: an age limit of zero), the next open removes them
    monkeypatch.setattr(folder_mod, "TMP_DELETE_SECS", 0)
    leftover("old")
    s = open_store(root)
    s.open("INBOX").close()  # scanned 0 hours ago: not yet
    s.close()
    assert sorted(os.listdir(tmp)) == ["old", "young"]
    age_tmp_scan(9)
    s = open_store(root)
    box = s.open("INBOX", readonly=True)
    box.close()
    s.close()
    assert os.listdir(tmp) == []
