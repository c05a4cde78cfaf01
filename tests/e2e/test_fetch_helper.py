"""A cold FETCH of ENVELOPE and BODYSTRUCTURE over many messages hands the
parsing to helper processes (imapd/store/maildir/prebuild.py), by default.
Through the real `imapd`: the answer is byte for byte the one a single
process gives, the values it cached serve the next session, and no helper
outlives the command, even when the client goes away in the middle."""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import pytest

from harness import ImapPipe, chown_tree, config_file, deliver, make_maildir, mail_user, remove_maildir
from imapd.store.maildir.prebuild import helpers_to_use

COUNT = 1500  # enough for the helper to start (fetch.HELP_AFTER misses, HELP_MIN to go)


def message(k: int) -> bytes:
    head = (b"From: Sender %d <s%d@example.org>\nTo: r@example.net\nSubject: =?utf-8?q?m=C3=BC_%d?=\n"
            b"Date: Mon, 2 Mar 2026 10:%02d:00 +0100\nMessage-ID: <%d@example.org>\nMIME-Version: 1.0\n"
            % (k, k, k, k % 60, k))
    if k % 3 == 0:
        return head + b"Content-Type: text/plain; charset=us-ascii\n\nline\n" * 1 + b"body %d\n" % k
    if k % 3 == 1:
        return head + (b'Content-Type: multipart/alternative; boundary="b%d"\n\n--b%d\n'
                       b"Content-Type: text/plain\n\nplain %d\n--b%d\nContent-Type: text/html\n\n<p>%d</p>\n--b%d--\n"
                       % (k, k, k, k, k, k))
    return head + (b'Content-Type: multipart/mixed; boundary="m"\n\n--m\nContent-Type: text/plain\n\nsee\n'
                   b"--m\nContent-Type: application/pdf; name=\"f%d.pdf\"\nContent-Transfer-Encoding: base64\n\n"
                   b"JVBERi0xLjQK\n--m--\n" % k)


@pytest.fixture(scope="module")
def user():
    return mail_user()


@pytest.fixture(scope="module")
def filled(user):
    """A Maildir of COUNT messages, delivered once for the module; each test copies it."""
    root = make_maildir(user)
    for k in range(1, COUNT + 1):
        deliver(root, message(k), user, name="%d.M%dP1.test" % (1_770_000_000 + k, k))
    yield root
    remove_maildir(root)


@pytest.fixture
def copy_of(filled, user):
    made = []

    def copy() -> str:
        base = tempfile.mkdtemp(prefix="imapd-test-", dir="/tmp")
        root = os.path.join(base, "Maildir")
        shutil.copytree(filled, root)
        chown_tree(base, user)
        made.append(root)
        return root

    yield copy
    for root in made:
        remove_maildir(root)


ENVBS = "FETCH 1:* (ENVELOPE BODYSTRUCTURE)"


def fetch_all(root: str, user, cfg: str | None = None) -> list[bytes]:
    args = ["--maildir", root] + (["--config", cfg] if cfg else [])
    with ImapPipe(args, user) as c:
        c.command("SELECT INBOX")
        lines = c.command(ENVBS, timeout=120)
        c.command("LOGOUT")
    return lines


def test_answer_is_the_single_process_answer_and_is_cached(copy_of, user):
    alone = config_file("[mail]\nfetch_helper = false\n")
    try:
        single = fetch_all(copy_of(), user, alone)
        shared_root = copy_of()
        shared = fetch_all(shared_root, user)  # (the default: helpers)
        assert len(shared) == COUNT + 1 and shared[-1].endswith(b"OK FETCH completed")
        assert shared == single
        # the next session answers from the cache the shared build filled
        assert fetch_all(shared_root, user, alone) == single
        cached = {n for n in os.listdir(shared_root) if n.startswith("imapd.cache-")}
        assert {"imapd.cache-envelope.wire", "imapd.cache-bodystructure.wire", "imapd.cache-mime"} <= cached
        with ImapPipe(["--maildir", shared_root, "--config", alone], user) as c:
            c.command("SELECT INBOX")
            part = c.command(f"FETCH {COUNT - 1} BODY.PEEK[2.MIME]")  # from the cached structure
            assert b'Content-Type: application/pdf; name="f%d.pdf"' % (COUNT - 1) in part[0]
    finally:
        os.unlink(alone)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def helpers_of(pid: int) -> list[int]:
    """Children of `pid` already running the helper's code (between the spawn
    and the exec, a child still holds its parent's descriptors)."""
    found = []
    for child in children_of(pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                if b"helper_main" in f.read():
                    found.append(child)
        except OSError:
            continue
    return found


def test_helper_ends_with_the_session_when_the_client_goes_away(copy_of, user):
    # imapd stops soon when nobody reads
    small = config_file("[limits]\noutput_buffer = 65536\n[mail]\nfetch_helper = true\n")
    try:
        c = ImapPipe(["--maildir", copy_of(), "--config", small], user)
        c.command("SELECT INBOX")
        c.send(f"t9 {ENVBS}\r\n".encode())
        c.read_some()
        deadline = time.monotonic() + 10
        helpers = helpers_of(c.proc.pid)
        while helpers_to_use() and len(helpers) < helpers_to_use() and time.monotonic() < deadline:
            time.sleep(0.05)
            helpers = helpers_of(c.proc.pid)
        assert len(helpers) == helpers_to_use()
        client_ends = {os.readlink(f"/proc/{c.proc.pid}/fd/{fd}") for fd in (0, 1, 2)}
        for pid in helpers:  # the client's connection is never a helper's
            ends = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in (0, 1, 2)}
            assert not ends & client_ends and os.readlink(f"/proc/{pid}/fd/2") == os.devnull
        c.proc.stdout.close()  # the client vanishes in the middle of the answer
        c.proc.stdin.close()
        assert c.proc.wait(10) == 0
        c.proc.stderr.close()
        for pid in helpers:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)  # gone, not even a zombie: imapd reaped it
    finally:
        os.unlink(small)


def test_with_fetch_helper_off_one_process_does_the_work(copy_of, user):
    # imapd stops soon when nobody reads
    small = config_file("[limits]\noutput_buffer = 65536\n[mail]\nfetch_helper = false\n")
    try:
        with ImapPipe(["--maildir", copy_of(), "--config", small], user) as c:
            c.command("SELECT INBOX")
            c.send(f"t9 {ENVBS}\r\n".encode())
            c.buf += c.read_some()
            time.sleep(0.5)  # well past the misses that would start a helper
            assert children_of(c.proc.pid) == []
            c.send(b"t10 NOOP\r\n")  # the client reads the rest: the answer completes
            assert c.read_until_tagged("t9", timeout=60)[-1].startswith(b"t9 OK")
    finally:
        os.unlink(small)
