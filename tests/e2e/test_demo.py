"""`imapd --demo`, the README's first command: a throwaway Maildir served
pre-authenticated over stdio, through the real launcher.  Started as root (a
container, a fresh machine) it becomes the unprivileged `nobody` first: mail
is never served as root."""

from __future__ import annotations

import glob
import os
import pwd
import subprocess
import sys
import time

from harness import REPO


def _uid_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[2])  # effective uid
    raise AssertionError("no Uid line")


def test_demo_serves_sample_mail_and_cleans_up():
    before = set(glob.glob("/tmp/imapd-demo-*"))
    me = pwd.getpwuid(os.getuid()).pw_name  # ($USER of the shell the demo is started from)
    env = {"PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin", "PYTHONPATH": REPO, "HOME": "/tmp", "USER": me}
    proc = subprocess.Popen([os.path.join(REPO, "bin", "imapd"), "--demo"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd="/")
    assert proc.stdin is not None and proc.stdout is not None
    greeting = proc.stdout.readline()
    expected = "nobody" if os.geteuid() == 0 else me
    assert greeting.startswith(b"* PREAUTH ") and greeting.rstrip().endswith(f"logged in as {expected}".encode())
    assert _uid_of(proc.pid) == pwd.getpwnam(expected).pw_uid
    proc.stdin.write(b'a LIST "" "*"\r\n')
    proc.stdin.flush()
    listed = [proc.stdout.readline() for _ in range(5)]
    assert sum(line.startswith(b"* LIST ") for line in listed) == 4 and listed[-1].startswith(b"a OK LIST")
    made = set(glob.glob("/tmp/imapd-demo-*")) - before  # (made after the greeting went out)
    assert len(made) == 1 and os.stat(made.pop()).st_uid == pwd.getpwnam(expected).pw_uid
    out, err = proc.communicate(b"b SELECT INBOX\r\nc FETCH 1:* (FLAGS ENVELOPE)\r\nd LOGOUT\r\n", timeout=30)
    assert proc.returncode == 0 and err == b""
    assert b"* 3 EXISTS" in out and b"b OK [READ-WRITE]" in out
    assert out.count(b" FETCH (FLAGS ") == 3 and b"c OK FETCH" in out and out.endswith(b"d OK Logout completed\r\n")
    deadline = time.monotonic() + 5
    while set(glob.glob("/tmp/imapd-demo-*")) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(glob.glob("/tmp/imapd-demo-*")) - before  # the throwaway Maildir is gone
