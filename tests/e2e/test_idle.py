"""IDLE end to end: a client idles while others change the mailbox.

Changes come from a delivery agent (a file renamed into new/), a mail reader
(a file renamed or deleted in cur/) and another imapd process (STORE and
EXPUNGE).  Every change must reach the idling client, in order, with correct
numbers; the same must hold with inotify switched off (polling fallback).
"""

from __future__ import annotations

import os
import re
import tempfile
import time

import pytest

from harness import ImapPipe, deliver, make_maildir, mail_user, remove_maildir

MSG = b"From: a@example.org\r\nSubject: idle test %d\r\n\r\nbody\r\n"


@pytest.fixture(params=["inotify", "polling"])
def setup(request):
    user = mail_user()
    root = make_maildir(user)
    fd, cfg = tempfile.mkstemp(suffix=".toml", dir="/tmp")
    with os.fdopen(fd, "w") as f:
        if request.param == "polling":
            f.write("[idle]\ninotify = false\npoll_interval = 0.2\n")
        else:
            f.write("[idle]\ninotify = true\n")
    os.chmod(cfg, 0o644)
    yield user, root, cfg
    os.unlink(cfg)
    remove_maildir(root)


def _wait_for(client: ImapPipe, pattern: bytes, timeout: float = 5.0) -> list[bytes]:
    """Untagged lines up to the first that matches `pattern`."""
    lines = []
    deadline = time.monotonic() + timeout
    while True:
        line = client.read_line(max(0.05, deadline - time.monotonic()))
        lines.append(line)
        if re.search(pattern, line):
            return lines


def _cur_files(root: str) -> list[str]:
    return sorted(os.listdir(os.path.join(root, "cur")))


def test_idle_sees_every_change(setup):
    user, root, cfg = setup
    args = ["--config", cfg, "--maildir", root]
    with ImapPipe(args, user) as idler, ImapPipe(args, user) as other:
        for i in range(3):
            other.command(b"APPEND INBOX {%d+}\r\n" % len(MSG % i) + MSG % i)
        idler.command("SELECT INBOX")
        idler.send(b"i1 IDLE\r\n")
        assert idler.read_line().startswith(b"+ ")

        # 1. a delivery agent drops a new message into new/
        deliver(root, MSG % 3, user)
        lines = _wait_for(idler, rb"^\* 4 EXISTS$")
        assert lines[-1] == b"* 4 EXISTS"

        # 2. another imapd flags message 2
        other.command("SELECT INBOX")
        other.command("STORE 2 +FLAGS (\\Flagged)")
        lines = _wait_for(idler, rb"^\* 2 FETCH")
        assert b"\\Flagged" in lines[-1]

        # 3. a mail reader renames a file in cur/ (marks message 1 seen)
        first = sorted(_cur_files(root))[0]
        base, _, flags = first.partition(":2,")
        os.rename(os.path.join(root, "cur", first), os.path.join(root, "cur", base + ":2," + "".join(sorted(flags + "S"))))
        lines = _wait_for(idler, rb"^\* \d+ FETCH \(FLAGS \([^)]*\\Seen")
        assert lines[-1].startswith(b"* ")

        # 4. another imapd expunges message 3
        other.command("STORE 3 +FLAGS.SILENT (\\Deleted)")
        assert other.command("EXPUNGE")[-1].endswith(b"EXPUNGE completed")
        lines = _wait_for(idler, rb"^\* 3 EXPUNGE$")
        assert lines[-1] == b"* 3 EXPUNGE"

        # 5. a mail reader deletes a file: the message that is now number 3
        delivered = [n for n in _cur_files(root) if n.endswith(".test") or ".test:" in n]
        assert len(delivered) == 1
        os.unlink(os.path.join(root, "cur", delivered[0]))
        lines = _wait_for(idler, rb"^\* \d EXPUNGE$")
        assert lines[-1] == b"* 3 EXPUNGE"

        idler.send(b"DONE\r\n")
        lines = idler.read_until_tagged("i1")
        assert lines[-1] == b"i1 OK IDLE terminated"
        # the view the client has is consistent: 2 messages left
        lines = idler.command("FETCH 1:* (UID)")
        assert [l for l in lines if l.startswith(b"* ")] == [b"* 1 FETCH (UID 1)", b"* 2 FETCH (UID 2)"], lines


def test_idle_done_and_bad_continuation(setup):
    user, root, cfg = setup
    with ImapPipe(["--config", cfg, "--maildir", root], user) as c:
        c.send(b"i1 IDLE\r\n")
        assert c.read_line().startswith(b"+ ")
        c.send(b"done\r\n")  # case-insensitive
        assert c.read_until_tagged("i1")[-1] == b"i1 OK IDLE terminated"
        c.send(b"i2 IDLE\r\n")
        assert c.read_line().startswith(b"+ ")
        c.send(b"NOOP\r\n")
        assert c.read_until_tagged("i2")[-1].startswith(b"i2 BAD")
        assert c.command("NOOP")[-1].startswith(b"t1 OK")


def test_idle_keepalive(setup):
    user, root, cfg = setup
    with open(cfg, "a") as f:
        f.write("keepalive = 0.5\n" if "[idle]" in open(cfg).read() else "[idle]\nkeepalive = 0.5\n")
    with ImapPipe(["--config", cfg, "--maildir", root], user) as c:
        c.command("SELECT INBOX")
        c.send(b"i1 IDLE\r\n")
        assert c.read_line().startswith(b"+ ")
        assert c.read_line(timeout=3) == b"* OK Still here"
        c.send(b"DONE\r\n")
        assert c.read_until_tagged("i1")[-1] == b"i1 OK IDLE terminated"
