import io
import os
import time

import pytest

from imapd.store import open_store
from imapd.store.base import NoSuchMailbox, NoSuchMessage, OverQuota, ReadOnlyStore

from maildir_helpers import append, cur_files, cur_files_by_uid, deliver, msg, warm_inbox



def _first_unseen_uid(mb) -> int:
    """The UID at first_unseen_index(), 0 for none (as SELECT's UNSEEN numbers it)."""
    i = mb.first_unseen_index()
    return mb.uids()[i] if i >= 0 else 0

def test_new_moved_to_cur_by_select_not_examine(store, maildir):
    name = deliver(maildir, msg(1))
    ro = store.open("INBOX", readonly=True)
    assert len(ro.uids()) == 1 and os.listdir(os.path.join(maildir, "new")) == [name]
    assert ro.read(ro.uids()[0]).startswith(b"From: a@example.com\r\n")
    ro.close()
    mb = store.open("INBOX")
    assert os.listdir(os.path.join(maildir, "new")) == []
    assert cur_files(maildir) == [name + ":2,"]
    assert mb.flags(mb.uids()[0]) == frozenset()
    mb.close()


def test_sync_sees_external_delivery_rename_delete(store, maildir):
    a = deliver(maildir, msg(1), sub="cur", name="1000000001.M1P1.h:2,")
    deliver(maildir, msg(2), sub="cur", name="1000000002.M1P1.h:2,")
    mb = store.open("INBOX")
    assert list(mb.uids()) == [1, 2]
    assert not mb.sync()
    # mutt marks the first seen, deletes the second; an MDA delivers a third
    os.rename(os.path.join(maildir, "cur", a), os.path.join(maildir, "cur", "1000000001.M1P1.h:2,S"))
    os.unlink(os.path.join(maildir, "cur", "1000000002.M1P1.h:2,"))
    deliver(maildir, msg(3))
    ch = mb.sync()
    assert ch.flags_changed == [1] and ch.expunged == [2] and ch.added == [3]
    assert mb.flags(1) == {"\\Seen"}
    assert list(mb.uids()) == [1, 3]
    assert not mb.sync()
    mb.close()


def test_own_flag_changes_not_reported(store, maildir):
    append(store, "INBOX", msg(1))
    mb = store.open("INBOX")
    mb.sync()
    res = mb.store_flags([1], "add", ["\\Flagged"])
    assert res == {1: {"\\Flagged"}}
    assert not mb.sync()  # our own change is not repeated
    mb2 = store.open("INBOX")  # another view in the same process
    mb.store_flags([1], "set", ["\\Answered"])
    assert mb2.sync().flags_changed == [1]
    assert mb2.flags(1) == {"\\Answered"}
    mb.close()
    mb2.close()


def test_read_after_external_rename_finds_file(store, maildir):
    append(store, "INBOX", msg(1, b"line1\nline2\n"))
    mb = store.open("INBOX")
    (name,) = cur_files(maildir)
    os.rename(os.path.join(maildir, "cur", name), os.path.join(maildir, "cur", name.split(":")[0] + ":2,RS"))
    assert mb.read(1).endswith(b"line1\r\nline2\r\n")  # found again by base name
    assert mb.sync().flags_changed == [1]
    assert mb.flags(1) == {"\\Seen", "\\Answered"}
    os.unlink(os.path.join(maildir, "cur", cur_files(maildir)[0]))
    with pytest.raises(NoSuchMessage):
        mb.read(1)
    assert list(mb.uids()) == [1]  # the view changes only in sync()
    assert mb.sync().expunged == [1]
    mb.close()


def test_message_meta_meets_flags_found_while_it_runs(store, maildir):
    """FETCH 1:* FLAGS walks the view's arrays; a file renamed by another
    client (new flags) is found when a message is read in the middle of it,
    and the flags after that point are the new ones, never an error."""
    for i in range(1, 5):
        append(store, "INBOX", msg(i))
    mb = store.open("INBOX")
    uids = list(mb.uids())
    meta = mb.message_meta(uids, False, False)  # (FETCH 1:* FLAGS: straight from the arrays)
    assert next(meta)[0] == frozenset()
    by_base = {n.split(":")[0]: n for n in cur_files(maildir)}
    bases = [base for _, base in sorted(_uidlist_records(maildir))]  # in UID order
    for base, flags in zip(bases, ("FS", "T", "D", "DFT")):  # suffixes the view never had
        os.rename(os.path.join(maildir, "cur", by_base[base]), os.path.join(maildir, "cur", base + ":2," + flags))
    mb.read(uids[0])  # not where the view had it: found again, and the others with it
    assert [m[0] for m in meta] == [{"\\Deleted"}, {"\\Draft"}, {"\\Draft", "\\Flagged", "\\Deleted"}]
    mb.close()


def test_store_after_external_rename(store, maildir):
    append(store, "INBOX", msg(1))
    mb = store.open("INBOX")
    (name,) = cur_files(maildir)
    os.rename(os.path.join(maildir, "cur", name), os.path.join(maildir, "cur", name.split(":")[0] + ":2,F"))
    assert mb.store_flags([1], "add", ["\\Seen"]) == {1: {"\\Seen", "\\Flagged"}}
    assert cur_files(maildir)[0].endswith(":2,FS")
    mb.close()


