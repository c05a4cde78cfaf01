"""Pending output: large bodies are queued as they were read, small responses
are gathered in `out`, and a client that takes a few bytes at a time still
receives everything once, in order."""

from __future__ import annotations

import fcntl
import io
import os

from imapd import config
from imapd.session import QUEUE_MIN, Session
from imapd.store import open_store
from imapd.transport import StdioTransport


def _drain_through_pipe(s: Session, capacity: int = 4096) -> bytes:
    """Write the session's output into a small non-blocking pipe, reading the
    other end between writes, as a slow client would."""
    r, w = os.pipe()
    try:
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, capacity)
        transport = StdioTransport(rfd=r, wfd=w, enlarge_pipe=False)  # (a slow client's small pipe)
        got = bytearray()
        writes = 0
        while True:
            s.pump()  # (as the session loop does: a command stops at the output limit)
            if not s.has_output():
                break
            n = s.write_output(transport)
            writes += 1
            assert n <= capacity
            got += os.read(r, 1 << 20) if n else b""
        assert writes > 1  # the output really went out in pieces
        assert s.pending_output() == 0
        return bytes(got)
    finally:
        os.close(r)
        os.close(w)


def _session_with(tmp_path, bodies: list[bytes]) -> Session:
    root = str(tmp_path / "Maildir")
    store = open_store(root)
    for body in bodies:
        store.append("INBOX", io.BytesIO(body), (), 1_780_000_000)
    store.close()
    s = Session(config.defaults(), user="t", store_opener=lambda _u: open_store(root))
    s.receive(b"s SELECT INBOX\r\n")
    s.pump()
    s.take_output()
    return s


def test_bodies_large_and_small_arrive_in_order_through_partial_writes(tmp_path):
    big = b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n"
    big = big * (QUEUE_MIN // len(big) * 3)
    small = b"Subject: small\r\n\r\nhello\r\n"
    bodies = [big, small, small, big, big, small]
    s = _session_with(tmp_path, bodies)
    s.receive(b"a FETCH 1:* (UID BODY.PEEK[])\r\n")
    s.pump()
    assert s.queued, "large bodies are queued, not copied into `out`"
    got = _drain_through_pipe(s)
    want = b"".join(
        b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (i, i, len(b)) + b + b")\r\n" for i, b in enumerate(bodies, 1)
    )
    assert got == want + b"a OK FETCH completed\r\n"


def test_take_output_returns_queued_and_buffered_bytes_once(tmp_path):
    big = (b"Subject: big\r\n\r\n" + b"y" * 100 + b"\r\n") * (QUEUE_MIN // 50)
    s = _session_with(tmp_path, [big])
    s.receive(b"a FETCH 1 BODY.PEEK[]\r\nb NOOP\r\n")
    s.pump()
    out = s.take_output()
    assert out.startswith(b"* 1 FETCH (BODY[] {%d}\r\n" % len(big) + big + b")\r\n")
    assert out.endswith(b"a OK FETCH completed\r\nb OK NOOP completed\r\n")
    assert not s.has_output() and s.take_output() == b""


def test_a_body_split_by_a_partial_write_resumes_where_it_stopped(tmp_path):
    body = b"Subject: odd\r\n\r\n" + bytes(range(48, 58)) * (QUEUE_MIN // 5) + b"\r\n"
    s = _session_with(tmp_path, [body, body])
    s.receive(b"a FETCH 1:2 BODY.PEEK[]\r\n")
    s.pump()
    # a 4,096-byte pipe ends writes in the middle of bodies and of the text between them
    got = _drain_through_pipe(s, capacity=4096)
    assert got.count(body) == 2
    assert got.endswith(b"a OK FETCH completed\r\n")


def test_whole_bodies_around_a_streamed_one_and_a_vanished_file(tmp_path):
    from imapd.commands.fetch import STREAM_THRESHOLD

    small = b"Subject: s\r\n\r\nsmall\r\n"
    huge = b"Subject: h\r\n\r\n" + (b"z" * 998 + b"\r\n") * (STREAM_THRESHOLD // 1000 + 10)
    bodies = [small, huge, small, small]
    s = _session_with(tmp_path, bodies)
    cur = tmp_path / "Maildir" / "cur"
    victim = sorted(os.listdir(cur))[2]  # message 3, gone behind the session's back
    os.unlink(cur / victim)
    s.receive(b"a UID FETCH 1:* BODY.PEEK[]\r\n")
    s.pump()
    got = _drain_through_pipe(s, capacity=65536)
    want = b"".join(b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (i, i, len(b)) + b + b")\r\n"
                    for i, b in enumerate(bodies, 1) if i != 3)
    # (a UID command may report the expunge it ran into)
    assert got == want + b"* 3 EXPUNGE\r\na NO [EXPUNGEISSUED] Some of the requested messages no longer exist\r\n"
