"""Debian's command-line mail clients against the real process, each starting
imapd as its tunnel command (the ssh deployment), greeted `* PREAUTH`.

- mbsync (isync) syncs both ways between imapd's Maildir and a local one:
  messages, folders, flags, expunges.  It keeps the UIDs it saw in its sync
  state and stops when a folder's UIDVALIDITY changes, so repeated runs
  against fresh imapd processes also check that UIDs stay stable.
- offlineimap, through its `preauthtunnel`, the same both ways.
- fetchmail downloads new mail through its `plugin` and marks it read.
- mutt, driven through a terminal (pexpect), with its `tunnel`: reads,
  flags, copies and deletes, and sees a delivery while the mailbox is open.
"""

from __future__ import annotations

import imaplib
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from harness import deliver, make_maildir, mail_user, remove_maildir, require_tool
from test_clients import tunnel_command


def message(n: int, subject: str) -> bytes:
    return (f"From: Sender {n} <s{n}@example.org>\r\nTo: Bob <bob@example.com>\r\nSubject: {subject}\r\n"
            f"Date: Mon, 02 Nov 2026 10:{n:02d}:00 +0100\r\nMessage-ID: <mbsync-{n}@example.org>\r\n\r\n"
            f"Body of message {n}.\r\n").encode()


def lf(data: bytes) -> bytes:
    """A message as compared here: LF line ends, without the X-TUID header
    mbsync adds to the messages it copies (to find them again after a crash)."""
    return re.sub(rb"(?m)^X-TUID: [^\n]*\n", b"", data.replace(b"\r\n", b"\n"))


class Mbsync:
    """A remote Maildir served by imapd through mbsync's Tunnel, and a local one."""

    def __init__(self, tmp: Path, remote: str) -> None:
        self.remote = remote
        self.local = tmp / "local"
        self.local.mkdir()
        self.config = tmp / "mbsyncrc"
        self.config.write_text(
            "IMAPAccount imapd\n"
            f"Tunnel \"{tunnel_command(remote)}\"\n"
            "\n"
            "IMAPStore remote\n"
            "Account imapd\n"
            "\n"
            "MaildirStore local\n"
            f"Path {self.local}/\n"
            f"Inbox {self.local}/INBOX\n"
            "SubFolders Verbatim\n"
            "\n"
            "Channel both\n"
            "Far :remote:\n"
            "Near :local:\n"
            "Patterns *\n"
            "Create Both\n"
            "Expunge Both\n"
            "SyncState *\n"
        )

    def run(self) -> str:
        done = subprocess.run([require_tool("mbsync"), "-c", str(self.config), "-a"], capture_output=True,
                              text=True, timeout=60, cwd=str(self.local))
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    def local_messages(self, folder: str = "INBOX") -> dict[bytes, str]:
        """Message text -> its Maildir flags, for a local folder."""
        found: dict[bytes, str] = {}
        for sub in ("cur", "new"):
            for name in os.listdir(self.local / folder / sub):
                data = lf((self.local / folder / sub / name).read_bytes())
                found[data] = name.partition(":2,")[2] if sub == "cur" else ""
        return found

    def local_file(self, folder: str, needle: bytes) -> Path:
        for sub in ("cur", "new"):
            for name in os.listdir(self.local / folder / sub):
                path = self.local / folder / sub / name
                if needle in path.read_bytes():
                    return path
        raise AssertionError(f"no local message in {folder} contains {needle!r}")

    def imap(self) -> imaplib.IMAP4_stream:
        return imaplib.IMAP4_stream(tunnel_command(self.remote))


def remote_view(conn: imaplib.IMAP4, folder: str) -> dict[bytes, tuple[int, set[str]]]:
    """Message text -> (UID, flags) through imapd."""
    status, _ = conn.select(folder)
    assert status == "OK"
    status, data = conn.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
    assert status == "OK"
    view: dict[bytes, tuple[int, set[str]]] = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        head, body = item
        uid = int(head.split(b"UID ")[1].split()[0].rstrip(b")"))
        flags = set(imaplib.ParseFlags(head)) if b"FLAGS" in head else set()
        view[body] = (uid, {f.decode() for f in flags})
    return view