def test_crlf_and_sizes(store, maildir):
    body = b"a\nb\r\nc\rd\n" + b"x" * 70000 + b"\r" + b"\n" + b"end"
    deliver(maildir, body, sub="cur", name="1000000001.M1P1.h:2,")
    mb = store.open("INBOX")
    wire = mb.read(1)
    assert wire == body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert mb.size(1) == len(wire)
    st = mb.open_stream(1)
    parts = []
    while True:
        c = st.read(4093)  # odd chunks: CR/LF pairs straddle them
        if not c:
            break
        parts.append(c)
    st.close()
    assert b"".join(parts) == wire
    mb.close()


def test_stream_large_message_chunked(store, maildir):
    line = b"0123456789" * 7 + b"\n"
    with open(os.path.join(maildir, "cur", "1.M1P1.h:2,"), "wb") as fh:
        for _ in range(20000):
            fh.write(line)
    mb = store.open("INBOX")
    st = mb.open_stream(1)
    total = 0
    while True:
        c = st.read(65536)
        if not c:
            break
        assert len(c) <= 65536
        total += len(c)
    st.close()
    assert total == 20000 * (len(line) + 1) == mb.size(1)
    mb.close()


def test_size_from_W_in_name(store, maildir):
    deliver(maildir, b"ab\n", sub="cur", name="1.M1P1.h,S=3,W=999:2,")
    mb = store.open("INBOX")
    assert mb.size(1) == 999  # trust the name, as Dovecot does
    mb.close()


def test_append_flags_date_and_name(store, maildir):
    r = append(store, "INBOX", b"Subject: x\r\n\r\nhi\r\n", ["\\Seen", "\\Draft"], 1_000_000_000)
    (name,) = cur_files(maildir)
    base, info = name.split(":")
    assert info == "2,DS"
    assert ",S=15," in base and base.endswith(",W=18")
    st = os.stat(os.path.join(maildir, "cur", name))
    assert st.st_mtime == 1_000_000_000
    with open(os.path.join(maildir, "cur", name), "rb") as fh:
        assert fh.read() == b"Subject: x\n\nhi\n"  # stored with LF like Dovecot
    mb = store.open("INBOX")
    assert mb.internal_date(r.uid) == 1_000_000_000
    assert mb.read(r.uid) == b"Subject: x\r\n\r\nhi\r\n"
    assert mb.size(r.uid) == 18
    assert os.listdir(os.path.join(maildir, "tmp")) == []
    mb.close()


def test_append_to_missing_mailbox_trycreate(store):
    with pytest.raises(NoSuchMailbox) as ei:
        append(store, "Nope", b"x\r\n")
    assert ei.value.code == "TRYCREATE"


class _Exploding(io.RawIOBase):
    def __init__(self):
        self.n = 0

    def readable(self):
        return True

    def read(self, size=-1):
        self.n += 1
        if self.n > 2:
            raise OSError(28, "No space left on device")
        return b"x" * 1000 + b"\r\n"


def test_append_disk_full_leaves_nothing(store, maildir, monkeypatch):
    with pytest.raises(OverQuota) as ei:
        store.append("INBOX", _Exploding(), ())
    assert ei.value.code == "OVERQUOTA"
    assert os.listdir(os.path.join(maildir, "tmp")) == []
    assert cur_files(maildir) == []


def test_append_does_not_rescan(store, maildir):
    append(store, "INBOX", msg(1))
    # a file nobody numbered yet: APPEND must not go looking for it
    deliver(maildir, msg(2), sub="cur", name="1.M1P1.unnumbered:2,")
    r = append(store, "INBOX", msg(3))
    assert r.uid == 2
    text = open(os.path.join(maildir, "dovecot-uidlist")).read()
    assert "unnumbered" not in text


@pytest.mark.parametrize("how", ["append", "copy"])
def test_the_first_uidlist_numbers_the_messages_already_there_first(store, maildir, how):
    """A folder no IMAP server has opened (mail moved in from elsewhere):
    the APPEND or COPY that makes its uidlist numbers what is already in
    cur/ and new/ first, in Maildir order, as Dovecot does, and gets the
    next UID itself."""
    store.create("Old")
    folder = os.path.join(maildir, ".Old")
    for n, (name, sub) in enumerate([("1600000002.M2P1.host:2,S", "cur"), ("1600000001.M1P1.host:2,", "cur"),
                                     ("1600000003.M3P1.host", "new")], 1):
        deliver(folder, msg(n), name=name, sub=sub)
    assert not os.path.exists(os.path.join(folder, "dovecot-uidlist"))
    if how == "append":
        uid = append(store, "Old", msg(4)).uid
    else:
        append(store, "INBOX", msg(4))
        inbox = store.open("INBOX")
        uid = inbox.copy_to([1], "Old").dest_uids[0]
        inbox.close()
    assert uid == 4
    mb = store.open("Old")
    assert list(mb.uids()) == [1, 2, 3, 4]
    assert [mb.read(u).split(b"\r\n")[1] for u in (1, 2, 3, 4)] == \
        [b"Subject: test 2", b"Subject: test 1", b"Subject: test 3", b"Subject: test 4"]
    mb.close()


