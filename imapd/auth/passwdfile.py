"""Virtual users from a passwd-file (`[auth] passwd_file`, default /etc/imapd/passwd).

The format is close to Dovecot's passwd-file, one user per line::

    # comment lines and blank lines are ignored
    user:hash:uid:gid:home:mail_location:extra

user
    The login name, matched exactly (case matters).
hash
    A bcrypt hash (`$2b$...`, also `$2a$` / `$2y$`; Dovecot's `{BLF-CRYPT}` prefix
    is accepted).  Make one with `imapd --hash-password`.  An empty hash, or one
    starting with `!` or `*`, locks the account.
uid, gid
    Numbers or names (looked up in the system's passwd/group databases) of the
    account whose rights the session takes.  Never 0.  May be empty only on a
    referral line.
home
    Absolute home directory, or empty if mail_location does not use `~` / `%h`.
mail_location
    A template (`~/Maildir`, `/var/vmail/%d/%n`, ...) for this user; empty means
    the global `[auth] mail_location`.
extra
    Space-separated `key=value` fields.  Known keys: `referral=imap://host/` (RFC
    2221: the user's mail lives on another server; the session answers
    `NO [REFERRAL ...]` after a good password).  The field may contain ':', as
    URLs do: it is everything after the sixth ':'.

Trailing empty fields may be left out.  A malformed line is ignored, and the
reason (with file name and line number) is kept in `PasswdFileBackend.problems`
for the log.  The file is refused if anyone may write to it.

An unknown user costs the same time as a wrong password: the password is checked
against a dummy hash of the file's usual bcrypt cost, so timing does not reveal
which names exist.
"""

from __future__ import annotations

import _stat
import posix
import sys

from imapd.auth.base import (
    AuthUnavailable,
    LoginBackend,
    MailLocationError,
    User,
    expand_mail_location,
    valid_username,
)
from imapd.record import Record

TYPE_CHECKING = False  # typing costs every connection milliseconds; only the checker needs it
if TYPE_CHECKING:
    from typing import Callable, TextIO

__all__ = [
    "PasswdEntry",
    "PasswdFileBackend",
    "hash_password",
    "parse_passwd_file",
    "read_new_password",
]

# "$2b$12$" and 53 characters of bcrypt's base64 (checked without `re`, which
# would cost every connection its import before the greeting)
_BCRYPT_CHARS = frozenset("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
# A well-formed bcrypt hash of no one's password; its cost field is replaced by
# the file's usual cost, so checking against it takes as long as a real check.
_DUMMY_HASH_TAIL = "aUElBlVnz7am0qKVv/IDkeIL/RnVh0070EF3i65pw95Jr3zX9vydC"
_DEFAULT_COST = 12
_BCRYPT_MAX_BYTES = 72
_KNOWN_EXTRA_KEYS = frozenset({"referral"})


class PasswdEntry(Record):
    """One valid line of a passwd-file (read-only once made)."""

    __slots__ = ("name", "hash", "uid", "gid", "home", "mail_location", "referral", "lineno")

    name: str
    hash: str  # "" when the account is locked
    uid: int  # -1 when not given (referral lines only)
    gid: int
    home: str
    mail_location: str  # template; "" = the backend's default
    referral: str | None
    lineno: int

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"PasswdEntry is read-only: cannot set {name!r}")

    @property
    def locked(self) -> bool:
        return not self.hash


def _resolve_id(value: str, kind: str) -> int:
    """A uid/gid given as a number or as a name from the system databases."""
    if value.isdigit():
        return int(value)
    import grp
    import pwd

    try:
        if kind == "uid":
            return pwd.getpwnam(value).pw_uid
        return grp.getgrnam(value).gr_gid
    except KeyError:
        raise ValueError(f"{kind} {value!r} is neither a number nor a known name") from None


