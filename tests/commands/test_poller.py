"""The session loop's Poller: the first wait is a guess (everything ready),
the second polls for real; what cannot be polled is always ready."""

from __future__ import annotations

import os
import tempfile
import time

from imapd.session import EVENT_READ, EVENT_WRITE, Poller


def test_first_select_reports_every_descriptor_ready_without_waiting():
    r, w = os.pipe()
    try:
        p = Poller()
        p.register(r, EVENT_READ)
        p.register(w, EVENT_WRITE)
        started = time.monotonic()
        assert sorted(p.select(30.0)) == sorted([(r, EVENT_READ), (w, EVENT_WRITE)])
        assert time.monotonic() - started < 1.0
        assert p._p is None  # nothing polled, `select` not needed yet
        p.close()
    finally:
        os.close(r)
        os.close(w)


def test_later_selects_poll_and_wait():
    r, w = os.pipe()
    try:
        p = Poller()
        p.register(r, EVENT_READ)
        p.select(0.0)  # the guess
        started = time.monotonic()
        assert p.select(0.2) == []  # nothing to read: it waited
        assert time.monotonic() - started >= 0.15
        os.write(w, b"x")
        assert p.select(5.0) == [(r, EVENT_READ)]
        p.modify(r, EVENT_READ)
        p.unregister(r)
        assert p.select(0.0) == []
        p.close()
    finally:
        os.close(r)
        os.close(w)


def test_what_cannot_be_polled_is_always_ready():
    with tempfile.TemporaryFile() as f:
        r, w = os.pipe()
        try:
            p = Poller()
            p.select(0.0)  # (past the guess)
            p.register(f.fileno(), EVENT_READ)  # a regular file: epoll refuses it
            p.register(r, EVENT_READ)
            started = time.monotonic()
            assert p.select(10.0) == [(f.fileno(), EVENT_READ)]  # without waiting for the pipe
            assert time.monotonic() - started < 1.0
            p.unregister(f.fileno())
            assert p.select(0.0) == []
            p.close()
        finally:
            os.close(r)
            os.close(w)
