"""A warm SELECT answers from imapd.index's compact columns: the info suffixes
stay one byte per message (ids into a table) until a command needs them as
strings, and the first unseen message is found in those bytes.  These tests
check that the answers agree with the per-message ones, on a warm open and
after every kind of change: our own STORE and EXPUNGE, new mail, and changes
made by other programs."""

from __future__ import annotations

import marshal
import os
import time
from array import array

from imapd.selected import SelectedView
from imapd.store import open_store
from imapd.store.maildir import index as idxmod

from maildir_helpers import cur_files_by_uid, deliver, msg, warm_inbox



def _first_unseen_uid(mb) -> int:
    """The UID at first_unseen_index(), 0 for none (as SELECT's UNSEEN numbers it)."""
    i = mb.first_unseen_index()
    return mb.uids()[i] if i >= 0 else 0

def _file_of(maildir: str, k: int) -> str:
    """The path of message msg(k) in cur/."""
    for name in os.listdir(os.path.join(maildir, "cur")):
        path = os.path.join(maildir, "cur", name)
        with open(path, "rb") as fh:
            if fh.read() == msg(k):
                return path
    raise FileNotFoundError(k)


def _first_unseen_by_flags(mb) -> int:
    return next((u for u in mb.uids() if "\\Seen" not in mb.flags(u)), 0)


def test_warm_open_finds_the_first_unseen_in_the_index_header(maildir):
    warm_inbox(maildir, 6, unseen=(4, 6))
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    assert mb._synced_dirs is not None  # adopted from the index
    assert mb._flags_src is not None and mb._info_ids is None  # the flags are still in the file
    assert _first_unseen_uid(mb) == 4
    assert mb._flags_src is not None  # answered from the header: nothing read
    assert _first_unseen_by_flags(mb) == 4  # (reads the ids, builds the list)
    assert mb._flags_src is None and mb._infos_list is not None and mb._info_ids is None
    assert _first_unseen_uid(mb) == 4
    mb.close()
    s.close()


def _rewrite_header(path: str, change) -> None:
    """Rewrite an imapd.index file with `change` applied to its header (a dict)."""
    with open(path, "rb") as fh:
        data = fh.read()
    nl = data.index(b"\n")
    magic, version, order, hlen = data[:nl].split(b" ")
    hdr = marshal.loads(data[nl + 1 : nl + 1 + int(hlen)])
    change(hdr)
    new = marshal.dumps(hdr)
    with open(path, "wb") as fh:
        fh.write(b"%s %s %s %d\n" % (magic, version, order, len(new)) + new + data[nl + 1 + int(hlen):])


def test_an_index_that_does_not_say_the_first_unseen_is_searched_for_it(maildir):
    """An index written without the first unseen position (by imapd before
    it kept one there): the info ids are read and searched, and no list
    of every message's suffix is built; the index is written again, with it."""
    warm_inbox(maildir, 6, unseen=(4, 6))
    _rewrite_header(os.path.join(maildir, idxmod.INDEX_NAME), lambda hdr: hdr.pop("unseen"))
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    assert mb._synced_dirs is not None and mb._flags_src is not None
    assert _first_unseen_uid(mb) == 4
    assert mb._flags_src is None and mb._infos_list is None and mb._info_ids is not None
    assert _first_unseen_by_flags(mb) == 4
    mb.close()  # (writes the index again, with the position)
    s.close()
    fd = os.open(maildir, os.O_RDONLY)
    try:
        d = idxmod.load_index(fd)
        assert d is not None and d.first_unseen == 3
        d.close()
    finally:
        os.close(fd)


def test_warm_open_with_every_message_seen(maildir):
    warm_inbox(maildir, 3, unseen=())
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    assert mb._infos_list is None
    assert _first_unseen_uid(mb) == 0 == _first_unseen_by_flags(mb)
    mb.close()
    s.close()


