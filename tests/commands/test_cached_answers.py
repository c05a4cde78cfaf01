"""Answers built from imapd's cache files (header fields, searched fields,
ENVELOPE/BODYSTRUCTURE) are the answers built from the messages, in a first
session that fills the cache, in later sessions that read it, and after
mail arrives, a message is edited and messages are expunged."""

from __future__ import annotations

import io
import os

from imapd import config
from imapd.session import Session
from imapd.store import open_store


def _mail(n: int) -> bytes:
    who = ["Quentin Zabriskie <qz@example.org>", "=?UTF-8?Q?J=C3=BCrgen_Zabriskie?= <j@example.de>",
           "Alice <alice@example.org>", "Bob <bob@example.com>"][n % 4]
    return (f"From: {who}\r\nTo: team@example.com\r\nSubject: note {n}\r\nDate: Mon, 01 Jun 2026 09:00:00 +0000\r\n"
            f"Message-ID: <m{n}@example.com>\r\nReceived: from x by y; Mon, 01 Jun 2026 09:00:00 +0000\r\n\r\n"
            f"body {n}\r\n").encode()


def _run(s: Session, line: bytes) -> bytes:
    s.receive(line + b"\r\n")
    s.pump()
    out = s.take_output()
    return out


COMMANDS = [
    b"a FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (FROM SUBJECT MESSAGE-ID)])",
    b"b UID FETCH 1:* (RFC822.SIZE ENVELOPE BODYSTRUCTURE)",
    b"c SEARCH FROM zabriskie",
    b"d SEARCH CHARSET UTF-8 FROM {7+}\r\nj\xc3\xbcrgen",
    b"e UID SEARCH OR SUBJECT \"note 1\" NOT FROM alice",
    b"f FETCH 2,4 (BODY.PEEK[HEADER.FIELDS.NOT (RECEIVED DATE)])",
]


def _answers(root: str, use_index: bool = True) -> list[bytes]:
    s = Session(config.defaults(), user="tester", store_opener=lambda _u: open_store(root, use_index=use_index))
    _run(s, b"s SELECT INBOX")
    out = [_run(s, c) for c in COMMANDS]
    _run(s, b"z LOGOUT")
    return out


def test_cached_answers_equal_answers_from_the_messages(tmp_path):
    root = str(tmp_path / "Maildir")
    store = open_store(root)
    for n in range(1, 13):
        store.append("INBOX", io.BytesIO(_mail(n)), (), 1_780_000_000 + n)
    store.close()
    truth = _answers(root, use_index=False)  # nothing cached anywhere
    assert b"* SEARCH 1 4 5 8 9 12\r\n" in truth[2] and b"* SEARCH 1 5 9\r\n" in truth[3]
    assert _answers(root) == truth  # the session that fills the cache
    names = sorted(n for n in os.listdir(root) if n.startswith("imapd.cache-"))
    assert "imapd.cache-search.from" in names and any(n.startswith("imapd.cache-hdr.") for n in names)
    assert _answers(root) == truth  # sessions that read it
    # new mail, a message edited by a mail reader (Maildir files are never
    # changed in place: the edited copy is a new file, the old one goes),
    # an expunge
    store = open_store(root)
    store.append("INBOX", io.BytesIO(_mail(13).replace(b"Alice", b"Zabriskie")), (), 1_780_000_100)
    store.close()
    cur = os.path.join(root, "cur")
    third = sorted(os.listdir(cur))[2]
    with open(os.path.join(cur, "1780000200.M1P1.edited:2,S"), "wb") as fh:
        fh.write(_mail(3).replace(b"Bob <bob", b"Zed Zabriskie <zed"))
    os.unlink(os.path.join(cur, third))
    os.unlink(os.path.join(cur, sorted(os.listdir(cur))[0]))
    truth = _answers(root, use_index=False)
    assert _answers(root) == truth
    assert _answers(root) == truth