def test_a_first_open_lists_each_directory_once(store, maildir, monkeypatch):
    """A first SELECT numbers the files its own listing found: making the
    new uidlist must not list cur/ and new/ a second time (it did, briefly:
    100,000 messages took 377 ms instead of 262)."""
    from imapd.store.maildir import resync

    for n in range(3):
        deliver(maildir, msg(n), sub="cur", name=f"160000000{n}.M{n}P1.host:2,")
    deliver(maildir, msg(3), sub="new", name="1600000009.M9P1.host")
    listed: list[int] = []
    scan = resync._scan_dir
    monkeypatch.setattr(resync, "_scan_dir", lambda fd, known=(): listed.append(fd) or scan(fd, known))
    mb = store.open("INBOX")
    assert list(mb.uids()) == [1, 2, 3, 4]
    assert len(listed) == 2 and len(set(listed)) == 2  # cur/ and new/, once each
    mb.close()


def test_append_into_selected_mailbox_reported_by_sync(store):
    mb = store.open("INBOX")
    r = append(store, "INBOX", msg(1))
    ch = mb.sync()
    assert ch.added == [r.uid]
    assert mb.is_recent(r.uid)
    assert mb.flags(r.uid) == frozenset()
    mb.close()


def test_copy_move_keep_flags_dates(store, maildir):
    store.create("Dest")
    append(store, "INBOX", msg(1), ["\\Seen", "Work"], 1_100_000_000)
    append(store, "INBOX", msg(2), ["\\Flagged"], 1_200_000_000)
    mb = store.open("INBOX")
    res = mb.copy_to([1, 2, 99], "Dest")
    assert res.source_uids == (1, 2) and res.dest_uids == (1, 2)
    dest = store.open("Dest")
    assert res.uidvalidity == dest.uidvalidity
    assert dest.flags(1) == {"\\Seen", "Work"} and dest.flags(2) == {"\\Flagged"}
    assert dest.internal_date(1) == 1_100_000_000 and dest.internal_date(2) == 1_200_000_000
    # hard links on one file system
    src_name = os.path.join(maildir, "cur", cur_files(maildir)[0])
    assert os.stat(src_name).st_nlink == 2
    mres = mb.move_to([2], "Dest")
    assert mres.dest_uids == (3,)
    assert mb.sync().expunged == [2]
    assert dest.sync().added == [3]
    with pytest.raises(NoSuchMailbox) as ei:
        mb.copy_to([1], "Missing")
    assert ei.value.code == "TRYCREATE"
    mb.close()
    dest.close()


def test_expunge_only_deleted_and_given(store, maildir):
    for i in range(5):
        append(store, "INBOX", msg(i), ["\\Deleted"] if i % 2 == 0 else [])
    mb = store.open("INBOX")
    assert mb.expunge([1, 2]) == [1]  # UID EXPUNGE: only the given UIDs
    assert mb.expunge() == [3, 5]
    ch = mb.sync()
    assert ch.expunged == [1, 3, 5]
    assert list(mb.uids()) == [2, 4]
    lines = open(os.path.join(maildir, "dovecot-uidlist")).read().splitlines()
    assert [ln.split()[0] for ln in lines[1:]] == ["2", "4"]
    assert len(cur_files(maildir)) == 2
    mb.close()


def test_a_listing_keeps_the_names_its_caller_holds(store, maildir):
    """Listing cur/ to verify a view stores each name it knows as the view's
    own string, not as a second copy (10 MB at 100,000 messages)."""
    from imapd.store.maildir import resync

    for k in range(5):
        append(store, "INBOX", msg(k))
    known = [name.partition(":")[0] for name in os.listdir(os.path.join(maildir, "cur"))]
    fd = os.open(os.path.join(maildir, "cur"), os.O_RDONLY | os.O_DIRECTORY)
    try:
        shared, dups = resync._scan_dir(fd, known[:3])
        plain, _ = resync._scan_dir(fd)
    finally:
        os.close(fd)
    assert shared == plain and len(shared) == 5 and dups is None
    held = {id(b) for b in known[:3]}
    assert sum(id(b) in held for b in shared) == 3
    assert not any(id(b) in held for b in plain)


def test_recent_given_to_exactly_one_session(store, maildir):
    deliver(maildir, msg(1))
    s2 = open_store(maildir, use_inotify=False)
    ex = store.open("INBOX", readonly=True)
    assert ex.is_recent(1)  # EXAMINE sees it recent but does not take it
    a = store.open("INBOX")
    b = s2.open("INBOX")
    assert a.is_recent(1) and not b.is_recent(1)
    deliver(maildir, msg(2))
    time.sleep(0.01)
    assert b.sync().added == [2]
    assert a.sync().added == [2]
    assert b.is_recent(2) != a.is_recent(2)
    assert store.status("INBOX").recent == 0
    for m in (ex, a, b):
        m.close()
    s2.close()


def test_status_does_not_take_recent(store, maildir):
    deliver(maildir, msg(1))
    deliver(maildir, msg(2))
    st = store.status("INBOX")
    assert (st.messages, st.recent, st.unseen, st.uidnext) == (2, 2, 2, 3)
    assert st.size == 2 * len(msg(1).replace(b"\n", b"\r\n"))
    mb = store.open("INBOX")
    assert mb.is_recent(1) and mb.is_recent(2)
    mb.close()


def test_readonly_mailbox_refuses_writes(store):
    append(store, "INBOX", msg(1))
    mb = store.open("INBOX", readonly=True)
    for call in (lambda: mb.store_flags([1], "add", ["\\Seen"]), mb.expunge, lambda: mb.remove([1])):
        with pytest.raises(ReadOnlyStore):
            call()
    mb.close()


