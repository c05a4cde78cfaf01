import os
import shutil

import pytest

from imapd.store.base import StoreLimit
from imapd.store.maildir.flags import FlagCodec, split_filename
from imapd.store.maildir.keywords import Keywords

from maildir_helpers import append, msg

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


@pytest.fixture
def kwdir(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY)
    yield tmp_path, fd
    os.close(fd)


def test_keywords_file_parse(kwdir):
    path, fd = kwdir
    shutil.copy(os.path.join(GOLDEN, "dovecot-keywords"), path / "dovecot-keywords")
    kw = Keywords(fd)
    assert kw.defined() == ["$Junk", "$NonJunk", "Work"]
    assert kw.letter_of("$junk") == "a"  # case-insensitive, like Dovecot
    assert kw.letter_of("Work") == "d"
    assert kw.name_of_letter("c") is None


def test_keywords_create_and_limit(kwdir):
    path, fd = kwdir
    kw = Keywords(fd)
    kw.create(["Alpha", "Beta"])
    assert (path / "dovecot-keywords").read_text() == "0 Alpha\n1 Beta\n"
    assert not (path / "dovecot-keywords.lock").exists()
    kw.create(["k%d" % i for i in range(24)])
    assert len(kw.defined()) == 26
    with pytest.raises(StoreLimit) as ei:
        kw.create(["one-too-many"])
    assert ei.value.code == "LIMIT"


def test_flags_roundtrip(kwdir):
    path, fd = kwdir
    (path / "dovecot-keywords").write_text("0 Junk\n2 Work\n")
    codec = FlagCodec(Keywords(fd))
    assert codec.flags("2,FRS") == {"\\Flagged", "\\Answered", "\\Seen"}
    assert codec.flags("2,DPTa") == {"\\Draft", "$Forwarded", "\\Deleted", "Junk"}
    assert codec.flags("") == frozenset()
    assert codec.flags("1,FS") == frozenset()  # only "2," carries flags
    # unknown letters (X, unmapped b) and a second flag set are preserved
    info = codec.build_info("2,SXb,extra", frozenset({"\\Flagged", "Work"}))
    assert info == "2,FXbc,extra"
    assert codec.flags(info) == {"\\Flagged", "Work"}
    assert codec.build_info("2,", frozenset({"\\Seen", "\\Draft", "\\Deleted", "\\Answered", "\\Flagged"})) == "2,DFRST"
    assert split_filename("1.M1.h,S=5:2,S") == ("1.M1.h,S=5", "2,S")


def test_forwarded_maps_to_P_and_keyword(store, maildir):
    append(store, "INBOX", msg(1))
    mb = store.open("INBOX")
    mb.store_flags([1], "add", ["$Forwarded"])
    assert any(n.endswith(":2,P") for n in os.listdir(os.path.join(maildir, "cur")))
    assert "$Forwarded" in mb.flags(1)
    mb.store_flags([1], "remove", ["$forwarded"])
    assert mb.flags(1) == frozenset()
    mb.close()


def test_store_keywords_written_under_lock(store, maildir):
    append(store, "INBOX", msg(1))
    mb = store.open("INBOX")
    res = mb.store_flags([1], "add", ["Important", "\\Seen"])
    assert res[1] == {"Important", "\\Seen"}
    assert open(os.path.join(maildir, "dovecot-keywords")).read() == "0 Important\n"
    assert [n.split(":")[1] for n in os.listdir(os.path.join(maildir, "cur"))] == ["2,Sa"]
    assert "Important" in mb.keywords()
    mb.close()


def test_27th_keyword_is_limit(store):
    append(store, "INBOX", msg(1))
    mb = store.open("INBOX")
    mb.store_flags([1], "add", ["k%d" % i for i in range(26)])
    assert not mb.can_create_keywords()
    with pytest.raises(StoreLimit):
        mb.store_flags([1], "add", ["extra"])
    mb.close()
