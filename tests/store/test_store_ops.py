import os
import subprocess
import sys

import pytest

from imapd.store import open_store
from imapd.store.base import InvalidMailboxName, MailboxExists, NoSuchMailbox, ReadOnlyStore, StoreError

from maildir_helpers import append, cur_files, deliver, msg


def names(store):
    return {m.name: (m.selectable, m.has_children) for m in store.list_mailboxes()}


def test_open_creates_root(maildir):
    s = open_store(maildir)
    for sub in ("cur", "new", "tmp"):
        assert os.path.isdir(os.path.join(maildir, sub))
    assert names(s) == {"INBOX": (True, False)}
    s.close()


def test_create_with_parents_and_listing(store, maildir):
    store.create("A.B.C")
    assert names(store) == {
        "INBOX": (True, False),
        "A": (True, True),
        "A.B": (True, True),
        "A.B.C": (True, False),
    }
    with pytest.raises(MailboxExists):
        store.create("A.B.C")
    for inbox in ("INBOX", "inbox", "InBoX"):
        with pytest.raises(MailboxExists):
            store.create(inbox)
    store.create("inbox.Sub")
    assert os.path.isdir(os.path.join(maildir, ".INBOX.Sub", "cur"))
    assert names(store)["INBOX"] == (True, True)
    assert not [n for n in os.listdir(maildir) if n.startswith("imapd-create")]


def test_implied_parent_from_other_tools(store, maildir):
    os.makedirs(os.path.join(maildir, ".X.Y", "cur"))
    assert names(store)["X"] == (False, True)
    assert not store.exists("X")
    with pytest.raises(NoSuchMailbox):
        store.open("X")


def test_delete_rules(store, maildir):
    with pytest.raises(StoreError) as ei:
        store.delete("INBOX")
    assert ei.value.code == "CANNOT"
    with pytest.raises(NoSuchMailbox):
        store.delete("Nope")
    store.create("P.Q")
    append(store, "P", msg(1))
    store.delete("P")  # has children: mail goes, name stays as \Noselect
    assert names(store)["P"] == (False, True)
    assert store.exists("P.Q")
    with pytest.raises(StoreError) as ei:
        store.delete("P")  # already \Noselect with children
    assert ei.value.code in ("CANNOT", "NONEXISTENT")
    store.delete("P.Q")
    assert "P" not in names(store) and "P.Q" not in names(store)
    store.create("P")  # re-created: new UIDVALIDITY, above the old one
    assert not [n for n in os.listdir(maildir) if n.startswith("imapd-trashed")]


def test_recreated_mailbox_gets_new_uidvalidity(store):
    store.create("R")
    append(store, "R", msg(1))
    v1 = store.status("R").uidvalidity
    store.delete("R")
    store.create("R")
    append(store, "R", msg(1))
    assert store.status("R").uidvalidity > v1


def test_rename_with_children_keeps_uidvalidity(store, maildir):
    store.create("Old.Kid")
    append(store, "Old", msg(1))
    v = store.status("Old").uidvalidity
    store.rename("Old", "New")
    assert set(names(store)) == {"INBOX", "New", "New.Kid"}
    assert store.status("New").uidvalidity == v
    assert store.status("New").messages == 1
    with pytest.raises(NoSuchMailbox):
        store.rename("Old", "Other")
    store.create("Taken")
    with pytest.raises(MailboxExists):
        store.rename("New", "Taken")
    with pytest.raises(StoreError):
        store.rename("New", "New.Inside")


def test_rename_inbox(store, maildir):
    append(store, "INBOX", msg(1), ["\\Seen", "Kw"])
    append(store, "INBOX", msg(2))
    deliver(maildir, msg(3))
    inbox_v = store.status("INBOX").uidvalidity
    store.rename("INBOX", "Archive")
    st = store.status("INBOX")
    assert st.messages == 0 and st.uidvalidity == inbox_v and st.uidnext >= 3
    assert cur_files(maildir) == [] and os.listdir(os.path.join(maildir, "new")) == []
    mb = store.open("Archive")
    assert mb.status().messages == 3
    assert mb.flags(1) == {"\\Seen", "Kw"}
    mb.close()
    r = append(store, "INBOX", msg(4))
    assert r.uid >= 3  # INBOX UIDs are never reused


