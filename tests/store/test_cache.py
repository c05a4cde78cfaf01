"""The per-key cache files (imapd/store/maildir/cache.py): sorted main part,
appended tail, torn records, mtime validity, block search."""

import os

import pytest

from imapd.store.maildir import cache as C


@pytest.fixture
def dirfd(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY)
    yield fd
    os.close(fd)


def reopen(dirfd, key="k", uv=7):
    return C.CacheColumn(dirfd, key, uv)


def test_values_survive_a_reopen_raw_and_marshalled(dirfd):
    col = reopen(dirfd)
    col.put(3, 1.5, b"three")
    col.put(1, 1.0, ("tree", [1, 2]))
    col.flush([1, 3], final=True)
    col.close()
    col = reopen(dirfd)
    assert col.get(1, 1.0) == ("tree", [1, 2])
    assert col.get(3, 1.5) == b"three"
    assert col.get(2, 1.0) is None
    # another mtime: the message file was replaced, the entry is void
    assert col.get(3, 9.0) is None
    # unknown mtime on either side matches
    assert col.get(3, C._ANY_TIME) == b"three"


def test_small_additions_are_appended_then_compacted(dirfd, tmp_path):
    col = reopen(dirfd)
    for u in range(1, 201):
        col.put(u, float(u), b"v%d" % u * 50)
    col.flush(range(1, 300), final=True)
    ino = os.stat(tmp_path / "imapd.cache-k").st_ino
    col.put(500, 5.0, b"late")
    col.flush(range(1, 600), final=True)
    # appended in place: same file, value readable now and after a reopen
    assert os.stat(tmp_path / "imapd.cache-k").st_ino == ino
    assert col.get(500, 5.0) == b"late"
    col.close()
    col = reopen(dirfd)
    assert 500 in col.tail and col.get(500, 5.0) == b"late" and col.get(7, 7.0) == b"v7" * 50
    # a tail larger than a quarter of the main part (and 1 MB) is merged in
    for u in range(1000, 1400):
        col.put(u, 1.0, os.urandom(4000))
    col.flush(None, final=True)
    assert not col.tail and list(col.uids)[-1] == 1399 and 500 in col.uids
    assert col.get(500, 5.0) == b"late" and col.get(200, 200.0) == b"v200" * 50


def test_torn_tail_record_is_ignored(dirfd, tmp_path):
    col = reopen(dirfd)
    col.put(1, 1.0, b"one")
    col.flush([1], final=True)
    col.put(2, 2.0, b"two")
    col.flush([1, 2], final=True)
    col.close()
    path = tmp_path / "imapd.cache-k"
    with open(path, "ab") as fh:
        fh.write(C._REC.pack(3, 3.0, 1000, 0) + b"short")  # a writer killed mid-record
    col = reopen(dirfd)
    assert col.get(1, 1.0) == b"one" and col.get(2, 2.0) == b"two" and col.get(3, 3.0) is None


@pytest.mark.parametrize("garbage", [b"", b"IMAPDC4\n", b"IMAPDC4\n" + b"\xff" * 64, b"\x00" * 100])
def test_damaged_or_foreign_files_are_ignored(dirfd, tmp_path, garbage):
    (tmp_path / "imapd.cache-k").write_bytes(garbage)
    col = reopen(dirfd)
    assert col.get(1, 1.0) is None
    col.put(1, 1.0, b"x")
    col.flush([1], final=True)
    assert reopen(dirfd).get(1, 1.0) == b"x"


def test_other_uidvalidity_is_ignored(dirfd):
    col = reopen(dirfd, uv=7)
    col.put(1, 1.0, b"x")
    col.flush([1], final=True)
    assert reopen(dirfd, uv=8).get(1, 1.0) is None


def test_dropped_and_absent_uids_leave_at_the_rewrite(dirfd):
    col = reopen(dirfd)
    for u in (1, 2, 3):
        col.put(u, 1.0, b"v")
    col.flush([1, 2, 3], final=True)
    col.drop(2)
    assert col.get(2, 1.0) is None
    col.put(4, 1.0, b"w" * (C.FLUSH_BYTES + 1))  # forces a rewrite
    col.flush([1, 4], final=True)
    assert list(col.uids) == [1, 4]


