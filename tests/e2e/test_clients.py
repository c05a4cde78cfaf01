"""Real clients against the real process: Python's imaplib and imapclient.

Both run imapd as a tunnel command over pipes (imaplib's IMAP4_stream), the
way mutt and offlineimap do, and exercise the mailbox, message and search
commands end to end, checking what they read against the files on disk.
"""

from __future__ import annotations

import contextlib
import glob
import imaplib
import os
import shlex
import time
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient

from harness import IMAPD, REPO, deliver, make_maildir, mail_user, remove_maildir

CORPUS = os.path.join(REPO, "tests", "mime", "corpus")

SIMPLE = (
    b"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.com>\r\nSubject: Hello there\r\n"
    b"Date: Mon, 02 Nov 2026 10:00:00 +0100\r\nMessage-ID: <m1@example.org>\r\n\r\n"
    b"First line\r\nSecond line mentions pineapple\r\n"
)
MULTI = (
    b"From: Carol <carol@example.net>\r\nTo: Bob <bob@example.com>\r\nSubject: Report\r\n"
    b"Date: Tue, 03 Nov 2026 11:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n'
    b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Gr=C3=BC=C3=9Fe aus K=C3=B6ln\r\n"
    b"--XX\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"AAECAwQ=\r\n--XX--\r\n"
)


def tunnel_command(maildir: str) -> str:
    user = mail_user()
    env = f"env PYTHONPATH={shlex.quote(REPO)} HOME=/tmp "
    drop = ""
    if os.geteuid() == 0:
        drop = f"setpriv --reuid={user.uid} --regid={user.gid} --clear-groups "
    return env + drop + " ".join(shlex.quote(a) for a in IMAPD) + f" --maildir {shlex.quote(maildir)}"


@pytest.fixture
def maildir():
    root = make_maildir(mail_user())
    yield root
    remove_maildir(root)


@pytest.fixture
def tcp_port(maildir):
    """imapd behind socat on a loopback port, one process per connection (like inetd)."""
    with listening(tunnel_command(maildir)) as port:
        yield port