def _looks_like_bcrypt(pwhash: str) -> bool:
    """`$2a$`, `$2b$` or `$2y$`, a two-digit cost, `$`, then 53 base64 characters."""
    return (
        len(pwhash) == 60
        and pwhash.startswith(("$2a$", "$2b$", "$2y$"))
        and pwhash[4] in "0123456789"
        and pwhash[5] in "0123456789"
        and pwhash[6] == "$"
        and _BCRYPT_CHARS.issuperset(pwhash[7:])
    )


def _parse_line(line: str) -> tuple[str, str, int, int, str, str, str | None]:
    """Parse one non-comment line; ValueError says what is wrong with it."""
    fields = line.split(":", 6)
    fields += [""] * (7 - len(fields))
    name, pwhash, uid_s, gid_s, home, location, extra = fields
    if not valid_username(name) or name != name.strip():
        raise ValueError(f"invalid user name {name!r}")
    if pwhash.startswith("{BLF-CRYPT}"):
        pwhash = pwhash[len("{BLF-CRYPT}"):]
    if pwhash == "" or pwhash[0] in "!*":
        pwhash = ""
    elif not _looks_like_bcrypt(pwhash):
        raise ValueError("the password hash is not bcrypt ($2b$...)")

    referral: str | None = None
    for item in extra.split():
        key, eq, value = item.partition("=")
        if not eq or key not in _KNOWN_EXTRA_KEYS:
            raise ValueError(f"unknown extra field {item!r} (known: referral=URL)")
        if key == "referral":
            if not value.lower().startswith(("imap://", "imaps://")):
                raise ValueError(f"referral {value!r} is not an imap:// URL")
            referral = value

    if referral is not None and not uid_s and not gid_s:
        uid = gid = -1
    else:
        if not uid_s or not gid_s:
            raise ValueError("uid and gid are required")
        uid = _resolve_id(uid_s, "uid")
        gid = _resolve_id(gid_s, "gid")
        if uid == 0 or gid == 0:
            raise ValueError("uid and gid must not be 0 (root)")
    if home and not home.startswith("/"):
        raise ValueError(f"home {home!r} is not an absolute path")
    return name, pwhash, uid, gid, home, location, referral


def parse_passwd_file(text: str, filename: str = "passwd-file") -> tuple[dict[str, PasswdEntry], list[str]]:
    """Parse the whole file: (entries by user name, problems found).

    A problem names the file and line, and the line is left out; the first of two
    lines for the same user wins, so adding a line at the end never takes over an
    existing account.
    """
    entries: dict[str, PasswdEntry] = {}
    problems: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            name, pwhash, uid, gid, home, location, referral = _parse_line(line)
        except ValueError as exc:
            problems.append(f"{filename}:{lineno}: {exc}; line ignored")
            continue
        if name in entries:
            problems.append(
                f"{filename}:{lineno}: user {name!r} already defined on line "
                f"{entries[name].lineno}; line ignored"
            )
            continue
        entries[name] = PasswdEntry(name, pwhash, uid, gid, home, location, referral, lineno)
    return entries, problems