def test_first_unseen_follows_store_expunge_and_new_mail(maildir):
    warm_inbox(maildir, 5)
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    assert _first_unseen_uid(mb) == 2
    mb.store_flags([2], "add", ["\\Seen"])
    assert _first_unseen_uid(mb) == 3 == _first_unseen_by_flags(mb)
    mb.store_flags([3], "add", ["\\Seen"])
    assert _first_unseen_uid(mb) == 0 == _first_unseen_by_flags(mb)
    deliver(maildir, msg(6))
    assert mb.sync().added == [6]
    assert _first_unseen_uid(mb) == 6 == _first_unseen_by_flags(mb)
    mb.store_flags([1], "remove", ["\\Seen"])
    mb.store_flags([1], "add", ["\\Deleted"])
    assert _first_unseen_uid(mb) == 1
    assert mb.expunge() == [1]
    mb.sync()
    assert _first_unseen_uid(mb) == 6 == _first_unseen_by_flags(mb)
    mb.close()
    s.close()
    # the index written at close answers the next warm open the same way
    for _ in range(2):  # the directories aged: one full scan (new/ -> cur/), then a trusted snapshot
        old = time.time() - 10
        for sub in ("cur", "new"):
            os.utime(os.path.join(maildir, sub), (old, old))
        s = open_store(maildir, use_inotify=False)
        s.open("INBOX").close()
        s.close()
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    assert mb._infos_list is None
    assert list(mb.uids()) == [2, 3, 4, 5, 6]
    assert _first_unseen_uid(mb) == 6 == _first_unseen_by_flags(mb)
    mb.close()
    s.close()


def test_first_unseen_after_changes_by_other_programs(maildir):
    warm_inbox(maildir, 4)
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    assert mb._infos_list is None
    # a mail client marks message 2 seen by renaming its file, another deletes 3
    names = cur_files_by_uid(maildir)
    os.rename(os.path.join(maildir, "cur", names[1]), os.path.join(maildir, "cur", names[1] + "S"))
    os.unlink(os.path.join(maildir, "cur", names[2]))
    changes = mb.sync()
    assert changes.flags_changed == [2] and changes.expunged == [3]
    assert _first_unseen_uid(mb) == 0 == _first_unseen_by_flags(mb)
    mb.close()
    s.close()
    # an open after the change does not trust the stale snapshot
    os.rename(os.path.join(maildir, "cur", names[0]), os.path.join(maildir, "cur", names[0].replace(":2,S", ":2,")))
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    assert list(mb.uids()) == [1, 2, 4]
    assert _first_unseen_uid(mb) == 1 == _first_unseen_by_flags(mb)
    mb.close()
    s.close()


def test_selected_view_shares_the_uids_until_either_side_changes(maildir):
    warm_inbox(maildir, 3)
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    view = SelectedView(mb, False)
    lent = view.uids
    assert lent is mb.uids()  # lent at SELECT: no copy of 100,000 UIDs
    deliver(maildir, msg(4))
    deliver(maildir, msg(5))
    out = view.report_changes(True)
    assert b"* 5 EXISTS\r\n" in out and list(view.uids) == [1, 2, 3, 4, 5]
    assert list(mb.uids()) == [1, 2, 3, 4, 5]
    # neither the store's sync nor the view's announcement changed the array
    # they shared: each made its own before adding to it
    assert list(lent) == [1, 2, 3]
    assert view.uids is not mb.uids()
    os.unlink(_file_of(maildir, 1))
    assert view.report_changes(True).startswith(b"* 1 EXPUNGE\r\n")
    assert list(view.uids) == [2, 3, 4, 5] and view.seq_of(2) == 1
    assert list(mb.uids()) == [2, 3, 4, 5]
    view.close()
    s.close()


