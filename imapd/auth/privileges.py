"""Become the logged-in user, for good, before any mail is opened.

The server starts as root (inetd, systemd) so that it can read /etc/shadow through
PAM, the TLS key and the passwd-file.  Once a user has logged in, the process
takes that user's groups, gid and uid, in that order (groups and gid need root),
and then proves to itself that it cannot become root again.  Mail is then read
and written with exactly the user's rights, as a local mail reader would.
"""

from __future__ import annotations

import posix
import pwd

from imapd.auth.base import User

__all__ = ["PrivilegeError", "drop_privileges", "expected_groups"]


class PrivilegeError(Exception):
    """The process could not become the user, or could become root again.

    The process must not serve mail after this: the session answers `NO
    [SERVERBUG]`/`BYE` and exits.
    """


def _system_account_matches(user: User) -> bool:
    """Whether `user.name` is a system account with the same uid.

    Only then may initgroups use the name: a virtual user called "adm" must not
    get the groups of the system account "adm".
    """
    try:
        return pwd.getpwnam(user.name).pw_uid == user.uid
    except (KeyError, UnicodeError, ValueError):
        return False


def expected_groups(user: User) -> list[int]:
    """The supplementary groups the user gets: explicit, from initgroups, or only gid."""
    if user.groups is not None:
        return sorted({user.gid, *user.groups})
    if _system_account_matches(user):
        return sorted(set(posix.getgrouplist(user.name, user.gid)))
    return [user.gid]


def drop_privileges(user: User) -> None:
    """Switch this process to `user` irrevocably, or raise PrivilegeError.

    Running as root: set the groups (initgroups for a system account, else just the
    gid), then real/effective/saved gid, then uid.  Already running as the user (ssh,
    a terminal): nothing to change, only checked.  Running as someone else: refused.
    """
    if user.uid <= 0 or user.gid <= 0:
        raise PrivilegeError(
            f"refusing to run as uid {user.uid} gid {user.gid} for user {user.name!r}"
        )
    groups = expected_groups(user)
    if 0 in groups:
        raise PrivilegeError(f"refusing to run user {user.name!r} with group 0 (root)")

    switched = posix.geteuid() == 0
    if switched:
        try:
            if user.groups is None and _system_account_matches(user):
                posix.initgroups(user.name, user.gid)
            else:
                posix.setgroups(groups)
            posix.setresgid(user.gid, user.gid, user.gid)
            posix.setresuid(user.uid, user.uid, user.uid)
        except OSError as exc:
            raise PrivilegeError(
                f"cannot switch to user {user.name!r} (uid {user.uid}, gid {user.gid}): "
                f"{exc.strerror or exc}"
            ) from exc
    elif posix.getresuid() != (user.uid,) * 3:
        raise PrivilegeError(
            f"running as uid {posix.getuid()}, not root: cannot become user {user.name!r} "
            f"(uid {user.uid})"
        )

    _verify(user, groups if switched else None)


def _verify(user: User, groups: list[int] | None) -> None:
    """Check that the switch happened and cannot be undone.

    `groups` is None when we did not set them (already running as the user under
    ssh or from a terminal: gid and groups are whatever the login gave).
    """
    gids_ok = groups is None or posix.getresgid() == (user.gid,) * 3
    if posix.getresuid() != (user.uid,) * 3 or not gids_ok:
        raise PrivilegeError(
            f"after switching to {user.name!r}: uids {posix.getresuid()} gids {posix.getresgid()}, "
            f"expected {user.uid}/{user.gid}"
        )
    if groups is not None and set(posix.getgroups()) | {user.gid} != set(groups) | {user.gid}:
        raise PrivilegeError(
            f"after switching to {user.name!r}: groups {sorted(posix.getgroups())}, "
            f"expected {groups}"
        )
    for regain in (posix.setuid, posix.seteuid, posix.setgid, posix.setegid):
        try:
            regain(0)
        except OSError:
            continue
        raise PrivilegeError(
            f"after switching to {user.name!r}, {regain.__name__}(0) still succeeds; "
            "refusing to go on"
        )