def test_find_raw_never_matches_across_two_values(dirfd):
    col = reopen(dirfd)
    col.put(1, 1.0, b"abc kum")
    col.put(2, 1.0, b"quat xyz")  # "kumquat" only across the boundary
    col.put(3, 1.0, b"a kumquat b kumquat")
    col.put(4, 1.0, b"")
    col.put(5, 1.0, b"kumquat")
    col.put(6, 1.0, ("not", "raw"))
    col.flush([1, 2, 3, 4, 5, 6], final=True)
    assert col.find_raw(b"kumquat") == {3, 5}
    assert col.find_raw(b"zzz") == set()
    assert reopen(dirfd, key="none").find_raw(b"x") is None


def _put_like_a_fetch(col, uids, value, mtime=1.0):
    """Put values as FETCH 1:* does: flushing whenever the column asks to."""
    for u in uids:
        if col.put(u, mtime, value(u)):
            col.flush(None)


def test_ascending_values_go_to_a_run_then_one_file(dirfd, tmp_path):
    col = reopen(dirfd)
    value = lambda u: b"%d:" % u + b"x" * 3000
    _put_like_a_fetch(col, range(1, 1001), value)
    # beyond RUN_BYTES the values left memory for the run; no cache file yet
    assert len(col.run_uids) > 0 and col.pending_bytes < C.RUN_BYTES
    assert not os.path.exists(tmp_path / "imapd.cache-k")
    # everything readable meanwhile: run, pending and absent entries
    assert col.get(1, 1.0) == value(1) and col.get(1000, 1.0) == value(1000)
    assert col.get(1, 2.0) is None  # another mtime
    got = list(col.get_many(range(1, 1003), [1.0] * 1002))
    assert got == [value(u) for u in range(1, 1001)] + [None, None]
    col.flush(range(1, 1001), final=True)
    assert not col.run_uids and col.run_fd < 0 and list(col.uids) == list(range(1, 1001))
    col.close()
    assert os.listdir(tmp_path) == ["imapd.cache-k"]  # no temporary file left behind
    col = reopen(dirfd)
    assert not col.tail and list(col.get_many(range(1, 1001), [1.0] * 1000)) == [value(u) for u in range(1, 1001)]


def test_a_run_follows_an_existing_main_part(dirfd):
    col = reopen(dirfd)
    for u in range(1, 11):
        col.put(u, 1.0, b"old%d" % u)
    col.flush(None, final=True)
    col.close()
    col = reopen(dirfd)
    _put_like_a_fetch(col, range(100, 2100), lambda u: b"new%d" % u + b"y" * 2000)
    assert col.run_uids
    col.flush(None, final=True)
    col.close()
    col = reopen(dirfd)
    assert col.get(3, 1.0) == b"old3" and col.get(2099, 1.0) == b"new2099" + b"y" * 2000
    assert len(col.uids) == 2010 and not col.tail


def test_a_run_with_gone_or_out_of_order_entries_is_merged(dirfd):
    col = reopen(dirfd)
    _put_like_a_fetch(col, range(1, 1001), lambda u: b"a" * 2000)
    assert col.run_uids
    # a value put out of order (below the run) cannot join it: one merge
    col.put(500, 2.0, b"replaced")
    col.drop(7)
    col.flush([u for u in range(1, 1001) if u != 9], final=True)
    assert not col.run_uids
    col.close()
    col = reopen(dirfd)
    assert col.get(500, 2.0) == b"replaced" and col.get(500, 1.0) is None
    assert col.get(7, 1.0) is None and col.get(9, 1.0) is None and col.get(8, 1.0) == b"a" * 2000
    assert len(col.uids) == 998


