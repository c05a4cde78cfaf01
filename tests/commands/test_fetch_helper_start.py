"""When a FETCH hands the building of ENVELOPE/BODYSTRUCTURE to helper
processes: after a run of messages with nothing cached (a cold stretch),
not after as many misses scattered over a cached mailbox -- helpers build
every message after the start, needed or not."""

from __future__ import annotations

import io

import pytest

from imapd import config
from imapd.commands import fetch as fetch_mod
from imapd.session import Session
from imapd.store import open_store
from imapd.store.maildir.mailbox import MaildirMailbox

COUNT = fetch_mod.HELP_MIN + 10 * fetch_mod.HELP_AFTER


def _run(s: Session, line: bytes) -> bytes:
    s.receive(line + b"\r\n")
    out = b""
    while True:
        s.pump()
        got = s.take_output()
        out += got
        if not got:
            return out


@pytest.fixture
def session_and_calls(tmp_path, monkeypatch):
    root = str(tmp_path / "Maildir")
    store = open_store(root, use_inotify=False)
    for n in range(COUNT):
        body = b"From: a%d@example.org\r\nSubject: s%d\r\n\r\nbody %d\r\n" % (n, n, n)
        store.append("INBOX", io.BytesIO(body), (), 1_780_000_000)
    store.close()
    calls: list[int] = []
    real = MaildirMailbox.build_ahead

    def recording(self, uids, builder):  # the real thing, counted
        calls.append(len(uids))
        return real(self, uids, builder)

    monkeypatch.setattr(MaildirMailbox, "build_ahead", recording)
    s = Session(config.defaults(), user="t", store_opener=lambda _u: open_store(root, use_inotify=False))
    assert _run(s, b"s SELECT INBOX").endswith(b"s OK [READ-WRITE] SELECT completed\r\n")
    return s, calls


def test_scattered_misses_start_no_helper(session_and_calls):
    s, calls = session_and_calls
    every_tenth = set(range(1, COUNT + 1, 10))
    rest = ",".join(str(n) for n in range(1, COUNT + 1) if n not in every_tenth)
    _run(s, b"a FETCH " + rest.encode() + b" (ENVELOPE BODYSTRUCTURE)")  # all but every tenth cached
    calls.clear()  # (that FETCH had a cold stretch of its own)
    out = _run(s, b"b FETCH 1:* (ENVELOPE BODYSTRUCTURE)")
    assert out.count(b" FETCH (ENVELOPE (") == COUNT and out.endswith(b"b OK FETCH completed\r\n")
    assert calls == []


def test_a_cold_stretch_starts_helpers_for_the_rest(session_and_calls):
    s, calls = session_and_calls
    out = _run(s, b"a FETCH 1:* (ENVELOPE BODYSTRUCTURE)")
    assert out.count(b" FETCH (ENVELOPE (") == COUNT and out.endswith(b"a OK FETCH completed\r\n")
    assert calls == [COUNT - fetch_mod.HELP_AFTER]
