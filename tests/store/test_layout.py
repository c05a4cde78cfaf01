import os

import pytest

from imapd.store import open_store
from imapd.store.base import InvalidMailboxName, NoSuchMailbox, NoSuchMessage
from imapd.store.maildir import layout

from maildir_helpers import append, msg

HOSTILE = [
    "",
    "..",
    "../etc",
    "a/../../b",
    "/etc/passwd",
    "a/b",
    "a\x00b",
    "a\nb",
    "a\rb",
    "a\x7fb",
    "tab\tx",
    ".hidden",
    "a..b",
    "a.",
    ".",
    "a.b.",
    "a..",
    "A.~x",
    "~root",
    "x" * 300,
    "a\\b",
    "*",
    "a%",
    "\u2028",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_refused_before_disk(store, maildir, name):
    before = sorted(os.listdir(maildir))
    for op in (store.create, store.delete, store.open, store.status, store.subscribe, store.exists):
        with pytest.raises(InvalidMailboxName) as ei:
            op(name)
        assert ei.value.code == "CANNOT"
    with pytest.raises(InvalidMailboxName):
        store.rename("INBOX", name)
    assert sorted(os.listdir(maildir)) == before


def test_name_mapping():
    assert layout.dir_for_name("INBOX", ".") == ""
    assert layout.dir_for_name("inbox", ".") == ""
    assert layout.dir_for_name("A.B", ".") == ".A.B"
    assert layout.dir_for_name("Entwürfe.x&y", ".") == ".Entw&APw-rfe.x&-y"
    assert layout.dir_for_name("inbox.sub", ".") == ".INBOX.sub"
    assert layout.name_for_dir(".Entw&APw-rfe.x&-y", ".") == "Entwürfe.x&y"
    assert layout.name_for_dir(".bad&", ".") is None
    assert layout.name_for_dir(".a..b", ".") is None
    assert layout.name_for_dir(".INBOX", ".") is None
    assert layout.name_for_dir(".a.b", None) is None
    assert layout.name_for_dir(".ab", None) == "ab"


def test_unicode_folder_on_disk(store, maildir):
    store.create("Entwürfe")
    assert os.path.isdir(os.path.join(maildir, ".Entw&APw-rfe", "cur"))
    assert os.path.isfile(os.path.join(maildir, ".Entw&APw-rfe", "maildirfolder"))
    assert "Entwürfe" in [m.name for m in store.list_mailboxes()]


def test_symlinked_folder_not_served(store, maildir, tmp_path):
    outside = tmp_path / "outside"
    for sub in ("cur", "new", "tmp"):
        (outside / sub).mkdir(parents=True)
    (outside / "cur" / "1.x.y:2,").write_bytes(msg(1))
    os.symlink(outside, os.path.join(maildir, ".Evil"))
    assert "Evil" not in [m.name for m in store.list_mailboxes()]
    assert not store.exists("Evil")
    with pytest.raises(NoSuchMailbox):
        store.open("Evil")
    with pytest.raises(NoSuchMailbox):
        append(store, "Evil", b"x\r\n")
    assert os.listdir(outside / "cur") == ["1.x.y:2,"]


def test_symlinked_message_not_served(store, maildir, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"root:x:0:0\n")
    os.symlink(secret, os.path.join(maildir, "cur", "1.M1P1.h:2,"))
    with open(os.path.join(maildir, "cur", "2.M2P2.h:2,"), "wb") as fh:
        fh.write(msg(2))
    mb = store.open("INBOX")
    assert len(mb.uids()) == 1  # the symlink is not a message
    assert b"root:" not in mb.read(mb.uids()[0])
    mb.close()


def test_symlinked_cur_dir_not_followed(maildir, tmp_path):
    s = open_store(maildir)
    s.create("F")
    s.close()
    outside = tmp_path / "o"
    outside.mkdir()
    (outside / "1.M1.h:2,").write_bytes(b"secret\n")
    fdir = os.path.join(maildir, ".F")
    os.rmdir(os.path.join(fdir, "cur"))
    os.symlink(outside, os.path.join(fdir, "cur"))
    s = open_store(maildir)
    with pytest.raises((NoSuchMailbox, NoSuchMessage, OSError)):
        mb = s.open("F")
        for u in mb.uids():
            mb.read(u)
    s.close()
