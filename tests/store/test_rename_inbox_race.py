"""RENAME INBOX must never lose mail, even when the new name appears meanwhile."""

from __future__ import annotations

import os

import pytest

from imapd.store.base import MailboxExists
from imapd.store.maildir.store import MaildirStore
from maildir_helpers import append, msg


class RacingStore(MaildirStore):
    """A store where another program creates `.Taken` (with mail in it) just
    before the final rename of RENAME INBOX: the worst moment for a race."""

    def new_uidvalidity(self) -> int:
        path = os.path.join(self.root, ".Taken", "cur")
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "1.other:2,"), "wb") as f:
            f.write(b"Subject: theirs\n\nx\n")
        return super().new_uidvalidity()


def test_rename_inbox_race_puts_messages_back(tmp_path):
    root = str(tmp_path / "Maildir")
    store = RacingStore(root, "maildir", True)
    for i in range(3):
        append(store, "INBOX", msg(i))
    with pytest.raises(MailboxExists):
        store.rename("INBOX", "Taken")
    box = store.open("INBOX")
    assert len(box.uids()) == 3
    assert all(box.read(u).startswith(b"From:") or b"Subject" in box.read(u) for u in box.uids())
    box.close()
    assert os.listdir(os.path.join(root, ".Taken", "cur")) == ["1.other:2,"]
    store.close()


def test_rename_inbox_onto_a_symlink_is_refused(tmp_path):
    root = str(tmp_path / "Maildir")
    outside = tmp_path / "outside"
    outside.mkdir()
    store = MaildirStore(root, "maildir", True)
    append(store, "INBOX", msg(1))
    os.symlink(outside, os.path.join(root, ".Evil"))
    with pytest.raises(MailboxExists):
        store.rename("INBOX", "Evil")
    box = store.open("INBOX")
    assert len(box.uids()) == 1
    box.close()
    assert list(outside.iterdir()) == []
    store.close()
