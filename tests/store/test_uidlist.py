import os
import shutil

from imapd.store import open_store
from imapd.store.maildir.uidlist import UidList

from maildir_helpers import append, msg

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


def _dirfd(path):
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


def _put(maildir, golden_name, as_name):
    os.makedirs(maildir, exist_ok=True)
    shutil.copy(os.path.join(GOLDEN, golden_name), os.path.join(maildir, as_name))


def test_read_v3_golden(maildir):
    _put(maildir, "dovecot-uidlist.v3", "dovecot-uidlist")
    fd = _dirfd(maildir)
    ul = UidList(fd)
    assert ul.load()
    assert ul.version == 3 and ul.uidvalidity == 1275660208
    assert ul.guid == "3085f01b7f11094c501100008c4a11c1"
    assert ul.hdr_extra == ["Xfuture"]
    assert list(ul.uids) == [25006, 25017, 25020]
    assert ul.bases[0] == "1276528487.M364837P9451.kurkku,S=1355,W=1394"
    assert ul.bases[2] == "1276533080.M1P1.kurkku"  # full name in list -> base
    assert ul.ext_value(1, "W") == "2481"
    assert ul.ext_value(2, "G") == "0123456789abcdef0123456789abcdef"
    assert ul.next_uid == 25022
    os.close(fd)


def test_rewrite_exact_format(maildir):
    _put(maildir, "dovecot-uidlist.v3", "dovecot-uidlist")
    fd = _dirfd(maildir)
    ul = UidList(fd)
    ul.load()
    old_mtime = os.stat(os.path.join(maildir, "dovecot-uidlist")).st_mtime_ns
    ul.rewrite(drop={25017})
    with open(os.path.join(maildir, "dovecot-uidlist")) as fh:
        text = fh.read()
    assert text == (
        "3 V1275660208 N25022 G3085f01b7f11094c501100008c4a11c1 Xfuture\n"
        "25006 :1276528487.M364837P9451.kurkku,S=1355,W=1394\n"
        "25020 W100 G0123456789abcdef0123456789abcdef :1276533080.M1P1.kurkku\n"
    )
    assert os.stat(os.path.join(maildir, "dovecot-uidlist")).st_mtime_ns > old_mtime
    assert not os.path.exists(os.path.join(maildir, "dovecot-uidlist.tmp"))
    os.close(fd)


def test_rewrite_in_chunks_writes_every_record_once(maildir, monkeypatch):
    """A rewrite goes out a few thousand records at a time (a whole 100,000
    would be 10 MB of line strings at once): across chunk boundaries, every
    record is written once, in order."""
    from imapd.store.maildir import uidlist_write as ulmod

    os.makedirs(maildir, exist_ok=True)
    fd = _dirfd(maildir)
    ul = UidList(fd)
    ul.uidvalidity, ul.guid = 1700000000, "0" * 32
    bases = [f"17000000{k:02d}.M{k}P1.host" for k in range(1, 12)]
    ul.set_records(list(range(1, 12)), bases, [None, "W7"] + [None] * 9)
    monkeypatch.setattr(ulmod, "_REWRITE_CHUNK", 4)
    ul.rewrite(drop={5})
    with open(os.path.join(maildir, "dovecot-uidlist")) as fh:
        lines = fh.read().splitlines()
    assert lines[0] == "3 V1700000000 N12 G" + "0" * 32
    assert lines[1:] == [f"{k} :{b}" if k != 2 else f"2 W7 :{b}" for k, b in zip(range(1, 12), bases) if k != 5]
    again = UidList(fd)
    assert again.load() and list(again.uids) == [k for k in range(1, 12) if k != 5] and again.bases == ul.bases
    os.close(fd)


def test_tail_read_finds_the_last_uid_behind_long_records(maildir):
    # the header's N can lag behind the records (another writer appended);
    # the last UID comes from the end of the file, however long its records
    os.makedirs(maildir, exist_ok=True)
    records = "".join(f"{k} :17000000{k:04d}.M{k}P1.host\n" for k in range(1, 301))
    long_ext = "X" + "y" * 10_000
    records += f"301 {long_ext} :1700000301.M301P1.host\n302 {long_ext} :1700000302.M302P1.host\n"
    with open(os.path.join(maildir, "dovecot-uidlist"), "w") as fh:
        fh.write("3 V1700000000 N5 G" + "0" * 32 + "\n" + records)
    fd = _dirfd(maildir)
    ul = UidList(fd)
    ul.refresh_tail()
    assert not ul.loaded and ul.next_uid == 303
    assert ul.append(["1700000400.M1P1.new"]) == [303]
    os.close(fd)


def test_append_keeps_header_and_appends(maildir):
    _put(maildir, "dovecot-uidlist.v3", "dovecot-uidlist")
    fd = _dirfd(maildir)
    ul = UidList(fd)
    ul.refresh_tail()  # no full read needed to append
    assert not ul.loaded and ul.next_uid == 25022
    assert ul.append(["1300000000.M1P1.new", "1300000001.M1P1.new"], [None, "W5"]) == [25022, 25023]
    with open(os.path.join(maildir, "dovecot-uidlist")) as fh:
        lines = fh.read().splitlines()
    assert lines[0] == "3 V1275660208 N25022 G3085f01b7f11094c501100008c4a11c1 Xfuture"
    assert lines[-2:] == ["25022 :1300000000.M1P1.new", "25023 W5 :1300000001.M1P1.new"]
    # another reader sees next uid past the appended records
    ul2 = UidList(fd)
    ul2.load()
    assert ul2.next_uid == 25024 and ul2.uid_of("1300000001.M1P1.new") == 25023
    # incremental refresh picks up only the tail
    ul.append(["1300000002.M1P1.new"])
    assert ul2.refresh() and list(ul2.uids)[-1] == 25024
    os.close(fd)


