"""imapd never touches a path outside the mail root, whatever the client asks.

One imapd runs under `strace -f -y -e trace=%file,write` (the mail user runs
both, as in production when imapd is not root).  The Maildir holds traps: a
folder that is a symlink to a directory outside (laid out as a Maildir, with
a message in it), a folder whose cur/ is such a symlink, a folder whose
dovecot-uidlist is one, and message files in cur/ and new/ that are symlinks
to a file outside.  The session then asks for hostile names (SELECT ../x,
CREATE /etc/x, RENAME INBOX ../../tmp/x, APPEND to "..", names with "/",
"~", "%" and control characters) and uses the trap folders and messages
(SELECT, STATUS, LIST, FETCH, COPY, SEARCH, DELETE, RENAME).

From the greeting on, every path the process names in a file system call --
joined with the directory its *at() call is relative to, and every path the
kernel reports for an fd it returned (strace -y shows where a returned fd
really points, so a followed symlink is seen) -- must be the mail root or
below it, an ancestor of the root (opening the root resolves them), or a
system path the interpreter needs (its prefix, the checkout of imapd, /usr,
/lib, /proc/self, /dev/null, /etc/localtime, ...).  Nothing may name or
resolve to the outside directory, no path may go *through* one of the
planted symlinks, and a planted symlink may only be the last component of a
call that does not follow it (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW, lstat, unlink,
rename, readlink).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile

import pytest

from harness import REPO, chown_tree, make_maildir, mail_user, remove_maildir, require_tool
from relutil import RawClient, make_message, spawn_imapd, tagged_parts, write_config

SYSTEM_PREFIXES = ("/usr/", "/lib/", "/lib64/", "/lib32/", "/etc/localtime", "/etc/ld.so", "/dev/null",
                   "/dev/urandom", "/dev/log", "/proc/self/", "/sys/devices/system/cpu", "/etc/nsswitch.conf",
                   "/etc/passwd", "/etc/group", "/etc/host.conf", "/etc/hosts", "/etc/resolv.conf",
                   "/usr/share/zoneinfo/")
# directories Python looks at as a whole (sys.path entries, the interpreter's)
EXACT = {REPO, os.path.realpath(REPO), os.path.dirname(sys.executable)} | {p for p in sys.path if p}
NOFOLLOW_CALLS = {"mkdir", "mkdirat", "lstat", "lstat64", "readlink", "readlinkat", "unlink", "unlinkat", "rename", "renameat",
                  "renameat2", "symlink", "symlinkat", "lgetxattr", "llistxattr"}

HOSTILE = [
    # names that try to leave the root
    "SELECT ../x",
    'SELECT "../../etc"',
    'SELECT "/etc"',
    'SELECT "INBOX/../../etc"',
    'SELECT "~root"',
    'SELECT "%"',
    'SELECT "a\\\\b"',
    "CREATE /etc/x",
    'CREATE "../x"',
    'CREATE ".hidden"',
    'CREATE "a/b"',
    'CREATE "Evil.Sub"',
    'CREATE "Trap.Sub"',
    "RENAME INBOX ../../tmp/x",
    'RENAME INBOX "/tmp/x"',
    "RENAME Evil Stolen",
    "RENAME Real ../Real",
    "DELETE Evil",
    "DELETE ../x",
    'SUBSCRIBE "../x"',
    'LIST "" "*"',
    'LIST "../" "*"',
    'LIST "/etc/" "*"',
    'LIST "~root/" "*"',
    'LSUB "" "*"',
    'STATUS "../x" (MESSAGES)',
    # the planted symlinks: folders, a cur/, a uidlist, keywords, tmp/, messages
    "STATUS Evil (MESSAGES UIDNEXT UIDVALIDITY SIZE)",
    "STATUS Trap (MESSAGES UIDNEXT UIDVALIDITY SIZE)",
    "STATUS Trap2 (MESSAGES UIDNEXT UIDVALIDITY SIZE)",
    "STATUS Trap3 (MESSAGES UIDNEXT UIDVALIDITY SIZE)",
    "STATUS Real (MESSAGES UIDNEXT UIDVALIDITY SIZE)",
    "SELECT Real",
    "FETCH 1:* (FLAGS BODY.PEEK[] RFC822.SIZE)",
    "STORE 1:* +FLAGS (\\Flagged)",
    "SELECT INBOX",
    "FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[] BODYSTRUCTURE)",
    "STORE 1:* +FLAGS (\\Seen $Kw)",
    "SEARCH TEXT secret",
    "COPY 1:* Real",
    "COPY 1:* Evil",
    "COPY 1 Trap2",
    "MOVE 1 Trap",
    "COPY 1 Trap3",
    "STORE 2 +FLAGS (\\Deleted)",
    "EXPUNGE",
    "NOOP",
    "EXAMINE Evil",
    "SELECT Evil",
    "SELECT Trap",
    "SELECT Trap2",
    "SELECT Trap3",
    'CREATE "Trap3.Sub"',
    'RENAME Real "Evil.Real"',
    'RENAME "Evil.Real" Real',
]


def _parse_strace(path: str) -> list[tuple[str, str, str, str]]:
    """(syscall, args, result, whole line) for each completed call, after the greeting."""
    calls = []
    started = False
    pending: dict[str, str] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"^(\d+) +(.*)$", line)
            if not m:
                continue
            pid, rest = m.groups()
            if rest.endswith("<unfinished ...>"):
                pending[pid] = rest[: -len("<unfinished ...>")]
                continue
            r = re.match(r"^<\.\.\. \w+ resumed>(.*)$", rest)
            if r:
                rest = pending.pop(pid, "") + r.group(1)
            c = re.match(r"^(\w+)\((.*)\) += (.*)$", rest)
            if not c:
                continue
            name, args, result = c.groups()
            if name == "write" and args.startswith("1") and "* PREAUTH" in args:
                started = True
                continue
            if started and name != "write":
                calls.append((name, args, result, rest))
    return calls


def _paths(name: str, args: str, result: str) -> tuple[list[str], list[str]]:
    """(paths the call names, joined to their directory; paths of fds, as resolved by the kernel)."""
    named = []
    # a quoted path, maybe after a dirfd ("AT_FDCWD</>" or "5</some/dir>")
    for m in re.finditer(r'(?:(AT_FDCWD|\d+)<([^>]*)>, )?"((?:[^"\\]|\\.)*)"', args):
        base, p = m.group(2), m.group(3)
        p = p.encode().decode("unicode_escape")
        if p == "":  # AT_EMPTY_PATH: the fd itself
            if base is None or not base.startswith("/"):
                continue
            p = base
        if not p.startswith("/"):
            p = os.path.join(base if base is not None else "/", p)
        named.append(os.path.normpath(p))
    resolved = [os.path.normpath(p) for p in re.findall(r"\d+<(/[^>]*)>", args + " " + result)]
    return named, resolved


def _allowed(path: str, root: str, prefixes: tuple[str, ...]) -> bool:
    if path in EXACT:
        return True
    if path == root or path.startswith(root + "/"):
        return True
    if root.startswith(path.rstrip("/") + "/") or path == "/":
        return True  # an ancestor of the root (resolving it)
    return any(path == p.rstrip("/") or path.startswith(p) for p in prefixes)


def _session(c: RawClient) -> tuple[list[tuple[str, bytes]], list[bytes]]:
    c.wait_for(lambda r: r.startswith(b"* PREAUTH"), 60)
    answers: list[tuple[str, bytes]] = []
    seen: list[bytes] = []
    for cmd in HOSTILE:
        got = c.command(cmd, 60)
        seen.extend(got)
        answers.append((cmd, got[-1]))
    msg = make_message("APPENDED")
    for name in ('".."', '"../x"', '"/tmp/x"', "Evil", "Trap"):
        got = c.command(f"APPEND {name} {{{len(msg)}+}}\r\n".encode() + msg, 60)
        seen.extend(got)
        answers.append((f"APPEND {name}", got[-1]))
    c.command("LOGOUT", 60)
    c.proc.wait(60)
    c.drain()
    return answers, seen


@pytest.fixture
def trapped_maildir():
    user = mail_user()
    root = make_maildir(user, folders=(".Real", ".Trap", ".Trap2", ".Trap3"))
    outside = tempfile.mkdtemp(prefix="imapd-outside-", dir="/tmp")
    os.chmod(outside, 0o755)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(outside, sub))
    secret = make_message("SECRET-outside", 100).replace(b"\r\n", b"\n")
    with open(os.path.join(outside, "secret.eml"), "wb") as f:
        f.write(secret)
    with open(os.path.join(outside, "cur", "1700000000.M1P1.outside:2,S"), "wb") as f:
        f.write(secret)
    with open(os.path.join(outside, "dovecot-uidlist"), "w") as f:
        f.write("3 V1 N2 G00000000000000000000000000000000\n1 :1700000000.M1P1.outside\n")
    # the traps
    planted = {
        os.path.join(root, ".Evil"): outside,
        os.path.join(root, ".Trap", "cur"): os.path.join(outside, "cur"),
        os.path.join(root, ".Trap2", "dovecot-uidlist"): os.path.join(outside, "dovecot-uidlist"),
        os.path.join(root, "cur", "1700000001.M2P2.evil:2,S"): os.path.join(outside, "secret.eml"),
        os.path.join(root, "new", "1700000002.M3P3.evil"): os.path.join(outside, "secret.eml"),
        os.path.join(root, ".Real", "cur", "1700000003.M4P4.evil:2,"): "/etc/passwd",
        os.path.join(root, ".Trap", "maildirfolder"): os.path.join(outside, "created-through-a-link"),
        os.path.join(root, ".Trap3", "tmp"): os.path.join(outside, "tmp"),
        os.path.join(root, ".Trap2", "dovecot-keywords"): os.path.join(outside, "keywords"),
    }
    shutil.rmtree(os.path.join(root, ".Trap", "cur"))
    shutil.rmtree(os.path.join(root, ".Trap3", "tmp"))
    for i in range(3):
        with open(os.path.join(root, "cur", f"170000001{i}.M1{i}P1.good:2,"), "wb") as f:
            f.write(make_message(f"GOOD-{i}").replace(b"\r\n", b"\n"))
    # owners first, links last: chown_tree follows symlinks (and one points at /etc/passwd)
    chown_tree(os.path.dirname(root), user)
    chown_tree(outside, user)  # permissions are no defence here: only path discipline is
    for link, target in planted.items():
        os.symlink(target, link)
        if os.geteuid() == 0:
            os.lchown(link, user.uid, user.gid)
    yield user, root, outside, planted
    remove_maildir(root)
    shutil.rmtree(outside, ignore_errors=True)


def test_no_path_outside_the_mail_root(trapped_maildir):
    strace = require_tool("strace")
    user, root, outside, planted = trapped_maildir
    root = os.path.realpath(root)
    base = os.path.dirname(root)
    trace = os.path.join(base, "strace.out")
    errlog = os.path.join(base, "imapd.err")
    wrapper = [strace, "-f", "-y", "-qq", "-s", "120", "-e", "trace=%file,write", "-o", trace]
    cfg = write_config("[server]\nlog_to_stderr = true\n")
    try:
        c = RawClient(spawn_imapd(["--config", cfg, "--maildir", root], user, errlog, wrapper=wrapper))
        answers, seen = _session(c)
    finally:
        os.unlink(cfg)

    # the server answered everything without breaking, and served no trap
    with open(errlog, "rb") as f:
        err = f.read().decode("utf-8", "replace")
    for cmd, resp in answers:
        st = tagged_parts(resp)[1]
        assert st in ("OK", "NO", "BAD"), (cmd, resp)
        assert b"SERVERBUG" not in resp, (cmd, resp, err[-6000:])
    assert "Traceback" not in err, err[-3000:]

    prefixes = tuple(sorted({sys.prefix + "/", sys.base_prefix + "/", sys.exec_prefix + "/",
                             os.path.realpath(sys.base_prefix) + "/", REPO + "/imapd/", REPO + "/imapd",
                             os.path.realpath(REPO) + "/imapd/"} | set(SYSTEM_PREFIXES)))
    calls = _parse_strace(trace)
    assert len(calls) > 50, f"strace saw too little: {len(calls)} calls"
    problems = []
    planted_paths = set(planted)
    for name, args, result, line in calls:
        named, resolved = _paths(name, args, result)
        for p in named + resolved:
            if p == outside or p.startswith(outside + "/") or p == "/etc/passwd" and p in resolved:
                problems.append(f"touches the symlink target: {line}")
            elif not _allowed(p, root, prefixes):
                problems.append(f"path outside the mail root: {p}: {line}")
        for p in named:
            parts = p.split("/")
            for k in range(2, len(parts)):
                if "/".join(parts[:k]) in planted_paths:
                    problems.append(f"goes through a planted symlink: {line}")
                    break
            if p in planted_paths and name not in NOFOLLOW_CALLS and "NOFOLLOW" not in args:
                problems.append(f"follows a planted symlink: {line}")
    assert not problems, f"{len(problems)} bad calls of {len(calls)}:\n" + "\n".join(dict.fromkeys(problems))
    # and the content never reached the client
    assert not any(b"SECRET-outside" in r or b"root:x:0:0" in r for r in seen)
    print(f"{len(calls)} file system calls after the greeting, all inside the mail root or the system's;"
          f" answers: {[(c_, tagged_parts(r)[1]) for c_, r in answers]}")