def test_subscriptions(store, maildir):
    store.subscribe("A")
    store.subscribe("Entwürfe.x")
    store.subscribe("inbox")
    store.subscribe("A")
    assert sorted(store.subscriptions()) == ["A", "Entwürfe.x", "INBOX"]
    raw = open(os.path.join(maildir, "subscriptions"), encoding="utf-8").read()
    assert raw == "V\t2\n\nA\nEntw&APw-rfe\tx\nINBOX\n"  # byte for byte what Dovecot 2.3 writes
    store.unsubscribe("A")
    assert sorted(store.subscriptions()) == ["Entwürfe.x", "INBOX"]


def test_subscriptions_v1_file_read_and_kept(store, maildir):
    with open(os.path.join(maildir, "subscriptions"), "w") as fh:
        fh.write("Sent\nEntw&APw-rfe\n")
    assert store.subscriptions() == ["Sent", "Entwürfe"]
    store.subscribe("Trash")
    assert open(os.path.join(maildir, "subscriptions")).read().startswith("Sent\n")


def test_flat_store(maildir):
    s = open_store(maildir, "flat")
    assert s.delimiter is None
    s.create("Sent")
    with pytest.raises(InvalidMailboxName):
        s.create("A.B")
    os.makedirs(os.path.join(maildir, ".Deep.Er", "cur"))
    assert {m.name for m in s.list_mailboxes()} == {"INBOX", "Sent"}
    s.close()


def test_inbox_only_store(maildir):
    s = open_store(maildir, "inbox-only")
    os.makedirs(os.path.join(maildir, ".Other", "cur"))
    assert [m.name for m in s.list_mailboxes()] == ["INBOX"]
    for call in (lambda: s.create("X"), lambda: s.delete("X"), lambda: s.rename("X", "Y")):
        with pytest.raises(StoreError) as ei:
            call()
        assert ei.value.code == "CANNOT"
    with pytest.raises(NoSuchMailbox):
        s.open("Other")
    append(s, "INBOX", msg(1))
    s.close()


def _snapshot(root):
    out = {}
    for dp, dn, fn in os.walk(root):
        for n in dn + fn:
            p = os.path.join(dp, n)
            st = os.lstat(p)
            out[p] = (st.st_mtime_ns, st.st_size)
    return out


def test_readonly_store_writes_nothing(maildir):
    s = open_store(maildir)
    append(s, "INBOX", msg(1), ["\\Seen"])
    s.create("F")
    s.close()
    deliver(maildir, msg(2))  # unnumbered mail in new/
    before = _snapshot(maildir)
    os.chmod(maildir, 0o555)
    try:
        ro = open_store(maildir, "readonly")
        assert ro.readonly
        mb = ro.open("INBOX")
        assert mb.readonly and list(mb.uids()) == [1, 2]
        assert mb.read(2).startswith(b"From:")
        for call in (
            lambda: mb.store_flags([1], "add", ["\\Flagged"]),
            lambda: mb.expunge(),
            lambda: append(ro, "INBOX", msg(3)),
            lambda: ro.create("X"),
            lambda: ro.subscribe("X"),
            lambda: mb.copy_to([1], "F"),
        ):
            with pytest.raises(ReadOnlyStore):
                call()
        assert mb.watch_fds() in ([], mb.watch_fds())
        mb.close()
        assert ro.status("INBOX").messages == 2
        ro.close()
    finally:
        os.chmod(maildir, 0o755)
    assert _snapshot(maildir) == before


READONLY_CHILD = r"""
import os, sys
sys.path.insert(0, sys.argv[2])
os.setgid(65534); os.setuid(65534)
from imapd.store import open_store
s = open_store(sys.argv[1], "readonly")
mb = s.open("INBOX")
assert len(mb.uids()) == 2, list(mb.uids())
assert mb.read(mb.uids()[0]).startswith(b"From:")
mb.close(); s.close()
print("ok")
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to nobody")
def test_readonly_store_as_unprivileged_user():
    import shutil
    import tempfile

    base = tempfile.mkdtemp(prefix="imapd-ro-")  # pytest's tmp dir is root-only
    try:
        _readonly_as_nobody(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _readonly_as_nobody(tmp: str) -> None:
    import pathlib

    tmp_path = pathlib.Path(tmp)
    root = tmp_path / "ro"
    s = open_store(str(root))
    append(s, "INBOX", msg(1))
    s.close()
    deliver(str(root), msg(2))
    os.chmod(tmp_path, 0o755)
    for dp, dn, fn in os.walk(root):
        os.chmod(dp, 0o755)
        for n in fn:
            os.chmod(os.path.join(dp, n), 0o644)
    before = _snapshot(str(root))
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", READONLY_CHILD, str(root), repo], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
    assert _snapshot(str(root)) == before
