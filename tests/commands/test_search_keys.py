"""Every SEARCH key, through an in-process session over a real temporary Maildir."""

from __future__ import annotations

import time

import pytest

from imapd import config
from imapd.session import Session
from imapd.store import open_store

DAY = 86400
BASE = 1_780_000_000  # 2026-05-28, a fixed internal date for message 1


def _msg(frm: str, to: str, subject: str, date: str, body: bytes, extra: str = "") -> bytes:
    head = f"From: {frm}\r\nTo: {to}\r\nCc: carol@example.net\r\nSubject: {subject}\r\nDate: {date}\r\n{extra}\r\n"
    return head.encode() + body


MESSAGES = [
    # (message, flags, internal date)
    (_msg("Alice <alice@example.org>", "bob@example.com", "Lunch on Friday", "Fri, 29 May 2026 12:00:00 +0200",
          b"Shall we meet at noon?\r\n"), (), BASE),
    (_msg("=?UTF-8?Q?J=C3=BCrgen?= <j@example.de>", "bob@example.com", "=?UTF-8?B?R3LDvMOfZQ==?=",
          "Sat, 30 May 2026 08:00:00 +0000",
          b"Viele Gr=C3=BC=C3=9Fe aus K=C3=B6ln\r\n",
          "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"),
     ("\\Seen", "\\Answered"), BASE + DAY),
    (_msg("Bob <bob@example.com>", "alice@example.org", "Re: Lunch on Friday", "Sun, 31 May 2026 23:30:00 -0700",
          b"U2VlIHlvdSB0aGVyZSwgd2l0aCBhIHBpbmVhcHBsZQ==\r\n",
          "MIME-Version: 1.0\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\nX-Priority: 1\r\n"),
     ("\\Flagged", "\\Deleted", "$Important"), BASE + 3 * DAY),
    (_msg("Dave <dave@example.com>", "team@example.com", "Draft plan", "Mon, 01 Jun 2026 09:00:00 +0000",
          b"x" * 5000 + b"\r\n"), ("\\Draft",), BASE + 4 * DAY),
]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("mail") / "Maildir")
    store = open_store(root)
    for data, flags, when in MESSAGES:
        import io

        store.append("INBOX", io.BytesIO(data), flags, when)
    store.close()
    s = Session(config.defaults(), user="tester", store_opener=lambda _u: open_store(root))
    run(s, b"s SELECT INBOX")
    return s


def run(s: Session, line: bytes) -> list[bytes]:
    s.receive(line + b"\r\n")
    s.pump()
    out = s.take_output().split(b"\r\n")
    return [l for l in out if l]


def search(s: Session, criteria: str | bytes) -> list[int]:
    crit = criteria.encode() if isinstance(criteria, str) else criteria
    lines = run(s, b"t SEARCH " + crit)
    assert lines[-1].startswith(b"t OK"), lines
    found = [l for l in lines if l.startswith(b"* SEARCH")]
    assert len(found) == 1, lines
    return [int(n) for n in found[0].split()[2:]]


@pytest.mark.parametrize(
    "criteria, expected",
    [
        ("ALL", [1, 2, 3, 4]),
        ("1,3:4", [1, 3, 4]),
        ("*", [4]),
        ("2:*", [2, 3, 4]),
        ("UID 2:3", [2, 3]),
        ("UID *", [4]),
        ("ANSWERED", [2]),
        ("UNANSWERED", [1, 3, 4]),
        ("DELETED", [3]),
        ("UNDELETED", [1, 2, 4]),
        ("DRAFT", [4]),
        ("UNDRAFT", [1, 2, 3]),
        ("FLAGGED", [3]),
        ("UNFLAGGED", [1, 2, 4]),
        ("SEEN", [2]),
        ("UNSEEN", [1, 3, 4]),
        ("KEYWORD $Important", [3]),
        ("UNKEYWORD $Important", [1, 2, 4]),
        ("KEYWORD $Nothing", []),
        ("RECENT", [1, 2, 3, 4]),
        ("NEW", [1, 3, 4]),
        ("OLD", []),
        ("FROM alice", [1]),
        ("FROM EXAMPLE.COM", [3, 4]),
        ("TO alice", [3]),
        ("CC carol", [1, 2, 3, 4]),
        ("BCC carol", []),
        ('SUBJECT "lunch on"', [1, 3]),
        ('HEADER X-Priority 1', [3]),
        ('HEADER X-Priority ""', [3]),
        ('HEADER Message-ID ""', []),
        ("BODY noon", [1]),
        ("BODY PINEAPPLE", [3]),
        ("TEXT alice", [1, 3]),
        ("TEXT pineapple", [3]),
        ("LARGER 1000", [4]),
        ("SMALLER 1000", [1, 2, 3]),
        ("SENTON 29-May-2026", [1]),
        ("SENTBEFORE 31-May-2026", [1, 2]),
        ("SENTSINCE 31-May-2026", [3, 4]),
        ("NOT SEEN", [1, 3, 4]),
        ("OR SEEN FLAGGED", [2, 3]),
        ("OR OR SEEN FLAGGED DRAFT", [2, 3, 4]),
        ("OR SEEN OR FLAGGED DRAFT", [2, 3, 4]),
        ("(FROM alice SUBJECT lunch)", [1]),
        ("NOT (FROM alice) SUBJECT lunch", [3]),
        ("UNSEEN UNDELETED", [1, 4]),
    ],
)
def test_search_key(session, criteria, expected):
    assert search(session, criteria) == expected