def test_a_warm_select_leaves_the_uids_in_the_index_file(maildir):
    """SELECT says how many messages there are and names none: the UIDs
    are read when a command first needs them."""
    warm_inbox(maildir, 5)
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    view = SelectedView(mb, False)
    assert len(view) == 5 and mb.recent_count() == 0 and mb.first_unseen_index() == 1
    view.report_changes(True)  # (the sync after the command: nothing changed)
    assert mb._uids_a is None
    assert list(view.uids) == [1, 2, 3, 4, 5] and view.seq_of(4) == 4
    view.close()
    s.close()


def test_a_view_that_has_not_read_its_uids_announces_what_changed_before(maildir):
    """Another program deletes a message and delivers one before any command
    needed the UIDs: the view still numbers the deletion from what it was
    told at SELECT."""
    warm_inbox(maildir, 5)
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    view = SelectedView(mb, False)
    os.unlink(_file_of(maildir, 2))
    deliver(maildir, msg(6))
    out = view.report_changes(True)
    assert out.startswith(b"* 2 EXPUNGE\r\n") and b"* 5 EXISTS\r\n" in out
    assert list(view.uids) == [1, 3, 4, 5, 6] and list(mb.uids()) == [1, 3, 4, 5, 6]
    view.close()
    s.close()


def test_a_promise_of_uids_holds_when_the_uids_are_lent_meanwhile(maildir):
    warm_inbox(maildir, 3)
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    count, take = mb.uids_later()
    assert count == 3 and list(mb.uids()) == [1, 2, 3]  # lent again, in full
    deliver(maildir, msg(4))
    assert mb.sync().added == [4] and list(mb.uids()) == [1, 2, 3, 4]
    assert list(take()) == [1, 2, 3]  # as promised
    mb.close()
    s.close()


def test_an_own_expunge_before_the_view_read_its_uids(maildir):
    warm_inbox(maildir, 4)
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    view = SelectedView(mb, False)
    mb.store_flags([3], "add", ["\\Deleted"])
    assert mb.expunge() == [3]
    assert view.report_changes(True).startswith(b"* 3 EXPUNGE\r\n")
    assert list(view.uids) == [1, 2, 4] and len(view) == 3
    view.close()
    s.close()


def test_uids_that_can_no_longer_be_read_fail_the_command_not_the_session(maildir):
    """Only imapd writes imapd.index, by replacing it whole; should another
    program cut it short under an open mailbox, the command that needs the
    UIDs is refused with a code, and the next open rebuilds the index."""
    import pytest

    from imapd.store.base import StoreError

    warm_inbox(maildir, 3)
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    view = SelectedView(mb, False)
    os.truncate(os.path.join(maildir, idxmod.INDEX_NAME), 100)
    with pytest.raises(StoreError) as caught:
        view.seq_of(2)
    assert caught.value.code == "UNAVAILABLE"
    view.close()
    s.close()
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    assert list(mb.uids()) == [1, 2, 3]
    mb.close()
    s.close()


def _segment_offsets(path: str) -> dict[str, tuple[int, int]]:
    """(offset, length) of each segment of an imapd.index file."""
    with open(path, "rb") as fh:
        data = fh.read()
    nl = data.index(b"\n")
    hlen = int(data[:nl].split(b" ")[3])
    hdr = marshal.loads(data[nl + 1 : nl + 1 + hlen])
    at = nl + 1 + hlen
    out = {}
    for name, ln in zip(idxmod._SEGMENTS, hdr["segments"]):
        out[name] = (at, ln)
        at += ln
    return out