def test_cache_and_index_rebuild(store, maildir):
    append(store, "INBOX", msg(1))
    mb = store.open("INBOX")
    mb.cache_put(1, "envelope", ("a", ["b", 1]))
    mb.cache_put(1, "bad", object())  # not marshal-able: ignored
    assert mb.cache_get(1, "envelope") == ("a", ["b", 1])
    assert mb.cache_get(1, "bad") is None
    mb.close()
    assert os.path.exists(os.path.join(maildir, "imapd.index"))
    s = open_store(maildir)
    mb = s.open("INBOX")
    assert mb.cache_get(1, "envelope") == ("a", ["b", 1])
    mb.close()
    s.close()
    for name in ("imapd.index", "imapd.cache-envelope"):
        with open(os.path.join(maildir, name), "wb") as fh:
            fh.write(b"\x00garbage")
    s = open_store(maildir)
    mb = s.open("INBOX")
    assert list(mb.uids()) == [1] and mb.cache_get(1, "envelope") is None
    mb.close()
    s.close()


def test_cache_get_many_answers_as_cache_get_does(store, maildir):
    """FETCH 1:* reads the cache through cache_get_many; a run of consecutive
    messages takes the dates as a slice, anything else per message.  Either
    way each UID gets what cache_get gives it: nothing for a replaced file,
    an expunged or an unknown UID."""
    for i in range(1, 9):
        append(store, "INBOX", msg(i))
    mb = store.open("INBOX")
    for uid in mb.uids():
        mb.read(uid)  # (a value is built from the file, so its mtime is known)
        mb.cache_put(uid, "envelope.wire", b"value %d" % uid)
    mb.close()
    s = open_store(maildir)
    mb = s.open("INBOX")
    base = dict(_uidlist_records(maildir))[5]
    victim = [n for n in cur_files(maildir) if n.split(":")[0] == base][0]  # message 5's file is replaced:
    path = os.path.join(maildir, "cur", victim)
    data = open(path, "rb").read()
    os.unlink(path)
    with open(path, "wb") as fh:
        fh.write(data)
    os.utime(path, (1, 1))  # its cached value is void
    mb.read(5)  # (reading the file learns its new mtime)
    uids = list(mb.uids())
    for ask in (uids, uids[2:6], uids[3:], [2, 4, 6], [7, 3], [1, 2, 99], [99], []):
        assert list(mb.cache_get_many(ask, "envelope.wire")) == [mb.cache_get(u, "envelope.wire") for u in ask], ask
    assert mb.cache_get(1, "envelope.wire") == b"value 1" and mb.cache_get(5, "envelope.wire") is None
    mb.close()
    s.close()


def test_replaced_file_invalidates_cache(store, maildir):
    append(store, "INBOX", msg(1))
    mb = store.open("INBOX")
    mb.internal_date(1)
    mb.cache_put(1, "envelope", "old")
    (name,) = cur_files(maildir)
    path = os.path.join(maildir, "cur", name)
    with open(path, "wb") as fh:
        fh.write(msg(1, b"different\n"))
    os.utime(path, (12345, 12345))
    mb.read(1)
    assert mb.cache_get(1, "envelope") is None
    mb.close()


def test_warm_open_uses_index(store, maildir):
    for i in range(3):
        append(store, "INBOX", msg(i))
    mb = store.open("INBOX")
    mb.close()
    old = time.time() - 10
    for sub in ("cur", "new"):
        os.utime(os.path.join(maildir, sub), (old, old))
    s = open_store(maildir)
    mb = s.open("INBOX")
    mb.close()  # first open after the mtimes aged: full scan, trusted snapshot
    s.close()
    s = open_store(maildir)
    mb = s.open("INBOX")
    assert mb._synced_dirs is not None  # warm: no readdir was needed
    assert list(mb.uids()) == [1, 2, 3]
    os.unlink(os.path.join(maildir, "cur", cur_files_by_uid(maildir)[0]))
    assert mb.sync().expunged == [1]
    mb.close()
    s.close()


def test_polling_and_inotify(maildir):
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    assert mb.watch_fds() == [] and mb.drain_watch() is False
    mb.close()
    s.close()
    s = open_store(maildir)
    mb = s.open("INBOX")
    fds = mb.watch_fds()
    assert len(fds) == 1
    assert not mb.drain_watch()
    deliver(maildir, msg(1))
    import select

    r, _, _ = select.select(fds, [], [], 2)
    assert r and mb.drain_watch()
    assert mb.sync().added == [1]
    mb.close()
    s.close()


def _wait_events(fds):
    import select

    r, _, _ = select.select(fds, [], [], 2)
    return bool(r)


