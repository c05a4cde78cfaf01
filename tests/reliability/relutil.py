"""Shared pieces of the reliability tests: imapd processes driven over
non-blocking pipes, an incremental response reader, tracked test messages,
and direct (file-level) checks of a Maildir.

Every test message carries a unique `X-Torture-Id` (and `Message-ID`) and
ends with an `X-End: <id>` line, so a file that is visible in cur/ or new/
but incomplete is recognised, and every message can be followed through
APPEND, COPY, MOVE and EXPUNGE.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import select
import signal
import subprocess
import tempfile
import time
from typing import Sequence

from harness import IMAPD, MailUser, server_env

TID_RE = re.compile(rb"X-Torture-Id: *([!-~]+)", re.I)
END_RE = re.compile(rb"X-End: ([!-~]+)\r?\n?$")


# ------------------------------------------------------------------ messages
def make_message(tid: str, body_size: int = 0) -> bytes:
    """A message in wire form (CRLF) that names `tid` at the top and the end."""
    head = (
        f"From: torture@example.org\r\n"
        f"To: victim@example.org\r\n"
        f"Subject: torture {tid}\r\n"
        f"Message-ID: <{tid}@torture.example.org>\r\n"
        f"X-Torture-Id: {tid}\r\n"
        f"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
        f"\r\n"
    ).encode()
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
    body = line * (body_size // len(line)) if body_size > 0 else b"short body\r\n"
    return head + body + f"X-End: {tid}\r\n".encode()


def file_tid(data: bytes) -> tuple[str | None, bool]:
    """(id, complete) of a stored message file."""
    m = TID_RE.search(data[:2000])
    tid = m.group(1).decode() if m else None
    e = END_RE.search(data[-200:])
    complete = bool(m and e and e.group(1).decode() == tid)
    return tid, complete


# ------------------------------------------------------------ the processes
def demote(user: MailUser, extra: "callable | None" = None):  # type: ignore[valid-type]
    def run() -> None:
        if extra is not None:
            extra()
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(user.gid)
            os.setuid(user.uid)

    return run


def write_config(text: str) -> str:
    fd, path = tempfile.mkstemp(suffix=".toml", prefix="imapd-rel-", dir="/tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


def spawn_imapd(args: Sequence[str], user: MailUser, stderr_path: str | None = None,
                preexec_extra=None, wrapper: Sequence[str] = ()) -> subprocess.Popen:
    """imapd (as `user`) on two pipes set non-blocking on our side; stderr to a file."""
    err = open(stderr_path, "ab") if stderr_path else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            list(wrapper) + IMAPD + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
            preexec_fn=demote(user, preexec_extra), env=server_env(), cwd="/", bufsize=0,
        )
    finally:
        if stderr_path:
            err.close()  # type: ignore[union-attr]
    for f in (proc.stdin, proc.stdout):
        fl = fcntl.fcntl(f.fileno(), fcntl.F_GETFL)
        fcntl.fcntl(f.fileno(), fcntl.F_SETFL, fl | os.O_NONBLOCK)
    return proc


def kill9(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(10)
    for f in (proc.stdin, proc.stdout):
        try:
            f.close()  # type: ignore[union-attr]
        except OSError:
            pass


class ResponseReader:
    """Splits server output into whole responses (a line plus its literals)."""

    _LIT = re.compile(rb"~?\{(\d+)\}$")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.pending = bytearray()
        self.need = 0

    def feed(self, data: bytes) -> None:
        self.buf += data

    def next(self) -> bytes | None:
        while True:
            if self.need:
                if len(self.buf) < self.need:
                    return None
                self.pending += self.buf[: self.need]
                del self.buf[: self.need]
                self.need = 0
            i = self.buf.find(b"\r\n")
            if i < 0:
                return None
            line = bytes(self.buf[:i])
            del self.buf[: i + 2]
            self.pending += line
            m = self._LIT.search(line)
            if m and not line.startswith(b"+"):
                self.need = int(m.group(1))
                self.pending += b"\r\n"
                continue
            out = bytes(self.pending)
            self.pending = bytearray()
            return out


def read_available(fd: int) -> bytes | None:
    """What a non-blocking fd has now; b'' if nothing, None at EOF."""
    out = bytearray()
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return bytes(out)
        except OSError as e:
            if e.errno == errno.EIO:
                return None if not out else bytes(out)
            raise
        if not chunk:
            return None if not out else bytes(out)
        out += chunk


# ----------------------------------------------------------- parsing helpers
def tagged_parts(resp: bytes) -> tuple[str, str, str | None, str]:
    """(tag, status, code, text) of a tagged response."""
    tag, _, rest = resp.partition(b" ")
    status, _, rest = rest.partition(b" ")
    code = None
    if rest.startswith(b"["):
        end = rest.find(b"]")
        if end > 0:
            code = rest[1:end].decode("ascii", "replace")
            rest = rest[end + 1 :].lstrip()
    return tag.decode(), status.decode().upper(), code, rest.decode("utf-8", "replace")


def parse_uid_set(s: str) -> list[int]:
    out: list[int] = []
    for part in s.split(","):
        if ":" in part:
            a, b = part.split(":")
            lo, hi = sorted((int(a), int(b)))
            out.extend(range(lo, hi + 1))
        else:
            out.append(int(part))
    return out


def uid_set(uids: Sequence[int]) -> str:
    return ",".join(str(u) for u in sorted(set(uids)))


# ------------------------------------------------------------- the files
def parse_uidlist(data: bytes) -> tuple[dict[str, str], list[tuple[int, str]], list[str]]:
    """(header fields, [(uid, base)], problems) of a dovecot-uidlist's
    complete lines (a trailing line without newline is not counted)."""
    problems: list[str] = []
    text = data.decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    lines.pop()  # the incomplete (or empty) last piece
    if not lines:
        return {}, [], ["empty uidlist"]
    head = lines[0].split(" ")
    hdr: dict[str, str] = {"version": head[0]}
    for f in head[1:]:
        if f:
            hdr[f[0]] = f[1:]
    recs: list[tuple[int, str]] = []
    last = 0
    for ln in lines[1:]:
        if not ln:
            continue
        m = re.match(r"^(\d+)(?: [^:]*)? :(.+)$", ln) if head[0] == "3" else re.match(r"^(\d+) (.+)$", ln)
        if not m:
            problems.append(f"malformed record line {ln!r}")
            continue
        uid = int(m.group(1))
        if uid <= last:
            problems.append(f"UID {uid} not above the previous {last}")
        last = max(last, uid)
        recs.append((uid, m.group(2).partition(":")[0]))
    bases = [b for _, b in recs]
    if len(set(bases)) != len(bases):
        problems.append("a base name appears twice")
    return hdr, recs, problems


def read_uidlist(folder_dir: str) -> tuple[dict[str, str], list[tuple[int, str]], list[str]] | None:
    try:
        with open(os.path.join(folder_dir, "dovecot-uidlist"), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    return parse_uidlist(data)


def next_uid_of(hdr: dict[str, str], recs: list[tuple[int, str]]) -> int:
    n = int(hdr.get("N", "0") or 0)
    if recs:
        n = max(n, recs[-1][0] + 1)
    return n


def folder_dirs(root: str) -> dict[str, str]:
    """directory entry -> path of every mailbox directory (INBOX is "")."""
    out = {"": root}
    for e in os.listdir(root):
        p = os.path.join(root, e)
        if e.startswith(".") and e not in (".", "..") and not os.path.islink(p) and os.path.isdir(os.path.join(p, "cur")):
            out[e] = p
    return out


def scan_files(folder_dir: str, cache: dict | None = None
               ) -> tuple[dict[str, tuple[str, str | None, bool]], list[str]]:
    """base -> (subdir, id, complete) for every message file in new/ and cur/;
    second value: base names found twice.  `cache` ((base, inode) -> (id,
    complete)) saves re-reading files already seen complete: a message file's
    bytes never change, and a base name is never used twice."""
    found: dict[str, tuple[str, str | None, bool]] = {}
    dups: list[str] = []
    for sub in ("new", "cur"):
        d = os.path.join(folder_dir, sub)
        try:
            entries = list(os.scandir(d))
        except FileNotFoundError:
            continue
        for e in entries:
            if e.is_symlink():
                continue
            base = e.name.partition(":")[0]
            key = (base, e.inode())
            hit = cache.get(key) if cache is not None else None
            if hit is None:
                try:
                    with open(e.path, "rb") as f:
                        data = f.read()
                except FileNotFoundError:
                    continue
                hit = file_tid(data)
                if cache is not None and hit[1]:
                    cache[key] = hit
            if base in found:
                dups.append(base)
            found[base] = (sub, hit[0], hit[1])
    return found, dups


class RawClient:
    """A blocking-enough client over spawn_imapd's non-blocking pipes, for
    tests that kill the server in the middle of a command."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.rfd = proc.stdout.fileno()  # type: ignore[union-attr]
        self.wfd = proc.stdin.fileno()  # type: ignore[union-attr]
        self.reader = ResponseReader()
        self.responses: list[bytes] = []  # received, not yet consumed
        self.eof = False
        self.tagn = 0

    def tag(self) -> str:
        self.tagn += 1
        return f"c{self.tagn}"

    def pump(self, timeout: float) -> None:
        """Wait up to `timeout` for output and take whatever is there."""
        if self.eof:
            return
        r, _, _ = select.select([self.rfd], [], [], timeout)
        if not r:
            return
        data = read_available(self.rfd)
        if data is None:
            self.eof = True
            return
        self.reader.feed(data)
        while True:
            resp = self.reader.next()
            if resp is None:
                break
            self.responses.append(resp)

    def drain(self) -> None:
        """After the process died: every response it managed to write."""
        while not self.eof:
            self.pump(0.5)

    def kill(self) -> None:
        """SIGKILL, then collect what it wrote before it died."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)
        self.drain()
        kill9(self.proc)

    def send(self, data: bytes, timeout: float = 30.0) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            _, w, _ = select.select([], [self.wfd], [], max(0.0, deadline - time.monotonic()))
            if not w:
                raise TimeoutError("imapd does not read its input")
            try:
                n = os.write(self.wfd, view)
            except BlockingIOError:
                continue
            view = view[n:]
            self.pump(0)  # never let our own reading block the server's writing

    def wait_for(self, pred, timeout: float = 30.0) -> list[bytes]:
        """Responses up to and including the first that satisfies `pred`."""
        deadline = time.monotonic() + timeout
        while True:
            for i, r in enumerate(self.responses):
                if pred(r):
                    got = self.responses[: i + 1]
                    del self.responses[: i + 1]
                    return got
            if self.eof or time.monotonic() > deadline:
                raise TimeoutError(f"no expected response; have {self.responses[-5:]!r}")
            self.pump(max(0.0, min(0.5, deadline - time.monotonic())))

    def command(self, text: str | bytes, timeout: float = 30.0) -> list[bytes]:
        """Send a command; its responses, the tagged one last."""
        tag = self.tag()
        data = text.encode() if isinstance(text, str) else text
        self.send(tag.encode() + b" " + data + b"\r\n")
        return self.wait_for(lambda r: r.startswith(tag.encode() + b" "), timeout)
