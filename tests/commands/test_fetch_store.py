"""FETCH items and STORE forms through an in-process session over a real Maildir."""

from __future__ import annotations

import io
import re

import pytest

from imapd import config
from imapd.session import Session
from imapd.store import open_store

PLAIN = b"From: a@example.org\r\nSubject: plain\r\n\r\nline one\r\nline two\r\n"
WEIRD_CTE = (
    b"From: a@example.org\r\nSubject: odd\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n"
    b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n"
)


def run(s: Session, line: bytes) -> bytes:
    s.receive(line + b"\r\n")
    s.pump()
    out = s.take_output()
    return out


@pytest.fixture
def setup(tmp_path):
    root = str(tmp_path / "Maildir")
    store = open_store(root)
    store.append("INBOX", io.BytesIO(PLAIN), (), 1_780_000_000)
    store.append("INBOX", io.BytesIO(WEIRD_CTE), ("\\Seen",), 1_780_000_000)
    store.close()
    s = Session(config.defaults(), user="tester", store_opener=lambda _u: open_store(root))
    run(s, b"s SELECT INBOX")
    return s, root


def test_macros_and_simple_items(setup):
    s, _ = setup
    out = run(s, b"a FETCH 1 FAST")
    assert re.match(rb'\* 1 FETCH \(FLAGS \(\\Recent\) INTERNALDATE "\d\d-\w{3}-2026 \d\d:\d\d:\d\d [+-]\d{4}" RFC822.SIZE %d\)\r\n' % len(PLAIN), out)
    out = run(s, b"a FETCH 1 ALL")
    assert b"ENVELOPE (NIL \"plain\" ((NIL NIL \"a\" \"example.org\"))" in out
    out = run(s, b"a FETCH 1 FULL")
    assert b'BODY ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 20 2)' in out
    out = run(s, b"a UID FETCH 2 (FLAGS)")
    assert out.startswith(b"* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent))\r\n")


def test_body_sections_partial_and_seen(setup):
    s, _ = setup
    out = run(s, b"a FETCH 1 (BODY.PEEK[HEADER] BODY.PEEK[TEXT]<5.3>)")
    assert b"BODY[HEADER] {39}\r\nFrom: a@example.org\r\nSubject: plain\r\n\r\n" in out
    assert b"BODY[TEXT]<5> {3}\r\none" in out
    assert b"\\Seen" not in out
    out = run(s, b"a FETCH 1 BODY[0]")  # obsolete IMAP2bis form of the header
    assert b"{39}\r\nFrom: a@example.org" in out
    assert b"FLAGS (\\Seen \\Recent)" in out  # a non-peek fetch sets \Seen and says so
    out = run(s, b"a FETCH 1 (RFC822.HEADER RFC822.TEXT)")
    assert b"RFC822.HEADER {39}" in out and b"RFC822.TEXT {20}\r\nline one\r\nline two\r\n" in out
    out = run(s, b"a FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (FROM)]")
    assert b"{18}\r\nSubject: plain\r\n\r\n" in out
    out = run(s, b"a FETCH 1 BODY.PEEK[5]")
    assert b"BODY[5] {0}\r\n" in out


def test_binary(setup):
    s, _ = setup
    out = run(s, b"a FETCH 2 (BINARY.PEEK[2] BINARY.SIZE[2])")
    assert b"BINARY[2] ~{3}\r\n\x00\x01\x02" in out
    assert b"BINARY.SIZE[2] 3" in out
    out = run(s, b"a FETCH 2 BINARY.PEEK[1]")
    assert out.endswith(b"a NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding\r\n")


def test_store_forms(setup):
    s, _ = setup
    out = run(s, b"a STORE 1 +FLAGS (\\Flagged $Work)")
    assert out == (b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $Work)\r\n"
                   b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $Work \\*)] "
                   b"Flags permitted\r\n"
                   b"* 1 FETCH (FLAGS ($Work \\Flagged \\Recent))\r\na OK STORE completed\r\n")
    out = run(s, b"a STORE 1 -FLAGS.SILENT ($Work)")
    assert out == b"a OK STORE completed\r\n"
    out = run(s, b"a UID STORE 1:* FLAGS (\\answered)")
    assert out == (b"* 1 FETCH (UID 1 FLAGS (\\Answered \\Recent))\r\n"
                   b"* 2 FETCH (UID 2 FLAGS (\\Answered \\Recent))\r\na OK UID STORE completed\r\n")
    assert run(s, b"a STORE 1 +FLAGS (\\Bogus)").startswith(b"a BAD Invalid system flag")
    assert run(s, b"a STORE 9 +FLAGS (\\Seen)").startswith(b"a BAD Invalid message sequence number")
    assert run(s, b"a STORE 1 +FLAGS (\\Recent)").startswith(b"a BAD")