@contextlib.contextmanager
def listening(command: str) -> Iterator[int]:
    """A loopback port where socat runs `command` for each connection."""
    import shutil
    import signal
    import socket
    import subprocess
    import tempfile

    socat = shutil.which("socat")
    if socat is None:
        if os.environ.get("CI") == "true":
            pytest.fail("socat is missing: .ci/run must install it")
        pytest.skip("socat not installed")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    fd, script = tempfile.mkstemp(suffix=".sh", dir="/tmp")
    with os.fdopen(fd, "w") as f:
        f.write("#!/bin/sh\nexec " + command + "\n")
    os.chmod(script, 0o755)
    server = subprocess.Popen([socat, f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork", f"EXEC:{script},nofork"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(50):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    try:
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(5)
        os.unlink(script)


@pytest.fixture
def imap(maildir):
    conn = imaplib.IMAP4_stream(tunnel_command(maildir))
    yield conn
    try:
        conn.logout()
    except Exception:
        pass


def test_imaplib_mailbox_lifecycle(imap):
    assert imap.state == "AUTH"  # PREAUTH
    typ, data = imap.list()
    assert typ == "OK" and any(b'"INBOX"' in d or d.endswith(b" INBOX") for d in data)
    assert imap.create("Work")[0] == "OK"
    assert imap.create("Work.Projects.2026")[0] == "OK"
    typ, data = imap.create("Work")
    assert typ == "NO" and b"ALREADYEXISTS" in data[0]
    typ, data = imap.list('""', "Work*")
    names = [d.decode() for d in data]
    assert any(n.endswith(" Work") and "\\HasChildren" in n for n in names)
    assert any(n.endswith(" Work.Projects.2026") and "\\HasNoChildren" in n for n in names)
    typ, data = imap.list('""', "%")
    assert not any("Projects" in d.decode() for d in data)
    assert imap.subscribe("Work")[0] == "OK"
    typ, data = imap.lsub('""', "*")
    assert any(d.decode().endswith(" Work") for d in data)
    assert imap.rename("Work.Projects", "Archive")[0] == "OK"
    typ, data = imap.list('""', "*")
    flat = b" ".join(data)
    assert b"Archive.2026" in flat and b"Work.Projects" not in flat
    assert imap.delete("Archive.2026")[0] == "OK"
    typ, data = imap.delete("INBOX")
    assert typ == "NO"
    typ, data = imap.select("Nope")
    assert typ == "NO"


def test_imaplib_append_fetch_store_search_copy_move_expunge(imap):
    typ, data = imap.append("INBOX", "(\\Flagged)", imaplib.Time2Internaldate(time.time()), SIMPLE)
    assert typ == "OK" and b"APPENDUID" in data[0]
    typ, data = imap.append("INBOX", None, None, MULTI)
    assert typ == "OK"
    typ, data = imap.select("INBOX")
    assert typ == "OK" and data == [b"2"]
    typ, data = imap.fetch("1", "(FLAGS RFC822.SIZE BODY.PEEK[])")
    assert b"\\Flagged" in data[0][0]
    assert data[0][1] == SIMPLE
    assert b"RFC822.SIZE %d" % len(SIMPLE) in data[0][0]
    typ, data = imap.fetch("2", "(BODY.PEEK[1] BODY.PEEK[2.MIME] BINARY.PEEK[2] BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    literals = [x[1] for x in data if isinstance(x, tuple)]
    # the CRLF before a boundary belongs to the boundary (RFC 2046 5.1.1)
    assert literals == [
        b"Gr=C3=BC=C3=9Fe aus K=C3=B6ln",
        b'Content-Type: application/octet-stream; name="a.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n',
        b"\x00\x01\x02\x03\x04",
        b"Subject: Report\r\n\r\n",
    ]
    # a non-peek body fetch sets \Seen and reports it
    typ, data = imap.fetch("1", "(BODY[TEXT])")
    assert b"\\Seen" in b" ".join(x[0] if isinstance(x, tuple) else x for x in data)
    typ, data = imap.search(None, "SEEN")
    assert data == [b"1"]
    typ, data = imap.search(None, "BODY", "pineapple")
    assert data == [b"1"]
    imap.literal = "Köln".encode()  # 8-bit search text travels as a literal
    typ, data = imap.search("UTF-8", "BODY")
    assert data == [b"2"]
    typ, data = imap.search(None, "FROM", "carol", "NOT", "SEEN")
    assert data == [b"2"]
    typ, data = imap.search(None, "OR", "SUBJECT", "hello", "SUBJECT", "report")
    assert data == [b"1 2"]
    typ, data = imap.uid("SEARCH", "UID", "1:*")
    assert len(data[0].split()) == 2
    typ, data = imap.search("X-UNKNOWN-CHARSET", "BODY", "x")
    assert typ == "NO"
    imap.create("Saved")
    typ, data = imap.copy("1:2", "Saved")
    assert typ == "OK" and b"COPYUID" in data[0]
    typ, data = imap.copy("1", "Missing")
    assert typ == "NO" and b"TRYCREATE" in data[0]
    typ, data = imap.store("1", "+FLAGS", "(\\Deleted $Work)")
    assert typ == "OK" and b"\\Deleted" in data[0] and b"$Work" in data[0]
    typ, data = imap.expunge()
    assert data == [b"1"]
    typ, data = imap.uid("MOVE", "1:*", "Saved")
    assert typ == "OK"
    typ, data = imap.status("Saved", "(MESSAGES UIDNEXT UNSEEN SIZE)")
    assert typ == "OK" and b"MESSAGES 3" in data[0]
    typ, data = imap.status("INBOX", "(MESSAGES)")
    assert b"MESSAGES 0" in data[0]


def test_delivery_seen_at_noop(imap, maildir):
    imap.select("INBOX")
    deliver(maildir, SIMPLE, mail_user())
    typ, data = imap.noop()
    assert imap.untagged_responses.get("EXISTS")[-1] == b"1"


def test_imapclient_reads_structure(tcp_port):
    with IMAPClient("127.0.0.1", port=tcp_port, ssl=False, timeout=20) as client:
        client.append("INBOX", MULTI, flags=[b"\\Seen"])
        client.append("INBOX", SIMPLE)
        client.select_folder("INBOX")
        uids = client.search(["ALL"])
        assert len(uids) == 2
        res = client.fetch(uids, ["ENVELOPE", "BODYSTRUCTURE", "FLAGS", "RFC822.SIZE"])
        env = res[uids[0]][b"ENVELOPE"]
        assert env.subject == b"Report"
        assert env.from_[0].mailbox == b"carol" and env.from_[0].host == b"example.net"
        bs = res[uids[0]][b"BODYSTRUCTURE"]
        assert bs.is_multipart
        assert res[uids[0]][b"RFC822.SIZE"] == len(MULTI)
        assert b"\\Seen" in res[uids[0]][b"FLAGS"]
        env = res[uids[1]][b"ENVELOPE"]
        assert env.subject == b"Hello there" and env.to[0].name == b"Bob"
        client.add_flags(uids[1], [b"Important"])
        assert b"Important" in client.get_flags(uids[1])[uids[1]]
        client.create_folder("Copies")
        client.copy(uids, "Copies")
        assert client.folder_status("Copies", [b"MESSAGES"])[b"MESSAGES"] == 2


def _corpus_files() -> list[str]:
    return sorted(glob.glob(os.path.join(CORPUS, "*.eml")))


def test_every_corpus_message_round_trips(tcp_port):
    files = _corpus_files()
    assert files, "the MIME corpus must exist"
    with IMAPClient("127.0.0.1", port=tcp_port, ssl=False, timeout=20) as client:
        for path in files:
            with open(path, "rb") as f:
                raw = f.read()
            wire = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            if not wire.strip() or b"\x00" in wire:
                continue
            client.append("INBOX", wire)
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        res = client.fetch(uids, ["BODY.PEEK[]", "BODY.PEEK[HEADER]", "BODY.PEEK[TEXT]", "RFC822.SIZE", "BODYSTRUCTURE"])
        for uid in uids:
            item = res[uid]
            whole = item[b"BODY[]"]
            assert len(whole) == item[b"RFC822.SIZE"]
            assert item[b"BODY[HEADER]"] + item[b"BODY[TEXT]"] == whole


def _part_paths(bs, prefix=()):  # BODYSTRUCTURE -> every part number, as imapclient parses it
    if bs.is_multipart:
        for i, child in enumerate(bs[0], 1):
            yield from _part_paths(child, prefix + (i,))
    else:
        yield prefix or (1,)


def test_every_part_of_every_corpus_message_matches_the_file(tcp_port):
    """Each BODY[n] and BODY[n.MIME] is the exact bytes of the file, MIME header then body."""
    files = [p for p in _corpus_files()]
    with IMAPClient("127.0.0.1", port=tcp_port, ssl=False, timeout=20) as client:
        wires = []
        for path in files:
            with open(path, "rb") as f:
                wire = f.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            if not wire.strip() or b"\x00" in wire:
                continue
            client.append("INBOX", wire)
            wires.append(wire)
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        structures = client.fetch(uids, ["BODYSTRUCTURE", "BODY.PEEK[]"])
        checked = 0
        for uid, wire in zip(uids, wires):
            assert structures[uid][b"BODY[]"] == wire
            bs = structures[uid][b"BODYSTRUCTURE"]
            if not bs.is_multipart:
                continue
            for path in _part_paths(bs):
                sec = ".".join(map(str, path))
                got = client.fetch([uid], [f"BODY.PEEK[{sec}.MIME]", f"BODY.PEEK[{sec}]"])[uid]
                mime = got[f"BODY[{sec}.MIME]".encode()]
                body = got[f"BODY[{sec}]".encode()]
                assert mime + body in wire, (os.path.basename(files[wires.index(wire)]), sec)
                checked += 1
        assert checked >= 10
