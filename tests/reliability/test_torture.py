"""Concurrency torture: many real imapd processes on one Maildir at once.

Nine imapd processes (as `nobody` when root, over pipes, some with inotify and
some polling) run for a bounded time (IMAPD_SOAK_SECONDS, default 20) doing
APPEND, FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE, IDLE, STATUS, LIST and
RENAME of a folder tree that two of them rename back and forth (Tree <->
Tree2, with a child) while the others append, copy and move into it; beside
them a delivery agent writes into new/ (tmp -> new) and a mutt-like program
renames files in cur/ and takes files from new/ into cur/ itself.

The test process drives every client from one select loop over non-blocking
pipes.  Every message carries a unique X-Torture-Id, so afterwards it checks:

* every message delivered or appended is there exactly once, unless an IMAP
  session flagged it \\Deleted (then an EXPUNGE may have removed it) or MOVEd
  it (then it must be gone from the source); copies and moves are accounted
  for by their COPYUID; nothing appears that nobody put there;
* no UID ever names two messages (a log of UID -> id from every FETCH, APPENDUID
  and COPYUID of every session), no UID is given out below one already seen,
  UIDNEXT never goes down; every dovecot-uidlist, sampled all along, has
  ascending unique UIDs, never changes a UID's file, never lowers its next UID;
* UIDVALIDITY did not change for INBOX, Work and Arch;
* each session's view stayed consistent: EXISTS never shrinks, EXPUNGE numbers
  are in range and never arrive during FETCH/STORE/SEARCH (nor with no command
  in progress), a sequence number keeps its UID, and at the end each session's
  count and UIDs equal what a fresh imapd process sees;
* no command failed with [SERVERBUG] (or any unexpected NO/BAD), and no server
  wrote a traceback.

IMAPD_TORTURE_SEED picks another seed for the clients' choices.
"""

from __future__ import annotations

import collections
import os
import random
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generator

import pytest

from imapd.store.maildir.folder import VERIFY_AFTER

from harness import ImapPipe, make_maildir, mail_user, remove_maildir, server_env, tagged_status
from relutil import (
    ResponseReader,
    demote,
    folder_dirs,
    make_message,
    next_uid_of,
    parse_uid_set,
    read_available,
    read_uidlist,
    scan_files,
    spawn_imapd,
    tagged_parts,
    uid_set,
    write_config,
)

SECONDS = float(os.environ.get("IMAPD_SOAK_SECONDS", "20"))
SEED = int(os.environ.get("IMAPD_TORTURE_SEED", "8"))
HERE = os.path.dirname(os.path.abspath(__file__))
COMMAND_TIMEOUT = 30.0  # one command may take this long before the test calls it hung
FIXED = ("INBOX", "Work", "Arch")  # never renamed or deleted: UIDVALIDITY must hold
TREE_NAMES = ("Tree", "Tree2")
FETCH_ITEMS = "(UID FLAGS BODY.PEEK[HEADER.FIELDS (X-TORTURE-ID)])"

UID_RE = re.compile(rb"[( ]UID (\d+)")
TID_RE = re.compile(rb"X-Torture-Id: *([!-~]+)", re.I)
FLAGS_RE = re.compile(rb"FLAGS \(([^)]*)\)")


