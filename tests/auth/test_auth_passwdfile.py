"""PasswdFileBackend with real bcrypt hashes (low cost, for speed)."""

from __future__ import annotations

import io
import os
import pwd
import sys
import time
from pathlib import Path

import bcrypt
import pytest

from imapd.auth.base import AuthUnavailable, User
from imapd.auth.passwdfile import (
    PasswdFileBackend,
    hash_password,
    parse_passwd_file,
    read_new_password,
)

FAST = 4  # bcrypt cost for tests


def h(password: str, rounds: int = FAST) -> str:
    return hash_password(password, rounds=rounds)


@pytest.fixture
def passwd(tmp_path):
    """Write a passwd-file and return a backend for it."""

    def make(text: str, **kwargs) -> PasswdFileBackend:
        path = tmp_path / "passwd"
        path.write_text(text)
        path.chmod(0o600)
        return PasswdFileBackend(str(path), **kwargs)

    return make


def test_good_password(passwd):
    backend = passwd(f"alice:{h('wonder land')}:1001:1002:/home/alice::\n")
    user = backend.authenticate("alice", "wonder land")
    assert user == User("alice", 1001, 1002, "/home/alice", "/home/alice/Maildir")
    assert backend.last_failure is None
    assert backend.problems == []


def test_bad_password_and_unknown_user(passwd):
    backend = passwd(f"alice:{h('right')}:1001:1001:/home/alice\n")
    assert backend.authenticate("alice", "wrong") is None
    assert backend.last_failure == "bad password"
    assert backend.authenticate("bob", "right") is None
    assert backend.last_failure == "unknown user"
    assert backend.authenticate("Alice", "right") is None  # names are exact
    assert backend.authenticate("alice", "") is None


def test_per_user_and_default_mail_location(passwd):
    backend = passwd(
        f"a@example.org:{h('pw')}:2000:2000::/var/vmail/%d/%n:\n"
        f"b:{h('pw')}:2000:2000:/srv/b\n",
        mail_location="%h/mail",
    )
    assert backend.authenticate("a@example.org", "pw").mail_location == "/var/vmail/example.org/a"
    assert backend.authenticate("b", "pw").mail_location == "/srv/b/mail"


def test_mail_location_needing_a_missing_home_is_unavailable(passwd):
    backend = passwd(f"a:{h('pw')}:2000:2000::\n", mail_location="~/Maildir")
    with pytest.raises(AuthUnavailable, match="home"):
        backend.authenticate("a", "pw")


def test_referral(passwd):
    backend = passwd(
        f"moved:{h('pw')}::::: referral=imap://new.example.org:143/\n"
        f"both:{h('pw')}:3000:3000:/home/both::referral=imap://other.example.org/\n"
    )
    user = backend.authenticate("moved", "pw")
    assert user is not None
    assert user.referral == "imap://new.example.org:143/"
    assert user.uid == -1 and user.mail_location == ""
    both = backend.authenticate("both", "pw")
    assert both.referral == "imap://other.example.org/" and both.uid == 3000
    # A wrong password reveals no referral.
    assert backend.authenticate("moved", "nope") is None


def test_locked_accounts(passwd):
    backend = passwd(
        f"l1:!{h('pw')}:1001:1001:/h\n"
        f"l2:*:1001:1001:/h\n"
        "l3::1001:1001:/h\n"
    )
    for name in ("l1", "l2", "l3"):
        assert backend.authenticate(name, "pw") is None
        assert backend.last_failure == "account locked"


def test_malformed_lines_are_ignored_with_a_reason(passwd):
    good = h("pw")
    text = "\n".join(
        [
            "# a comment",
            "",
            f"ok:{good}:1001:1001:/home/ok",
            f"root:{good}:0:0:/root",  # 3
            "nohash:plaintext:1001:1001:/h",  # 4
            f"noids:{good}",  # 5
            f"badid:{good}:abc-not-a-user:1001:/h",  # 6
            f"relhome:{good}:1001:1001:home/x",  # 7
            f"extra:{good}:1001:1001:/h::quota=1G",  # 8
            f"ok:{h('other')}:1002:1002:/home/evil",  # 9: duplicate
            f"badref:{good}:1001:1001:/h::referral=http://x/",  # 10
            f"bad/name:{good}:1001:1001:/h",  # 11
        ]
    )
    backend = passwd(text)
    seen: list[str] = []
    backend.on_problem = seen.append
    assert backend.authenticate("ok", "pw").home == "/home/ok"
    assert backend.authenticate("ok", "other") is None  # the duplicate did not win
    path = backend.path
    lines = {int(p.split(":")[1]): p for p in backend.problems}
    assert sorted(lines) == [4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert all(p.startswith(path + ":") and p.endswith("line ignored") for p in backend.problems)
    assert "must not be 0" in lines[4]
    assert "not bcrypt" in lines[5]
    assert "uid and gid are required" in lines[6]
    assert "abc-not-a-user" in lines[7]
    assert "not an absolute path" in lines[8]
    assert "quota=1G" in lines[9]
    assert "already defined on line 3" in lines[10]
    assert "imap://" in lines[11]
    assert "invalid user name" in lines[12]
    assert seen == backend.problems
    for name in ("root", "nohash", "noids", "badid", "relhome", "extra", "badref"):
        assert backend.authenticate(name, "pw") is None


def test_ids_by_name_and_dovecot_prefix(passwd):
    nobody = pwd.getpwnam("nobody")
    backend = passwd(f"v:{{BLF-CRYPT}}{h('pw')}:nobody:nogroup:/h\n")
    user = backend.authenticate("v", "pw")
    assert user.uid == nobody.pw_uid
    assert user.gid > 0


def test_hashes_from_other_tools_and_72_byte_rule(passwd):
    long_password = "é" * 50  # 100 bytes: bcrypt only ever used the first 72
    other_tool_hash = bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(FAST, prefix=b"2a")).decode()
    backend = passwd(f"x:{other_tool_hash}:1001:1001:/h\n")
    assert backend.authenticate("x", long_password) is not None


