"""A long SEARCH sends untagged keepalives and lets the event loop write them at once."""

from __future__ import annotations

import io

from imapd import config
from imapd.session import Session
from imapd.store import open_store


def test_long_search_sends_keepalives(tmp_path):
    root = str(tmp_path / "Maildir")
    store = open_store(root)
    for i in range(600):
        store.append("INBOX", io.BytesIO(b"Subject: m%d\r\n\r\nbody %d\r\n" % (i, i)), (), None)
    store.close()
    cfg = config.build({"idle": {"command_keepalive": 0.000001}})
    s = Session(cfg, user="t", store_opener=lambda _u: open_store(root))
    s.receive(b"s SELECT INBOX\r\n")
    s.pump()
    s.out.clear()
    s.receive(b"a SEARCH BODY nomatch\r\n")
    s.pump()
    first = bytes(s.out)
    # the pump returned so the loop can flush the keepalive before the search ends
    assert first.endswith(b"* OK Still searching\r\n") and b"a OK" not in first
    for _ in range(100):
        s.pump()
        if b"a OK" in s.out:
            break
    assert bytes(s.out).endswith(b"* SEARCH\r\na OK SEARCH completed\r\n")