def test_inotify_sync_skips_unchanged_cur(maildir, monkeypatch):
    """With a watch, a delivery into new/ (and imapd's own new/ -> cur/
    rename) costs no readdir of cur/, even when the mtime rules would want
    one (VERIFY_AFTER elapsed, cur/ mtime recent); a change someone else
    makes in cur/ is still seen."""
    from imapd.store.maildir import mailbox as mbmod, resync

    s = open_store(maildir)
    for i in range(5):
        append(s, "INBOX", msg(i))
    mb = s.open("INBOX")
    fds = mb.watch_fds()
    assert fds
    deliver(maildir, msg(10))
    assert _wait_events(fds)
    mb.drain_watch()
    assert mb.sync().added == [6]  # lists both directories: the watch now vouches
    listed = []
    orig = resync._scan_dir

    def spy(fd, *known):
        listed.append("cur" if fd == mb._f.cur_fd else "new")
        return orig(fd, *known)

    monkeypatch.setattr(resync, "_scan_dir", spy)
    monkeypatch.setattr(mbmod, "VERIFY_AFTER", -1.0)  # the mtime rules: always verify
    for k in range(3):
        deliver(maildir, msg(20 + k))
        assert _wait_events(fds)
        mb.drain_watch()
        assert mb.sync().added == [7 + k]
        # the events of our own rename into cur/: nothing to list at all
        time.sleep(0.05)
        mb.drain_watch()
        assert mb.sync().added == []
    assert "cur" not in listed
    assert listed.count("new") == 3
    assert len(os.listdir(os.path.join(maildir, "new"))) == 0
    # someone else renames a file in cur/ (a flag change), within the same second
    name = [n for n in cur_files(maildir) if n.endswith(":2,")][0]
    os.rename(os.path.join(maildir, "cur", name), os.path.join(maildir, "cur", name + "S"))
    assert _wait_events(fds)
    mb.drain_watch()
    ch = mb.sync()
    assert len(ch.flags_changed) == 1 and "cur" in listed
    assert "\\Seen" in mb.flags(ch.flags_changed[0])
    # and an external unlink in cur/
    os.unlink(os.path.join(maildir, "cur", cur_files(maildir)[0]))
    assert _wait_events(fds)
    mb.drain_watch()
    assert len(mb.sync().expunged) == 1
    mb.close()
    s.close()


def test_watch_armed_after_own_changes_does_not_vouch_for_them(maildir):
    """Our own change adopts the directory's new mtime.  A change someone else
    makes within the same timestamp tick leaves that mtime as it is, so only
    the verifying scan VERIFY_AFTER later can show it.  A watch armed (IDLE)
    in between starts too late to see that change: it must not vouch for the
    directory until a scan has looked."""
    from imapd.store.maildir.folder import VERIFY_AFTER

    s = open_store(maildir)
    for i in range(3):
        append(s, "INBOX", msg(i))
    old = time.time() - 10
    for sub in ("cur", "new"):
        os.utime(os.path.join(maildir, sub), (old, old))
    mb = s.open("INBOX")
    mb.sync()
    assert mb.store_flags([1], "add", ["\\Seen"]) == {1: {"\\Seen"}}
    cur = os.path.join(maildir, "cur")
    after_ours = os.stat(cur).st_mtime_ns
    # someone else (mutt) flags message 2, and the directory keeps the mtime
    # our own rename gave it (the same tick of a coarse clock)
    name = [n for n in cur_files(maildir) if n.endswith(":2,")][0]
    os.rename(os.path.join(cur, name), os.path.join(cur, name + "F"))
    os.utime(cur, ns=(after_ours, after_ours))
    fds = mb.watch_fds()
    assert fds
    assert mb.sync().flags_changed == []  # within VERIFY_AFTER the mtime rules trust it
    time.sleep(VERIFY_AFTER + 0.1)
    mb.drain_watch()
    ch = mb.sync()
    flagged = [u for u in mb.uids() if "\\Flagged" in mb.flags(u)]
    assert len(flagged) == 1 and ch.flags_changed == flagged
    mb.close()
    s.close()


def _uidlist_records(maildir):
    """(uid, base) of every record in dovecot-uidlist."""
    lines = open(os.path.join(maildir, "dovecot-uidlist")).read().splitlines()[1:]
    return [(int(ln.split()[0]), ln.split(":", 1)[1]) for ln in lines]


def _idle_box(maildir, count=3):
    """A watched INBOX with `count` messages, synced once after a delivery
    (so both directories were listed since the watch was armed)."""
    s = open_store(maildir)
    for i in range(count):
        append(s, "INBOX", msg(i))
    mb = s.open("INBOX")
    fds = mb.watch_fds()
    assert fds
    deliver(maildir, msg(100))
    assert _wait_events(fds)
    mb.drain_watch()
    assert mb.sync().added == [count + 1]
    return s, mb, fds


def test_delivery_in_idle_numbers_without_reading_the_list(maildir, monkeypatch):
    """A delivery to a watched mailbox whose view is the whole uidlist is
    numbered by appending to the list: neither cur/ nor the list's records
    are read again, and the result is what a fresh process sees."""
    from imapd.store.maildir import resync
    from imapd.store.maildir import uidlist as ulmod

    s, mb, fds = _idle_box(maildir)
    listed, reads = [], []
    scan, read_from = resync._scan_dir, ulmod.UidList._read_from
    monkeypatch.setattr(resync, "_scan_dir", lambda fd, *known: listed.append(fd == mb._f.cur_fd) or scan(fd, *known))

    def spy_read(self, fd, offset, st, records):
        reads.append(offset)
        return read_from(self, fd, offset, st, records)

    monkeypatch.setattr(ulmod.UidList, "_read_from", spy_read)
    names = []
    for k in range(3):
        names.append(deliver(maildir, msg(200 + k)))
        assert _wait_events(fds)
        mb.drain_watch()
        assert mb.sync().added == [5 + k]
    assert listed == [False, False, False] and reads == []
    assert mb.flags(7) == frozenset() and mb.read(7).startswith(b"From: a@example.com\r\n")
    assert os.listdir(os.path.join(maildir, "new")) == []
    records = _uidlist_records(maildir)
    assert records[-3:] == list(zip([5, 6, 7], names))
    assert len({b for _, b in records}) == len(records)
    mb.close()
    s.close()
    fresh = open_store(maildir, use_inotify=False)
    box = fresh.open("INBOX")
    assert list(box.uids()) == [1, 2, 3, 4, 5, 6, 7]
    assert box.read(6) == msg(201).replace(b"\n", b"\r\n")
    box.close()
    fresh.close()


