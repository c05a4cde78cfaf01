"""A warm open leaves sizes, dates and MODSEQs in imapd.index until a command
asks for them (SELECT needs none).  These tests run the same changes on two
copies of one Maildir, one with the columns read at open and one with them
read afterwards, and check that both end with the same values; that columns
read after the index file was replaced come from the file the view was
loaded from; and that nothing is left open."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import pytest

from imapd.store import open_store

from maildir_helpers import cur_files, deliver, msg, warm_inbox

T_NEW = 1_700_000_000.0  # the date given to mail delivered during a test


def _warm_inbox(maildir: str, n: int) -> None:
    """n messages (2 and 3 unseen), sizes and dates known, an index written,
    and directories old enough for the next open to adopt it."""
    warm_inbox(maildir, n, date_of=lambda k: T_NEW - 1000 + k, learn=True)


def _store_flags(maildir: str, mb) -> None:
    mb.store_flags([2], "add", ["\\Flagged"])
    mb.store_flags([4], "remove", ["\\Seen"])


def _expunge(maildir: str, mb) -> None:
    mb.store_flags([1, 3], "add", ["\\Deleted"])
    assert mb.expunge() == [1, 3]


def _new_mail(maildir: str, mb) -> None:
    name = deliver(maildir, msg(9), name="1700000000.M1P1.testhost")
    os.utime(os.path.join(maildir, "new", name), (T_NEW, T_NEW))
    assert mb.sync().added == [6]


def _file_of(maildir: str, k: int) -> str:
    """The path of message msg(k) in cur/."""
    for name in cur_files(maildir):
        path = os.path.join(maildir, "cur", name)
        with open(path, "rb") as fh:
            if fh.read() == msg(k):
                return path
    raise FileNotFoundError(k)


def _foreign_changes(maildir: str, mb) -> None:
    four = _file_of(maildir, 4)
    os.rename(four, four.replace(":2,", ":2,D"))  # adds the draft flag
    os.unlink(_file_of(maildir, 5))
    changes = mb.sync()
    assert changes.flags_changed == [4] and 5 in changes.expunged


def _everything(maildir: str, mb) -> None:
    _store_flags(maildir, mb)
    _new_mail(maildir, mb)
    _expunge(maildir, mb)
    _foreign_changes(maildir, mb)


def _state(mb) -> tuple:
    uids = list(mb.uids())
    return (
        uids,
        [mb.size(u) for u in uids],
        [mb.internal_date(u) for u in uids],
        [mb.modseq(u) for u in uids],
        mb.highestmodseq,
    )


def _run(maildir: str, eager: bool, change) -> tuple:
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    assert mb._meta_src is not None and mb._wsize_a is None  # warm: not read yet
    if eager:
        mb._load_meta()
    change(maildir, mb)
    after = _state(mb)
    mb.close()
    s.close()
    # and the index written at close holds the same values
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    reopened = _state(mb)
    mb.close()
    s.close()
    return after, reopened


@pytest.mark.parametrize("change", [_store_flags, _expunge, _new_mail, _foreign_changes, _everything])
def test_columns_read_late_agree_with_columns_read_at_open(tmp_path, change):
    first = str(tmp_path / "eager")
    second = str(tmp_path / "lazy")
    for maildir in (first, second):  # (the index is tied to its uidlist's inode: no copy)
        _warm_inbox(maildir, 5)
    eager = _run(first, True, change)
    lazy = _run(second, False, change)
    assert lazy == eager
    assert -1 not in eager[0][1]


def test_columns_come_from_the_index_the_view_was_loaded_from(maildir):
    _warm_inbox(maildir, 4)
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    before = (mb.size(1), mb.internal_date(1))
    s.close()
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    assert mb._wsize_a is None
    hms = mb.highestmodseq
    # another session changes message 1 and writes a new index (rename)
    other = open_store(maildir, use_inotify=False)
    ob = other.open("INBOX")
    ob.store_flags([1], "add", ["\\Flagged"])
    new_modseq = ob.modseq(1)
    ob.close()
    other.close()
    assert new_modseq > hms
    # this view has not synced: it still shows the index it adopted
    assert mb.modseq(1) <= hms and (mb.size(1), mb.internal_date(1)) == before
    changes = mb.sync()
    assert changes.flags_changed == [1] and mb.modseq(1) > hms
    mb.close()
    s.close()


def test_the_index_file_is_closed_once_names_and_columns_are_read(maildir):
    _warm_inbox(maildir, 3)
    s = open_store(maildir, use_inotify=False)
    mb = s.open("INBOX")
    src = mb._meta_src
    assert src is not None and src.fd >= 0
    mb.size(2)  # columns
    assert mb._meta_src is None and src.fd >= 0  # the names are still to be read
    mb.read(2)  # names
    assert src.fd == -1
    mb.close()
    # closed without reading either: nothing stays open
    mb = s.open("INBOX")
    src = mb._meta_src
    mb.close()
    assert src.fd == -1
    s.close()


def test_a_mailbox_dropped_without_close_leaves_its_folder(maildir):
    _warm_inbox(maildir, 2)
    s = open_store(maildir, use_inotify=False)
    one = s.open("INBOX")
    two = s.open("INBOX")
    folder = one._f
    assert folder is two._f and len(folder.boxes) == 2 and one in folder.boxes
    assert set(map(id, folder.boxes)) == {id(one), id(two)}
    del one
    gc.collect()
    assert len(folder.boxes) == 1 and list(folder.boxes) == [two]
    two.close()
    assert not folder.boxes
    s.close()


def test_array_is_imported_without_collections():
    # as a session starts (no `os` yet): neither collections nor the abstract
    # classes load, and array stays unregistered
    code = (
        "import sys\n"
        "import imapd.arrays\n"
        "assert 'array' not in sys.modules  # (until first used)\n"
        "assert imapd.arrays.array('I', [5])[0] == 5\n"
        "assert 'array' in sys.modules and 'collections' not in sys.modules\n"
        "assert 'collections.abc' not in sys.modules and '_collections_abc' not in sys.modules\n"
        "import array, collections, collections.abc\n"
        "assert collections.OrderedDict and collections.abc.MutableSequence\n"
        "assert not isinstance(array.array('I'), collections.abc.MutableSequence)\n"
    )
    # where `os` loaded the abstract classes already, array registers as usual
    registered = (
        "import os, sys\n"
        "from imapd.arrays import array\n"
        "assert 'array' in sys.modules and 'collections' not in sys.modules\n"
        "import array, collections.abc\n"
        "assert isinstance(array.array('I'), collections.abc.MutableSequence)\n"
    )
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run([sys.executable, "-S", "-c", registered], check=True, env={**os.environ, "PYTHONPATH": here})
    subprocess.run([sys.executable, "-S", "-c", code], check=True, env={**os.environ, "PYTHONPATH": here})


def test_arrays_has_array_and_nothing_else_on_demand():
    import array

    from imapd import arrays

    assert arrays.array is array.array
    with pytest.raises(AttributeError):
        arrays.vector  # noqa: B018 - only `array` is made on demand


def test_at_first_call_puts_the_real_function_in_its_place():
    from _bisect import bisect_left as real

    from imapd.arrays import at_first_call

    namespace: dict = {}
    namespace["bisect_left"] = stand_in = at_first_call("_bisect", "bisect_left", namespace)
    assert stand_in([1, 3, 5], 4) == 2  # answers the first call itself
    assert namespace["bisect_left"] is real  # and is out of the way for the next
    assert namespace["bisect_left"]([1, 3, 5], 5) == 2
    # a function of a module inside a package
    from imapd.store.maildir.message import to_wire

    namespace["to_wire"] = at_first_call("imapd.store.maildir.message", "to_wire", namespace)
    assert namespace["to_wire"](b"a\nb") == to_wire(b"a\nb") and namespace["to_wire"] is to_wire
