"""What a login backend returns, and the one interface every backend implements.

A backend answers one question, "are these credentials good, and whose mail do they
open?".  It never touches the connection: the session turns its answer into IMAP
(`OK`, `NO [AUTHENTICATIONFAILED]`, `NO [UNAVAILABLE]`, `NO [REFERRAL ...]`), sleeps
the failure delay and counts failures.  The privilege drop happens afterwards, in
`imapd.auth.privileges`, before any mail is opened.
"""

from __future__ import annotations

import abc

from imapd.record import Record

__all__ = [
    "AuthUnavailable",
    "LoginBackend",
    "MailLocationError",
    "User",
    "expand_mail_location",
    "split_user",
    "valid_username",
]

# A username longer than this is refused before any backend sees it: no real
# account has one, and it bounds the work an attacker can make us do.
MAX_USERNAME_LENGTH = 256


class AuthUnavailable(Exception):
    """The backend cannot answer right now (PAM broken, passwd-file unreadable...).

    The session answers `NO [UNAVAILABLE]` and logs the message; it is not a bad
    password, so it does not count as a failed login.
    """


class MailLocationError(ValueError):
    """A mail_location template is invalid, or expands to an unsafe path."""


class User(Record):
    """An authenticated user: whose rights to take and where the mail is.

    `mail_location` is already expanded (absolute path of the Maildir).
    `groups` are supplementary groups to set; None means "ask the system"
    (initgroups for a system account, else only `gid`).
    `referral` is an RFC 2221 IMAP URL: the user's mail lives on another server,
    the session answers `NO [REFERRAL url]` and must not open any mail here.

    Read-only once made.  (A `Record`, not a dataclass: `dataclasses` costs
    every connection milliseconds of imports before its greeting.)
    """

    __slots__ = ("name", "uid", "gid", "home", "mail_location", "groups", "referral")
    _defaults = {"groups": None, "referral": None}

    name: str
    uid: int
    gid: int
    home: str
    mail_location: str
    groups: tuple[int, ...] | None
    referral: str | None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"User is read-only: cannot set {name!r}")


class LoginBackend(abc.ABC):
    """Checks a username and password.

    `last_failure` says, for the log only (never for the client), why the last
    `authenticate()` returned None: "unknown user", "bad password", ...
    """

    last_failure: str | None = None

    @abc.abstractmethod
    def authenticate(self, username: str, password: str) -> User | None:
        """Return the user on success, None for bad credentials.

        Raise `AuthUnavailable` when the backend itself fails, so that a broken
        setup is not reported to the user as a wrong password.
        """


def valid_username(username: str) -> bool:
    """Whether a name may be handed to a backend at all.

    Control characters, NUL, '/' and over-long names never belong to a real
    account; refusing them early keeps them out of PAM, logs and paths.
    """
    if not username or len(username) > MAX_USERNAME_LENGTH:
        return False
    if username in (".", ".."):
        return False
    return not any(ord(c) < 0x20 or c in "\x7f/" for c in username)


def split_user(user: str) -> tuple[str, str]:
    """Split "local@domain" into ("local", "domain"); no '@' gives ("user", "")."""
    local, at, domain = user.rpartition("@")
    if not at:
        return user, ""
    return local, domain


def _check_variable(name: str, value: str, template: str) -> str:
    """Refuse a substituted value that could change the directory structure."""
    if "/" in value or "\0" in value or value in (".", ".."):
        raise MailLocationError(
            f"mail_location {template!r}: {name} {value!r} is not usable in a path"
        )
    return value


def expand_mail_location(
    template: str, user: str, domain: str | None = None, home: str = ""
) -> str:
    """Expand a mail_location template into an absolute, normalised path.

    `~/` at the start and `%h` mean the home directory, `%u` the full user name,
    `%n` its local part (before the last '@'), `%d` its domain (after it; given
    explicitly or taken from `user`), `%%` a literal '%'.  Any other `%x` is an
    error, so that a typo in the configuration is loud, not a wrong directory.

    The result must be absolute and must not contain a `..` component: a user
    name such as "../../etc" must never lead outside the intended tree.
    """
    local, user_domain = split_user(user)
    if domain is None:
        domain = user_domain

    def need_home() -> str:
        if not home or not home.startswith("/"):
            raise MailLocationError(
                f"mail_location {template!r} needs a home directory, "
                f"and user {user!r} has {home!r}"
            )
        return home.rstrip("/") or "/"

    rest = template
    out: list[str] = []
    if rest == "~" or rest.startswith("~/"):
        out.append(need_home())
        rest = rest[1:]
    elif rest.startswith("~"):
        raise MailLocationError(
            f"mail_location {template!r}: only '~/' (the user's own home) is supported"
        )

    i = 0
    while i < len(rest):
        c = rest[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(rest):
            raise MailLocationError(f"mail_location {template!r} ends with a lone '%'")
        key = rest[i + 1]
        if key == "%":
            out.append("%")
        elif key == "h":
            out.append(need_home())
        elif key == "u":
            out.append(_check_variable("user", user, template))
        elif key == "n":
            out.append(_check_variable("user name", local, template))
        elif key == "d":
            out.append(_check_variable("domain", domain, template))
        else:
            raise MailLocationError(
                f"mail_location {template!r}: unknown variable %{key} "
                "(known: %u %n %d %h %%)"
            )
        i += 2

    path = "".join(out)
    if "\0" in path:
        raise MailLocationError(f"mail_location {template!r} expands to a path with NUL")
    if not path.startswith("/"):
        raise MailLocationError(
            f"mail_location {template!r} expands to {path!r}, which is not absolute"
        )
    if ".." in path.split("/"):
        raise MailLocationError(
            f"mail_location {template!r} expands to {path!r}, which contains '..'"
        )
    # posixpath.normpath (which loads `os`) for a path with no "..": no "//", "." or trailing "/"
    return "/" + "/".join(part for part in path.split("/") if part and part != ".")