def test_index_with_an_info_id_outside_its_table_is_rebuilt(maildir):
    """The ids are checked when first read, not by every SELECT: the command
    that needs the flags is refused with a code, the index is deleted, and
    the next open rebuilds it from the file names."""
    import pytest

    from imapd.store.base import StoreError

    warm_inbox(maildir, 3)
    path = os.path.join(maildir, "imapd.index")
    at, ln = _segment_offsets(path)["infoids"]
    assert ln == 3  # one byte per message
    with open(path, "r+b") as fh:
        fh.seek(at + 1)
        fh.write(b"\xff")
    fd = os.open(maildir, os.O_RDONLY)
    try:
        d = idxmod.load_index(fd)
        assert d is not None
        with pytest.raises(idxmod.IndexCorrupt):
            d.flag_columns()
        d.close()
        assert idxmod.load_index(fd, names=False) is None  # (reads everything now)
    finally:
        os.close(fd)
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    assert _first_unseen_uid(mb) == 2  # (from the header)
    with pytest.raises(StoreError) as caught:
        mb.flags(1)
    assert caught.value.code == "UNAVAILABLE"
    with pytest.raises(StoreError):
        mb.flags(2)  # (and every later command on this view)
    assert not os.path.exists(path)
    mb._index_dirty = True  # (as any change would leave it)
    mb.close()  # the index is not written from a view that cannot read its flags, and close succeeds
    s.close()
    assert not os.path.exists(path)
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    assert list(mb.uids()) == [1, 2, 3]
    assert _first_unseen_uid(mb) == 2 == _first_unseen_by_flags(mb)
    assert mb.flags(1) == {"\\Seen"} and mb.flags(2) == frozenset()
    mb.close()
    s.close()


def test_load_index_reads_every_column(maildir):
    warm_inbox(maildir, 4)
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    sizes = [mb.size(u) for u in (1, 2, 3, 4)]
    dates = [mb.internal_date(u) for u in (1, 2, 3, 4)]
    flags = [mb.flags(u) for u in (1, 2, 3, 4)]
    mb.close()  # the sizes and dates learnt are written to the index
    s.close()
    fd = os.open(maildir, os.O_RDONLY)
    try:
        d = idxmod.load_index(fd)
        assert d is not None and d.infos is None and d.info_ids is None and d.innew is None
        assert d.first_unseen == 1  # (message 2: warm_inbox leaves the others seen)
        assert d.uids is None and d.uid_ends == (1, 4)  # the first and the last: for SELECT
        assert d.wsize is None and d.fd >= 0  # read on demand, from this very file
        assert list(d.uid_array()) == [1, 2, 3, 4] and d.fd >= 0
        wsize, mtime, modseq = d.meta()
        assert d.wsize is wsize and list(wsize) == sizes and list(mtime) == dates
        ids, innew = d.flag_columns()
        assert bytes(innew) == b"\0\0\0\0" and len(ids) == 4 and len(modseq) == 4
        infos = d.info_list()
        assert d.infos is infos and d.info_ids is None
        assert ["S" in i for i in infos] == [f == {"\\Seen"} for f in flags]
        assert d.names() == [n.partition(":")[0] for n in cur_files_by_uid(maildir)]
    finally:
        d.close()
        os.close(fd)


def test_index_keeps_names_that_are_not_ascii(tmp_path):
    """File names are bytes to the kernel: UTF-8 and undecodable ones (held
    as surrogate escapes) survive the index, across the 8,192-name blocks
    it is written in."""
    names = ["%d.M%dP1.h%s" % (1700000000 + k, k, "\u00e9" if k % 3 else "\udcff") for k in range(9000)]
    n = len(names)
    d = idxmod.IndexData(
        uidvalidity=7, highestmodseq=3, uidlist_ident=(1, 2, 3, 4), dirs=(5, 6),
        uids=array("I", range(1, n + 1)), bases=names, infos=["2,S"] * n, innew=bytearray(n),
        wsize=array("q", [5]) * n, mtime=array("d", [1.5]) * n, modseq=array("Q", [2]) * n,
    )
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        idxmod.save_index(fd, d)
        e = idxmod.load_index(fd)
        assert e is not None and list(e.uid_array()) == list(range(1, n + 1))
        assert e.names() == names
        assert list(e.meta()[0]) == [5] * n and e.info_list() == ["2,S"] * n
        e.close()
    finally:
        os.close(fd)