def test_delivery_in_idle_numbered_by_another_process_meanwhile(maildir, monkeypatch):
    """Another process numbers and moves the delivered file between our
    listing of new/ and our taking the lock: we show its UID, never a second one."""
    from imapd.store.maildir import resync

    s, mb, fds = _idle_box(maildir)
    other = open_store(maildir, use_inotify=False)
    scan = resync._scan_dir
    seen = []

    def racing_scan(fd, *known):
        found = scan(fd, *known)
        if fd == mb._f.new_fd and not seen:
            seen.append(other.open("INBOX"))  # numbers the file and moves it to cur/
        return found

    monkeypatch.setattr(resync, "_scan_dir", racing_scan)
    name = deliver(maildir, msg(300))
    assert _wait_events(fds)
    mb.drain_watch()
    assert mb.sync().added == [5]
    assert list(seen[0].uids()) == [1, 2, 3, 4, 5]
    records = _uidlist_records(maildir)
    assert [u for u, b in records if b == name] == [5] and len(records) == 5
    seen[0].close()
    other.close()
    mb.close()
    s.close()


def test_delivery_in_idle_taken_to_cur_by_mutt_meanwhile(maildir, monkeypatch):
    """mutt moves the delivered file to cur/ (marking it seen) after our
    listing of new/: the message appears once, with mutt's flags."""
    from imapd.store.maildir import resync

    s, mb, fds = _idle_box(maildir)
    scan = resync._scan_dir
    moved = []

    def racing_scan(fd, *known):
        found = scan(fd, *known)
        if fd == mb._f.new_fd and found[0] and not moved:
            base = next(iter(found[0]))
            os.rename(os.path.join(maildir, "new", base), os.path.join(maildir, "cur", base + ":2,S"))
            moved.append(base)
        return found

    monkeypatch.setattr(resync, "_scan_dir", racing_scan)
    deliver(maildir, msg(400))
    assert _wait_events(fds)
    mb.drain_watch()
    assert mb.sync().added == [5]
    assert mb.flags(5) == {"\\Seen"}
    records = _uidlist_records(maildir)
    assert [u for u, b in records if b == moved[0]] == [5] and len(records) == 5
    time.sleep(0.05)
    mb.drain_watch()
    assert not mb.sync()
    mb.close()
    s.close()


def test_delivery_in_idle_reusing_a_recorded_name_gets_no_second_uid(maildir):
    """A file whose base name the list still records (its message was
    removed by someone else, the record not yet dropped) shows up in new/
    again: it must not be given a second UID in the list."""
    s, mb, fds = _idle_box(maildir)
    base = dict(_uidlist_records(maildir))[1]
    gone = [n for n in cur_files(maildir) if n.split(":")[0] == base]
    os.unlink(os.path.join(maildir, "cur", gone[0]))
    assert _wait_events(fds)
    mb.drain_watch()
    assert mb.sync().expunged == [1]
    deliver(maildir, msg(500), name=base)
    assert _wait_events(fds)
    mb.drain_watch()
    mb.sync()
    records = _uidlist_records(maildir)
    assert len({b for _, b in records}) == len(records)
    assert 1 not in mb.uids()
    mb.close()
    s.close()


def _deliver_in_idle(maildir, mb, fds, monkeypatch, n):
    """Deliver a message while `mb` IDLEs and sync: (the UIDs added, for each
    directory listed whether it was cur/)."""
    from imapd.store.maildir import resync

    listed = []
    scan = resync._scan_dir
    monkeypatch.setattr(resync, "_scan_dir", lambda fd, *known: listed.append(fd == mb._f.cur_fd) or scan(fd, *known))
    deliver(maildir, msg(n))
    assert _wait_events(fds)
    mb.drain_watch()
    added = mb.sync().added
    monkeypatch.setattr(resync, "_scan_dir", scan)
    return added, listed


def test_records_of_files_deleted_by_others_are_dropped(maildir, monkeypatch):
    """mutt deletes a message: the full listing that notices drops its
    record from the list (as Dovecot does), so the next delivery is again
    numbered from new/ alone -- unless the lock is busy, then it waits for
    a later listing and nobody is kept waiting."""
    s, mb, fds = _idle_box(maildir)
    records = dict(_uidlist_records(maildir))
    for uid in (1, 2):
        gone = [n for n in cur_files(maildir) if n.split(":")[0] == records[uid]][0]
        os.unlink(os.path.join(maildir, "cur", gone))
    busy = os.path.join(maildir, "dovecot-uidlist.lock")
    with open(busy, "w") as fh:
        fh.write("%d:%s" % (os.getppid(), os.uname().nodename))  # another live process holds it
    assert _wait_events(fds)
    mb.drain_watch()
    assert mb.sync().expunged == [1, 2]
    assert sorted(dict(_uidlist_records(maildir))) == [1, 2, 3, 4]  # left for later
    os.unlink(busy)
    os.rename(os.path.join(maildir, "cur", cur_files(maildir)[0]),
              os.path.join(maildir, "cur", cur_files(maildir)[0] + "F"))
    assert _wait_events(fds)
    mb.drain_watch()
    assert len(mb.sync().flags_changed) == 1
    assert sorted(dict(_uidlist_records(maildir))) == [3, 4]
    assert _deliver_in_idle(maildir, mb, fds, monkeypatch, 600) == ([5], [False])  # new/ alone was listed
    assert list(mb.uids()) == [3, 4, 5]
    mb.close()
    s.close()