# =================================================================== ledger
class Ledger:
    """Everything every session learned, and the rules it must obey."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.uid_tid: dict[tuple[int, int], tuple[str, str]] = {}  # (v, uid) -> (id, who said so)
        self.created: dict[tuple[int, int], tuple[str, str]] = {}  # (v, uid) -> (id, how)
        self.deleted: set[tuple[int, int]] = set()  # flagged \Deleted by some session: may be gone
        self.moved: set[tuple[int, int]] = set()  # MOVE sources with an OK: must be gone
        self.delivered: dict[str, str] = {}  # id -> folder dir ("" = INBOX)
        self.appended: dict[str, tuple[str, str]] = {}  # id -> (mailbox, who) with tagged OK
        self.failed: set[str] = set()  # ids whose APPEND got NO: must appear nowhere
        self.max_uid: dict[int, int] = collections.defaultdict(int)  # v -> highest UID known to exist
        self.min_next: dict[int, int] = collections.defaultdict(int)  # v -> highest UIDNEXT reported
        self.v_of: dict[str, int] = {}  # mailbox name at set-up -> UIDVALIDITY
        self.stats: collections.Counter[str] = collections.Counter()

    def bad(self, text: str) -> None:
        if len(self.violations) < 200:
            self.violations.append(text)

    def floor(self) -> tuple[dict[int, int], dict[int, int]]:
        return dict(self.max_uid), dict(self.min_next)

    def saw(self, v: int, uid: int, tid: str | None, who: str) -> None:
        if v <= 0 or uid <= 0:
            return
        if uid > self.max_uid[v]:
            self.max_uid[v] = uid
        if tid is None:
            return
        old = self.uid_tid.get((v, uid))
        if old is None:
            self.uid_tid[(v, uid)] = (tid, who)
        elif old[0] != tid:
            self.bad(f"UID {uid} (UIDVALIDITY {v}) names two messages: {old[0]} ({old[1]}) and {tid} ({who})")

    def new_uid(self, v: int, uid: int, tid: str | None, how: str, who: str,
                floor: tuple[dict[int, int], dict[int, int]]) -> None:
        """A UID given out by APPEND/COPY/MOVE: above everything seen before the command."""
        top, nxt = floor
        if uid <= top.get(v, 0) or uid < nxt.get(v, 0):
            self.bad(f"{who}: {how} got UID {uid} in UIDVALIDITY {v}, but UID {top.get(v, 0)} existed"
                     f" / UIDNEXT {nxt.get(v, 0)} was reported before the command was sent")
        if tid is not None:
            self.created[(v, uid)] = (tid, how)
        self.saw(v, uid, tid, f"{who} {how}")

    def uidnext(self, v: int, n: int, who: str, floor: tuple[dict[int, int], dict[int, int]]) -> None:
        top, nxt = floor
        if n <= top.get(v, 0) or n < nxt.get(v, 0):
            self.bad(f"{who}: UIDNEXT {n} for UIDVALIDITY {v} is not above UID {top.get(v, 0)}"
                     f" / earlier UIDNEXT {nxt.get(v, 0)}")
        if n > self.min_next[v]:
            self.min_next[v] = n

    def tid(self, v: int, uid: int) -> str | None:
        e = self.uid_tid.get((v, uid))
        return e[0] if e else None


# ========================================================= client machinery
@dataclass
class Cmd:
    """What a script yields: one command (with an optional literal) or IDLE."""

    text: str
    literal: bytes | None = None
    sync: bool = False  # synchronizing literal: wait for "+" before the data
    idle: float | None = None  # IDLE for this many seconds, then DONE
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sleep:
    seconds: float


BARRIER = object()


@dataclass
class Result:
    status: str
    code: str | None
    text: str
    untagged: list[bytes]
    cmd: "Pending"


@dataclass
class Pending:
    tag: str
    name: str
    uid: bool
    parts: list[bytes]
    spec: Cmd
    sent_at: float
    floor: tuple[dict[int, int], dict[int, int]]
    untagged: list[bytes] = field(default_factory=list)
    idle_started: bool = False
    done_at: float | None = None
    done_sent: bool = False


class Client:
    def __init__(self, name: str, args: list[str], user: Any, ledger: Ledger, ctx: "Ctx",
                 script: Callable[["Client"], Generator[Any, Any, None]], errlog: str) -> None:
        self.name = name
        self.ledger = ledger
        self.ctx = ctx
        self.errlog = errlog
        self.proc = spawn_imapd(args, user, errlog)
        self.rfd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        self.wfd = self.proc.stdin.fileno()  # type: ignore[union-attr]
        self.reader = ResponseReader()
        self.out = bytearray()
        self.tagn = 0
        self.cmd: Pending | None = None
        self.greeted = False
        self.finished = False  # script done (after LOGOUT)
        self.eof = False
        self.at_barrier = False
        self.sleep_until = 0.0
        self.transcript: collections.deque[str] = collections.deque(maxlen=60)
        # the client's view of the selected mailbox
        self.mailbox: str | None = None
        self.v = 0
        self.count: int | None = None
        self.seqs: list[int | None] = []
        self.known: dict[int, str] = {}  # uid -> id, selected mailbox
        self.gen = script(self)
        self.rng = random.Random(f"{SEED}-{name}")

    # ------------------------------------------------------------ output
    def bad(self, text: str) -> None:
        self.ledger.bad(f"[{self.name}] {text}\n    last lines: " + "\n      ".join(list(self.transcript)[-12:]))

    def note(self, direction: str, data: bytes) -> None:
        self.transcript.append(f"{time.monotonic() - self.ctx.t0:7.3f} {direction} {data[:160]!r}")

    def send(self, data: bytes) -> None:
        self.out += data

    def flush(self) -> None:
        while self.out:
            try:
                n = os.write(self.wfd, self.out[: 1 << 16])
            except BlockingIOError:
                return
            except BrokenPipeError:
                self.out.clear()
                return
            del self.out[:n]

    def start(self, spec: Cmd) -> None:
        self.tagn += 1
        tag = f"{self.name}.{self.tagn}"
        words = spec.text.split(" ", 2)
        uid = words[0].upper() == "UID"
        name = (words[1] if uid else words[0]).upper()
        if spec.idle is not None:
            parts = [f"{tag} IDLE\r\n".encode()]
        elif spec.literal is None:
            parts = [f"{tag} {spec.text}\r\n".encode()]
        elif spec.sync:
            parts = [f"{tag} {spec.text} {{{len(spec.literal)}}}\r\n".encode(), spec.literal + b"\r\n"]
        else:
            parts = [f"{tag} {spec.text} {{{len(spec.literal)}+}}\r\n".encode() + spec.literal + b"\r\n"]
        if name in ("SELECT", "EXAMINE"):
            self.mailbox = None
            self.v = 0
            self.count = None
            self.seqs = []
            self.known = {}
        elif name in ("UNSELECT", "CLOSE"):
            pass  # the view goes when the tagged OK arrives
        self.cmd = Pending(tag, name, uid, parts, spec, time.monotonic(), self.ledger.floor())
        self.note(">", parts[0])
        self.send(parts.pop(0))

    def advance(self, value: Any) -> None:
        """Run the script to its next command."""
        while not self.finished:
            try:
                item = self.gen.send(value)
            except StopIteration:
                self.finished = True
                return
            value = None
            if item is BARRIER:
                self.at_barrier = True
                return
            if isinstance(item, Sleep):
                self.sleep_until = time.monotonic() + item.seconds
                return
            self.start(item)
            return

    # ------------------------------------------------------------- input
    def on_data(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            resp = self.reader.next()
            if resp is None:
                return
            self.note("<", resp)
            if not self.greeted:
                self.greeted = True
                if not resp.startswith(b"* PREAUTH"):
                    self.bad(f"unexpected greeting {resp!r}")
                continue
            self.on_response(resp)

    def on_response(self, resp: bytes) -> None:
        cmd = self.cmd
        if resp.startswith(b"+"):
            if cmd is None:
                self.bad("continuation request with no command in progress")
            elif cmd.spec.idle is not None and not cmd.idle_started:
                cmd.idle_started = True
                cmd.done_at = time.monotonic() + (0 if self.ctx.stopping else cmd.spec.idle)
            elif cmd.parts:
                self.send(cmd.parts.pop(0))
            else:
                self.bad(f"unexpected continuation {resp!r}")
            return
        if resp.startswith(b"* "):
            if cmd is None:
                self.bad(f"untagged response with no command in progress: {resp[:100]!r}")
            else:
                cmd.untagged.append(resp)
            self.on_untagged(resp, cmd)
            return
        tag, status, code, text = tagged_parts(resp)
        if cmd is None or tag != cmd.tag:
            self.bad(f"tagged response {resp!r} does not match the command in progress")
            return
        if cmd.spec.idle is not None and not cmd.done_sent:
            self.bad("IDLE ended before DONE")
        if cmd.parts:
            self.bad(f"command ended before its literal was sent: {resp!r}")
        self.cmd = None
        if code == "SERVERBUG" or status == "BAD":
            self.bad(f"{cmd.spec.text[:80]!r} -> {resp!r}")
        if cmd.name in ("UNSELECT", "CLOSE") and status == "OK":
            self.mailbox = None
            self.count = None
            self.seqs = []
            self.known = {}
        if cmd.name in ("SELECT", "EXAMINE"):
            if status == "OK":
                self.mailbox = cmd.spec.meta.get("mailbox")
                if self.count is None:
                    self.bad("SELECT without EXISTS")
                    self.count = 0
            else:
                self.count = None
        if cmd.name in ("FETCH", "STORE") and self.count is not None:
            self.check_order()
        self.ctx.stats[cmd.name + ("" if status == "OK" else " " + status + (f" [{code}]" if code else ""))] += 1
        self.advance(Result(status, code, text, cmd.untagged, cmd))

    def check_order(self) -> None:
        last = 0
        for s, u in enumerate(self.seqs, 1):
            if u is None:
                continue
            if u <= last:
                self.bad(f"UIDs out of order in the session's view: seq {s} has UID {u} after UID {last}")
                return
            last = u

    def on_untagged(self, resp: bytes, cmd: Pending | None) -> None:
        m = re.match(rb"\* (\d+) (EXISTS|EXPUNGE|RECENT|FETCH)\b", resp)
        if m:
            n = int(m.group(1))
            what = m.group(2)
            if what == b"EXISTS":
                if cmd is not None and cmd.name in ("SELECT", "EXAMINE") and self.count is None:
                    self.count = n
                    self.seqs = [None] * n
                elif self.count is None:
                    self.bad(f"EXISTS with no mailbox selected: {resp!r}")
                elif n < self.count:
                    self.bad(f"EXISTS went down from {self.count} to {n} without EXPUNGE")
                else:
                    self.seqs.extend([None] * (n - self.count))
                    self.count = n
            elif what == b"EXPUNGE":
                if cmd is not None and cmd.name in ("FETCH", "STORE", "SEARCH") and not cmd.uid:
                    self.bad(f"EXPUNGE sent during {cmd.name}: {resp!r}")
                if self.count is None or not 1 <= n <= self.count:
                    self.bad(f"EXPUNGE {n} out of range (count {self.count})")
                else:
                    del self.seqs[n - 1]
                    self.count -= 1
            elif what == b"FETCH":
                if self.count is None or not 1 <= n <= self.count:
                    self.bad(f"FETCH for message {n} out of range (count {self.count})")
                    return
                um = UID_RE.search(resp)
                if um:
                    uid = int(um.group(1))
                    have = self.seqs[n - 1]
                    if have is None:
                        self.seqs[n - 1] = uid
                    elif have != uid:
                        self.bad(f"message {n} was UID {have}, now reported as UID {uid}")
                    tm = TID_RE.search(resp)
                    tid = tm.group(1).decode() if tm else None
                    if tid is not None:
                        self.known[uid] = tid
                    self.ledger.saw(self.v, uid, tid, f"{self.name} FETCH {self.mailbox}")
            return
        if resp.startswith(b"* SEARCH"):
            nums = [int(x) for x in resp[8:].split()]
            if cmd is not None and not cmd.uid and any(not 1 <= x <= (self.count or 0) for x in nums):
                self.bad(f"SEARCH result out of range (count {self.count}): {resp[:100]!r}")
            return
        m = re.match(rb"\* OK \[UIDVALIDITY (\d+)\]", resp)
        if m and cmd is not None and cmd.name in ("SELECT", "EXAMINE"):
            self.v = int(m.group(1))
            return
        m = re.match(rb"\* OK \[UIDNEXT (\d+)\]", resp)
        if m and cmd is not None and cmd.name in ("SELECT", "EXAMINE"):
            self.ledger.uidnext(self.v, int(m.group(1)), f"{self.name} {cmd.name}", cmd.floor)
            return
        m = re.match(rb"\* STATUS .*\((.*)\)$", resp)
        if m and cmd is not None:
            items = dict(re.findall(rb"([A-Z]+) (\d+)", m.group(1)))
            if b"UIDVALIDITY" in items and b"UIDNEXT" in items:
                self.ledger.uidnext(int(items[b"UIDVALIDITY"]), int(items[b"UIDNEXT"]), f"{self.name} STATUS",
                                    cmd.floor)
            return
        if resp.startswith(b"* BYE") and (cmd is None or cmd.name != "LOGOUT"):
            self.bad(f"server said {resp!r}")


@dataclass
class Ctx:
    t0: float
    stopping: bool = False
    stats: collections.Counter = field(default_factory=collections.Counter)


# ================================================================== scripts
def _result_uids(res: Result, code_name: str) -> tuple[int, list[int], list[int]] | None:
    """(uidvalidity, sources, destinations) of a COPYUID in a result or its untagged OKs."""
    codes = [res.code or ""]
    for u in res.untagged:
        m = re.match(rb"\* OK \[([^\]]*)\]", u)
        if m:
            codes.append(m.group(1).decode())
    for c in codes:
        if c.startswith(code_name + " "):
            _, v, src, dst = c.split(" ")
            return int(v), parse_uid_set(src), parse_uid_set(dst)
    return None


class Ops:
    """Operations shared by the scripts: each is a generator to `yield from`."""

    def __init__(self, c: Client) -> None:
        self.c = c
        self.n = 0

    def new_tid(self) -> str:
        self.n += 1
        return f"A{SEED}-{self.c.name}-{self.n}"

    def select(self, mailbox: str, examine: bool = False):
        res = yield Cmd(f"{'EXAMINE' if examine else 'SELECT'} {mailbox}", meta={"mailbox": mailbox})
        if res.status != "OK":
            if mailbox in FIXED:
                self.c.bad(f"SELECT {mailbox} failed: {res.status} [{res.code}] {res.text}")
            return False
        if mailbox in self.c.ledger.v_of and self.c.v != self.c.ledger.v_of[mailbox]:
            self.c.bad(f"UIDVALIDITY of {mailbox} changed: {self.c.ledger.v_of[mailbox]} -> {self.c.v}")
        return True

    def append(self, mailbox: str, may_fail: bool = False):
        c = self.c
        tid = self.new_tid()
        size = c.rng.choice((0, 0, 0, 200, 2000, 20000)) if c.rng.random() < 0.97 else 300_000
        flags = c.rng.choice(("", "", "(\\Seen)", "(\\Flagged $Junk)", "(\\Deleted)", "(\\Seen \\Answered)"))
        data = make_message(tid, size)
        text = f"APPEND {mailbox}" + (f" {flags}" if flags else "")
        res = yield Cmd(text, literal=data, sync=c.rng.random() < 0.3)
        if res.status == "OK":
            m = re.match(r"APPENDUID (\d+) (\d+)$", res.code or "")
            if not m:
                c.bad(f"APPEND OK without APPENDUID: {res.code}")
                return
            v, uid = int(m.group(1)), int(m.group(2))
            c.ledger.appended[tid] = (mailbox, c.name)
            c.ledger.new_uid(v, uid, tid, "APPEND", c.name, res.cmd.floor)
            if "\\Deleted" in flags:
                c.ledger.deleted.add((v, uid))
            if c.mailbox == mailbox and c.v == v:
                c.known[uid] = tid
        else:
            c.ledger.failed.add(tid)
            if not (may_fail and res.code in ("TRYCREATE", "NONEXISTENT")):
                c.bad(f"APPEND to {mailbox} failed: {res.status} [{res.code}] {res.text}")

    def fetch_some(self):
        c = self.c
        if not c.count:
            return
        r = c.rng.random()
        if r < 0.15:
            res = yield Cmd("FETCH 1:* (UID FLAGS)")
        elif r < 0.55:
            lo = max(1, c.count - c.rng.randint(5, 40))
            res = yield Cmd(f"FETCH {lo}:* {FETCH_ITEMS}")
        elif r < 0.8:
            a = c.rng.randint(1, c.count)
            b = min(c.count, a + c.rng.randint(0, 30))
            res = yield Cmd(f"FETCH {a}:{b} {FETCH_ITEMS}")
        else:
            uids = [u for u in c.seqs if u is not None]
            lo = c.rng.choice(uids) if uids else 1
            res = yield Cmd(f"UID FETCH {lo}:* {FETCH_ITEMS}")
        if res.status != "OK" and res.code != "EXPUNGEISSUED":
            c.bad(f"FETCH failed: {res.status} [{res.code}] {res.text}")

    def pick(self, k: int) -> list[int]:
        """Up to k UIDs of the selected mailbox whose ids this session knows."""
        c = self.c
        live = [u for u in c.seqs if u is not None and u in c.known]
        if not live:
            return []
        return sorted(set(c.rng.sample(live, min(k, len(live)))))

    def store(self):
        c = self.c
        r = c.rng.random()
        if r < 0.35:
            uids = self.pick(c.rng.randint(1, 3))
            if not uids:
                return
            for u in uids:  # from the moment it is sent, it may be flagged (and expunged)
                c.ledger.deleted.add((c.v, u))
            res = yield Cmd(f"UID STORE {uid_set(uids)} +FLAGS (\\Deleted)")
        elif r < 0.7:
            if not c.count:
                return
            a = c.rng.randint(1, c.count)
            b = min(c.count, a + c.rng.randint(0, 5))
            flag = c.rng.choice(("\\Seen", "\\Flagged", "\\Answered", "$Label1"))
            silent = ".SILENT" if c.rng.random() < 0.3 else ""
            res = yield Cmd(f"STORE {a}:{b} {c.rng.choice('+-')}FLAGS{silent} ({flag})")
        else:
            uids = self.pick(4)
            if not uids:
                return
            res = yield Cmd(f"UID STORE {uid_set(uids)} FLAGS (\\Seen {c.rng.choice(('$Work', 'Todo', ''))})".replace(" )", ")"))
        if res.status != "OK" and res.code != "EXPUNGEISSUED":
            c.bad(f"STORE failed: {res.status} [{res.code}] {res.text}")

    def search(self):
        c = self.c
        q = c.rng.choice(("ALL", "UNSEEN", "DELETED", "FLAGGED", "HEADER X-Torture-Id D"))
        if c.rng.random() < 0.5:
            res = yield Cmd(f"SEARCH {q}")
        else:
            res = yield Cmd(f"UID SEARCH {q}")
        if res.status != "OK":
            c.bad(f"SEARCH failed: {res.status} [{res.code}] {res.text}")

    def expunge(self):
        c = self.c
        if c.rng.random() < 0.5:
            res = yield Cmd("EXPUNGE")
        else:
            uids = [u for u in c.seqs if u is not None]
            if not uids:
                return
            res = yield Cmd(f"UID EXPUNGE {uid_set(c.rng.sample(uids, min(8, len(uids))))}")
        if res.status != "OK":
            c.bad(f"EXPUNGE failed: {res.status} [{res.code}] {res.text}")

    def copy_move(self, dests: tuple[str, ...], move: bool):
        c = self.c
        uids = self.pick(c.rng.randint(1, 4))
        if not uids:
            return
        dest = c.rng.choice(dests)
        src_v = c.v
        res = yield Cmd(f"UID {'MOVE' if move else 'COPY'} {uid_set(uids)} {dest}")
        what = "MOVE" if move else "COPY"
        if res.status != "OK":
            if not (dest in TREE_NAMES and res.code == "TRYCREATE"):
                c.bad(f"{what} to {dest} failed: {res.status} [{res.code}] {res.text}")
            return
        cu = _result_uids(res, "COPYUID")
        if cu is None:
            return  # nothing was there any more
        dv, srcs, dsts = cu
        if len(srcs) != len(dsts) or not set(srcs) <= set(uids):
            c.bad(f"{what} COPYUID does not match the request {uids}: {srcs} -> {dsts}")
            return
        for s, d in zip(srcs, dsts):
            tid = c.ledger.tid(src_v, s)
            c.ledger.new_uid(dv, d, tid, what, c.name, res.cmd.floor)
            if move:
                c.ledger.moved.add((src_v, s))
                if (src_v, s) in c.ledger.deleted:
                    c.ledger.deleted.add((dv, d))  # the flag travels with the message
            elif (src_v, s) in c.ledger.deleted:
                c.ledger.deleted.add((dv, d))

    def idle(self, seconds: float):
        res = yield Cmd("IDLE", idle=seconds)
        if res.status != "OK":
            self.c.bad(f"IDLE failed: {res.status} [{res.code}] {res.text}")

    def simple(self, text: str, ok_codes: tuple[str | None, ...] = ()):
        res = yield Cmd(text)
        if res.status != "OK" and res.code not in ok_codes:
            self.c.bad(f"{text} failed: {res.status} [{res.code}] {res.text}")
        return res

    def final(self):
        """After the barrier: sync, learn every UID, and log out.

        The wait first is the server's documented bound on staleness: a
        change someone else made to a directory while this session changed it
        too is seen by the verifying scan VERIFY_AFTER seconds later."""
        c = self.c
        if c.mailbox is not None:
            yield Sleep(VERIFY_AFTER + 0.5)
            yield from self.simple("NOOP")
            if c.count:
                res = yield Cmd("FETCH 1:* (UID)")
                if res.status != "OK":
                    c.bad(f"final FETCH failed: {res.status} [{res.code}] {res.text}")
                if None in c.seqs:
                    c.bad("final FETCH 1:* did not report every message")
            c.ctx_final = (c.mailbox, c.v, c.count, list(c.seqs))  # type: ignore[attr-defined]
        res = yield Cmd("LOGOUT")
        if res.status != "OK":
            c.bad(f"LOGOUT: {res.status}")


def worker(home: str, dests: tuple[str, ...], move_dests: tuple[str, ...], append_to: tuple[str, ...]):
    """A busy client on `home`: every kind of command, chosen at random."""

    def script(c: Client):
        ops = Ops(c)
        yield from ops.select(home)
        choices = [
            ("append", 18), ("fetch", 22), ("store", 16), ("search", 6), ("expunge", 6), ("copy", 6),
            ("move", 6), ("idle", 5), ("noop", 4), ("status", 3), ("reselect", 2), ("append_other", 4),
        ]
        names = [n for n, _ in choices]
        weights = [w for _, w in choices]
        while not c.ctx.stopping:
            op = c.rng.choices(names, weights)[0]
            if op == "append":
                yield from ops.append(home)
            elif op == "append_other":
                yield from ops.append(c.rng.choice(append_to), may_fail=True)
            elif op == "fetch":
                yield from ops.fetch_some()
            elif op == "store":
                yield from ops.store()
            elif op == "search":
                yield from ops.search()
            elif op == "expunge":
                yield from ops.expunge()
            elif op == "copy":
                yield from ops.copy_move(dests, move=False)
            elif op == "move":
                yield from ops.copy_move(move_dests, move=True)
            elif op == "idle":
                yield from ops.idle(c.rng.uniform(0.1, 0.8))
            elif op == "noop":
                yield from ops.simple(c.rng.choice(("NOOP", "CHECK")))
            elif op == "status":
                box = c.rng.choice(FIXED + TREE_NAMES)
                yield from ops.simple(f"STATUS {box} (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)", ("NONEXISTENT",))
            elif op == "reselect":
                yield from ops.select(home)
            yield Sleep(c.rng.uniform(0.0, 0.03))
        yield BARRIER
        yield from ops.final()

    return script


def idler(home: str):
    """Mostly IDLE, with a FETCH of what arrived now and then."""

    def script(c: Client):
        ops = Ops(c)
        yield from ops.select(home)
        while not c.ctx.stopping:
            yield from ops.idle(c.rng.uniform(0.3, 1.5))
            if c.rng.random() < 0.5:
                yield from ops.fetch_some()
            if c.rng.random() < 0.1:
                yield from ops.store()
        yield BARRIER
        yield from ops.final()

    return script


def tree_client():
    """Renames the Tree folder back and forth, lists, examines and appends into it."""

    def script(c: Client):
        ops = Ops(c)
        while not c.ctx.stopping:
            r = c.rng.random()
            if r < 0.3:
                a, b = c.rng.choice((("Tree", "Tree2"), ("Tree2", "Tree")))
                res = yield Cmd(f"RENAME {a} {b}")
                if res.status != "OK" and res.code not in ("NONEXISTENT", "ALREADYEXISTS"):
                    c.bad(f"RENAME {a} {b}: {res.status} [{res.code}] {res.text}")
                c.ctx.stats["renames ok" if res.status == "OK" else "renames refused"] += 1
            elif r < 0.45:
                yield from ops.simple('LIST "" "*"')
            elif r < 0.6:
                box = c.rng.choice(TREE_NAMES + tuple(t + ".Sub" for t in TREE_NAMES))
                yield from ops.simple(f"STATUS {box} (MESSAGES UIDNEXT UIDVALIDITY)", ("NONEXISTENT",))
            elif r < 0.85:
                box = c.rng.choice(TREE_NAMES + tuple(t + ".Sub" for t in TREE_NAMES))
                yield from ops.append(box, may_fail=True)
            else:
                box = c.rng.choice(TREE_NAMES + tuple(t + ".Sub" for t in TREE_NAMES))
                if (yield from ops.select(box, examine=c.rng.random() < 0.5)):
                    yield from ops.fetch_some()
                    yield from ops.simple("UNSELECT")
            yield Sleep(c.rng.uniform(0.0, 0.05))
        yield BARRIER
        yield from ops.final()

    return script


# =========================================================== uidlist watch
class UidlistWatch:
    """Samples every dovecot-uidlist during the run: UIDs ascending and unique,
    a UID never changes its file, next UID never goes down, UIDVALIDITY of the
    fixed folders never changes."""

    def __init__(self, root: str, ledger: Ledger, fixed_dirs: dict[str, int]) -> None:
        self.root = root
        self.ledger = ledger
        self.fixed = fixed_dirs  # dir entry -> UIDVALIDITY
        self.uid_base: dict[tuple[int, int], str] = {}
        self.base_uid: dict[tuple[int, str], int] = {}
        self.next_uid: dict[int, int] = {}
        self.samples = 0

    def sample(self) -> None:
        self.samples += 1
        try:
            dirs = folder_dirs(self.root)
        except OSError:
            return
        for entry, path in dirs.items():
            try:
                got = read_uidlist(path)
            except OSError:
                continue  # renamed away while we looked
            if got is None:
                continue
            hdr, recs, problems = got
            where = entry or "INBOX"
            for p in problems:
                self.ledger.bad(f"uidlist of {where}: {p}")
            try:
                v = int(hdr.get("V", "0"))
            except ValueError:
                v = 0
            if hdr.get("version") != "3" or not v:
                self.ledger.bad(f"uidlist of {where} has a bad header {hdr}")
                continue
            if entry in self.fixed and self.fixed[entry] != v:
                self.ledger.bad(f"UIDVALIDITY of {where} changed on disk: {self.fixed[entry]} -> {v}")
            n = next_uid_of(hdr, recs)
            if n < self.next_uid.get(v, 0):
                self.ledger.bad(f"next UID of {where} (V{v}) went down: {self.next_uid[v]} -> {n}")
            self.next_uid[v] = max(n, self.next_uid.get(v, 0))
            for uid, base in recs:
                old = self.uid_base.setdefault((v, uid), base)
                if old != base:
                    self.ledger.bad(f"uidlist of {where}: UID {uid} was {old}, now {base}")
                ou = self.base_uid.setdefault((v, base), uid)
                if ou != uid:
                    self.ledger.bad(f"uidlist of {where}: {base} was UID {ou}, now UID {uid}")
                if uid > self.ledger.max_uid[v]:
                    self.ledger.max_uid[v] = uid


# ==================================================================== test
@pytest.fixture
def torture_env():
    user = mail_user()
    root = make_maildir(user)
    logdir = os.path.join(os.path.dirname(root), "logs")
    os.makedirs(logdir)
    cfg_inotify = write_config("[server]\nlog_to_stderr = true\n[idle]\ninotify = true\nkeepalive = 5\n")
    cfg_poll = write_config("[server]\nlog_to_stderr = true\n[idle]\ninotify = false\npoll_interval = 0.2\n"
                            "keepalive = 5\n")
    yield user, root, logdir, cfg_inotify, cfg_poll
    os.unlink(cfg_inotify)
    os.unlink(cfg_poll)
    if not os.environ.get("IMAPD_KEEP_MAILDIR"):
        remove_maildir(root)


def _setup_folders(user, root: str, cfg: str, ledger: Ledger) -> None:
    with ImapPipe(["--config", cfg, "--maildir", root], user) as c:
        for name in ("Work", "Arch", "Tree", "Tree.Sub"):
            assert tagged_status(c.command(f"CREATE {name}")) == b"OK"
        for name in FIXED + ("Tree", "Tree.Sub"):
            lines = c.command(f"STATUS {name} (UIDVALIDITY UIDNEXT)")
            v = int(re.search(rb"UIDVALIDITY (\d+)", b"\n".join(lines)).group(1))  # type: ignore[union-attr]
            ledger.v_of[name] = v
        c.command("LOGOUT")
    vs = list(ledger.v_of.values())
    assert len(set(vs)) == len(vs), f"the test needs distinct UIDVALIDITYs per mailbox: {ledger.v_of}"


def _fresh_view(user, root: str, cfg: str, mailbox: str) -> tuple[int, int, list[int], dict[int, str]]:
    """(UIDVALIDITY, EXISTS, UIDs, uid -> id) as a new imapd process sees it."""
    with ImapPipe(["--config", cfg, "--maildir", root], user) as c:
        lines = c.command(f"SELECT {mailbox}", timeout=60)
        assert tagged_status(lines) == b"OK", lines
        blob = b"\n".join(lines)
        v = int(re.search(rb"UIDVALIDITY (\d+)", blob).group(1))  # type: ignore[union-attr]
        exists = int(re.search(rb"\* (\d+) EXISTS", blob).group(1))  # type: ignore[union-attr]
        uids: list[int] = []
        tids: dict[int, str] = {}
        if exists:
            lines = c.command(f"FETCH 1:* {FETCH_ITEMS}", timeout=60)
            assert tagged_status(lines) == b"OK", lines[-3:]
            for ln in lines[:-1]:
                um = UID_RE.search(ln)
                if not ln.startswith(b"* ") or b" FETCH " not in ln or not um:
                    continue
                uid = int(um.group(1))
                uids.append(uid)
                tm = TID_RE.search(ln)
                if tm:
                    tids[uid] = tm.group(1).decode()
        c.command("LOGOUT")
    return v, exists, uids, tids


def _list_mailboxes(user, root: str, cfg: str) -> list[str]:
    with ImapPipe(["--config", cfg, "--maildir", root], user) as c:
        lines = c.command('LIST "" "*"')
        c.command("LOGOUT")
    out = []
    for ln in lines[:-1]:
        m = re.match(rb'\* LIST \(([^)]*)\) (?:"."|NIL) "?([^"]*)"?$', ln)
        if m and b"\\Noselect" not in m.group(1) and b"\\NonExistent" not in m.group(1):
            out.append(m.group(2).decode())
    return out


def _spawn_actor(role: str, root: str, user, seed: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "actors.py"), role, root, str(seed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=demote(user),
                            env=server_env(), cwd="/")
    os.set_blocking(proc.stdout.fileno(), False)  # type: ignore[union-attr]
    return proc


def test_torture(torture_env):
    user, root, logdir, cfg_inotify, cfg_poll = torture_env
    ledger = Ledger()
    _setup_folders(user, root, cfg_inotify, ledger)
    fixed_dirs = {"": ledger.v_of["INBOX"], ".Work": ledger.v_of["Work"], ".Arch": ledger.v_of["Arch"]}
    watch = UidlistWatch(root, ledger, fixed_dirs)
    ctx = Ctx(t0=time.monotonic())
    ctx.stats = ledger.stats  # type: ignore[assignment]

    trees = TREE_NAMES
    plan = [
        ("w1", cfg_inotify, worker("INBOX", ("Work", "Arch") + trees, ("Work", "Arch"), trees)),
        ("w2", cfg_poll, worker("INBOX", ("Work", "Arch") + trees, ("Work", "Arch") + trees, trees)),
        ("w3", cfg_inotify, worker("INBOX", ("Arch",) + trees, ("Work",), ("Work",) + trees)),
        ("w4", cfg_poll, worker("INBOX", ("Work",), ("Arch",) + trees, ("Arch",))),
        ("w5", cfg_inotify, worker("Work", ("Arch",) + trees, ("Arch",), ("Arch",) + trees)),
        ("w6", cfg_inotify, worker("Arch", ("Work",), ("Work",), ("Work",))),
        ("i1", cfg_inotify, idler("INBOX")),
        ("i2", cfg_poll, idler("Work")),
        ("t1", cfg_inotify, tree_client()),
        ("t2", cfg_poll, tree_client()),
    ]
    clients: list[Client] = []
    actors: dict[str, subprocess.Popen] = {}
    delivered_lines = bytearray()
    actor_out: dict[str, bytearray] = {"mda": delivered_lines, "mutt": bytearray()}
    try:
        for name, cfg, script in plan:
            clients.append(Client(name, ["--config", cfg, "--maildir", root], user, ledger, ctx, script,
                                  os.path.join(logdir, f"{name}.err")))
        actors["mda"] = _spawn_actor("mda", root, user, SEED)
        actors["mutt"] = _spawn_actor("mutt", root, user, SEED + 1)
        ctx.t0 = time.monotonic()
        _drive(clients, actors, actor_out, ctx, ledger, watch)
    finally:
        for c in clients:
            if c.proc.poll() is None:
                c.proc.kill()
            c.proc.wait(10)
        for p in actors.values():
            if p.poll() is None:
                p.kill()
            p.wait(10)
    run_time = time.monotonic() - ctx.t0

    for ln in delivered_lines.decode().splitlines():
        parts = ln.split()
        if len(parts) == 3 and parts[0] == "D":
            ledger.delivered[parts[1]] = "" if parts[2] == "-" else parts[2]
    # a delivery seen by a FETCH in the folder it was delivered to is its
    # original instance (only known now that the MDA's log is read)
    deliv_v = {"": ledger.v_of["INBOX"], ".Work": ledger.v_of["Work"]}
    for (v, uid), (tid, _) in list(ledger.uid_tid.items()):
        if tid in ledger.delivered and (v, uid) not in ledger.created and deliv_v[ledger.delivered[tid]] == v:
            ledger.created[(v, uid)] = (tid, "delivery")

    t_check = time.monotonic()
    _final_checks(user, root, cfg_inotify, ledger, clients, watch)
    for c in clients:
        with open(c.errlog, "rb") as f:
            err = f.read()
        if b"Traceback" in err:
            ledger.bad(f"[{c.name}] server wrote a traceback:\n{err.decode('utf-8', 'replace')[-3000:]}")
    summary = (f"seed {SEED}, {run_time:.1f}s of torture + {time.monotonic() - t_check:.1f}s of checks; "
               f"{len(ledger.appended)} appended, {len(ledger.delivered)} delivered, "
               f"{len(ledger.created)} instances created, {len(ledger.deleted)} flagged deleted, "
               f"{len(ledger.moved)} moved; {watch.samples} uidlist samples; "
               f"{actor_out['mutt'].decode().strip()}\n  commands: {dict(sorted(ledger.stats.items()))}")
    print(summary)
    if ledger.violations:
        pytest.fail(f"{len(ledger.violations)} violations ({summary}):\n" + "\n".join(ledger.violations[:25]),
                    pytrace=False)


def _drive(clients: list[Client], actors: dict[str, subprocess.Popen], actor_out: dict[str, bytearray],
           ctx: Ctx, ledger: Ledger, watch: UidlistWatch) -> None:
    until = ctx.t0 + SECONDS
    hard_deadline = until + 90
    next_sample = 0.0
    actors_stopped = False
    by_rfd = {c.rfd: c for c in clients}
    actor_fds = {p.stdout.fileno(): name for name, p in actors.items()}  # type: ignore[union-attr]
    while True:
        now = time.monotonic()
        if now > hard_deadline:
            raise AssertionError("torture run did not finish: " + ", ".join(
                f"{c.name}: cmd={c.cmd and c.cmd.spec.text[:40]!r} barrier={c.at_barrier}" for c in clients
                if not c.finished))
        if not ctx.stopping and now >= until:
            ctx.stopping = True
            for p in actors.values():
                p.send_signal(signal.SIGTERM)
        if now >= next_sample:
            watch.sample()
            next_sample = now + 0.25
        live = [c for c in clients if not c.finished and not c.eof]
        for c in live:
            if not c.greeted:
                continue
            if c.cmd is None and not c.at_barrier and now >= c.sleep_until:
                c.advance(None)
            cmd = c.cmd
            if cmd is not None and cmd.spec.idle is not None and cmd.idle_started and not cmd.done_sent:
                if ctx.stopping or now >= (cmd.done_at or 0):
                    cmd.done_sent = True
                    c.note(">", b"DONE")
                    c.send(b"DONE\r\n")
            if cmd is not None and now - cmd.sent_at > COMMAND_TIMEOUT:
                c.bad(f"command {cmd.spec.text[:60]!r} got no answer within {COMMAND_TIMEOUT}s")
                raise AssertionError("hung command:\n" + "\n".join(ledger.violations[-3:]))
            c.flush()
        if ctx.stopping and not actors_stopped:
            if all(p.poll() is not None for p in actors.values()):
                actors_stopped = True
                for name, p in actors.items():
                    rest = read_available(p.stdout.fileno())  # type: ignore[union-attr]
                    if rest:
                        actor_out[name] += rest
                    if p.returncode != 0:
                        ledger.bad(f"{name} failed: {p.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        waiting = [c for c in clients if not c.finished and not c.eof]
        if actors_stopped and waiting and all(c.at_barrier and c.cmd is None for c in waiting):
            watch.sample()
            for c in waiting:
                c.at_barrier = False
            for c in waiting:
                c.advance(None)
                c.flush()
            continue
        if not waiting and actors_stopped:
            watch.sample()
            return
        rfds = [c.rfd for c in waiting] + [fd for fd, n in actor_fds.items() if actors[n].poll() is None]
        wfds = [c.wfd for c in waiting if c.out]
        timeout = 0.02
        r, w, _ = select.select(rfds, wfds, [], timeout)
        for fd in r:
            if fd in actor_fds:
                data = read_available(fd)
                if data:
                    actor_out[actor_fds[fd]] += data
                continue
            c = by_rfd[fd]
            data = read_available(fd)
            if data is None:
                c.eof = True
                if not c.finished and not (c.cmd is not None and c.cmd.name == "LOGOUT"):
                    with open(c.errlog, "rb") as f:
                        err = f.read().decode("utf-8", "replace")[-2000:]
                    c.bad(f"imapd exited unexpectedly (rc {c.proc.poll()}): {err}")
                elif c.cmd is not None and c.cmd.name == "LOGOUT":
                    c.bad("connection closed before the tagged LOGOUT answer")
                continue
            if data:
                c.on_data(data)
        for fd in w:
            for c in waiting:
                if c.wfd == fd:
                    c.flush()


def _final_checks(user, root: str, cfg: str, ledger: Ledger, clients: list[Client], watch: UidlistWatch) -> None:
    names = _list_mailboxes(user, root, cfg)
    for must in FIXED:
        if must not in names:
            ledger.bad(f"{must} is missing from LIST at the end: {names}")
    fresh: dict[str, tuple[int, int, list[int], dict[int, str]]] = {}
    for name in names:
        fresh[name] = _fresh_view(user, root, cfg, name)
    watch.sample()

    # 1. UIDVALIDITY of the fixed mailboxes
    for name in FIXED:
        if name in fresh and fresh[name][0] != ledger.v_of[name]:
            ledger.bad(f"UIDVALIDITY of {name} changed: {ledger.v_of[name]} -> {fresh[name][0]}")

    # 2. each session's final view equals a fresh process's view
    for c in clients:
        fin = getattr(c, "ctx_final", None)
        if fin is None:
            continue
        mailbox, v, count, seqs = fin
        if mailbox not in fresh:
            continue
        fv, fexists, fuids, _ = fresh[mailbox]
        if v != fv:
            ledger.bad(f"[{c.name}] ended with UIDVALIDITY {v} of {mailbox}, a fresh process sees {fv}")
            continue
        if count != fexists:
            ledger.bad(f"[{c.name}] counted {count} messages in {mailbox} (EXISTS - EXPUNGE arithmetic),"
                       f" a fresh process sees {fexists}; only the session has UIDs"
                       f" {sorted(set(seqs) - set(fuids))[:10]}, only the fresh one"  # type: ignore[arg-type]
                       f" {sorted(set(fuids) - set(seqs))[:10]}")  # type: ignore[arg-type]
        elif seqs != fuids:
            diff = sorted(set(seqs) ^ set(fuids))  # type: ignore[arg-type]
            ledger.bad(f"[{c.name}] sequence -> UID map of {mailbox} differs from a fresh process's: {diff[:10]}")

    # 3. the files agree with what the server says
    present: dict[tuple[int, int], str] = {}
    v_by_name = {name: f[0] for name, f in fresh.items()}
    for entry, path in folder_dirs(root).items():
        files, dups = scan_files(path)
        where = entry or "INBOX"
        if dups:
            ledger.bad(f"{where}: base names in both new/ and cur/ (or twice): {dups[:5]}")
        for base, (sub, tid, complete) in files.items():
            if not complete:
                ledger.bad(f"{where}: incomplete message file {sub}/{base} ({tid})")
        got = read_uidlist(path)
        if got is None:
            if files:
                ledger.bad(f"{where}: messages but no dovecot-uidlist")
            continue
        hdr, recs, problems = got
        for p in problems:
            ledger.bad(f"{where}: final uidlist: {p}")
        v = int(hdr.get("V", "0") or 0)
        by_base = {b: u for u, b in recs}
        for base, (sub, tid, _) in files.items():
            uid = by_base.get(base)
            if uid is None:
                ledger.bad(f"{where}: file {sub}/{base} has no UID after a fresh SELECT")
                continue
            if tid is None:
                ledger.bad(f"{where}: file {base} without an X-Torture-Id")
                continue
            present[(v, uid)] = tid
            ledger.saw(v, uid, tid, f"file {where}/{sub}")
        name = next((n for n, fv in v_by_name.items() if fv == v), None)
        if name is None:
            ledger.bad(f"{where} (UIDVALIDITY {v}) holds messages but LIST did not show it")
            continue
        _, exists, fuids, ftids = fresh[name]
        disk_uids = sorted(by_base[b] for b in files if b in by_base)
        if fuids != disk_uids:
            ledger.bad(f"{name}: a fresh imapd shows UIDs {sorted(set(fuids) ^ set(disk_uids))[:10]} differently"
                       f" from the files ({len(fuids)} vs {len(disk_uids)})")
        for uid, tid in ftids.items():
            ledger.saw(v, uid, tid, f"fresh FETCH {name}")

    # 4. every message where it should be, and nothing more
    inbox_v = ledger.v_of["INBOX"]
    work_v = ledger.v_of["Work"]
    deliv_v = {"": inbox_v, ".Work": work_v}
    uncreated: collections.defaultdict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    for key, tid in present.items():
        if key in ledger.created:
            if ledger.created[key][0] != tid:
                ledger.bad(f"UID {key} holds {tid}, but {ledger.created[key]} was put there")
            if key in ledger.moved:
                ledger.bad(f"{tid} (UID {key}) was MOVEd away (tagged OK) but is still there")
            continue
        if tid in ledger.delivered and deliv_v.get(ledger.delivered[tid]) == key[0]:
            uncreated[tid].append(key)
            continue
        if tid in ledger.failed:
            ledger.bad(f"{tid} got NO to its APPEND but is in the mailbox (UID {key})")
        else:
            ledger.bad(f"{tid} at UID {key} appeared without any APPEND/COPY/MOVE that reported it")
    for tid, keys in uncreated.items():
        if len(keys) > 1:
            ledger.bad(f"delivered message {tid} is there {len(keys)} times: {keys}")
    for key, (tid, how) in ledger.created.items():
        if key in present:
            continue
        if key in ledger.deleted or key in ledger.moved:
            continue
        ledger.bad(f"{tid} created by {how} as UID {key} is lost (never flagged \\Deleted, never moved)")
    present_tids = set(present.values())
    sighted = {tid for tid, _ in ledger.created.values()}
    for tid, folder in ledger.delivered.items():
        if tid not in present_tids and tid not in sighted:
            ledger.bad(f"delivered message {tid} (into {folder or 'INBOX'}) is lost: never seen by anyone")
    for tid in ledger.appended:
        if tid not in present_tids and tid not in sighted:
            ledger.bad(f"appended message {tid} is lost")