@pytest.fixture
def mbsync(tmp_path):
    user = mail_user()
    remote = make_maildir(user, folders=(".Work",))
    for n in (1, 2, 3):
        deliver(remote, message(n, f"Inbox message {n}"), user)
    deliver(remote, message(4, "Work message"), user, folder=".Work")
    os.chmod(tmp_path, 0o755)
    yield Mbsync(tmp_path, remote)
    remove_maildir(remote)


def test_mbsync_first_run_copies_every_folder_and_message(mbsync):
    mbsync.run()
    inbox = mbsync.local_messages()
    assert set(inbox) == {lf(message(n, f"Inbox message {n}")) for n in (1, 2, 3)}
    assert set(mbsync.local_messages("Work")) == {lf(message(4, "Work message"))}


def test_mbsync_takes_local_changes_to_imapd(mbsync):
    mbsync.run()
    # mark one read, one deleted (mbsync expunges it), add a message and a folder
    seen = mbsync.local_file("INBOX", b"message 1.")
    seen.rename(seen.parent.parent / "cur" / (seen.name.split(":2,")[0] + ":2,S"))
    trashed = mbsync.local_file("INBOX", b"message 2.")
    trashed.rename(trashed.parent.parent / "cur" / (trashed.name.split(":2,")[0] + ":2,T"))
    new_name = f"{int(time.time())}.local1.host"
    (mbsync.local / "INBOX" / "new" / new_name).write_bytes(lf(message(5, "Written locally")))
    for sub in ("cur", "new", "tmp"):
        (mbsync.local / "Lists" / sub).mkdir(parents=True)
    (mbsync.local / "Lists" / "new" / f"{int(time.time())}.local2.host").write_bytes(lf(message(6, "A list")))
    mbsync.run()

    conn = mbsync.imap()
    try:
        inbox = remote_view(conn, "INBOX")
        bodies = {lf(body): flags for body, (_, flags) in inbox.items()}
        assert set(bodies) == {lf(message(n, s)) for n, s in
                               ((1, "Inbox message 1"), (3, "Inbox message 3"), (5, "Written locally"))}
        assert "\\Seen" in bodies[lf(message(1, "Inbox message 1"))]
        assert "\\Seen" not in bodies[lf(message(3, "Inbox message 3"))]
        lists = remote_view(conn, "Lists")
        assert [lf(b) for b in lists] == [lf(message(6, "A list"))]
    finally:
        conn.logout()


def test_mbsync_brings_imapds_changes_and_uids_stay(mbsync):
    mbsync.run()
    conn = mbsync.imap()
    try:
        before = {lf(b): uid for b, (uid, _) in remote_view(conn, "INBOX").items()}
        conn.select("INBOX")
        status, _ = conn.uid("STORE", str(before[lf(message(3, "Inbox message 3"))]), "+FLAGS", "(\\Flagged)")
        assert status == "OK"
    finally:
        conn.logout()
    deliver(mbsync.remote, message(7, "Delivered later"), mail_user())
    mbsync.run()

    inbox = mbsync.local_messages()
    assert lf(message(7, "Delivered later")) in inbox
    assert "F" in inbox[lf(message(3, "Inbox message 3"))]
    # a run with nothing to do changes nothing, and no UID moved on the way
    snapshot = sorted(os.listdir(mbsync.local / "INBOX" / "cur")) + sorted(os.listdir(mbsync.local / "INBOX" / "new"))
    mbsync.run()
    assert sorted(os.listdir(mbsync.local / "INBOX" / "cur")) + sorted(os.listdir(mbsync.local / "INBOX" / "new")) \
        == snapshot
    conn = mbsync.imap()
    try:
        after = {lf(b): uid for b, (uid, _) in remote_view(conn, "INBOX").items()}
    finally:
        conn.logout()
    assert {b: u for b, u in after.items() if b in before} == before
    assert after[lf(message(7, "Delivered later"))] > max(before.values())