def test_a_record_above_the_view_keeps_its_uid_when_the_listing_missed_its_file(maildir, monkeypatch):
    """readdir() may skip a file that someone renames while it runs (mutt
    setting a flag).  A record above every UID the view shows, whose file the
    listing did not see, stays in the list: the next listing finds the file
    under the UID it already has, not as a new message."""
    from imapd.store.maildir import resync

    s = open_store(maildir, use_inotify=False)
    for i in range(3):
        append(s, "INBOX", msg(i))
    mb = s.open("INBOX")
    mb.sync()
    other = open_store(maildir, use_inotify=False)  # another imapd appends message 4
    append(other, "INBOX", msg(4))
    other.close()
    hidden = dict(_uidlist_records(maildir))[4]
    scan = resync._scan_dir

    def skipping(fd, *known):
        found, dups = scan(fd, *known)
        return {b: i for b, i in found.items() if b != hidden}, dups

    monkeypatch.setattr(resync, "_scan_dir", skipping)
    assert mb.sync().added == []  # the listing skipped it
    monkeypatch.setattr(resync, "_scan_dir", scan)
    assert sorted(dict(_uidlist_records(maildir))) == [1, 2, 3, 4]
    assert mb.sync().added == [4]
    assert list(mb.uids()) == [1, 2, 3, 4]
    mb.close()
    s.close()


def test_the_record_of_the_newest_message_deleted_by_others_is_dropped(maildir, monkeypatch):
    """mutt deletes the newest message, one the view has shown: its record
    goes from the list although no UID above it is shown now (the view
    looked for the file again before calling it expunged), so the next
    delivery is again numbered from new/ alone."""
    s, mb, fds = _idle_box(maildir)
    newest = dict(_uidlist_records(maildir))[4]
    gone = [n for n in cur_files(maildir) if n.split(":")[0] == newest][0]
    os.unlink(os.path.join(maildir, "cur", gone))
    assert _wait_events(fds)
    mb.drain_watch()
    assert mb.sync().expunged == [4]
    assert sorted(dict(_uidlist_records(maildir))) == [1, 2, 3]
    assert _deliver_in_idle(maildir, mb, fds, monkeypatch, 700) == ([5], [False])  # new/ alone was listed
    mb.close()
    s.close()


def test_cache_loads_only_the_keys_asked_for(store, maildir, monkeypatch):
    import marshal

    for i in range(3):
        append(store, "INBOX", msg(i))
    mb = store.open("INBOX")
    for u in (1, 2, 3):
        mb.cache_put(u, "mime", ("tree", u))
        mb.cache_put(u, "envelope.wire", b"env%d" % u)
    mb.close()
    assert os.path.exists(os.path.join(maildir, "imapd.cache-mime"))
    loaded = []
    real = marshal.loads

    def spy(data, *a):
        loaded.append(data)
        return real(data, *a)

    s = open_store(maildir)
    mb = s.open("INBOX")
    monkeypatch.setattr(marshal, "loads", spy)
    assert mb.cache_get(2, "envelope.wire") == b"env2"
    # raw bytes need no unmarshalling, and the MIME trees' file was never opened
    assert loaded == [] and "mime" not in mb._columns
    monkeypatch.setattr(marshal, "loads", real)
    # an expunge and a new value; the unopened key survives
    mb.cache_put(1, "envelope.wire", b"new1")
    mb.store_flags([3], "add", ["\\Deleted"])
    mb.expunge()
    mb.close()
    s.close()
    s = open_store(maildir)
    mb = s.open("INBOX")
    assert mb.cache_get(1, "envelope.wire") == b"new1"
    assert mb.cache_get(2, "mime") == ("tree", 2)
    assert mb.cache_get(3, "mime") is None and mb.cache_get(3, "envelope.wire") is None
    mb.close()
    s.close()
    # a cache file of another format is ignored, then rewritten
    with open(os.path.join(maildir, "imapd.cache-envelope.wire"), "wb") as fh:
        fh.write(marshal.dumps(("imapd-cache", 2, 1, {1: ("x", 0.0, {})})))
    s = open_store(maildir)
    mb = s.open("INBOX")
    assert mb.cache_get(1, "envelope.wire") is None
    mb.cache_put(1, "envelope.wire", b"again")
    mb.close()
    s.close()
    s = open_store(maildir)
    mb = s.open("INBOX")
    assert mb.cache_get(1, "envelope.wire") == b"again"
    mb.close()
    s.close()


def test_warm_open_reads_names_only_when_a_file_is_needed(maildir):
    warm_inbox(maildir, 5)
    s = open_store(maildir)
    mb = s.open("INBOX")
    # adopted from imapd.index: names not read, answers from the arrays
    assert mb._bases_list is None
    assert _first_unseen_uid(mb) == 2 and mb.recent_count() == 0
    assert mb.status(["UNSEEN"]).unseen == 2 and mb.flags(3) == frozenset()
    assert mb._bases_list is None
    assert mb.read(4) == msg(4).replace(b"\n", b"\r\n")
    assert mb._bases_list is not None and len(mb._bases_list) == 5
    mb.close()
    s.close()