class PasswdFileBackend(LoginBackend):
    """Virtual users from a passwd-file (format in the module docstring).

    The file is read on the first login attempt, not at start-up: one process
    serves one connection, so every connection sees the file as it is now.
    `problems` lists malformed lines; `on_problem`, if given, is called with each.
    """

    def __init__(
        self,
        path: str = "/etc/imapd/passwd",
        mail_location: str = "~/Maildir",
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        self.path = path
        self.mail_location = mail_location
        self.on_problem = on_problem
        self.problems: list[str] = []
        self.last_failure = None
        self._entries: dict[str, PasswdEntry] | None = None
        self._dummy_hash = ""

    def load(self) -> dict[str, PasswdEntry]:
        """Read and parse the file once; AuthUnavailable if it cannot be used."""
        if self._entries is not None:
            return self._entries
        try:
            with open(self.path, encoding="utf-8", errors="strict") as f:
                st = posix.fstat(f.fileno())
                if st.st_mode & _stat.S_IWOTH:
                    raise AuthUnavailable(f"{self.path} is writable by everyone; refusing to use it")
                text = f.read()
        except AuthUnavailable:
            raise
        except UnicodeDecodeError as exc:
            raise AuthUnavailable(f"{self.path} is not valid UTF-8: {exc}") from exc
        except OSError as exc:
            raise AuthUnavailable(f"cannot read passwd-file {self.path}: {exc.strerror or exc}") from exc
        entries, problems = parse_passwd_file(text, self.path)
        for problem in problems:
            self.problems.append(problem)
            if self.on_problem is not None:
                self.on_problem(problem)
        costs: dict[str, int] = {}
        for e in entries.values():
            if e.hash:
                costs[e.hash[4:6]] = costs.get(e.hash[4:6], 0) + 1
        cost = max(costs, key=costs.__getitem__) if costs else f"{_DEFAULT_COST:02d}"
        self._dummy_hash = f"$2b${cost}${_DUMMY_HASH_TAIL}"
        self._entries = entries
        return entries

    def authenticate(self, username: str, password: str) -> User | None:
        self.last_failure = None
        entries = self.load()
        if not valid_username(username):
            return self._refuse("invalid user name")
        if not password:
            return self._refuse("empty password")
        entry = entries.get(username)
        if entry is None or entry.locked:
            _check_password(password, self._dummy_hash)  # same time as a real check
            return self._refuse("unknown user" if entry is None else "account locked")
        if not _check_password(password, entry.hash):
            return self._refuse("bad password")

        if entry.referral is not None and entry.uid < 0:
            return User(entry.name, -1, -1, entry.home, "", None, entry.referral)
        template = entry.mail_location or self.mail_location
        try:
            location = expand_mail_location(template, entry.name, None, entry.home)
        except MailLocationError as exc:
            raise AuthUnavailable(f"{self.path}:{entry.lineno}: {exc}") from exc
        return User(
            name=entry.name,
            uid=entry.uid,
            gid=entry.gid,
            home=entry.home,
            mail_location=location,
            groups=None,
            referral=entry.referral,
        )

    def _refuse(self, reason: str) -> None:
        self.last_failure = reason
        return None


def _check_password(password: str, pwhash: str) -> bool:
    """bcrypt check; like every bcrypt, only the first 72 bytes count."""
    import bcrypt  # lazily: PAM setups never need it

    secret = password.encode("utf-8", "surrogateescape")[:_BCRYPT_MAX_BYTES]
    try:
        return bool(bcrypt.checkpw(secret, pwhash.encode("ascii")))
    except ValueError:
        return False


def hash_password(password: str, rounds: int = _DEFAULT_COST) -> str:
    """A bcrypt hash for a passwd-file line.

    Refuses passwords longer than bcrypt's 72 bytes rather than silently
    ignoring the rest, and empty ones, which could never log in.
    """
    import bcrypt

    secret = password.encode("utf-8")
    if not secret:
        raise ValueError("the password is empty")
    if len(secret) > _BCRYPT_MAX_BYTES:
        raise ValueError(f"the password is longer than bcrypt's {_BCRYPT_MAX_BYTES} bytes")
    if not 4 <= rounds <= 31:
        raise ValueError("bcrypt rounds must be between 4 and 31")
    return bcrypt.hashpw(secret, bcrypt.gensalt(rounds)).decode("ascii")


def read_new_password(stdin: TextIO | None = None) -> str:
    """Read the password to hash, for `imapd --hash-password`.

    On a terminal: asked twice without echo, and the two must match.  Otherwise
    (a pipe, a script): the first line of standard input.
    """
    stdin = stdin if stdin is not None else sys.stdin
    if stdin.isatty():
        import getpass

        first = getpass.getpass("New password: ")
        second = getpass.getpass("Repeat password: ")
        if first != second:
            raise ValueError("the passwords do not match")
        password = first
    else:
        password = stdin.readline().rstrip("\r\n")
    if not password:
        raise ValueError("the password is empty")
    return password