def fetchmail(tmp: Path, remote: str, drop: Path) -> str:
    """One fetchmail poll of imapd's INBOX, each new message handed to an MDA
    that writes it to a file of its own in `drop`."""
    rc = tmp / "fetchmailrc"
    rc.write_text(f'poll imapd via localhost proto IMAP plugin "{tunnel_command(remote)}" '
                  f'user "someone" password "unused" sslproto "" keep '
                  f'mda "/bin/sh -c \'cat > {drop}/$$.eml\'"\n')
    os.chmod(rc, 0o600)
    done = subprocess.run([require_tool("fetchmail"), "-f", str(rc), "--nosyslog", "--idfile", str(tmp / "ids"),
                           "--pidfile", str(tmp / "pid")], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOME": str(tmp), "FETCHMAILHOME": str(tmp)})
    return f"{done.returncode}: {done.stdout}{done.stderr}"


def fetched(drop: Path) -> list[bytes]:
    """The messages an MDA got, less the Received line fetchmail puts on top."""
    out = []
    for path in drop.iterdir():
        data = path.read_bytes()
        assert data.startswith(b"Received: "), data[:200]
        out.append(re.sub(rb"^Received: [^\n]*\n(?:[ \t][^\n]*\n)*", b"", data))
        path.unlink()
    return sorted(out)


def test_fetchmail_downloads_new_mail_once_and_marks_it_read(tmp_path):
    user = mail_user()
    remote = make_maildir(user)
    try:
        for n in (1, 2):
            deliver(remote, message(n, f"To fetch {n}"), user)
        drop = tmp_path / "drop"
        drop.mkdir()
        result = fetchmail(tmp_path, remote, drop)
        assert result.startswith("0:"), result
        assert fetched(drop) == sorted(lf(message(n, f"To fetch {n}")) for n in (1, 2))
        seen = [name for name in os.listdir(os.path.join(remote, "cur")) if name.endswith(":2,S")]
        assert len(seen) == 2, os.listdir(os.path.join(remote, "cur"))

        # the next poll takes only what arrived since (fetchmail asks for unseen mail)
        deliver(remote, message(3, "Arrived later"), user)
        result = fetchmail(tmp_path, remote, drop)
        assert result.startswith("0:"), result
        assert fetched(drop) == [lf(message(3, "Arrived later"))]
        # and with nothing new, fetchmail says so (exit status 1) and delivers nothing
        result = fetchmail(tmp_path, remote, drop)
        assert result.startswith("1:"), result
        assert fetched(drop) == []
    finally:
        remove_maildir(remote)


def offlineimap(tmp: Path, remote: str) -> str:
    """One offlineimap run between imapd's Maildir and `tmp`/Mail (the
    README's configuration, with paths of the test's own)."""
    rc = tmp / "offlineimaprc"
    rc.write_text(
        "[general]\n"
        "accounts = test\n"
        f"metadata = {tmp}/offlineimap-state\n"
        "\n[Account test]\n"
        "localrepository = local\n"
        "remoterepository = remote\n"
        "\n[Repository local]\n"
        "type = Maildir\n"
        f"localfolders = {tmp}/Mail\n"
        "\n[Repository remote]\n"
        "type = IMAP\n"
        f"preauthtunnel = {tunnel_command(remote)}\n"
    )
    done = subprocess.run([require_tool("offlineimap"), "-c", str(rc), "-o", "-u", "basic"], capture_output=True,
                          text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "ERROR" not in output, output
    return output


def test_offlineimap_syncs_both_ways_with_imapds_uids(tmp_path):
    user = mail_user()
    remote = make_maildir(user, folders=(".Work",))
    try:
        for n in (1, 2):
            deliver(remote, message(n, f"Inbox message {n}"), user)
        deliver(remote, message(3, "Work message"), user, folder=".Work")
        offlineimap(tmp_path, remote)
        local = tmp_path / "Mail"
        copies = {lf(path.read_bytes()): path for folder in ("INBOX", "Work")
                  for path in (local / folder / "new").iterdir()}
        assert set(copies) == {lf(message(1, "Inbox message 1")), lf(message(2, "Inbox message 2")),
                               lf(message(3, "Work message"))}
        # offlineimap names each copy with the UID imapd gave it
        conn = imaplib.IMAP4_stream(tunnel_command(remote))
        try:
            for body, (uid, _) in remote_view(conn, "INBOX").items():
                assert f",U={uid}," in copies[lf(body)].name
        finally:
            conn.logout()

        first = copies[lf(message(1, "Inbox message 1"))]
        first.rename(local / "INBOX" / "cur" / (first.name.split(":2,")[0] + ":2,S"))
        (local / "Work" / "new" / f"{int(time.time())}.local.host").write_bytes(lf(message(4, "Filed locally")))
        offlineimap(tmp_path, remote)

        conn = imaplib.IMAP4_stream(tunnel_command(remote))
        try:
            inbox = {lf(body): flags for body, (_, flags) in remote_view(conn, "INBOX").items()}
            work = {lf(body) for body in remote_view(conn, "Work")}
        finally:
            conn.logout()
        assert "\\Seen" in inbox[lf(message(1, "Inbox message 1"))]
        assert "\\Seen" not in inbox[lf(message(2, "Inbox message 2"))]
        assert work == {lf(message(3, "Work message")), lf(message(4, "Filed locally"))}
    finally:
        remove_maildir(remote)


def wait_for_files(directory: str, count: int, timeout: float = 20.0) -> list[str]:
    """The message files of a Maildir folder once there are `count` of them."""
    deadline = time.monotonic() + timeout
    while True:
        names = os.listdir(os.path.join(directory, "cur")) + os.listdir(os.path.join(directory, "new"))
        if len(names) == count or time.monotonic() > deadline:
            return names
        time.sleep(0.1)


def test_mutt_reads_flags_copies_deletes_and_sees_new_mail(tmp_path):
    import pexpect

    mutt = require_tool("mutt")
    user = mail_user()
    remote = make_maildir(user, folders=(".Work",))
    try:
        for n in (1, 2):
            deliver(remote, message(n, f"Subject number {n}"), user)
        rc = tmp_path / "muttrc"
        rc.write_text(
            f'set tunnel="{tunnel_command(remote)}"\n'
            'set folder="imap://imapd/"\n'
            'set spoolfile="+INBOX"\n'
            "set imap_idle=yes\n"
            "set timeout=1\n"  # (how often the index looks for news)
            "set mail_check=1\n"
            "set sort=date\n"
            "set resolve=no\n"  # (the cursor stays on a message just flagged)
            "set move=no\n"
            "set confirmappend=no\n"
            "set mark_old=no\n"
        )
        child = pexpect.spawn(mutt, ["-n", "-F", str(rc)], timeout=20, encoding="utf-8", dimensions=(30, 120),
                              env={**os.environ, "TERM": "vt100", "HOME": str(tmp_path), "LANG": "C.UTF-8"})
        try:
            child.expect("Subject number 2")
            deliver(remote, message(3, "Arrived while open"), user)
            child.expect("Arrived while open")
            child.send("1\r")  # the first message ...
            child.send("\r")  # ... read
            child.expect("Body of message 1")
            child.send("q")  # back to the index
            child.send("F")  # flagged
            child.send("C")  # copied to Work
            child.expect("Copy to mailbox")
            child.send("=Work\r")
            copies = wait_for_files(os.path.join(remote, ".Work"), 1)
            child.send("2\r")
            child.send("d")  # the second one deleted ...
            child.send("q")
            child.expect("Purge")
            child.send("y")  # ... and expunged as mutt leaves
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)

        assert len(copies) == 1
        work = os.path.join(remote, ".Work", "cur", copies[0])
        assert open(work, "rb").read() == message(1, "Subject number 1")
        assert copies[0].endswith(":2,FS")
        inbox = {open(os.path.join(remote, "cur", name), "rb").read(): name.partition(":2,")[2]
                 for name in wait_for_files(remote, 2)}
        assert inbox == {message(1, "Subject number 1"): "FS", message(3, "Arrived while open"): ""}
    finally:
        remove_maildir(remote)
