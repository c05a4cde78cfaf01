"""Building values from many message files together with a helper process
(imapd/store/maildir/prebuild.py), on a real Maildir: every value arrives,
in order, whoever built it; a helper that dies or a file that vanishes only
means the caller builds that message itself; no helper outlives its use."""

from __future__ import annotations

import marshal
import os
import signal

import pytest
from maildir_helpers import append

from imapd.store import open_store
from imapd.store.maildir import prebuild
from imapd.store.maildir.layout import O_FILE

COUNT = 3 * prebuild.BATCH + 17  # several batches for each process, and a ragged last one


BUILDER = ("imapd.mime.wire", "DerivedValues", (("ENVELOPE", "BODYSTRUCTURE"),))  # FETCH's


def digest(data: bytes) -> object:
    """What the named builder makes of the message bytes, in this process
    (its marshalled structure decoded: its bytes may differ from process to
    process, its value may not)."""
    return decoded(prebuild.make_builder(BUILDER)(data))


def decoded(built):
    if built is None:
        return None
    values, structure = built
    return values, marshal.loads(structure)


@pytest.fixture
def mailbox(tmp_path):
    root = str(tmp_path / "Maildir")
    s = open_store(root, use_inotify=False)
    for k in range(1, COUNT + 1):
        append(s, "INBOX", b"From: a@example.org\nSubject: message %d\n\n%s\n" % (k, b"x" * k))
    mb = s.open("INBOX")
    yield mb
    mb.close()
    s.close()


def start(mb, uids, count=2):
    return prebuild.start(uids, mb._locate, BUILDER, O_FILE, mb._adopt_read, [mb._f.cur_fd, mb._f.new_fd], count)


def gone(pid: int) -> bool:
    """The process no longer exists (not even as a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("count", [1, 2])
def test_every_value_arrives_in_order_and_the_helpers_are_reaped(mailbox, count):
    uids = mailbox.uids()
    shared = start(mailbox, uids, count)
    assert shared is not None and len(shared.helpers) == count
    pids = [h.pid for h in shared.helpers]
    for u in uids:
        assert decoded(shared.take(u)) == digest(mailbox.read(u)), u
        assert mailbox.size(u) == len(mailbox.read(u))
    assert shared.received == shared.nbatches and not shared.mine  # every batch built by a helper
    shared.close()
    assert all(gone(pid) for pid in pids)


def test_a_subset_of_uids_and_uids_it_was_not_given(mailbox):
    uids = mailbox.uids()
    shared = start(mailbox, uids[:-5])
    assert shared is not None
    try:
        for u in uids[::7]:  # most messages never asked for (already cached, say)
            want = None if u in uids[-5:] else digest(mailbox.read(u))
            assert decoded(shared.take(u)) == want
    finally:
        shared.close()


def test_a_vanished_file_is_left_to_the_caller(mailbox, tmp_path):
    uids = mailbox.uids()
    victims = {uids[5], uids[prebuild.BATCH + 5], uids[-1]}  # in batches of both processes
    for u in victims:
        os.unlink(os.path.join(str(tmp_path / "Maildir"), "cur", mailbox._locate(u)[1]))
    shared = start(mailbox, uids)
    assert shared is not None
    try:
        for u in uids:
            got = decoded(shared.take(u))
            if u in victims:
                assert got is None
            else:
                assert got == digest(mailbox.read(u))
    finally:
        shared.close()


def test_a_helper_that_dies_leaves_the_rest_to_the_caller(mailbox):
    uids = mailbox.uids()
    shared = start(mailbox, uids)
    assert shared is not None
    try:
        assert decoded(shared.take(uids[0])) == digest(mailbox.read(uids[0]))
        for h in shared.helpers:
            os.kill(h.pid, signal.SIGKILL)
        for u in uids[1:]:
            got = decoded(shared.take(u))  # never waits for the dead helper
            # what it built before it died is good; the rest falls to the caller
            assert got is None or got == digest(mailbox.read(u))
    finally:
        shared.close()


def test_too_few_files_start_no_helper(mailbox):
    uids = mailbox.uids()[: prebuild.BATCH]
    assert start(mailbox, uids) is None


def test_build_ahead_refuses_uids_out_of_order(mailbox):
    uids = mailbox.uids()
    assert mailbox.build_ahead(list(reversed(uids)), BUILDER) is None


def test_stalled_helpers_are_given_up_and_the_rest_built_here(mailbox, monkeypatch):
    import time

    monkeypatch.setattr(prebuild, "STALL", 0.5)
    uids = mailbox.uids()
    shared = start(mailbox, uids)
    assert shared is not None
    pids = [h.pid for h in shared.helpers]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)  # alive, silent
    try:
        began = time.monotonic()
        for u in uids:
            assert decoded(shared.take(u)) == digest(mailbox.read(u)), u
        assert time.monotonic() - began < 10
        assert not shared.helpers and shared.mine  # given up; the rest was built here
    finally:
        shared.close()
    assert all(gone(pid) for pid in pids)  # (SIGKILL ends a stopped process too)


def test_scattered_takes_stop_the_building(mailbox):
    uids = mailbox.uids()
    shared = start(mailbox, uids)
    assert shared is not None
    pids = [h.pid for h in shared.helpers]
    try:
        sparse = uids[:: 2 * prebuild.BATCH // prebuild.SPARSE]  # fewer than SPARSE from each batch
        got = [decoded(shared.take(u)) for u in sparse]
        first = [u for u in sparse if u < uids[prebuild.SPARSE_BATCHES * prebuild.BATCH]]
        # what was asked before it stopped came built; after it, the caller builds
        assert got[: len(first)] == [digest(mailbox.read(u)) for u in first]
        assert shared.stopped and got[len(first):] == [None] * (len(sparse) - len(first))
        assert not shared.helpers and all(gone(pid) for pid in pids)
    finally:
        shared.close()