def test_no_expunge_during_fetch_store_search(setup):
    s, root = setup
    other = open_store(root)
    box = other.open("INBOX")
    box.store_flags([1], "add", ["\\Deleted"])
    box.expunge()
    box.close()
    other.close()
    for cmd in (b"a FETCH 1:* (FLAGS)", b"a STORE 2 +FLAGS (\\Seen)", b"a SEARCH ALL"):
        assert b"EXPUNGE" not in run(s, cmd)
    out = run(s, b"a NOOP")
    assert out == b"* 1 EXPUNGE\r\na OK NOOP completed\r\n"
    assert run(s, b"a FETCH 1 (UID)").startswith(b"* 1 FETCH (UID 2)")


def test_readonly_examine(setup):
    s, _ = setup
    out = run(s, b"e EXAMINE INBOX")
    assert b"e OK [READ-ONLY]" in out and b"[PERMANENTFLAGS ()]" in out
    assert run(s, b"a STORE 1 +FLAGS (\\Seen)").startswith(b"a NO [READ-ONLY]")
    out = run(s, b"a FETCH 1 BODY[TEXT]")
    assert b"\\Seen" not in out  # EXAMINE never sets \Seen
    assert run(s, b"a EXPUNGE").startswith(b"a NO [READ-ONLY]")


def test_star_on_an_empty_mailbox_is_not_an_error(tmp_path):
    root = str(tmp_path / "Maildir")
    s = Session(config.defaults(), user="tester", store_opener=lambda _u: open_store(root))
    run(s, b"s SELECT INBOX")
    assert run(s, b"a FETCH 1:* (FLAGS)") == b"a OK FETCH completed\r\n"
    assert run(s, b"a STORE 1:* +FLAGS (\\Seen)") == b"a OK STORE completed\r\n"


_HEADER_CASES = [
    b"From: a@example.org\nSubject: lf stored\nDate: Mon, 6 Jul 2026 10:00:00 +0200\n\nbody\n",
    b"\nno header at all\n",
    b"From: b@example.org\r\nSubject: no blank line\r\nX: y",
    b"From: c@example.org\r\nX-Long: " + b"v" * 8185 + b"\r\n\r\nbody after a long header\r\n",
    b"From: d@example.org\nX-Fill: " + b"w" * 8170 + b"\r\n\n\nbody\n",  # CRLF + LF across 8 KB
    b"Subject: " + b"x" * 20000 + b"\nFrom: e@example.org\n\n" + b"body\n" * 5000,
    b"From: f@example.org\nContent-Type: multipart/mixed; boundary=b\n\n--b\nX: 1\n\n1\n--b--\n",
]


def test_header_sections_read_only_the_header(tmp_path, monkeypatch):
    """BODY[HEADER], HEADER.FIELDS(.NOT), RFC822.HEADER and SEARCH header keys
    come from Mailbox.read_header -- byte-identical to cutting the whole
    message -- and never read the whole file."""
    from imapd.mime import parse_message, section_bytes
    from imapd.store.base import Mailbox
    from imapd.store.maildir.mailbox import MaildirMailbox

    root = str(tmp_path / "Maildir")
    store = open_store(root)
    for data in _HEADER_CASES:
        store.append("INBOX", io.BytesIO(data), (), 1_780_000_000)
    mb = store.open("INBOX")
    wholes = [mb.read(u) for u in mb.uids()]
    for u, whole in zip(mb.uids(), wholes):
        assert mb.read_header(u) == Mailbox.read_header(mb, u)
        assert whole.startswith(mb.read_header(u))
    mb.close()
    store.close()
    s = Session(config.defaults(), user="tester", store_opener=lambda _u: open_store(root))
    run(s, b"s SELECT INBOX")

    def no_read(self, uid):
        raise AssertionError("whole message read")

    monkeypatch.setattr(MaildirMailbox, "read", no_read)
    monkeypatch.setattr(MaildirMailbox, "open_stream", no_read)
    for spec, fields, item in [
        ("HEADER", None, b"BODY.PEEK[HEADER]"),
        ("HEADER.FIELDS", ["FROM", "SUBJECT", "X"], b"BODY.PEEK[HEADER.FIELDS (From SUBJECT x)]"),
        ("HEADER.FIELDS.NOT", ["FROM"], b"BODY.PEEK[HEADER.FIELDS.NOT (FROM)]"),
        ("HEADER", None, b"RFC822.HEADER"),
    ]:
        out = run(s, b"a FETCH 1:* (" + item + b")")
        assert out.endswith(b"a OK FETCH completed\r\n"), out[-200:]
        for seq, whole in enumerate(wholes, 1):
            want = section_bytes(whole, parse_message(whole), (), spec, fields)
            assert b"* %d FETCH (" % seq + item.replace(b".PEEK", b"").split(b" (")[0] in out
            assert b"{%d}\r\n" % len(want) + want + b")\r\n" in out
    assert run(s, b"a SEARCH FROM e@example").startswith(b"* SEARCH 6\r\n")
    assert run(s, b"a SEARCH HEADER SUBJECT \"no blank\"").startswith(b"* SEARCH 3\r\n")
    assert run(s, b"a SEARCH SENTON 6-Jul-2026").startswith(b"* SEARCH 1\r\n")
    assert run(s, b"a SEARCH NOT HEADER X \"\"").startswith(b"* SEARCH 1 2 4 5 6 7\r\n")  # 7: X only in a part
