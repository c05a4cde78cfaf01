"""Start the real `imapd` process and talk to it, for the end-to-end tests.

As in production, mail is never served as root: when the tests run as root
(CI does), the server is started as an unprivileged user (`nobody`) on a
Maildir that user owns.
"""

from __future__ import annotations

import os
import pwd
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAPD = [sys.executable, "-m", "imapd"]


@dataclass
class MailUser:
    name: str
    uid: int
    gid: int


def mail_user() -> MailUser:
    """The user the server runs as: ourselves, or `nobody` when we are root."""
    if os.geteuid() == 0:
        pw = pwd.getpwnam("nobody")
    else:
        pw = pwd.getpwuid(os.getuid())
    return MailUser(pw.pw_name, pw.pw_uid, pw.pw_gid)


def make_maildir(user: MailUser, folders: Sequence[str] = ()) -> str:
    """An empty Maildir (plus `.folder` directories) in a fresh directory `user` owns."""
    base = tempfile.mkdtemp(prefix="imapd-test-", dir="/tmp")
    root = os.path.join(base, "Maildir")
    for folder in ("",) + tuple(folders):
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(root, folder, sub), exist_ok=True)
    chown_tree(base, user)
    return root


def chown_tree(path: str, user: MailUser) -> None:
    if os.geteuid() != 0:
        return
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, user.uid, user.gid)
        for f in filenames:
            os.chown(os.path.join(dirpath, f), user.uid, user.gid)


def remove_maildir(root: str) -> None:
    shutil.rmtree(os.path.dirname(root), ignore_errors=True)


def deliver(root: str, data: bytes, user: MailUser, name: str | None = None, folder: str = "") -> str:
    """Deliver like an MDA: write in tmp/, rename into new/."""
    name = name or f"{time.time():.6f}.P{os.getpid()}Q{os.urandom(4).hex()}.test"
    base = os.path.join(root, folder)
    tmp = os.path.join(base, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(data)
    if os.geteuid() == 0:
        os.chown(tmp, user.uid, user.gid)
    dest = os.path.join(base, "new", name)
    os.rename(tmp, dest)
    return dest


def _demote(user: MailUser):  # type: ignore[no-untyped-def]
    def run() -> None:
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(user.gid)
            os.setuid(user.uid)

    return run


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSH_", "REMOTE_"))}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env["HOME"] = "/tmp"
    if extra:
        env.update(extra)
    return env


class ImapPipe:
    """A client over two pipes (the way ssh runs imapd)."""

    def __init__(self, args: Sequence[str], user: MailUser | None = None, env: dict[str, str] | None = None,
                 as_root: bool = False) -> None:
        preexec = None if as_root or user is None else _demote(user)
        self.proc = subprocess.Popen(
            IMAPD + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=preexec, env=server_env(env), cwd="/",
        )
        self.buf = b""
        self.tag_counter = 0
        self.greeting = self.read_line()

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read_some(self, timeout: float = 10.0) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            raise TimeoutError(f"no output from imapd within {timeout}s; have {self.buf[-300:]!r}")
        data = os.read(fd, 65536)
        if not data:
            raise EOFError(f"imapd closed its output; have {self.buf[-300:]!r}")
        return data

    def read_line(self, timeout: float = 10.0) -> bytes:
        while b"\r\n" not in self.buf:
            self.buf += self.read_some(timeout)
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def read_until_tagged(self, tag: str, timeout: float = 10.0) -> list[bytes]:
        """Lines up to and including the tagged response; literals kept inline."""
        lines: list[bytes] = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.read_line(max(0.1, deadline - time.monotonic()))
            m = re.search(rb"\{(\d+)\}$", line)
            while m:  # a literal follows: take its bytes and the rest of the line
                n = int(m.group(1))
                while len(self.buf) < n:
                    self.buf += self.read_some(max(0.1, deadline - time.monotonic()))
                lit, self.buf = self.buf[:n], self.buf[n:]
                rest = self.read_line(max(0.1, deadline - time.monotonic()))
                line = line + b"\r\n" + lit + rest
                m = re.search(rb"\{(\d+)\}$", rest)
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def command(self, text: str | bytes, timeout: float = 10.0) -> list[bytes]:
        self.tag_counter += 1
        tag = f"t{self.tag_counter}"
        data = text.encode() if isinstance(text, str) else text
        self.send(tag.encode() + b" " + data + b"\r\n")
        return self.read_until_tagged(tag, timeout)

    def close(self) -> int:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            return self.proc.wait(10)
        finally:
            for f in (self.proc.stdout, self.proc.stderr):
                if f:
                    f.close()

    def __enter__(self) -> "ImapPipe":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.close()


def tagged_status(lines: list[bytes]) -> bytes:
    """`OK`, `NO` or `BAD` of the last (tagged) line."""
    return lines[-1].split(b" ", 2)[1]