def test_append_of_many_records_is_written_whole(maildir):
    """A cold SELECT appends 100,000 records in blocks: every line is
    whole, in order, and a fresh reader gets them all, extension fields too."""
    _put(maildir, "dovecot-uidlist.v3", "dovecot-uidlist")
    fd = _dirfd(maildir)
    ul = UidList(fd)
    ul.load()
    names = ["%d.M%dP1.bulk" % (1300000000 + k, k) for k in range(20000)]
    exts = [("W%d" % k if k % 7000 == 3 else None) for k in range(20000)]
    uids = ul.append(names, exts)
    assert uids == list(range(25022, 45022))
    ul2 = UidList(fd)
    ul2.load()
    assert list(ul2.uids)[3:] == uids and ul2.bases[3:] == names
    assert [ul2.ext_value(3 + k, "W") for k in (3, 7003, 14003, 4)] == ["3", "7003", "14003", None]
    assert ul2.next_uid == 45022 and not ul2.broken
    assert list(ul.uids) == list(ul2.uids) and ul.bases == ul2.bases
    os.close(fd)


def test_read_v1_and_upgrade_on_write(maildir, store):
    _put(maildir, "dovecot-uidlist.v1", "dovecot-uidlist")
    for name in ("1100000001.1234.host:2,S", "1100000002.1235.host:2,"):
        with open(os.path.join(maildir, "cur", name), "wb") as fh:
            fh.write(msg(1))
    mb = store.open("INBOX")
    assert list(mb.uids()) == [3, 5]
    assert mb.uidvalidity == 1100000000
    assert "\\Seen" in mb.flags(3)
    r = append(store, "INBOX", b"x\r\n")
    assert r.uid == 7 and r.uidvalidity == 1100000000
    with open(os.path.join(maildir, "dovecot-uidlist")) as fh:
        lines = fh.read().splitlines()
    # upgraded to version 3 on the first write; the new record is appended
    assert lines[0].startswith("3 V1100000000 N7 G")
    assert lines[-1].startswith("7 :")
    mb.close()


def test_courier_migration_keeps_uids(maildir):
    os.makedirs(os.path.join(maildir, "cur"))
    _put(maildir, "courierimapuiddb", "courierimapuiddb")
    for name in ("1200000001.M1P1.courier:2,S", "1200000002.M2P2.courier:2,", "1200000009.M9P9.courier"):
        sub = "new" if ":" not in name else "cur"
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
        with open(os.path.join(maildir, sub, name), "wb") as fh:
            fh.write(msg(1))
    s = open_store(maildir)
    mb = s.open("INBOX")
    assert mb.uidvalidity == 1200000000
    assert list(mb.uids()) == [40, 42, 43]
    with open(os.path.join(maildir, "dovecot-uidlist")) as fh:
        assert fh.readline().startswith("3 V1200000000 N")
    mb.close()
    s.close()


def test_uids_never_reused_after_expunge_of_last(store, maildir):
    for i in range(3):
        append(store, "INBOX", msg(i))
    mb = store.open("INBOX")
    mb.store_flags([3], "add", ["\\Deleted"])
    assert mb.expunge() == [3]
    mb.sync()
    with open(os.path.join(maildir, "dovecot-uidlist")) as fh:
        text = fh.read()
    assert " N4 " in text.splitlines()[0] + " "
    assert ":" in text and "3 :" not in text
    assert append(store, "INBOX", msg(9)).uid == 4
    mb.close()


def test_corrupt_record_line_does_not_change_uidvalidity(store, maildir):
    append(store, "INBOX", msg(1))
    append(store, "INBOX", msg(2))
    path = os.path.join(maildir, "dovecot-uidlist")
    with open(path, "a") as fh:
        fh.write("garbage line\n1 :dup\n")
    v = open(path).readline().split()[1]
    s = open_store(maildir)
    mb = s.open("INBOX")
    assert "V%d" % mb.uidvalidity == v
    assert list(mb.uids()) == [1, 2]
    mb.close()
    s.close()


def test_lost_uidlist_recovered_from_index(store, maildir):
    for i in range(3):
        append(store, "INBOX", msg(i))
    mb = store.open("INBOX")
    v, uids = mb.uidvalidity, list(mb.uids())
    mb.close()
    os.unlink(os.path.join(maildir, "dovecot-uidlist"))
    s = open_store(maildir)
    mb = s.open("INBOX")
    assert mb.uidvalidity == v and list(mb.uids()) == uids
    mb.close()
    s.close()


def test_new_uidvalidity_when_truly_lost(store, maildir):
    append(store, "INBOX", msg(1))
    mb = store.open("INBOX")
    v = mb.uidvalidity
    mb.close()
    for name in ("dovecot-uidlist", "imapd.index"):
        os.unlink(os.path.join(maildir, name))
    s = open_store(maildir)
    mb = s.open("INBOX")
    assert mb.uidvalidity > v
    assert list(mb.uids()) == [1]
    mb.close()
    s.close()


def test_mbsync_uid_in_name_is_ignored(store, maildir):
    append(store, "INBOX", msg(1))
    with open(os.path.join(maildir, "cur", "1500000000.M1P1.h,U=999:2,S"), "wb") as fh:
        fh.write(msg(2))
    mb = store.open("INBOX")
    assert list(mb.uids()) == [1, 2]
    mb.close()