def test_internal_date_keys(session):
    day = lambda t: time.strftime("%d-%b-%Y", time.localtime(t))  # noqa: E731
    assert search(session, f"ON {day(BASE + DAY)}") == [2]
    assert search(session, f"BEFORE {day(BASE + DAY)}") == [1]
    assert search(session, f"SINCE {day(BASE + 3 * DAY)}") == [3, 4]


def test_charset_and_literals(session):
    needle = "Grüße".encode()
    lines = run(session, b"t SEARCH CHARSET UTF-8 SUBJECT {%d+}\r\n" % len(needle) + needle)
    assert lines == [b"* SEARCH 2", b"t OK SEARCH completed"]
    needle = "köln".encode()
    lines = run(session, b"t SEARCH CHARSET UTF-8 BODY {%d+}\r\n" % len(needle) + needle)
    assert lines == [b"* SEARCH 2", b"t OK SEARCH completed"]
    needle = "Gr\xfc\xdfe".encode("latin-1")
    lines = run(session, b"t SEARCH CHARSET ISO-8859-1 SUBJECT {%d+}\r\n" % len(needle) + needle)
    assert lines == [b"* SEARCH 2", b"t OK SEARCH completed"]
    lines = run(session, b"t SEARCH CHARSET X-NO-SUCH TEXT x")
    assert lines[-1].startswith(b"t NO [BADCHARSET")
    lines = run(session, "t SEARCH SUBJECT grüße".encode())
    assert lines[-1].startswith(b"t BAD")


def test_uid_search_and_esearch_and_searchres(session):
    assert run(session, b"t UID SEARCH FLAGGED") == [b"* SEARCH 3", b"t OK UID SEARCH completed"]
    assert run(session, b"t SEARCH RETURN (MIN MAX COUNT) UNSEEN") == [
        b'* ESEARCH (TAG "t") MIN 1 MAX 4 COUNT 3', b"t OK SEARCH completed"]
    assert run(session, b"t UID SEARCH RETURN () ALL") == [
        b'* ESEARCH (TAG "t") UID ALL 1:4', b"t OK UID SEARCH completed"]
    assert run(session, b"t SEARCH RETURN (COUNT) KEYWORD $Nothing") == [
        b'* ESEARCH (TAG "t") COUNT 0', b"t OK SEARCH completed"]
    assert run(session, b"t SEARCH RETURN (SAVE) OR SEEN DRAFT") == [b"t OK SEARCH completed, result saved"]
    assert search(session, "$") == [2, 4]
    assert run(session, b"t FETCH $ (UID)") == [b"* 2 FETCH (UID 2)", b"* 4 FETCH (UID 4)", b"t OK FETCH completed"]
    assert search(session, "UID $ SEEN") == [2]


def test_bad_search_input(session):
    assert run(session, b"t SEARCH FROB")[-1].startswith(b"t BAD")
    assert run(session, b"t SEARCH 5")[-1].startswith(b"t OK")  # beyond the mailbox: no match, no error
    chain = b"OR SEEN " * 3000 + b"DRAFT"
    assert search(session, chain) == [2, 4]