def test_missing_or_world_writable_file_is_unavailable(tmp_path):
    with pytest.raises(AuthUnavailable, match="cannot read passwd-file"):
        PasswdFileBackend(str(tmp_path / "missing")).authenticate("a", "b")
    path = tmp_path / "passwd"
    path.write_text(f"a:{h('b')}:1001:1001:/h\n")
    path.chmod(0o666)
    with pytest.raises(AuthUnavailable, match="writable by everyone"):
        PasswdFileBackend(str(path)).authenticate("a", "b")


def test_unknown_user_costs_as_much_as_a_wrong_password(passwd):
    """The dummy check uses the file's usual cost, so timing does not reveal names."""
    backend = passwd(f"alice:{h('right', rounds=10)}:1001:1001:/h\n")
    backend.load()

    def timed(name: str) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            assert backend.authenticate(name, "wrong") is None
            best = min(best, time.perf_counter() - start)
        return best

    wrong_password = timed("alice")
    unknown_user = timed("nobody-here")
    assert unknown_user > wrong_password * 0.5
    assert unknown_user < wrong_password * 2


def test_parse_passwd_file_directly():
    entries, problems = parse_passwd_file(f"a:{h('x')}:5:6:/h:/m/%u:\n# c\nbroken\n", "f")
    assert list(entries) == ["a"] and entries["a"].uid == 5 and entries["a"].mail_location == "/m/%u"
    assert problems == ["f:3: uid and gid are required; line ignored"]
    with pytest.raises(AttributeError):
        entries["a"].uid = 0  # type: ignore[misc]


GOOD_HASH = "$2b$04$" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ."


@pytest.mark.parametrize("pwhash, ok", [
    (GOOD_HASH, True),
    ("$2a$" + GOOD_HASH[4:], True),
    ("$2y$" + GOOD_HASH[4:], True),
    ("{BLF-CRYPT}" + GOOD_HASH, True),
    ("$2x$" + GOOD_HASH[4:], False),
    ("$1$" + GOOD_HASH[3:], False),
    ("$2b$4a$" + GOOD_HASH[7:], False),
    ("$2b$\u00b24$" + GOOD_HASH[7:], False),  # a digit only to Unicode
    ("$2b$04" + GOOD_HASH[6:].replace("$", "x"), False),
    (GOOD_HASH[:-1], False),
    (GOOD_HASH + "0", False),
    (GOOD_HASH[:-1] + "+", False),
    (GOOD_HASH[:-1] + "\u00e9", False),
])
def test_only_bcrypt_hashes_are_accepted(pwhash, ok):
    entries, problems = parse_passwd_file(f"a:{pwhash}:5:6:/h::\n", "f")
    assert (list(entries) == ["a"]) == ok
    assert bool(problems) == (not ok)


def test_hash_password():
    hashed = hash_password("pässword", rounds=FAST)
    assert hashed.startswith("$2b$04$")
    assert bcrypt.checkpw("pässword".encode(), hashed.encode())
    with pytest.raises(ValueError, match="72"):
        hash_password("x" * 73)
    with pytest.raises(ValueError, match="empty"):
        hash_password("")


def test_read_new_password_from_a_pipe():
    assert read_new_password(io.StringIO("secret one\nignored\n")) == "secret one"
    with pytest.raises(ValueError):
        read_new_password(io.StringIO("\n"))


def test_read_new_password_on_a_terminal():
    """On a tty the password is asked twice without echo, and the two must match."""
    pexpect = pytest.importorskip("pexpect")
    code = (
        "from imapd.auth.passwdfile import read_new_password\n"
        "try:\n    print('GOT:' + read_new_password())\n"
        "except ValueError as e:\n    print('ERR:' + str(e))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    for first, second, expected in (("same", "same", "GOT:same"), ("one", "two", "ERR:the passwords do not match")):
        child = pexpect.spawn(sys.executable, ["-c", code], env=env, timeout=20, encoding="utf-8")
        child.expect("New password: ")
        child.sendline(first)
        child.expect("Repeat password: ")
        child.sendline(second)
        child.expect(pexpect.EOF)
        assert expected in child.before
        assert first not in child.before.replace(expected, "")  # not echoed
        child.close()
