"""User, valid_username and expand_mail_location."""

from __future__ import annotations

import re

import pytest

from imapd.auth.base import (
    LoginBackend,
    MailLocationError,
    User,
    expand_mail_location,
    split_user,
    valid_username,
)


@pytest.mark.parametrize(
    "template, user, domain, home, expected",
    [
        ("~/Maildir", "alice", None, "/home/alice", "/home/alice/Maildir"),
        ("~", "alice", None, "/home/alice/", "/home/alice"),
        ("%h/Maildir", "alice", None, "/home/alice", "/home/alice/Maildir"),
        ("/var/mail/%d/%n", "bob@example.org", None, "", "/var/mail/example.org/bob"),
        ("/var/mail/%d/%n", "bob", "example.net", "", "/var/mail/example.net/bob"),
        ("/var/mail/%u", "bob@example.org", None, "", "/var/mail/bob@example.org"),
        ("/m/%%/%n", "x", None, "", "/m/%/x"),
        ("/m//%n/./Maildir/", "x", None, "", "/m/x/Maildir"),
        ("~/Maildir", "root-ish", None, "/", "/Maildir"),
        ("/m/a@b@c/%d", "a@b@c", None, "", "/m/a@b@c/c"),
    ],
)
def test_expand(template, user, domain, home, expected):
    assert expand_mail_location(template, user, domain, home) == expected


@pytest.mark.parametrize(
    "template, user, home, message",
    [
        ("/var/mail/%n", "..", "", "not usable"),
        ("/var/mail/%u", "../../etc", "", "not usable"),
        ("/var/mail/%d/%n", "x@..", "", "not usable"),
        ("/var/mail/%u", "a/b", "", "not usable"),
        ("/var/mail/../%n", "x", "", "'..'"),
        ("%h/Maildir", "x", "/home/../etc", "'..'"),
        ("Maildir", "x", "/h", "not absolute"),
        ("%n/Maildir", "x", "/h", "not absolute"),
        ("~/Maildir", "x", "", "home directory"),
        ("~/Maildir", "x", "relative", "home directory"),
        ("~other/Maildir", "x", "/h", "only '~/'"),
        ("/m/%x", "x", "/h", "unknown variable %x"),
        ("/m/%", "x", "/h", "lone '%'"),
    ],
)
def test_expand_refuses(template, user, home, message):
    with pytest.raises(MailLocationError, match=re.escape(message)):
        expand_mail_location(template, user, None, home)


def test_split_user():
    assert split_user("a@b") == ("a", "b")
    assert split_user("a") == ("a", "")
    assert split_user("a@b@c") == ("a@b", "c")


@pytest.mark.parametrize("name", ["alice", "a@b.c", "Ünïcode", "x" * 256])
def test_valid_usernames(name):
    assert valid_username(name)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\0", "a\n", "a\x7f", "x" * 257])
def test_invalid_usernames(name):
    assert not valid_username(name)


def test_user_is_immutable_and_defaults():
    user = User("a", 1, 2, "/h", "/h/Maildir")
    assert user.groups is None and user.referral is None
    with pytest.raises(AttributeError):
        user.uid = 0  # type: ignore[misc]
    assert user.uid == 1
    assert user == User("a", 1, 2, "/h", "/h/Maildir", None, None)
    assert user != User("a", 1, 2, "/h", "/h/Maildir", referral="imap://x/")
    assert User(name="a", uid=1, gid=2, home="/h", mail_location="/m", groups=(3, 4)).groups == (3, 4)


def test_login_backend_is_abstract():
    with pytest.raises(TypeError):
        LoginBackend()  # type: ignore[abstract]

    class Fixed(LoginBackend):
        def authenticate(self, username: str, password: str) -> User | None:
            return User(username, 1, 1, "/h", "/h/M") if password == "ok" else None

    assert Fixed().authenticate("a", "ok").name == "a"
    assert Fixed().last_failure is None