def test_damaged_index_names_fall_back_to_the_uidlist(maildir):
    warm_inbox(maildir, 4)
    path = os.path.join(maildir, "imapd.index")
    data = open(path, "rb").read()
    first = os.path.basename(cur_files(maildir)[0]).partition(":")[0].encode()
    at = data.index(first)
    # cut one name short (the segment no longer holds four names)
    with open(path, "wb") as fh:
        fh.write(data[:at] + data[at:].replace(b"\n", b"-", 1))
    s = open_store(maildir)
    mb = s.open("INBOX")
    assert list(mb.uids()) == [1, 2, 3, 4]
    for u in (1, 2, 3, 4):
        assert mb.read(u) == msg(u).replace(b"\n", b"\r\n")
    assert not mb.sync().expunged
    mb.close()
    s.close()


def test_recent_and_first_unseen_match_the_per_message_answers(store, maildir):
    for k in range(1, 6):
        append(store, "INBOX", msg(k), flags=["\\Seen"] if k != 4 else [])
    mb = store.open("INBOX")
    deliver(maildir, msg(6))
    mb.sync()
    expect_recent = sum(1 for u in mb.uids() if mb.is_recent(u))
    assert mb.recent_count() == expect_recent == 6
    assert _first_unseen_uid(mb) == 4
    ro = store.open("INBOX", readonly=True)
    assert ro.recent_count() == sum(1 for u in ro.uids() if ro.is_recent(u))
    ro.close()
    mb.close()


def test_new_files_are_numbered_in_delivery_time_order():
    """Plain string order is used for names that all start with a 10-digit
    time; any other name falls back to (time, name) order.  Both agree."""
    import random

    from imapd.store.maildir.resync import _maildir_sort_key, _sort_maildir_names

    rng = random.Random(5)
    odd = [[], ["123.x"], ["12345.6789.x"], ["abc"], ["1234567890"], ["\u00b2" * 10 + ".x"],
           ["\u0663" * 10 + ".x"], ["12345678901.x"], ["1234567890."], ["1234567890a.x"]]
    for _ in range(500):
        names = ["%010d.M%dP%d.h" % (rng.randint(10**9, 2 * 10**9), rng.randint(0, 999999), rng.randint(1, 99))
                 for _ in range(rng.randint(0, 6))] + rng.choice(odd)
        rng.shuffle(names)
        got = list(names)
        _sort_maildir_names(got)
        assert got == sorted(names, key=_maildir_sort_key)
    assert _maildir_sort_key("\u00b2\u00b2.x") == (0, "\u00b2\u00b2.x")  # isdigit() but no int()


def test_a_row_of_values_with_a_marshalled_one_reads_back_as_values(store, maildir):
    import marshal

    from imapd.store.maildir.cache import RUN_BYTES

    n = 40
    for i in range(n):
        append(store, "INBOX", msg(i))
    mb = store.open("INBOX")
    big = b"x" * (RUN_BYTES // 8)  # several spills to the run on the way
    for u in range(1, n + 1):
        mb.cache_put_row(u, [("mime", marshal.dumps(("tree", u, [1, 2])), True),
                             ("envelope.wire", b"env%d" % u + big, False)])
    assert mb.cache_get(7, "mime") == ("tree", 7, [1, 2])  # (still pending or in the run)
    mb.close()
    s = open_store(maildir)
    mb = s.open("INBOX")
    for u in range(1, n + 1):
        assert mb.cache_get(u, "mime") == ("tree", u, [1, 2])
        assert mb.cache_get(u, "envelope.wire") == b"env%d" % u + big
    mb.close()
    s.close()


def test_read_many_reads_as_read_up_to_does_whatever_happened_to_the_files(store, maildir):
    # FETCH 1:* BODY.PEEK[] reads through read_many: the same bytes as one
    # read_up_to at a time, for files renamed by another client, replaced,
    # gone, or too large, and the reading goes on after each
    names = [deliver(maildir, msg(n, b"body %d\n" % n * n), sub="cur", name=f"100000000{n}.M{n}P1.h:2,")
             for n in range(1, 7)]
    mb = store.open("INBOX")
    uids = list(mb.uids())
    want = {u: mb.read_up_to(u, 1 << 20) for u in uids}
    cur = os.path.join(maildir, "cur")
    os.rename(os.path.join(cur, names[1]), os.path.join(cur, names[1] + "S"))  # mutt marks it seen
    os.unlink(os.path.join(cur, names[3]))  # and deletes another
    replaced = msg(5, b"a new body\n")
    with open(os.path.join(cur, names[4] + ".tmp"), "wb") as f:
        f.write(replaced)
    os.utime(os.path.join(cur, names[4] + ".tmp"), (1_700_000_000, 1_700_000_000))
    os.rename(os.path.join(cur, names[4] + ".tmp"), os.path.join(cur, names[4]))
    got = list(mb.read_many(uids, os.path.getsize(os.path.join(cur, names[5])) - 1))
    assert got[0] == want[uids[0]] and got[1] == want[uids[1]] and got[2] == want[uids[2]]
    assert isinstance(got[3], NoSuchMessage)
    assert got[4] == replaced.replace(b"\n", b"\r\n") != want[uids[4]]
    assert got[5] is None  # larger than the limit: streamed by the caller
    assert got[:5] == [mb.read_up_to(u, 1 << 20) if i != 3 else got[3] for i, u in enumerate(uids[:5])]
    mb.close()