def test_get_many_over_a_stretch_of_the_main_part_answers_as_get_does(dirfd):
    """A warm FETCH 1:* (or n:m) reads a stretch of the main part a block at
    a time; whatever the stretch holds, each UID gets what `get` gives it."""
    from array import array

    n = 2 * C.BLOCK + 300
    col = reopen(dirfd)
    for u in range(1, n + 1):
        col.put(u * 2, float(u), b"value %d " % u + b"x" * (u % 97))
    col.flush(None, final=True)
    col.close()
    uids = array("I", range(2, 2 * n + 1, 2))
    times = array("d", (float(u) for u in range(1, n + 1)))

    def check(ask, at):
        col = reopen(dirfd)
        want = [col.get(u, t) for u, t in zip(ask, at)]
        col.close()
        col = reopen(dirfd)
        assert list(col.get_many(ask, at)) == want
        assert list(col.get_many(list(ask), at)) == want
        col.close()
        return want

    assert check(uids, times) == [b"value %d " % u + b"x" * (u % 97) for u in range(1, n + 1)]
    assert check(uids[700:2200], times[700:2200])[0] == b"value 701 " + b"x" * (701 % 97)
    replaced = array("d", times)
    replaced[1500] = 5.0  # one file replaced since: no value for it, the rest as before
    got = check(uids, replaced)
    assert got[1500] is None and got[1499] is not None and got[1501] is not None
    unknown = array("d", times)
    unknown[3] = C._ANY_TIME  # a time not known yet matches
    assert check(uids, unknown)[3] == b"value 4 " + b"x" * 4
    assert check(uids[5:10], times[6:11]) == [None] * 5  # times of other messages
    # not consecutive in the main part, or not all there
    assert check(array("I", [2, 6, 8]), array("d", [1.0, 3.0, 4.0])) == [b"value 1 x", b"value 3 xxx", b"value 4 xxxx"]
    assert check(array("I", [2, 3]), array("d", [1.0, 1.0])) == [b"value 1 x", None]
    # a marshalled value in the stretch
    col = reopen(dirfd)
    col.put(2 * n + 2, 9.0, ("a", "tree"))
    col.flush(None, final=True)
    col.close()
    got = check(array("I", [2 * n, 2 * n + 2]), array("d", [float(n), 9.0]))
    assert got[1] == ("a", "tree")


def test_get_many_when_the_file_is_rewritten_between_blocks(dirfd):
    from array import array

    n = 2 * C.BLOCK + 10
    col = reopen(dirfd)
    for u in range(1001, 1001 + n):
        col.put(u, 1.0, b"v%d" % u)
    col.flush(None, final=True)
    col.close()
    col = reopen(dirfd)
    it = col.get_many(array("I", range(1001, 1001 + n)), array("d", [1.0] * n))
    assert [next(it) for _ in range(C.BLOCK + 5)] == [b"v%d" % u for u in range(1001, 1006 + C.BLOCK)]
    # more new entries than the tail may hold, below the others: this process
    # rewrites the file, and every value after them moves
    col.put(1, 1.0, b"w" * 700_000)
    col.put(2, 1.0, b"w" * 700_000)
    col.flush(None, final=True)
    assert col.generation > 0 and list(col.uids)[:3] == [1, 2, 1001]
    assert list(it) == [b"v%d" % u for u in range(1006 + C.BLOCK, 1001 + n)]


def test_get_many_sees_a_replaced_file_or_a_dropped_entry_in_a_later_block(dirfd):
    """The view's mtimes are live: a message file found replaced (or its
    entry dropped) while a FETCH 1:* runs gets no stale value further on."""
    from array import array

    n = 3 * C.BLOCK
    col = reopen(dirfd)
    for u in range(1, n + 1):
        col.put(u, 1.0, b"v%d" % u)
    col.flush(None, final=True)
    col.close()
    col = reopen(dirfd)
    live = array("d", [1.0] * n)
    it = col.get_many(array("I", range(1, n + 1)), live)
    assert next(it) == b"v1"
    live[C.BLOCK + 7] = 2.0  # message C.BLOCK + 8 was read meanwhile: another file
    col.drop(2 * C.BLOCK + 3)
    got = [b"v1"] + list(it)
    want = [b"v%d" % u for u in range(1, n + 1)]
    want[C.BLOCK + 7] = None
    want[2 * C.BLOCK + 2] = None
    assert got == want
